"""depth_node temporal.mode video: causal PPVD windows in the node. With the offline window size
the published depths equal offline infer_video for the same frames (float rounding); frames come
out at their input stamps when their window is done; wrong model/mode pairs refuse to start."""
import numpy as np
import pytest

pytest.importorskip('rclpy')

from test_depth_node import INTR, start  # noqa: E402
from test_depth_node_harness import RecordingEstimator, RosGraph, overrides, wait_for  # noqa: E402

import torch  # noqa: E402

from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.image_codec import float_image_to_array  # noqa: E402
from ppd_ros.nodes.params import ParameterError  # noqa: E402
from ppd_ros.model.video import VideoDepthEstimator  # noqa: E402
from test_depth_node_harness import header, stamp  # noqa: E402


def _frames(n):
    rng = np.random.default_rng(4)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]


def test_streaming_equals_offline_with_the_offline_window(ros_context):
    estimator = VideoDepthEstimator.from_config(device='cpu', steps=1, seed=3)
    frames = _frames(29)  # windows of 16 and 13 new frames: no padding offline either
    offline = estimator.infer_rgb(torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames]))
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, topics=['depth/relative', 'depth/image'],
                                        temporal__mode='video', temporal__video_new_frames=13, model__steps=1)
        for i, rgb in enumerate(frames):
            feeder.send(i, rgb, INTR)
            sec, nanosec = stamp(i)  # the node has taken frame i into its stream (no frame dropped)
            assert wait_for(lambda: node.pipeline.temporal.last_stamp == sec * 10**9 + nanosec), i
            if i == 14:
                assert collector.count('depth/relative') == 0  # window not full yet: nothing published
        # depth/image of a frame goes out just after its depth/relative: wait for both
        assert wait_for(lambda: collector.count('depth/relative') == collector.count('depth/image') == 29, timeout=60)
        status = dict(node._diagnostics_status()[2])
    for i in range(29):
        got = float_image_to_array(collector.by_stamp('depth/relative', i))
        np.testing.assert_allclose(got, offline[i].numpy(), atol=1e-5, rtol=0)
        assert collector.by_stamp('depth/image', i).header.frame_id == header(i).frame_id
    assert status['temporal mode'] == 'video' and status['video window'].startswith('16 frames')
    assert str(status['video windows run']) == '2'


def test_video_mode_and_video_model_must_go_together(ros_context):
    with pytest.raises(ParameterError, match="needs the video model"):
        DepthNode(estimator=RecordingEstimator(), context=ros_context,
                  parameter_overrides=overrides(temporal__mode='video'))
    with pytest.raises(ParameterError, match="runs only with temporal.mode 'video'"):
        DepthNode(estimator=VideoDepthEstimator.from_config(device='cpu'), context=ros_context)
