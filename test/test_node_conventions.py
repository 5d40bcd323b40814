"""ROS conventions of the nodes, with real rclpy nodes and real remapping arguments:

* camera_info and the compressed topic follow the image topic as image_transport derives them
  (`image:=/cam/image_raw` → `/cam/camera_info`, `/cam/image_raw/compressed`); an explicit
  `camera_info` remap wins;
* the `image_transport` parameter (raw | compressed) and the deprecated `input.compressed`;
* rectification of distorted raw images (input.rectify), with the outputs' geometry from P.
"""
import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from ppd_ros.geometry.backproject import depth_to_points  # noqa: E402
from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.geometry.scale.depth_scale import near_far_scale, relative_to_metric  # noqa: E402
from ppd_ros.geometry.rectify import Calibration  # noqa: E402
from ppd_ros.nodes.camera_info import looks_rectified, sibling_camera_info  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.image_codec import rgb_to_compressed_msg, rgb_to_image_msg  # noqa: E402
from ppd_ros.nodes.scale_fusion_node import ScaleFusionNode  # noqa: E402
from test_depth_node_harness import (Collector, RecordingEstimator, RosGraph, camera_info,  # noqa: E402
                                     cloud_grid, float_image, header, overrides, pattern_image, wait_for)

INTR = Intrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)


def test_sibling_camera_info_is_image_transports_rule():
    assert sibling_camera_info('/cam/image_raw') == '/cam/camera_info'
    assert sibling_camera_info('/robot/front/color/image_rect') == '/robot/front/color/camera_info'
    assert sibling_camera_info('/image') == '/camera_info'


@pytest.mark.parametrize('topic, rectified', [('/cam/image_raw', False), ('/cam/image', False),
                                              ('/cam/image_color', False), ('/cam/image_rect', True),
                                              ('/cam/image_rect_color', True), ('/camera/depth/image_rect_raw', True)])
def test_rectified_topic_names_follow_image_proc(topic, rectified):
    assert looks_rectified(topic) is rectified


def depth_node(context, remaps=(), namespace='', **params):
    args = ['--ros-args'] + [part for remap in remaps for part in ('-r', remap)]
    return DepthNode(estimator=RecordingEstimator(), context=context, namespace=namespace, cli_args=args,
                     parameter_overrides=overrides(**params))


@pytest.mark.parametrize('remaps, namespace, params, expected', [
    ((), '', {}, ('/image', '/camera_info')),
    ((), 'robot', {}, ('/robot/image', '/robot/camera_info')),
    (('image:=/cam/image_raw',), '', {}, ('/cam/image_raw', '/cam/camera_info')),
    (('image:=/cam/image_raw',), '', {'image_transport': 'compressed'},
     ('/cam/image_raw/compressed', '/cam/camera_info')),
    (('image:=image_raw',), 'cam', {}, ('/cam/image_raw', '/cam/camera_info')),
    # an explicit camera_info remap wins over the derived topic
    (('image:=/cam/image_raw', 'camera_info:=/calibration/info'), '', {}, ('/cam/image_raw', '/calibration/info')),
    # what the launch file passes by default: camera_info:=camera_info names no other topic
    (('image:=/cam/image_raw', 'camera_info:=camera_info'), '', {}, ('/cam/image_raw', '/cam/camera_info')),
    # an explicit image/compressed remap wins too
    (('image:=/cam/image_raw', 'image/compressed:=/cam/jpeg'), '', {'image_transport': 'compressed'},
     ('/cam/jpeg', '/cam/camera_info')),
])
def test_depth_node_input_topics_follow_the_image_topic(ros_context, remaps, namespace, params, expected):
    node = depth_node(ros_context, remaps, namespace, **params)
    try:
        assert node.input_topics == expected
        subscribed = {name: types for name, types in node.get_topic_names_and_types()
                      if name in expected}
        assert set(subscribed) == set(expected)  # the subscriptions really are on these topics
        image_type = 'sensor_msgs/msg/CompressedImage' if params.get('image_transport') else 'sensor_msgs/msg/Image'
        assert subscribed[expected[0]] == [image_type]
        assert subscribed[expected[1]] == ['sensor_msgs/msg/CameraInfo']
    finally:
        node.destroy_node()


class CameraDriver(rclpy.node.Node):
    """Publishes on fully qualified topics, like a driver in its own namespace."""

    def __init__(self, context, image_topic, info_topic, compressed=False):
        super().__init__('camera_driver', context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(CompressedImage if compressed else Image, image_topic, qos)
        self.info_pub = self.create_publisher(CameraInfo, info_topic, qos)
        self.compressed = compressed

    def connected(self):
        return self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0

    def send(self, i, rgb, info):
        info.header = header(i)
        image = rgb_to_compressed_msg(rgb, header(i), 'png') if self.compressed else rgb_to_image_msg(rgb, header(i))
        self.info_pub.publish(info)
        self.image_pub.publish(image)


@pytest.mark.parametrize('compressed', [False, True])
def test_remapping_only_the_image_is_enough_end_to_end(ros_context, compressed):
    image_topic = '/cam/image_raw/compressed' if compressed else '/cam/image_raw'
    with RosGraph(ros_context) as graph:
        node = graph.add(depth_node(ros_context, ['image:=/cam/image_raw'],
                                    image_transport='compressed' if compressed else 'raw'))
        driver = graph.add(CameraDriver(ros_context, image_topic, '/cam/camera_info', compressed))
        collector = graph.add(Collector(ros_context, topics=['depth/relative']))
        assert wait_for(lambda: driver.connected() and node.wanted_outputs() == {'relative'})
        rgb = pattern_image()
        driver.send(3, rgb, camera_info(INTR, header(3)))
        assert wait_for(lambda: collector.has_frame(3))
        np.testing.assert_array_equal(node.estimator.inputs[-1], rgb)


def test_deprecated_input_compressed_still_selects_the_transport(ros_context):
    node = depth_node(ros_context, input__compressed=True)
    try:
        assert node.image_transport == 'compressed' and node.input_topics[0] == '/image/compressed'
        assert 'input.compressed' in node.params.unknown_overrides()  # not declared any more
    finally:
        node.destroy_node()
    node = depth_node(ros_context, input__compressed=True, image_transport='raw')  # the new one wins
    try:
        assert node.image_transport == 'raw' and node.input_topics[0] == '/image'
    finally:
        node.destroy_node()


def test_fusion_node_camera_info_follows_depth_relative(ros_context):
    node = ScaleFusionNode(context=ros_context, cli_args=['--ros-args', '-r', 'depth/relative:=/front/depth/relative'])
    try:
        assert node.input_topics == ('/front/depth/relative', '/front/depth/camera_info')
    finally:
        node.destroy_node()
    node = ScaleFusionNode(context=ros_context, cli_args=['--ros-args', '-r', 'depth/relative:=/front/depth/relative',
                                                          '-r', 'depth/camera_info:=/front/info'])
    try:
        assert node.input_topics == ('/front/depth/relative', '/front/info')
    finally:
        node.destroy_node()


# ------------------------------------------------------------------ rectification in the node

W, H = 160, 120
K = np.array([[130.0, 0.0, 81.0], [0.0, 128.0, 59.0], [0.0, 0.0, 1.0]])
P = np.hstack([np.array([[120.0, 0.0, 79.0], [0.0, 120.0, 61.0], [0.0, 0.0, 1.0]]), np.zeros((3, 1))])
D = [-0.3, 0.1, 0.001, -0.001, -0.02]
P_INTR = Intrinsics(120.0, 120.0, 79.0, 61.0, W, H)


def distorted_info(d=D, p=P):
    return CameraInfo(width=W, height=H, distortion_model='plumb_bob', d=list(d), k=K.ravel().tolist(),
                      r=np.eye(3).ravel().tolist(), p=np.asarray(p).ravel().tolist())


def truth_and_raw(d=D, p=P):
    """A rectified truth image (smooth texture) and the raw image a lens with D records of it."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    truth = np.stack([127 + 100 * np.sin(xx / 7.0), 127 + 100 * np.cos(yy / 5.0),
                      127 + 100 * np.sin((xx + yy) / 9.0)], -1).astype(np.uint8)
    calibration = Calibration.of(W, H, 'plumb_bob', d, K.ravel(), np.eye(3).ravel(), np.asarray(p).ravel())
    pixels = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).reshape(-1, 1, 2).astype(np.float64)
    k, dd, r, new_k = calibration.matrices()
    where = cv2.undistortPoints(pixels, k, dd, R=r, P=new_k).reshape(H, W, 2).astype(np.float32)
    raw = cv2.remap(truth, where[..., 0], where[..., 1], cv2.INTER_LINEAR)
    return truth, raw


def run_rectify(context, frames, remaps=(), topics=('depth/relative', 'depth/camera_info', 'depth/points'),
                info=distorted_info, **params):
    truth, raw = truth_and_raw()
    with RosGraph(context) as graph:
        node = graph.add(depth_node(context, remaps, **params))
        image_topic, info_topic = node.input_topics
        driver = graph.add(CameraDriver(context, image_topic, info_topic))
        collector = graph.add(Collector(context, topics=list(topics)))
        assert wait_for(lambda: driver.connected() and len(node.wanted_outputs()) == len(
            [t for t in topics if t != 'depth/camera_info']))
        for i in range(frames):
            driver.send(i, raw, info())
            assert wait_for(lambda: collector.has_frame(i)), f'frame {i}'
        node.diagnostic_values = node._diagnostics_status()[2]
    return node, collector, truth, raw


def test_distorted_raw_images_are_rectified_and_the_geometry_is_ps(ros_context):
    node, collector, truth, raw = run_rectify(ros_context, 3, ['image:=/cam/image_raw'],
                                              output__resolution='inference')  # at the model's 80x60
    model_input = node.estimator.inputs[-1].astype(np.float32)
    error = np.abs(model_input - truth)[8:-8, 8:-8].mean()
    assert error < 3.0 and error < 0.2 * np.abs(raw.astype(np.float32) - truth)[8:-8, 8:-8].mean()
    assert node.pipeline.rectification.rectifier.maps_built == 1  # three frames, one calibration
    assert node.pipeline.rectification.state.startswith('rectified (plumb_bob')
    assert node.diagnostic_values['rectification'] == node.pipeline.rectification.state
    assert node.diagnostic_values['input topics'] == '/cam/image_raw + /cam/camera_info'

    info = collector.by_stamp('depth/camera_info', 2)  # the rectified image's CameraInfo, at 80x60
    small = P_INTR.resized_to(80, 60)
    assert list(info.d) == [0.0] * 5 and list(info.r) == np.eye(3).ravel().tolist()
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), small.K, atol=1e-9)
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], small.K, atol=1e-9)

    relative = float_image(collector.by_stamp('depth/relative', 2))
    metric = relative_to_metric(relative, *near_far_scale(0.5, 10.0))
    xyz, _ = cloud_grid(collector.by_stamp('depth/points', 2))
    np.testing.assert_allclose(xyz, depth_to_points(metric, small), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_a_new_calibration_builds_new_maps(ros_context):
    calls = iter([distorted_info(), distorted_info(), distorted_info(d=[-0.1, 0.0, 0.0, 0.0, 0.0])])
    node, _, _, _ = run_rectify(ros_context, 3, topics=('depth/relative',), info=lambda: next(calls))
    assert node.pipeline.rectification.rectifier.maps_built == 2


def test_wide_p_borders_have_no_depth(ros_context):
    wide = P.copy()
    wide[0, 0] = wide[1, 1] = 60.0

    node, collector, _, _ = run_rectify(ros_context, 1, topics=('depth/relative',), output__resolution='inference',
                                        info=lambda: distorted_info(d=[0.25, 0, 0, 0, 0], p=wide))
    relative = float_image(collector.by_stamp('depth/relative', 0))
    valid = node.pipeline.rectification.rectifier.valid(Calibration.of(W, H, 'plumb_bob', [0.25, 0, 0, 0, 0], K.ravel(),
                                                               np.eye(3).ravel(), wide.ravel()))
    assert not valid.all() and np.isnan(relative[0, 0]) and np.isnan(relative[-1, -1])
    assert np.isfinite(relative[30, 40])


def test_rect_topics_are_not_rectified_again(ros_context):
    node, collector, truth, raw = run_rectify(ros_context, 2, ['image:=/cam/image_rect'],
                                              topics=('depth/relative', 'depth/camera_info'))
    np.testing.assert_array_equal(node.estimator.inputs[-1], raw)  # used as it comes
    assert node.pipeline.rectification.rectifier.maps_built == 0
    assert 'rectified (image_rect)' in node.pipeline.rectification.state
    assert list(collector.by_stamp('depth/camera_info', 1).d) == D  # the camera's calibration, passed on


def test_rectify_on_overrides_the_name_and_off_warns_once(ros_context, capfd):
    node, _, truth, raw = run_rectify(ros_context, 1, ['image:=/cam/image_rect'], topics=('depth/relative',),
                                      input__rectify='on')
    assert node.pipeline.rectification.rectifier.maps_built == 1
    capfd.readouterr()
    node, _, _, raw = run_rectify(ros_context, 3, topics=('depth/relative',), input__rectify='off')
    np.testing.assert_array_equal(node.estimator.inputs[-1], raw)
    assert node.pipeline.rectification.rectifier.maps_built == 0 and node.pipeline.rectification.state == 'off'
    err = capfd.readouterr().err
    assert err.count('input.rectify is off') == 1, err


def test_an_unsupported_distortion_model_warns_once_and_the_frames_still_flow(ros_context, capfd):
    def info():
        msg = distorted_info()
        msg.distortion_model = 'kannala_brandt'
        return msg

    node, collector, _, raw = run_rectify(ros_context, 2, topics=('depth/relative',), info=info)
    np.testing.assert_array_equal(node.estimator.inputs[-1], raw)
    assert "'kannala_brandt' is not supported" in node.pipeline.rectification.state
    assert capfd.readouterr().err.count("'kannala_brandt' is not supported") == 1
