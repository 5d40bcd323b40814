"""The scale both nodes publish, as ppd_ros/msg/DepthScale: one function (nodes.scale_message)."""
import math

import pytest

pytest.importorskip('rclpy')
from std_msgs.msg import Header  # noqa: E402

from ppd_ros.geometry.scale.fit import FitStatus, ScaleFit, TrackedScale  # noqa: E402
from ppd_ros.msg import DepthScale  # noqa: E402
from ppd_ros.nodes.scale_message import depth_scale_message  # noqa: E402
from ppd_ros.pipeline import ScaleInUse  # noqa: E402

HEADER = Header(frame_id='camera_optical_frame')
MODEL = DepthScale(a=3.0, b=0.1, age=0.5, inlier_ratio=0.8, num_points=900, residual=0.02, source='model',
                   status=DepthScale.STATUS_HELD, message='MoGe-2')


def tracked(status, a=2.0, b=0.5, fit=True):
    fit = ScaleFit(a=a, b=b, inlier_ratio=0.9, num_points=120, residual=0.03) if fit else None
    return TrackedScale(status=status, a=a, b=b, age=0.25, fit=fit, message='fitted')


def test_a_usable_tracked_scale_is_published_with_its_fit():
    msg = depth_scale_message(HEADER, tracked(FitStatus.HELD), 'sensor', 'pointcloud: fitted', fallback=MODEL)
    assert (msg.a, msg.b, msg.age, msg.status, msg.source) == (2.0, 0.5, 0.25, DepthScale.STATUS_HELD, 'sensor')
    assert (msg.inlier_ratio, msg.num_points, msg.residual) == (pytest.approx(0.9), 120, pytest.approx(0.03))
    assert msg.message == 'pointcloud: fitted' and msg.header.frame_id == 'camera_optical_frame'
    assert depth_scale_message(HEADER, tracked(FitStatus.OK), 'model').message == 'fitted'


def test_an_unusable_scale_without_fallback_is_published_as_it_is():
    msg = depth_scale_message(HEADER, tracked(FitStatus.NO_FIT, math.nan, math.nan, fit=False), 'sensor')
    assert msg.status == DepthScale.STATUS_NO_FIT and math.isnan(msg.a) and msg.num_points == 0
    assert msg.source == 'sensor'


def test_the_pipeline_scale_is_published_as_it_is():
    """depth_node and ppd-bag: the pipeline's ScaleInUse, the assumed range included."""
    for scale in (ScaleInUse.from_tracked(tracked(FitStatus.OK), 'model'),
                  ScaleInUse.assumed(0.5, 10.0, 'MoGe-2 scale unusable (stale)')):
        msg = depth_scale_message(HEADER, scale)
        assert (msg.a, msg.b, msg.source, msg.status, msg.message) == (
            pytest.approx(scale.a), pytest.approx(scale.b), scale.source, scale.status, scale.message)
        assert (msg.age, msg.num_points) == (pytest.approx(scale.age), scale.num_points)
    assert depth_scale_message(HEADER, ScaleInUse.assumed(0.5, 10.0)).status == DepthScale.STATUS_NO_FIT


def test_an_unusable_sensor_scale_gives_way_to_the_received_model_scale():
    """scale_fusion_node: the sensor is unusable → depth_node's model scale for the same stamp."""
    msg = depth_scale_message(HEADER, tracked(FitStatus.EXPIRED), 'sensor', 'pointcloud: stale', fallback=MODEL,
                              fallback_source='model', why='pointcloud unusable')
    assert (msg.a, msg.b, msg.age, msg.num_points, msg.status) == (3.0, 0.1, 0.5, 900, DepthScale.STATUS_HELD)
    assert msg.source == 'model' and msg.message == 'pointcloud unusable' and msg.header.frame_id == HEADER.frame_id
    copy = depth_scale_message(HEADER, MODEL)
    assert copy.source == 'model' and copy.message == 'MoGe-2' and copy.header.frame_id == HEADER.frame_id
