"""scale_fusion_node with real rclpy: good frames in → metric depth, points and scale out; every
kind of bad input → a status and a reason, no crash, and the next good frame still works."""
import math
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ppd_ros.geometry.backproject import depth_to_points  # noqa: E402
from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.geometry.projection import (matrix_to_quaternion, transform_from_translation_quaternion,  # noqa: E402
                                         transform_points)
from ppd_ros.msg import DepthScale  # noqa: E402
from ppd_ros.nodes import scale_fusion_node as fusion_module  # noqa: E402
from ppd_ros.nodes.cloud import cloud_msg_to_xyz, points_to_cloud_msg  # noqa: E402
from ppd_ros.nodes.image_codec import array_to_image_msg, depth_to_image_msg, image_msg_to_depth  # noqa: E402
from ppd_ros.nodes.scale_fusion_node import ScaleFusionNode  # noqa: E402

W, H = 64, 48
A, B = 2.2, 0.5
INTR = Intrinsics(60.0, 60.0, 31.5, 23.5, W, H)
FRAME = 'camera_optical_frame'
# LiDAR (x forward, y left, z up) 5 cm above the camera
R_CAM_LIDAR = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float)
T_XYZ = [0.0, -0.05, 0.0]
Q_XYZW = matrix_to_quaternion(R_CAM_LIDAR).tolist()
T_CAM_LIDAR = transform_from_translation_quaternion(T_XYZ, Q_XYZW)


def scene():
    """Relative depth (a floor-like gradient plus a box) and its metric ground truth."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    rel = 1.0 - v / (H - 1)
    rel[10:30, 20:40] = 0.3
    return rel.astype(np.float32), np.expm1(A * rel + B).astype(np.float32)


REL, GT = scene()


def lidar_points(step=3):
    """GT surface points on a pixel grid, expressed in the LiDAR frame."""
    pts = depth_to_points(GT, INTR)[::step, ::step].reshape(-1, 3)
    return transform_points(pts, np.linalg.inv(T_CAM_LIDAR))


def header(t, frame=FRAME):
    sec = math.floor(t)
    return Header(frame_id=frame, stamp=rclpy.time.Time(seconds=sec, nanoseconds=int(round((t - sec) * 1e9))).to_msg())


def info_msg(t, width=W, height=H):
    intr = INTR if (width, height) == (W, H) else INTR.resized_to(width, height)
    return CameraInfo(header=header(t), width=width, height=height, k=intr.K.ravel().tolist(),
                      p=np.hstack([intr.K, np.zeros((3, 1))]).ravel().tolist(), distortion_model='plumb_bob',
                      d=[0.0] * 5, r=np.eye(3).ravel().tolist())


def cloud_msg(t, points=None, frame='lidar_link'):
    pts = lidar_points() if points is None else np.asarray(points, np.float32)
    return points_to_cloud_msg(pts.reshape(1, -1, 3), header(t, frame))


class Harness:
    """The fusion node plus a test node that feeds it and records its outputs."""

    def __init__(self, context, source='pointcloud', **params):
        overrides = {'source': source, 'source_frame': 'lidar_link', 'extrinsic.translation': T_XYZ,
                     'extrinsic.rotation': Q_XYZW, 'tracker.smoothing': 0.0, 'use_tf': False, **params}
        self.node = ScaleFusionNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in overrides.items()])
        self.io = rclpy.create_node('fusion_test_io', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.io)
        self.pub_rel = self.io.create_publisher(Image, 'depth/relative', 10)
        self.pub_info = self.io.create_publisher(CameraInfo, 'depth/camera_info', 10)
        source_type = {'pointcloud': PointCloud2, 'depth_image': Image, 'range': Range}[source]
        source_topic = {'pointcloud': 'metric_source/points', 'depth_image': 'metric_source/depth',
                        'range': 'metric_source/range'}[source]
        self.pub_source = self.io.create_publisher(source_type, source_topic, 10)
        self.got = {'scale': [], 'depth': [], 'info': [], 'points': []}
        for key, msg_type, topic in (('scale', DepthScale, 'metric/scale'), ('depth', Image, 'metric/depth/image'),
                                     ('info', CameraInfo, 'metric/depth/camera_info'),
                                     ('points', PointCloud2, 'metric/points')):
            self.io.create_subscription(msg_type, topic, lambda m, k=key: self.got[k].append(m), 10)
        self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in (self.pub_rel, self.pub_info,
                                                                               self.pub_source))
                        and self.node.pub_scale.get_subscription_count() > 0
                        and self.node.pub_points.get_subscription_count() > 0)

    def spin_until(self, condition, timeout=10.0):
        end = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < end, 'timed out waiting for the fusion node'
            self.executor.spin_once(timeout_sec=0.05)

    def source(self, msg):
        before = self.node.source_rate.total
        self.pub_source.publish(msg)
        self.spin_until(lambda: self.node.source_rate.total > before)

    def frame(self, t, rel=REL, info=None, expect_metric=True):
        """Publish one relative frame; → (DepthScale, depth image or None)."""
        n_scale, n_depth = len(self.got['scale']), len(self.got['depth'])
        self.pub_info.publish(info if info is not None else info_msg(t))
        self.pub_rel.publish(depth_to_image_msg(rel, header(t)))
        self.spin_until(lambda: len(self.got['scale']) > n_scale)
        if expect_metric:
            self.spin_until(lambda: len(self.got['depth']) > n_depth and len(self.got['points']) > n_depth)
        else:  # give a wrongly published depth image the chance to arrive
            for _ in range(5):
                self.executor.spin_once(timeout_sec=0.02)
            assert len(self.got['depth']) == n_depth, 'metric depth published although the fit is not usable'
        return self.got['scale'][-1], (self.got['depth'][-1] if expect_metric else None)

    def diagnostics(self) -> DiagnosticStatus:
        return self.node.diagnostics.publish().status[0]

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.io.destroy_node()


@pytest.fixture
def harness(ros_context, request):
    h = Harness(ros_context, **getattr(request, 'param', {}))
    yield h
    h.close()


def assert_metric_close(depth_msg, rtol=0.02):
    depth = image_msg_to_depth(depth_msg)
    assert depth.shape == (H, W) and depth_msg.encoding == '32FC1'
    assert np.nanmax(np.abs(depth / GT - 1)) < rtol


def test_lidar_frame_gives_metric_depth_points_and_scale_with_the_input_header(harness):
    harness.source(cloud_msg(10.0))
    scale, depth = harness.frame(10.0)
    assert scale.status == DepthScale.STATUS_OK and scale.source == 'sensor' and scale.message.startswith('pointcloud')
    assert scale.a == pytest.approx(A, rel=1e-3) and scale.b == pytest.approx(B, abs=1e-3)
    assert scale.age == 0.0 and scale.num_points > 50 and scale.inlier_ratio > 0.95
    for msg in (scale, depth, harness.got['info'][-1], harness.got['points'][-1]):
        assert msg.header.frame_id == FRAME and msg.header.stamp == header(10.0).stamp
    assert_metric_close(depth)
    info = harness.got['info'][-1]
    assert (info.width, info.height) == (W, H) and list(info.k) == INTR.K.ravel().tolist()
    cloud = harness.got['points'][-1]
    assert (cloud.height, cloud.width) == (H, W)
    xyz = cloud_msg_to_xyz(cloud)
    assert xyz.shape == (H * W, 3) and np.allclose(np.sort(xyz[:, 2]), np.sort(GT.ravel()), rtol=0.02)
    diag = harness.diagnostics()
    assert diag.level == DiagnosticStatus.OK and diag.message.startswith('OK')


def test_bad_inputs_are_reported_and_later_frames_recover(harness):
    t = 1.0
    harness.source(cloud_msg(t))
    assert harness.frame(t)[0].status == DepthScale.STATUS_OK

    def bad(t, expect_text, level=DiagnosticStatus.ERROR, **frame_kwargs):
        scale, _ = harness.frame(t, **frame_kwargs)
        assert scale.status == DepthScale.STATUS_HELD, scale.message
        assert expect_text in scale.message
        assert 0 < scale.age < 2.0 and scale.a == pytest.approx(A, rel=1e-3)  # the last good fit is held
        diag = harness.diagnostics()
        assert diag.level == level and expect_text in diag.message

    # all-NaN relative depth
    bad(t + 0.01, 'no finite value', rel=np.full((H, W), np.nan, np.float32), expect_metric=False)
    # camera_info of another size
    bad(t + 0.02, 'mismatched sizes', info=info_msg(t + 0.02, 32, 24), expect_metric=False)
    # cloud in the wrong frame
    harness.source(cloud_msg(t + 0.1, frame='base_link'))
    bad(t + 0.1, "frame_id 'base_link' is not source_frame 'lidar_link'")
    # cloud entirely behind the camera
    behind = lidar_points() * np.array([-1.0, 1.0, 1.0], np.float32)  # mirrored: x_lidar < 0
    harness.source(cloud_msg(t + 0.2, behind))
    bad(t + 0.2, 'no overlap')
    # a cloud with no finite point at all
    harness.source(cloud_msg(t + 0.3, np.full((10, 3), np.nan, np.float32)))
    bad(t + 0.3, 'no finite point')
    # an unrelated cloud: the fit fails, the last fit is held (WARN)
    rng = np.random.default_rng(0)
    noise_pts = transform_points(depth_to_points(rng.uniform(0.5, 30, (H, W)).astype(np.float32), INTR)[::3, ::3]
                                 .reshape(-1, 3), np.linalg.inv(T_CAM_LIDAR))
    harness.source(cloud_msg(t + 0.4, noise_pts))
    bad(t + 0.4, 'agree within', level=DiagnosticStatus.WARN)
    # stale source: the newest cloud is far older than the frame
    bad(t + 1.6, 'source stale', level=DiagnosticStatus.WARN)
    # good data again
    harness.source(cloud_msg(t + 1.7))
    scale, depth = harness.frame(t + 1.7)
    assert scale.status == DepthScale.STATUS_OK and scale.age == 0.0
    assert_metric_close(depth)
    assert harness.diagnostics().level == DiagnosticStatus.OK


def test_hold_then_expiry_then_recovery(harness):
    harness.source(cloud_msg(5.0))
    assert harness.frame(5.0)[0].status == DepthScale.STATUS_OK
    scale, depth = harness.frame(5.5)  # no cloud within 0.1 s, not yet stale: held
    assert scale.status == DepthScale.STATUS_HELD and scale.age == pytest.approx(0.5, abs=1e-6)
    assert 'within ±0.1 s' in scale.message
    assert_metric_close(depth)
    assert harness.diagnostics().level == DiagnosticStatus.WARN
    scale, _ = harness.frame(7.5, expect_metric=False)  # 2.5 s > max_hold_age 2 s
    assert scale.status == DepthScale.STATUS_EXPIRED and scale.age == pytest.approx(2.5, abs=1e-6)
    assert 'max_hold_age' in scale.message and 'stale' in scale.message
    diag = harness.diagnostics()
    assert diag.level == DiagnosticStatus.ERROR and 'EXPIRED' in diag.message
    harness.source(cloud_msg(8.0))
    scale, depth = harness.frame(8.0)
    assert scale.status == DepthScale.STATUS_OK
    assert_metric_close(depth)


def model_scale_msg(t, a=A, b=B):
    return DepthScale(header=header(t), a=a, b=b, source='model', status=DepthScale.STATUS_OK,
                      message='fitted on MoGe-2')


def test_the_sensor_wins_and_a_stale_sensor_falls_back_to_the_model_scale(harness):
    pub_model = harness.io.create_publisher(DepthScale, 'depth/scale', 10)
    harness.spin_until(lambda: pub_model.get_subscription_count() > 0)

    def model(t, a):
        before = len(harness.node.model_scales)
        pub_model.publish(model_scale_msg(t, a=a))
        harness.spin_until(lambda: len(harness.node.model_scales) > before)

    model(0.9, 2 * A)  # a model scale before any sensor data: used, with source model
    scale, depth = harness.frame(1.0)
    assert scale.source == 'model' and scale.a == pytest.approx(2 * A) and 'MoGe-2' in scale.message
    assert harness.diagnostics().level == DiagnosticStatus.WARN and harness.node.model_fallbacks == 1
    harness.source(cloud_msg(5.0))
    model(5.0, 2 * A)
    scale, depth = harness.frame(5.0)  # a live sensor wins over the model
    assert scale.source == 'sensor' and scale.a == pytest.approx(A, rel=1e-3)
    assert_metric_close(depth)
    model(7.5, 2 * A)
    scale, depth = harness.frame(7.5)  # the sensor is stale past max_hold_age: the model, not nothing
    assert scale.source == 'model' and scale.a == pytest.approx(2 * A) and 'stale' in scale.message
    harness.node.set_parameters([Parameter('model_fallback', value=False)])
    model(9.9, 2 * A)
    scale, _ = harness.frame(10.0, expect_metric=False)
    assert scale.source == 'sensor' and scale.status == DepthScale.STATUS_EXPIRED


def test_no_fit_before_any_source(harness):
    scale, _ = harness.frame(1.0, expect_metric=False)
    assert scale.status == DepthScale.STATUS_NO_FIT and 'no pointcloud message received yet' in scale.message
    assert math.isnan(scale.a)
    assert harness.diagnostics().level == DiagnosticStatus.WARN


def test_source_closest_in_time_is_used(harness):
    harness.source(cloud_msg(2.0 - 0.08, np.full((4, 3), np.nan)))  # within tolerance but farther
    harness.source(cloud_msg(2.0 + 0.02))                      # closest: good
    harness.source(cloud_msg(2.0 + 0.09, np.full((4, 3), np.nan)))
    assert harness.frame(2.0)[0].status == DepthScale.STATUS_OK


def _big_cloud(t, points, point_step=48):
    """A LiDAR-sized cloud (x y z + padding to point_step), built without DDS."""
    from sensor_msgs.msg import PointField

    from ppd_ros.nodes.image_codec import fill_data
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate('xyz')]
    msg = PointCloud2(header=header(t, 'lidar_link'), height=1, width=points, fields=fields, point_step=point_step,
                      row_step=point_step * points, is_dense=True)
    fill_data(msg, np.zeros(points * point_step, np.uint8))
    return msg


def test_source_memory_is_bounded_by_bytes_not_count(harness):
    """Issue 13: 6.3 MB clouds of a 128-line LiDAR at 10 Hz grew the node by +690 MB in 12 s (100 kept)."""
    node = harness.node
    for i in range(40):
        node._on_source(_big_cloud(10.0 + 0.1 * i, 131072))
        assert node.sensor.kept.held_bytes <= 64 * 2**20
    assert len(node._sources) == 10  # the byte budget (64 MB): the last second, not 40 clouds (252 MB)
    values = {v.key: v.value for v in harness.diagnostics().values}
    assert values['source messages kept'] == '10' and values['source dropped (budget)'] == '30'


@pytest.mark.parametrize('harness', [{'source_window': 0.5}], indirect=True)
def test_source_window_and_pairing_release_what_can_no_longer_be_used(harness):
    for i in range(20):
        harness.source(cloud_msg(5.0 + 0.1 * i))
    assert [round(s, 2) for s, _ in harness.node._sources][0] == 6.4  # 0.5 s back from the newest (6.9)
    late, _ = harness.frame(5.5, expect_metric=False)  # its cloud (5.5) fell out of the window
    assert 'the message it needed was no longer kept (source_window 0.5 s' in late.message
    assert harness.frame(6.65)[0].status == DepthScale.STATUS_OK
    # depth frames come in stamp order: what is older than 6.65 - source_tolerance is released
    assert [round(s, 2) for s, _ in harness.node._sources] == [6.6, 6.7, 6.8, 6.9]


@pytest.mark.parametrize('harness', [{'source_budget_mb': 1.0}], indirect=True)
def test_a_cloud_larger_than_the_budget_is_refused_with_a_reason(harness):
    harness.node._on_source(_big_cloud(4.0, 100_000, point_step=16))  # 1.5 MB > 1 MB
    assert harness.node.sensor.kept.held_bytes == 0
    scale, _ = harness.frame(4.0, expect_metric=False)
    assert 'not kept for pairing: 1.5 MB is more than the whole buffer budget of 1.0 MB' in scale.message
    values = {v.key: v.value for v in harness.diagnostics().values}
    assert values['source refused (larger than budget)'] == '1'
    harness.source(cloud_msg(4.05))  # a normal cloud still works
    assert harness.frame(4.05)[0].status == DepthScale.STATUS_OK


def test_nothing_is_computed_without_subscribers(harness, monkeypatch):
    calls = []
    monkeypatch.setattr(fusion_module, 'relative_to_metric', lambda *a: calls.append(1))
    harness.io.destroy_subscription(next(s for s in harness.io.subscriptions if s.topic_name == '/metric/points'))
    harness.io.destroy_subscription(next(s for s in harness.io.subscriptions
                                         if s.topic_name == '/metric/depth/image'))
    harness.io.destroy_subscription(next(s for s in harness.io.subscriptions
                                         if s.topic_name == '/metric/depth/camera_info'))
    harness.spin_until(lambda: harness.node.pub_points.get_subscription_count() == 0
                       and harness.node.pub_depth.get_subscription_count() == 0
                       and harness.node.pub_info.get_subscription_count() == 0)
    harness.source(cloud_msg(3.0))
    scale, _ = harness.frame(3.0, expect_metric=False)
    assert scale.status == DepthScale.STATUS_OK and calls == []


@pytest.mark.parametrize('harness', [{'source': 'depth_image'}], indirect=True)
def test_depth_image_source_16uc1_at_another_resolution_with_holes(harness):
    big = np.repeat(np.repeat(GT, 2, axis=0), 2, axis=1)
    mm = np.round(big * 1000).astype(np.uint16)
    mm[np.random.default_rng(1).random(mm.shape) < 0.5] = 0
    harness.source(array_to_image_msg(mm, header(4.0, FRAME), '16UC1'))
    scale, depth = harness.frame(4.0)
    assert scale.status == DepthScale.STATUS_OK and scale.a == pytest.approx(A, rel=0.01)
    assert_metric_close(depth, rtol=0.03)
    # all zero: no overlap, reported as an error
    harness.source(array_to_image_msg(np.zeros_like(mm), header(4.5, FRAME), '16UC1'))
    scale, _ = harness.frame(4.5)
    assert scale.status == DepthScale.STATUS_HELD and 'no overlap' in scale.message
    assert harness.diagnostics().level == DiagnosticStatus.ERROR
    # 32FC1 metres with NaN and inf holes at the same resolution
    metres = GT.copy()
    metres[::2] = np.nan
    metres[1::4] = np.inf
    harness.source(depth_to_image_msg(metres, header(5.0, FRAME)))
    scale, depth = harness.frame(5.0)
    assert scale.status == DepthScale.STATUS_OK
    assert_metric_close(depth)
    # another aspect ratio: refused with the reason
    harness.source(depth_to_image_msg(np.ones((48, 48), np.float32), header(5.5, FRAME)))
    scale, _ = harness.frame(5.5)
    assert scale.status == DepthScale.STATUS_HELD and 'aspect ratio' in scale.message


@pytest.mark.parametrize('harness', [{'source': 'range', 'range.near': float(np.expm1(B)),
                                      'range.far': float(np.expm1(A + B))}], indirect=True)
def test_range_source_and_bad_readings(harness):
    cx, cy = int(INTR.cx + 0.5), int(INTR.cy + 0.5)

    def reading(t, value, lo=0.1, hi=40.0):
        return Range(header=header(t, 'range_link'), radiation_type=Range.INFRARED, field_of_view=0.05,
                     min_range=lo, max_range=hi, range=value)

    harness.source(reading(1.0, float(GT[cy, cx])))
    scale, depth = harness.frame(1.0)
    assert scale.status == DepthScale.STATUS_OK and scale.num_points == 1 and scale.source == 'sensor' and scale.message.startswith('range')
    assert scale.a == pytest.approx(A) and scale.b == pytest.approx(B, abs=1e-4)
    assert_metric_close(depth, rtol=1e-3)
    for k, (value, text) in enumerate([(-1.0, 'not positive'), (float('inf'), 'no valid measurement'),
                                       (float('nan'), 'no valid measurement'), (55.0, 'outside the sensor limits')]):
        harness.source(reading(1.1 + 0.1 * k, value))
        scale, _ = harness.frame(1.1 + 0.1 * k)
        assert scale.status == DepthScale.STATUS_HELD and text in scale.message
    harness.source(reading(2.0, float(GT[cy, cx])))
    assert harness.frame(2.0)[0].status == DepthScale.STATUS_OK


def test_bad_parameters_refuse_to_start(ros_context):
    from ppd_ros.nodes.params import ParameterError
    with pytest.raises(ParameterError, match='source'):
        ScaleFusionNode(context=ros_context, parameter_overrides=[Parameter('source', value='sonar')])
    with pytest.raises(ParameterError, match='min_depth'):
        ScaleFusionNode(context=ros_context, parameter_overrides=[Parameter('fit.min_depth', value=50.0),
                                                                  Parameter('fit.max_depth', value=10.0)])


def test_extrinsic_can_change_at_runtime(harness):
    result = harness.node.set_parameters([Parameter('extrinsic.translation', value=[0.0, -0.05, 0.5])])
    assert result[0].successful
    assert harness.node.sensor.T_cam_source[2, 3] == 0.5
    bad = harness.node.set_parameters([Parameter('extrinsic.rotation', value=[0.0, 0.0, 0.0, 0.0])])
    assert not bad[0].successful


def test_with_the_synthetic_camera_and_its_lidar(ros_context):
    """End to end with the synthetic camera node's real LiDAR cloud (lidar_link) and extrinsic:
    relative depth made from its ground truth → metric depth close to the oracle's."""
    synthetic = pytest.importorskip('ppd_ros.synthetic')
    from ppd_ros.nodes.synthetic_camera_node import SyntheticCameraNode
    from ppd_dev.fusion_report import abs_rel, model_like_relative
    from ppd_ros.geometry.scale.fit import fit_scale, least_squares
    from ppd_ros.geometry.scale.source_samples import samples_from_points
    from ppd_ros.geometry.scale.depth_scale import relative_to_metric

    frame = synthetic.render_frame(3, 160, 120, kind='indoor')
    camera = SyntheticCameraNode(frames=[frame], context=ros_context, parameter_overrides=[
        Parameter('rate', value=20.0), Parameter('lidar_lines', value=16)])
    T = camera.T_cam_lidar
    fusion = ScaleFusionNode(context=ros_context, cli_args=['--ros-args', '-r', 'metric_source/points:=lidar/points'],
                             parameter_overrides=[
                                 Parameter('source', value='pointcloud'), Parameter('source_frame', value='lidar_link'),
                                 Parameter('use_tf', value=False),
                                 Parameter('extrinsic.translation', value=T[:3, 3].tolist()),
                                 Parameter('extrinsic.rotation', value=matrix_to_quaternion(T[:3, :3]).tolist())])
    relay = rclpy.create_node('relative_from_ground_truth', context=ros_context)
    relative, _, _ = model_like_relative(frame.depth, frame.valid, seed=1)
    pub_rel = relay.create_publisher(Image, 'depth/relative', 10)
    pub_info = relay.create_publisher(CameraInfo, 'depth/camera_info', 10)

    def on_info(info):  # the "depth node": relative depth with the camera's header
        pub_info.publish(info)
        pub_rel.publish(depth_to_image_msg(relative, info.header))

    relay.create_subscription(CameraInfo, 'camera_info', on_info, 10)
    got = []
    relay.create_subscription(Image, 'metric/depth/image', got.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (camera, fusion, relay):
        executor.add_node(node)
    try:
        end = time.monotonic() + 20.0
        while not got:
            assert time.monotonic() < end, f'no metric depth: {fusion.last_scale}'
            executor.spin_once(timeout_sec=0.05)
        assert fusion.last_scale.status == DepthScale.STATUS_OK, fusion.last_scale.message
        assert got[0].header.frame_id == 'camera_optical_frame'
        mask = frame.valid
        metric = image_msg_to_depth(got[0])
        # exactly what the pure pipeline gives on the same cloud (wiring, frames, extrinsic) ...
        scan = synthetic.simulate_lidar(frame, lines=16)
        samples = samples_from_points(relative, frame.intrinsics, scan.points, scan.T_cam_lidar, 0.1)
        fit = fit_scale(samples.relative, samples.metric)
        assert np.allclose(metric, relative_to_metric(relative, fit.a, fit.b), rtol=1e-5, equal_nan=True)
        # ... and close to the oracle (this scene: 1.23×; the mean over scenes is in test_fusion_accuracy)
        a, b = least_squares(relative[mask], np.log1p(frame.depth[mask]))
        oracle = abs_rel(relative_to_metric(relative, a, b), frame.depth, mask)
        assert abs_rel(metric, frame.depth, mask) <= 1.3 * oracle
    finally:
        executor.shutdown()
        for node in (camera, fusion, relay):
            node.destroy_node()


def rosout(harness):
    logs = []
    harness.io.create_subscription(Log, '/rosout', logs.append, 100)
    return logs


@pytest.mark.parametrize('info_offset, expected', [
    (None, "nothing has arrived on '/depth/camera_info'"),
    (0.5, 'stamps are -0.500 s apart, more than input.sync_slop (0.01 s)'),
])
def test_relative_depth_without_camera_info_is_reported(harness, info_offset, expected):
    """depth/relative that pairs with no depth/camera_info: a warning with the cause and
    /diagnostics WARN with the counts within a few seconds (was: silence)."""
    logs = rosout(harness)
    end = time.monotonic() + 8.0
    t = 1.0
    while time.monotonic() < end:
        if info_offset is not None:
            harness.pub_info.publish(info_msg(t + info_offset))
        harness.pub_rel.publish(depth_to_image_msg(REL, header(t)))
        t += 1.0  # stamps 1 s apart: the CameraInfo 0.5 s off matches no frame
        harness.spin_until(lambda: True)
        for _ in range(4):
            harness.executor.spin_once(timeout_sec=0.05)
        if any(log.level == Log.WARN and expected in log.msg for log in logs):
            break
    assert any(log.level == Log.WARN and expected in log.msg for log in logs), [log.msg for log in logs]
    diag = harness.diagnostics()
    values = {v.key: v.value for v in diag.values}
    assert diag.level == DiagnosticStatus.WARN and expected in diag.message
    assert int(values['pairing: received']) >= 3 and values['pairing: paired'] == '0'
    assert harness.got['scale'] == []


def test_source_stamped_off_is_reported_with_the_offset_and_the_fix(harness):
    logs = rosout(harness)
    harness.source(cloud_msg(3.5))  # the LiDAR is stamped 0.5 s after the camera
    scale, _ = harness.frame(3.0, expect_metric=False)
    assert scale.status == DepthScale.STATUS_NO_FIT
    text = 'no pointcloud within ±0.1 s of the depth stamp (closest is +0.500 s away)'
    assert text in scale.message and 'raise source_tolerance' in scale.message
    harness.spin_until(lambda: any(log.level == Log.WARN and text in log.msg for log in logs))
    diag = harness.diagnostics()
    values = {v.key: v.value for v in diag.values}
    assert diag.level == DiagnosticStatus.WARN and 'raise source_tolerance' in diag.message
    assert values['frames without source'] == '1' and values['frames received'] == '1'


def test_help_lists_the_topics_and_every_parameter_without_starting(capsys):
    from ppd_ros.nodes.scale_fusion_params import PARAMETERS
    assert fusion_module.main(['scale_fusion_node', '--help']) == 0
    text = capsys.readouterr().out
    for topic in ('depth/relative', 'metric_source/points', 'metric/scale', 'metric/points'):
        assert topic in text
    assert all(f'  {spec.name}  (' in text for spec in PARAMETERS)
