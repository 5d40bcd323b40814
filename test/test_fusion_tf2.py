"""scale_fusion_node's extrinsic from tf2 (the default where tf2_ros is importable), through the
test-only stand-in of tf2_ros's API in test/stand_ins/tf2_ros, and the parameter fall-back."""
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from ppd_ros.msg import DepthScale  # noqa: E402
from ppd_ros.nodes.scale_fusion_node import ScaleFusionNode  # noqa: E402
from ppd_ros.nodes.scale_fusion_params import PARAMETERS  # noqa: E402
from test_fusion_node import (A, B, FRAME, Q_XYZW, T_XYZ, Harness, assert_metric_close,  # noqa: E402
                              cloud_msg, header)

STAND_INS = Path(__file__).resolve().parent / 'stand_ins'
WRONG_EXTRINSIC = {'extrinsic.translation': [0.3, 0.2, -0.4], 'extrinsic.rotation': [0.0, 0.0, 0.0, 1.0]}


@pytest.fixture
def tf2_ros(monkeypatch, tmp_path):
    """tf2_ros importable for this test only (the stand-in), gone afterwards. Only tf2_ros goes on
    the path: the message_filters stand-in beside it would otherwise stay imported for later tests."""
    (tmp_path / 'tf2_ros').symlink_to(STAND_INS / 'tf2_ros')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 'tf2_ros', raising=False)
    import tf2_ros
    yield tf2_ros
    sys.modules.pop('tf2_ros', None)


@pytest.fixture
def no_tf2(monkeypatch):
    """tf2_ros not importable, even when a stand-in directory is on sys.path (second CI pass)."""
    monkeypatch.setitem(sys.modules, 'tf2_ros', None)


def transform_msg(parent, child, translation, quaternion, stamp=0.0):
    """What /tf carries (geometry_msgs/TransformStamped's attributes; the stand-in is duck-typed)."""
    x, y, z = translation
    qx, qy, qz, qw = quaternion
    return SimpleNamespace(header=header(stamp, parent), child_frame_id=child, transform=SimpleNamespace(
        translation=SimpleNamespace(x=x, y=y, z=z), rotation=SimpleNamespace(x=qx, y=qy, z=qz, w=qw)))


@pytest.fixture
def tf_harness(ros_context, tf2_ros):
    # no use_tf override: tf2 is the default; the extrinsic parameters are wrong on purpose
    h = Harness(ros_context, **{**WRONG_EXTRINSIC, 'use_tf': True, 'tf_timeout': 0.02})
    yield h
    h.close()


def test_use_tf_is_the_default():
    assert {spec.name: spec.default for spec in PARAMETERS}['use_tf'] is True


def test_the_extrinsic_comes_from_tf2_at_the_cloud_stamp(tf_harness, tf2_ros):
    node, sensor = tf_harness.node, tf_harness.node.sensor
    assert sensor.extrinsic_origin == 'tf2' and isinstance(sensor.tf_listener, tf2_ros.TransformListener)
    assert sensor.tf_listener.node is node
    sensor.tf_buffer.set_transform_static(transform_msg(FRAME, 'lidar_link', T_XYZ, Q_XYZW), 'test')
    tf_harness.source(cloud_msg(10.02))
    scale, depth = tf_harness.frame(10.0)
    assert scale.status == DepthScale.STATUS_OK, scale.message
    assert scale.a == pytest.approx(A, rel=1e-3) and scale.b == pytest.approx(B, abs=1e-3)
    assert_metric_close(depth)
    lookup = sensor.tf_buffer.lookups[-1]
    assert (lookup.target, lookup.source) == (FRAME, 'lidar_link')
    assert lookup.time == rclpy.time.Time.from_msg(header(10.02).stamp)  # the cloud's stamp, not the image's
    assert lookup.timeout == rclpy.duration.Duration(seconds=0.02)
    # and the diagnostics say where the extrinsic comes from
    assert {kv.key: kv.value for kv in tf_harness.diagnostics().values}['extrinsic'] == 'tf2'


def test_a_moving_transform_is_looked_up_at_the_cloud_stamp(tf_harness, tf2_ros):
    buffer = tf_harness.node.sensor.tf_buffer
    # right at t=20.0, wrong (1 m off) from t=20.5: the cloud at 20.0 must use the first one
    buffer.set_transform(transform_msg(FRAME, 'lidar_link', T_XYZ, Q_XYZW, stamp=19.9), 'test')
    buffer.set_transform(transform_msg(FRAME, 'lidar_link', T_XYZ, Q_XYZW, stamp=20.1), 'test')
    buffer.set_transform(transform_msg(FRAME, 'lidar_link', [1.0, 0.0, 0.0], Q_XYZW, stamp=20.5),
                         'test')
    tf_harness.source(cloud_msg(20.0))
    scale, depth = tf_harness.frame(20.0)
    assert scale.status == DepthScale.STATUS_OK, scale.message
    assert_metric_close(depth)


def test_a_missing_transform_is_a_clear_warning_and_the_fit_is_held(tf_harness, tf2_ros):
    node = tf_harness.node
    node.sensor.tf_buffer.set_transform_static(transform_msg(FRAME, 'lidar_link', T_XYZ, Q_XYZW), 'test')
    tf_harness.source(cloud_msg(1.0))
    assert tf_harness.frame(1.0)[0].status == DepthScale.STATUS_OK
    tf_harness.source(cloud_msg(1.1, frame='velodyne'))  # nobody publishes velodyne → camera
    scale, depth = tf_harness.frame(1.1)
    assert scale.status == DepthScale.STATUS_HELD
    assert "no tf2 transform 'velodyne' → 'camera_optical_frame' at the cloud's stamp 1.100000000" in scale.message
    assert 'LookupException' in scale.message and 'use_tf: false' in scale.message
    assert node.last_problem.level == DiagnosticStatus.WARN
    diagnostics = tf_harness.diagnostics()
    assert diagnostics.level == DiagnosticStatus.WARN and 'no tf2 transform' in diagnostics.message
    assert_metric_close(depth)  # the last good fit is still published, with its age


def test_use_tf_false_selects_the_parameters_even_with_tf2(ros_context, tf2_ros):
    h = Harness(ros_context, use_tf=False)
    try:
        assert h.node.sensor.extrinsic_origin == 'parameters' and h.node.sensor.tf_buffer is None
        h.source(cloud_msg(3.0))
        scale, depth = h.frame(3.0)
        assert scale.status == DepthScale.STATUS_OK
        assert_metric_close(depth)
    finally:
        h.close()


def test_without_tf2_the_parameters_are_the_fallback(ros_context, no_tf2):
    h = Harness(ros_context, use_tf=True)  # asked for, but not importable
    try:
        assert h.node.sensor.extrinsic_origin == 'parameters'
        h.source(cloud_msg(4.0))
        assert h.frame(4.0)[0].status == DepthScale.STATUS_OK
    finally:
        h.close()


def test_sources_without_a_cloud_need_no_tf2(ros_context, tf2_ros):
    node = ScaleFusionNode(context=ros_context, parameter_overrides=[Parameter('source', value='range')])
    try:
        assert node.sensor.tf_buffer is None
    finally:
        node.destroy_node()
