"""depth_node's costmap outputs over real topics: +Inf beyond output.max_range and NaN for invalid
pixels in depth/image (no point in depth/points), cloud.stride and the unorganized cloud,
depth/confidence (32FC1 in [0, 1], depth/image's size and header, computed only when subscribed),
and a depth/scan that agrees with the ground truth of a synthetic scene."""
import threading
from collections import defaultdict

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, LaserScan, PointCloud2  # noqa: E402

from ppd_ros import synthetic  # noqa: E402
from ppd_ros.geometry.scale.depth_scale import near_far_scale  # noqa: E402
from ppd_ros.model.estimator import PPDEstimator  # noqa: E402
from ppd_ros.nodes.cloud import cloud_msg_to_xyz  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from test_depth_node_harness import (Feeder, OracleEstimator, RosGraph, camera_info, cloud_grid,  # noqa: E402
                                     float_image, header, overrides, stamp, wait_for)

TYPES = {'depth/image': Image, 'depth/points': PointCloud2, 'depth/confidence': Image, 'depth/scan': LaserScan}


class Collector(Node):
    def __init__(self, context, topics):
        super().__init__('costmap_collector', context=context)
        self.messages = defaultdict(list)
        self.topics = tuple(topics)
        self._lock = threading.Lock()
        qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self._subs = [self.create_subscription(TYPES[t], t, lambda m, t=t: self._store(t, m), qos) for t in topics]

    def _store(self, topic, msg):
        with self._lock:
            self.messages[topic].append(msg)

    def get(self, topic, i):
        sec, nanosec = stamp(i)
        with self._lock:
            found = [m for m in self.messages[topic] if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, nanosec)]
        return found[-1] if found else None

    def has_frame(self, i):
        return all(self.get(t, i) is not None for t in self.topics)


def start(graph, context, estimator, topics, **params):
    node = graph.add(DepthNode(estimator=estimator, context=context, parameter_overrides=overrides(**params)))
    feeder = graph.add(Feeder(context))
    collector = graph.add(Collector(context, topics))
    wanted = {t.split('/')[1] for t in topics}
    assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == wanted), 'discovery timed out'
    return node, feeder, collector


def send(feeder, collector, i, frame):
    feeder.send(i, frame.rgb, frame.intrinsics, info=camera_info(frame.intrinsics, header(i)))
    assert wait_for(lambda: collector.has_frame(i)), f'frame {i} did not come out'


def test_range_filter_gives_inf_beyond_max_nan_for_invalid_and_no_point(ros_context):
    frame = synthetic.render_frame(seed=0, width=80, height=60, kind='outdoor')  # sky: invalid
    truth = np.where(frame.valid, frame.depth, np.nan)
    a, b = near_far_scale(0.5, 10.0)
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, OracleEstimator([frame], a, b),
                                        ['depth/image', 'depth/points'], output__resolution='camera',
                                        output__max_range=12.0, output__min_range=4.0)
        send(feeder, collector, 0, frame)
        depth = float_image(collector.get('depth/image', 0))
        xyz, _ = cloud_grid(collector.get('depth/points', 0))
        node.set_parameters([Parameter('cloud.organized', value=False), Parameter('cloud.stride', value=2)])
        send(feeder, collector, 1, frame)
        sparse = collector.get('depth/points', 1)
    clear = np.isfinite(truth) & (np.abs(truth - 12.0) > 0.05) & (np.abs(truth - 4.0) > 0.05)
    assert (~frame.valid).any() and (truth[clear] > 12).any() and (truth[clear] < 4).any()
    np.testing.assert_array_equal(np.isnan(depth), ~frame.valid)            # NaN: invalid (sky)
    np.testing.assert_array_equal(np.isposinf(depth[clear]), truth[clear] > 12.0)  # +Inf: beyond max
    np.testing.assert_array_equal(np.isneginf(depth[clear]), truth[clear] < 4.0)  # -Inf: too close
    inside = clear & (truth > 4.0) & (truth < 12.0)
    np.testing.assert_allclose(depth[inside], truth[inside], rtol=1e-4)
    np.testing.assert_array_equal(np.isfinite(xyz[..., 2]), np.isfinite(depth))  # a point only where finite
    assert sparse.height == 1 and sparse.is_dense
    assert sparse.width == np.isfinite(depth[::2, ::2]).sum() == len(cloud_msg_to_xyz(sparse))


def test_confidence_is_32fc1_in_unit_range_with_the_depth_image_header(ros_context, monkeypatch):
    estimator = PPDEstimator.demo(device='cpu', seed=0)
    calls = []
    original = estimator.predict_with_uncertainty
    monkeypatch.setattr(estimator, 'predict_with_uncertainty', lambda *a, **k: calls.append(1) or original(*a, **k))
    frame = synthetic.render_frame(seed=1, width=96, height=72, kind='indoor')
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, ['depth/image'], output__resolution='camera')
        send(feeder, collector, 0, frame)
        assert calls == []       # nobody listens to depth/confidence: not computed
        confidence_collector = graph.add(Collector(ros_context, ['depth/confidence', 'depth/image']))
        assert wait_for(lambda: node.wanted_outputs() == {'image', 'confidence'})
        send(feeder, confidence_collector, 1, frame)
        image, confidence = confidence_collector.get('depth/image', 1), confidence_collector.get('depth/confidence', 1)
    assert calls
    assert confidence.encoding == '32FC1' and confidence.header == image.header
    assert (confidence.width, confidence.height) == (image.width, image.height) == (96, 72)
    c, d = float_image(confidence), float_image(image)
    np.testing.assert_array_equal(np.isnan(c), np.isnan(d))
    assert np.nanmin(c) >= 0.0 and np.nanmax(c) <= 1.0 and np.nanstd(c) > 0


def test_scan_agrees_with_the_ground_truth(ros_context):
    frame = synthetic.render_frame(seed=4, width=160, height=120, kind='indoor')
    intr = frame.intrinsics
    a, b = near_far_scale(0.5, 10.0)
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, OracleEstimator([frame], a, b), ['depth/scan'],
                                        output__resolution='camera', scan__range_max=20.0, scan__height=1)
        send(feeder, collector, 0, frame)
        scan = collector.get('depth/scan', 0)
    assert scan.header.frame_id == 'camera_depth_frame' and len(scan.ranges) == 160
    assert scan.angle_min < 0 < scan.angle_max and scan.range_max == 20.0
    # each ray, cast into the ground truth independently: its column at angle θ and the row of cy
    ranges = np.asarray(scan.ranges)
    theta = scan.angle_min + np.arange(len(ranges)) * scan.angle_increment
    u = np.clip(np.rint(intr.cx - intr.fx * np.tan(theta)).astype(int), 0, 159)
    z = frame.depth[int(intr.cy), u]
    expected = z / np.cos(theta)
    assert np.isfinite(ranges).all()
    close = np.abs(ranges - expected) <= 0.02 * expected
    assert close.mean() > 0.9, f'{close.mean():.2f} of the rays agree'
    # the others sit on depth edges: a neighbouring column of the ray sees their range
    neighbours = [frame.depth[int(intr.cy), np.clip(u + k, 0, 159)] / np.cos(theta) for k in (-1, 1)]
    assert (close | np.any([np.abs(ranges - n) <= 0.02 * n for n in neighbours], axis=0)).all()


# ------------------------------------------------------------------ depth/scan in a tf2 frame

T_BASE_CAM = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.6], [0, 0, 0, 1.0]])
Q_BASE_CAM = (-0.5, 0.5, -0.5, 0.5)  # x, y, z, w of T_BASE_CAM's rotation (optical → x forward, z up)


@pytest.fixture
def tf2_ros(monkeypatch, tmp_path):
    """The tf2_ros stand-in, importable for this test only (as in test_fusion_tf2)."""
    import sys
    from pathlib import Path
    (tmp_path / 'tf2_ros').symlink_to(Path(__file__).parent / 'stand_ins' / 'tf2_ros')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 'tf2_ros', raising=False)
    import tf2_ros
    yield tf2_ros
    sys.modules.pop('tf2_ros', None)


def test_scan_in_a_target_frame_through_tf2(ros_context, tf2_ros):
    from types import SimpleNamespace

    from std_msgs.msg import Header

    from ppd_ros.geometry.projection import transform_from_translation_quaternion
    from ppd_ros.geometry.scan import depth_to_scan_in
    from test_depth_node_harness import FRAME_ID
    np.testing.assert_allclose(transform_from_translation_quaternion([0, 0, 0.6], Q_BASE_CAM), T_BASE_CAM, atol=1e-12)
    frame = synthetic.render_frame(seed=4, width=96, height=72, kind='indoor')
    a, b = near_far_scale(0.5, 10.0)
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, OracleEstimator([frame], a, b), ['depth/scan'],
                                        output__resolution='camera', scan__target_frame='base_link',
                                        scan__range_max=20.0, scan__tf_timeout=0.02)
        feeder.send(0, frame.rgb, frame.intrinsics, info=camera_info(frame.intrinsics, header(0)))
        assert wait_for(lambda: node.errors > 0)   # no transform yet: no scan, and the node says why
        assert 'base_link' in node.last_error and collector.get('depth/scan', 0) is None
        node._scan_frame.buffer.set_transform_static(SimpleNamespace(
            header=Header(frame_id='base_link'), child_frame_id=FRAME_ID, transform=SimpleNamespace(
                translation=SimpleNamespace(x=0.0, y=0.0, z=0.6),
                rotation=SimpleNamespace(x=Q_BASE_CAM[0], y=Q_BASE_CAM[1], z=Q_BASE_CAM[2], w=Q_BASE_CAM[3]))),
            'test')
        send(feeder, collector, 1, frame)
        scan = collector.get('depth/scan', 1)
    expected = depth_to_scan_in(np.where(frame.valid, frame.depth, np.nan), frame.intrinsics, T_BASE_CAM,
                                range_max=20.0)
    assert scan.header.frame_id == 'base_link'
    assert scan.angle_min == pytest.approx(expected.angle_min) and len(scan.ranges) == len(expected.ranges)
    np.testing.assert_allclose(np.asarray(scan.ranges), expected.ranges, rtol=1e-3)
    assert np.isfinite(expected.ranges).mean() > 0.9
