"""depth_node with MoGe-2 weights: metres from the camera alone (real rclpy, real messages).

The estimator is a stand-in with the real estimator's metric interface (``has_metric_model``,
``metric_geometry`` → ``ModelGeometry``) whose metric depth is exactly log(d + 1) = a·r + b of its
relative ramp, with the top rows marked invalid ("sky"); the real ``PPDEstimator.metric_geometry``
is covered in test_moge_metric.py.
"""
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.geometry.scale.model_scale import ModelGeometry  # noqa: E402
from ppd_ros.msg import DepthScale  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.image_codec import rgb_to_image_msg  # noqa: E402
from ppd_ros.nodes.params import ParameterError  # noqa: E402
import test_depth_node_harness as harness  # noqa: E402
from test_depth_node_harness import (Collector, Feeder, RecordingEstimator, RosGraph, float_image,  # noqa: E402
                                     header, overrides, pattern_image, wait_for)

A, B = 1.2, 0.4
SKY_ROWS = 3
INTR = Intrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)
TOPICS = ('depth/image', 'depth/relative', 'depth/camera_info', 'depth/scale')


class MetricStandIn(RecordingEstimator):
    has_metric_model = True

    def __init__(self):
        super().__init__(scale=0.5, nan_corner=False)
        self.passes = 0

    def metric_geometry(self, rgb, resolution_level=9):
        h, w = self.infer_size(*rgb.shape[:2])
        depth = np.expm1(A * np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1)) + B).astype(np.float32)
        valid = np.ones((h, w), bool)
        valid[:SKY_ROWS] = False
        depth[~valid] = np.inf
        self.passes += 1
        return ModelGeometry(depth, valid, Intrinsics(20.0, 22.0, (w - 1) / 2, (h - 1) / 2, w, h))


@pytest.fixture(autouse=True)
def scale_topic(monkeypatch):
    monkeypatch.setitem(harness.OUTPUT_TYPES, 'depth/scale', DepthScale)


def start(graph, context, estimator, image_only=False, topics=TOPICS, **params):
    node = graph.add(DepthNode(estimator=estimator, context=context, parameter_overrides=overrides(**params)))
    feeder = graph.add(Feeder(context))
    collector = graph.add(Collector(context, topics=topics))
    wanted = {t.split('/')[1] for t in topics} - {'camera_info'}
    ready = (lambda: feeder.image_pub.get_subscription_count() > 0) if image_only else feeder.connected
    assert wait_for(lambda: ready() and node.wanted_outputs() == wanted), 'discovery timed out'
    return node, feeder, collector


def test_metres_come_from_moge2_with_source_model_and_sky_nan(ros_context):
    estimator = MetricStandIn()
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, metric__every_n_frames=3,
                                        output__resolution='inference')  # the stand-in's size
        for i in range(4):
            feeder.send(i, pattern_image(seed=i), INTR)
            assert wait_for(lambda: collector.has_frame(i)), f'frame {i} did not come out'
        scale = collector.by_stamp('depth/scale', 3)
        assert scale.source == 'model' and scale.status in (DepthScale.STATUS_OK, DepthScale.STATUS_HELD)
        assert scale.a == pytest.approx(A, rel=1e-4) and scale.b == pytest.approx(B, abs=1e-4)
        metric = float_image(collector.by_stamp('depth/image', 3))
        expected = np.expm1(A * np.linspace(0.0, 1.0, 32) + B)
        np.testing.assert_allclose(metric[SKY_ROWS:], np.tile(expected, (24 - SKY_ROWS, 1)), rtol=1e-4)
        assert np.isnan(metric[:SKY_ROWS]).all()  # MoGe-2's invalid pixels
        relative = float_image(collector.by_stamp('depth/relative', 3))
        assert np.isnan(relative[:SKY_ROWS]).all() and np.isfinite(relative[SKY_ROWS:]).all()  # for the fusion node
        assert estimator.passes == 2  # frames 0 and 3 (every 3rd), the fit held in between
        assert collector.by_stamp('depth/scale', 1).status == DepthScale.STATUS_HELD
        status = node._diagnostics_status()[2]
        assert status['scale source'] == 'model' and status['metric passes'] == 2


def test_scale_alone_runs_the_moge2_pass(ros_context):
    """scale_fusion_node listens to depth/relative and depth/scale only: its model fallback needs
    the MoGe-2 scale, and the relative depth needs MoGe-2's mask."""
    estimator = MetricStandIn()
    with RosGraph(ros_context) as graph:
        _, feeder, collector = start(graph, ros_context, estimator, topics=('depth/relative', 'depth/scale'))
        feeder.send(0, pattern_image(), INTR)
        assert wait_for(lambda: collector.has_frame(0)), 'no output'
        assert collector.by_stamp('depth/scale', 0).source == 'model' and estimator.passes == 1
        assert np.isnan(float_image(collector.by_stamp('depth/relative', 0))[:SKY_ROWS]).all()


def test_assumed_range_is_said_so(ros_context):
    with RosGraph(ros_context) as graph:
        _, feeder, collector = start(graph, ros_context, MetricStandIn(), metric__source='assumed')
        feeder.send(0, pattern_image(), INTR)
        assert wait_for(lambda: collector.has_frame(0))
        assert collector.by_stamp('depth/scale', 0).source == 'assumed'
        assert not np.isnan(float_image(collector.by_stamp('depth/image', 0))).any()


def test_model_intrinsics_without_camera_info(ros_context):
    estimator = MetricStandIn()
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, image_only=True,
                                        camera__intrinsics='model', output__resolution='inference')
        assert node.pairing.startswith('image only')
        msg = rgb_to_image_msg(pattern_image(), header(5), 'rgb8')
        feeder.image_pub.publish(msg)
        assert wait_for(lambda: collector.has_frame(5)), 'no output without camera_info'
        info = collector.by_stamp('depth/camera_info', 5)
        assert (info.width, info.height) == (32, 24)
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), [[20.0, 0, 15.5], [0, 22.0, 11.5], [0, 0, 1]],
                                   atol=1e-9)  # the model's intrinsics, round-tripped through the camera size


def test_model_settings_need_moge2_weights(ros_context):
    with pytest.raises(ParameterError, match="metric.source 'model' needs MoGe-2"):
        DepthNode(estimator=RecordingEstimator(), context=ros_context,
                  parameter_overrides=overrides(metric__source='model'))
    with pytest.raises(ParameterError, match="camera.intrinsics 'model' needs MoGe-2"):
        DepthNode(estimator=RecordingEstimator(), context=ros_context,
                  parameter_overrides=overrides(camera__intrinsics='model'))
