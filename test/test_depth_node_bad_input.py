"""Bad input to depth_node: a clear (throttled) error per frame, no crash, good frames still flow.

Only float encodings (32FC1, 64FC1, …) can carry NaN; they are depth images, not colour, and are
rejected as unsupported with a hint. Integer colour encodings cannot hold NaN.
"""
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.image_codec import array_to_image_msg, rgb_to_image_msg  # noqa: E402
from ppd_dev.hardening_bench import bomb_png  # noqa: E402
from test_depth_node_harness import (Collector, Feeder, RecordingEstimator, RosGraph,  # noqa: E402
                                     camera_info, header, overrides, pattern_image, wait_for)
from ppd_ros.geometry.camera import Intrinsics  # noqa: E402

INTR = Intrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)


def _nan_float_image():
    depth = np.full((48, 64), 1.5, np.float32)
    depth[10:20, 10:20] = np.nan
    return array_to_image_msg(depth, header(0), '32FC1')


def _truncated_rgb8():
    msg = rgb_to_image_msg(pattern_image(), header(0))
    msg.data = msg.data[:-7]
    return msg


BAD_IMAGES = {
    'float image with NaN': (_nan_float_image, "unsupported colour encoding '32FC1' (this is a depth/float"),
    'double image': (lambda: Image(header=header(0), height=48, width=64, encoding='64FC1', step=512,
                                   data=bytes(48 * 512)), "unsupported colour encoding '64FC1'"),
    'unknown encoding': (lambda: Image(header=header(0), height=48, width=64, encoding='yuv422', step=128,
                                       data=bytes(48 * 128)), "unsupported colour encoding 'yuv422'"),
    'zero size': (lambda: Image(header=header(0), height=0, width=0, encoding='rgb8', step=0),
                  'image has zero size'),
    'data shorter than step × height': (_truncated_rgb8, 'data has 9209 bytes but step 192 × height 48 = 9216'),
    'step smaller than a row': (lambda: Image(header=header(0), height=48, width=64, encoding='rgb8', step=100,
                                              data=bytes(4800)), 'step 100 is smaller than width 64'),
    # issue 13: bounded work per frame whatever the input
    'aspect bomb': (lambda: array_to_image_msg(np.zeros((1, 60000), np.uint8), header(0), 'mono8'),
                    'image 60000x1 has an aspect ratio of 60000.0:1, more than the 8:1 the model accepts'),
    'above input.max_pixels': (lambda: Image(header=header(0), height=16000, width=16000, encoding='rgb8',
                                             step=48000, data=bytes(16)),
                               'image 16000x16000 has 256.0 MP, more than the limit of 33.2 MP'),
}


def _expect_error_then_recovery(node, feeder, collector, index, text, good_encoding='rgb8', **send_kwargs):
    errors_before = node.errors
    feeder.send(index, pattern_image(), INTR, **send_kwargs)
    assert wait_for(lambda: node.errors == errors_before + 1), f'no error counted for frame {index}'
    assert text in node.last_error, node.last_error
    good = index + 1000
    feeder.send(good, pattern_image(), INTR, encoding=good_encoding)
    assert wait_for(lambda: collector.has_frame(good)), f'good frame after {text!r} did not come out'


def test_bad_raw_images_and_camera_infos_are_dropped_with_a_clear_error(ros_context):
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=RecordingEstimator(), context=ros_context))
        feeder = graph.add(Feeder(ros_context))
        collector = graph.add(Collector(ros_context, topics=['depth/relative', 'depth/points']))
        assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == {'relative', 'points'})

        for i, (name, (make, text)) in enumerate(BAD_IMAGES.items()):
            _expect_error_then_recovery(node, feeder, collector, i, text, image=make())

        mismatch = camera_info(INTR.resized_to(32, 24), header(0))
        _expect_error_then_recovery(node, feeder, collector, 20, 'CameraInfo is 32x24 but the image is 64x48',
                                    info=mismatch)

        # An uncalibrated camera (K and P all zero): depth/relative still comes, depth/points cannot.
        errors_before = node.errors
        feeder.send(30, pattern_image(), INTR, info=camera_info(INTR, header(0), zero_k=True, zero_p=True))
        assert wait_for(lambda: collector.has_frame(30, ['depth/relative']) and node.errors == errors_before + 1)
        assert 'K and P are all zero' in node.last_error
        assert collector.by_stamp('depth/points', 30) is None
        feeder.send(31, pattern_image(), INTR)
        assert wait_for(lambda: collector.has_frame(31))

        assert node.worker.stats()['failed'] == len(BAD_IMAGES) + 1  # whole frames dropped
        assert node.context.ok()


def test_corrupt_compressed_images_are_dropped_with_a_clear_error(ros_context):
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=RecordingEstimator(), context=ros_context,
                                   parameter_overrides=overrides(image_transport='compressed')))
        feeder = graph.add(Feeder(ros_context, compressed=True))
        collector = graph.add(Collector(ros_context, topics=['depth/relative']))
        assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == {'relative'})

        garbage = CompressedImage(header=header(0), format='jpeg', data=b'\xff\xd8 this is not a jpeg')
        _expect_error_then_recovery(node, feeder, collector, 0, 'cannot decode compressed image',
                                    image=garbage, good_encoding='png')
        empty = CompressedImage(header=header(0), format='png', data=b'')
        _expect_error_then_recovery(node, feeder, collector, 1, 'has no data', image=empty, good_encoding='png')
        depth = CompressedImage(header=header(0), format='16UC1; compressedDepth png', data=b'\x00' * 20)
        _expect_error_then_recovery(node, feeder, collector, 2, 'compressedDepth', image=depth, good_encoding='png')

        # issue 13: a decompression bomb is refused from its header, the model never sees it
        frames_seen = len(node.estimator.inputs)
        bomb = CompressedImage(header=header(0), format='png', data=bomb_png(6000))
        _expect_error_then_recovery(node, feeder, collector, 3, 'png image 6000x6000 has 36.0 MP, more than '
                                    'the limit of 33.2 MP', image=bomb, good_encoding='png')
        assert len(node.estimator.inputs) == frames_seen + 1  # only the good frame after it


def test_input_max_pixels_parameter_refuses_larger_frames(ros_context):
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=RecordingEstimator(), context=ros_context,
                                   parameter_overrides=overrides(input__max_pixels=64 * 48)))
        feeder = graph.add(Feeder(ros_context))
        collector = graph.add(Collector(ros_context, topics=['depth/relative']))
        assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == {'relative'})
        big = rgb_to_image_msg(np.zeros((49, 64, 3), np.uint8), header(0))
        feeder.send(0, pattern_image(), INTR, image=big, info=camera_info(INTR.resized_to(64, 49), header(0)))
        assert wait_for(lambda: node.errors == 1)
        assert 'image 64x49 has 3136 pixels, more than the limit of 3072 pixels (input.max_pixels = 3072)' in node.last_error
        feeder.send(1, pattern_image(), INTR)  # 64x48: exactly the limit
        assert wait_for(lambda: collector.has_frame(1))
        assert len(node.estimator.inputs) == 1
