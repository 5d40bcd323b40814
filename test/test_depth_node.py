"""depth_node with real rclpy: a feeder node → depth_node → a collector node, one context each.

Covers: outputs and their header, every input encoding, compressed input, intrinsics scaling in
depth/camera_info, point-cloud geometry against synthetic ground truth (oracle estimator), camera
resolution output without blending across edges, lazy outputs, stamp / latest CameraInfo pairing,
temporal modes, runtime and start-up parameter validation, /diagnostics.
"""
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from ppd_ros import synthetic  # noqa: E402
from ppd_ros.geometry.backproject import depth_to_points  # noqa: E402
from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.geometry.scale.depth_scale import near_far_scale, relative_to_metric  # noqa: E402
from ppd_ros.nodes import depth_node as depth_node_module  # noqa: E402
from ppd_ros.nodes import pairing as pairing_module  # noqa: E402
from ppd_ros.nodes.camera_info import CameraInfoError, camera_intrinsics, scaled_camera_info  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.image_codec import compressed_to_rgb, rgb_to_compressed_msg, rgb_to_image_msg  # noqa: E402
from ppd_ros.nodes.params import ParameterError  # noqa: E402
from test_depth_node_harness import (FRAME_ID, Collector, Feeder, OracleEstimator,  # noqa: E402
                                     RecordingEstimator, RosGraph, camera_info, cloud_grid,
                                     float_image, header, overrides, pattern_image, stamp, wait_for)

INTR = Intrinsics(50.0, 60.0, 31.5, 23.5, 64, 48)
P_INTR = Intrinsics(55.0, 58.0, 30.0, 22.0, 64, 48)  # rectified P differs from K on purpose


def start(graph, context, estimator, topics=None, namespace='', compressed=False, **params):
    node = graph.add(DepthNode(estimator=estimator, context=context, namespace=namespace,
                               parameter_overrides=overrides(**params)))
    feeder = graph.add(Feeder(context, compressed=compressed, namespace=namespace))
    collector = graph.add(Collector(context, namespace=namespace, **({'topics': topics} if topics else {})))
    wanted = {t.split('/')[1] for t in collector.topics} - {'camera_info'}
    assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == wanted), 'discovery timed out'
    return node, feeder, collector


def send_and_wait(feeder, collector, i, rgb, intr=INTR, **kwargs):
    feeder.send(i, rgb, intr, **kwargs)
    assert wait_for(lambda: collector.has_frame(i)), f'frame {i} did not come out'


# ------------------------------------------------------------------------------ pure helpers

def test_camera_intrinsics_prefer_p_and_fall_back_to_k():
    info = camera_info(INTR, header(0), p_intrinsics=P_INTR)
    assert camera_intrinsics(info) == P_INTR
    info = camera_info(INTR, header(0), zero_p=True)
    assert camera_intrinsics(info) == INTR
    with pytest.raises(CameraInfoError, match='all zero'):
        camera_intrinsics(camera_info(INTR, header(0), zero_k=True, zero_p=True))


def test_scaled_camera_info_matches_intrinsics_resized_to():
    info = camera_info(INTR, header(0), p_intrinsics=P_INTR)
    info.p[3] = -55.0 * 0.1  # stereo baseline term Tx = -fx·B scales with fx
    out = scaled_camera_info(info, 40, 36, header(0))
    assert (out.width, out.height) == (40, 36)
    np.testing.assert_allclose(np.reshape(out.k, (3, 3)), INTR.resized_to(40, 36).K, atol=1e-12)
    p = np.reshape(out.p, (3, 4))
    np.testing.assert_allclose(p[:, :3], P_INTR.resized_to(40, 36).K, atol=1e-12)
    assert p[0, 3] == pytest.approx(-55.0 * 0.1 * 40 / 64)
    assert list(out.d) == list(info.d) and list(out.r) == list(info.r)


# ------------------------------------------------------------------------------ end to end

class WarmingEstimator(RecordingEstimator):
    """Records the threads of warm_up and predict (model.compile on warms up on the inference
    thread: CUDA graphs captured on another thread would be recorded again)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def warm_up(self):
        self.calls.append(('warm_up', threading.current_thread().name))

    def predict(self, rgb, init_depth=None, init_strength=None):
        self.calls.append(('predict', threading.current_thread().name))
        return super().predict(rgb, init_depth, init_strength)


def test_the_model_is_warmed_up_once_on_the_inference_thread_before_the_first_frame(ros_context):
    estimator = WarmingEstimator()
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, topics=['depth/relative'])
        send_and_wait(feeder, collector, 0, pattern_image())
        send_and_wait(feeder, collector, 1, pattern_image())
    names = {name for _, name in estimator.calls}
    assert [call for call, _ in estimator.calls] == ['warm_up', 'predict', 'predict']
    assert len(names) == 1 and threading.main_thread().name not in names
    assert node.errors == 0


def test_outputs_carry_the_input_header_and_agree(ros_context):
    estimator = RecordingEstimator(scale=0.5)
    with RosGraph(ros_context) as graph:  # at the model resolution: camera_info scaled per axis
        node, feeder, collector = start(graph, ros_context, estimator, output__resolution='inference')
        rgb = pattern_image()
        feeder.send(7, rgb, INTR, info=camera_info(INTR, header(7), p_intrinsics=P_INTR))
        assert wait_for(lambda: collector.has_frame(7))

        for topic in collector.topics:
            msg = collector.by_stamp(topic, 7)
            assert msg.header.frame_id == FRAME_ID
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp(7)
        np.testing.assert_array_equal(estimator.inputs[0], rgb)

        relative_msg = collector.by_stamp('depth/relative', 7)
        relative = float_image(relative_msg)
        assert relative.shape == (24, 32)
        assert np.isnan(relative[0, 0])
        np.testing.assert_allclose(relative[1], np.linspace(0, 1, 32), atol=1e-6)

        metric = float_image(collector.by_stamp('depth/image', 7))
        a, b = near_far_scale(0.5, 10.0)
        np.testing.assert_allclose(metric, relative_to_metric(relative, a, b), rtol=1e-6, equal_nan=True)
        assert np.isnan(metric[0, 0]) and not np.any(metric == 0)  # REP 118: NaN, never 0
        assert metric[1, 0] == pytest.approx(0.5, rel=1e-5) and metric[1, -1] == pytest.approx(10.0, rel=1e-5)

        info = collector.by_stamp('depth/camera_info', 7)
        assert (info.width, info.height) == (32, 24)
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), INTR.resized_to(32, 24).K, atol=1e-9)
        np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], P_INTR.resized_to(32, 24).K, atol=1e-9)

        cloud = collector.by_stamp('depth/points', 7)
        assert (cloud.height, cloud.width, cloud.is_dense) == (24, 32, False)
        xyz, colour = cloud_grid(cloud)
        expected = depth_to_points(metric, P_INTR.resized_to(32, 24))  # geometry from P
        np.testing.assert_allclose(xyz, expected, rtol=1e-6, atol=1e-6, equal_nan=True)
        assert np.isnan(xyz[0, 0]).all()
        np.testing.assert_array_equal(colour, cv2.resize(rgb, (32, 24), interpolation=cv2.INTER_AREA))

        colorized = collector.by_stamp('depth/colorized', 7)
        assert (colorized.encoding, colorized.width, colorized.height) == ('bgr8', 32, 24)


def test_every_raw_encoding_reaches_the_model_as_rgb(ros_context):
    estimator = RecordingEstimator()
    rgb = pattern_image()
    gray = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    expected = {'rgb8': rgb, 'bgr8': rgb, 'rgba8': rgb, 'bgra8': rgb, 'mono8': gray, 'mono16': gray}
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, topics=['depth/relative'])
        for i, encoding in enumerate(expected):
            send_and_wait(feeder, collector, i, rgb, encoding=encoding)
            np.testing.assert_array_equal(estimator.inputs[-1], expected[encoding], err_msg=encoding)
        assert node.errors == 0


def test_compressed_input_jpeg_and_png(ros_context):
    estimator = RecordingEstimator()
    rgb = pattern_image()
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, topics=['depth/relative'],
                                        compressed=True, image_transport='compressed')
        send_and_wait(feeder, collector, 0, rgb, encoding='png')
        np.testing.assert_array_equal(estimator.inputs[-1], rgb)
        send_and_wait(feeder, collector, 1, rgb, encoding='jpeg')
        jpeg = compressed_to_rgb(rgb_to_compressed_msg(rgb, header(1), 'jpeg'))
        np.testing.assert_array_equal(estimator.inputs[-1], jpeg)  # decoded as OpenCV decodes it
        assert node.errors == 0


def test_default_depth_has_the_camera_size_without_blending_edges(ros_context):
    """By default (output.resolution camera) every output has the image's size: the depth
    enlarged by the guided upsampling (no value between the two sides of an edge), the camera's
    own CameraInfo and an H×W cloud back-projected with it."""
    class StepEstimator(RecordingEstimator):
        def predict(self, rgb, init_depth=None, init_strength=None):
            depth = super().predict(rgb)
            depth[:] = 0.2
            depth[:, depth.shape[1] // 2:] = 0.8
            return depth

    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, StepEstimator(scale=0.5, nan_corner=False),
                                        topics=['depth/relative', 'depth/camera_info', 'depth/image',
                                                'depth/points'])
        assert node.params['output.resolution'] == 'camera' and node.params['output.upsample'] == 'guided'
        send_and_wait(feeder, collector, 0, pattern_image(), info=camera_info(INTR, header(0), p_intrinsics=P_INTR))
        relative = float_image(collector.by_stamp('depth/relative', 0))
        assert relative.shape == (48, 64)
        np.testing.assert_allclose(np.unique(relative), [0.2, 0.8], rtol=1e-6)  # no value in between
        info = collector.by_stamp('depth/camera_info', 0)
        assert (info.width, info.height) == (64, 48)
        np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), INTR.K)
        np.testing.assert_array_equal(np.reshape(info.p, (3, 4))[:, :3], P_INTR.K)
        metric = float_image(collector.by_stamp('depth/image', 0))
        xyz, _ = cloud_grid(collector.by_stamp('depth/points', 0))
        assert metric.shape == (48, 64) and xyz.shape == (48, 64, 3)
        np.testing.assert_allclose(xyz, depth_to_points(metric, P_INTR), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('kind, zero_p', [('indoor', False), ('outdoor', True)])
def test_point_cloud_matches_synthetic_ground_truth(ros_context, kind, zero_p):
    """Oracle depth in → depth/points equals the back-projected ground truth (P, or K if P = 0)."""
    frame = synthetic.render_frame(seed=0, width=80, height=60, kind=kind)  # seed 0 outdoor: 6 % sky
    intr = frame.intrinsics
    a, b = near_far_scale(0.5, 10.0)
    other = Intrinsics(intr.fx * 1.3, intr.fy * 0.8, intr.cx + 5, intr.cy - 4, intr.width, intr.height)
    # the camera's true projection goes where the node must read it: P, or K when P is zero
    info = camera_info(intr if zero_p else other, header(0), p_intrinsics=intr, zero_p=zero_p)
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, OracleEstimator([frame], a, b),
                                        topics=['depth/points', 'depth/camera_info'])
        send_and_wait(feeder, collector, 0, frame.rgb, intr, info=info)
        xyz, colour = cloud_grid(collector.by_stamp('depth/points', 0))
    truth = depth_to_points(np.where(frame.valid, frame.depth, np.nan), intr)
    assert xyz.shape == (60, 80, 3)
    np.testing.assert_array_equal(np.isnan(xyz[..., 2]), ~frame.valid)
    np.testing.assert_allclose(xyz[frame.valid], truth[frame.valid], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(colour, frame.rgb)
    if kind == 'outdoor':
        assert (~frame.valid).any()  # the sky is invalid: NaN points


def test_inference_resolution_points_project_back_to_their_pixels(ros_context):
    """Depth at half resolution: each point, projected with the camera's own intrinsics, lands on
    the centre of the model pixel it came from — the intrinsics were scaled per axis correctly."""
    frame = synthetic.render_frame(seed=5, width=80, height=60, kind='indoor')
    intr = frame.intrinsics
    a, b = near_far_scale(0.5, 10.0)
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, OracleEstimator([frame], a, b, scale=2),
                                        topics=['depth/points', 'depth/camera_info', 'depth/image'],
                                        output__resolution='inference')
        send_and_wait(feeder, collector, 0, frame.rgb, intr)
        xyz, _ = cloud_grid(collector.by_stamp('depth/points', 0))
        metric = float_image(collector.by_stamp('depth/image', 0))
        info = collector.by_stamp('depth/camera_info', 0)
    assert xyz.shape == (30, 40, 3) and (info.width, info.height) == (40, 30)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    u = intr.fx * x / z + intr.cx
    v = intr.fy * y / z + intr.cy
    jj, ii = np.meshgrid(np.arange(40), np.arange(30))
    np.testing.assert_allclose(u, 2 * jj + 0.5, atol=1e-3)
    np.testing.assert_allclose(v, 2 * ii + 0.5, atol=1e-3)
    np.testing.assert_allclose(z, metric, rtol=1e-6)
    np.testing.assert_allclose(z, frame.depth[::2, ::2], rtol=1e-4)


def test_lazy_outputs_compute_only_what_is_subscribed(ros_context, monkeypatch):
    calls = {'depth_to_points': 0, 'colorize_depth': 0, 'relative_to_metric': 0}
    from ppd_ros.pipeline import products  # where the depth products are made
    for name in calls:
        original = getattr(products, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(products, name, counting)

    estimator = RecordingEstimator()
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=estimator, context=ros_context))
        feeder = graph.add(Feeder(ros_context))
        assert wait_for(feeder.connected)
        feeder.send(0, pattern_image(), INTR)
        assert wait_for(lambda: node.idle_frames == 1)
        assert estimator.inputs == []  # nobody listens: the model did not run

        collector = graph.add(Collector(ros_context, topics=['depth/relative']))
        assert wait_for(lambda: node.wanted_outputs() == {'relative'})
        send_and_wait(feeder, collector, 1, pattern_image())
        assert len(estimator.inputs) == 1
        assert calls == {'depth_to_points': 0, 'colorize_depth': 0, 'relative_to_metric': 0}


def expected_stamp_pairing() -> str:
    """message_filters on a ROS install (and in CI's second run, with the test stand-in),
    the in-package pairer otherwise."""
    return 'message_filters' if pairing_module._message_filters() is not None else 'builtin'


def test_stamp_pairing_and_latest_camera_info(ros_context):
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, RecordingEstimator(), topics=['depth/relative'],
                                        namespace='by_stamp', input__sync_slop=0.05)
        feeder.send(0, pattern_image(), INTR, info_index=50)  # CameraInfo 5 s away: never paired
        assert not wait_for(lambda: collector.count('depth/relative') > 0, timeout=0.5)
        send_and_wait(feeder, collector, 1, pattern_image())
        assert node.pairing == expected_stamp_pairing()

        latest, feeder2, collector2 = start(graph, ros_context, RecordingEstimator(), topics=['depth/relative'],
                                            namespace='latest', input__latest_camera_info=True)
        for i in range(2, 12):  # stamps ≥ 3.8 s apart: paired anyway (once a CameraInfo arrived)
            feeder2.send(i, pattern_image(), INTR, info_index=50)
            if wait_for(lambda: collector2.count('depth/relative') > 0, timeout=1.0):
                break
        assert collector2.has_frame(i)
        assert latest.pairing == 'latest'


def test_temporal_warm_start_and_align(ros_context):
    class JitterEstimator(RecordingEstimator):
        """Same scene, a different global scale/shift every frame (what align removes)."""
        def predict(self, rgb, init_depth=None, init_strength=None):
            base = super().predict(rgb, init_depth, init_strength)
            k = len(self.inputs)
            return base * (1.0 + 0.1 * k) + 0.05 * k

    estimator = JitterEstimator(nan_corner=False)
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, topics=['depth/relative'],
                                        temporal__mode='warm_start', temporal__warm_start_strength=0.25,
                                        output__resolution='inference')  # published = the model's depth
        send_and_wait(feeder, collector, 0, pattern_image())
        send_and_wait(feeder, collector, 1, pattern_image())
        first = float_image(collector.by_stamp('depth/relative', 0))
        assert estimator.init_depths[0] is None
        np.testing.assert_array_equal(estimator.init_depths[1][0], first)
        assert estimator.init_depths[1][1] == 0.25
        send_and_wait(feeder, collector, 2, pattern_image(32, 40), INTR.resized_to(40, 32))  # new size: reset
        assert estimator.init_depths[2] is None

        assert node.set_parameters([Parameter('temporal.mode', value='align')])[0].successful
        for i in (3, 4, 5):
            send_and_wait(feeder, collector, i, pattern_image())
        aligned = [float_image(collector.by_stamp('depth/relative', i)) for i in (3, 4, 5)]
        raw_spread = [np.ptp(r) for r in aligned]
        np.testing.assert_allclose(aligned[1], aligned[0], atol=1e-3)
        np.testing.assert_allclose(aligned[2], aligned[0], atol=1e-3)
        assert raw_spread[0] == pytest.approx(1.0 + 0.1 * 4, rel=1e-3)  # first frame after reset: as is


def test_runtime_parameter_changes_are_validated(ros_context):
    estimator = RecordingEstimator()
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, estimator, topics=['depth/relative'])

        def set_(name, value):
            return node.set_parameters([Parameter(name, value=value)])[0]

        assert set_('model.steps', 2).successful and estimator.steps == 2
        result = set_('output.near', 20.0)
        assert not result.successful and 'output.near' in result.reason
        result = set_('temporal.mode', 'bogus')
        assert not result.successful and 'one of' in result.reason
        result = set_('colorize.percentiles', [98.0, 2.0])
        assert not result.successful and 'low < high' in result.reason
        assert not set_('image_transport', 'compressed').successful  # read-only after start
        assert not set_('model.steps', 0).successful and estimator.steps == 2

        assert set_('output.resolution', 'inference').successful  # the model's size (camera's by default)
        send_and_wait(feeder, collector, 0, pattern_image())
        assert float_image(collector.by_stamp('depth/relative', 0)).shape == (24, 32)


@pytest.mark.parametrize('params, message', [
    ({'model__precision': 'fp64'}, "parameter 'model.precision' must be one of"),
    ({'output__near': 20.0}, 'output.near (20.0) must be smaller than output.far'),
    ({'output__near': 1}, "parameter 'output.near' must be a double"),
    ({'model__target_area': [1024]}, 'needs 2 values'),
    ({'model__steps': 0}, "'model.steps' must be ≥ 1"),
    ({'model__dit_path': '/tmp/ppd.pth'}, 'must be given together'),
    ({'model__backend': 'onnxruntime'}, 'model.onnx_path is needed by model.backend onnxruntime'),
    ({'model__onnx_path': '/tmp/m.onnx'}, 'model.onnx_path is needed by model.backend onnxruntime/tensorrt '
                                          'and only by them'),
    ({'model__backend': 'tensorrt', 'model__onnx_path': '/tmp/m.onnx', 'model__compile': 'on'},
     'model.compile on is for model.backend torch'),
    ({'model__compile': 'maybe'}, "parameter 'model.compile' must be a boolean"),
])
def test_bad_start_parameters_refuse_to_start(ros_context, params, message):
    with pytest.raises(ParameterError) as error:
        DepthNode(estimator=RecordingEstimator(), context=ros_context, parameter_overrides=overrides(**params))
    assert message in str(error.value)


def test_executable_exits_with_one_clear_line_on_a_bad_parameter():
    result = subprocess.run([sys.executable, '-m', 'ppd_ros.nodes.depth_node', '--ros-args',
                             '-p', 'temporal.mode:=sometimes'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "depth_node: error: parameter 'temporal.mode' must be one of off, align, warm_start, video" in result.stderr


def test_diagnostics_report_rates_latency_and_model(ros_context):
    received = []
    with RosGraph(ros_context) as graph:
        node, feeder, collector = start(graph, ros_context, RecordingEstimator(), topics=['depth/relative'],
                                        diagnostics__period=0.1)
        listener = graph.add(rclpy.create_node('diag_listener', context=ros_context))
        listener.create_subscription(DiagnosticArray, '/diagnostics', received.append, 10)
        for i in range(3):
            send_and_wait(feeder, collector, i, pattern_image())
        assert wait_for(lambda: any(dict((v.key, v.value) for v in a.status[0].values).get('frames published') == '3'
                                    for a in received))
    status = received[-1].status[0]
    values = {v.key: v.value for v in status.values}
    assert status.name == '/depth_node' and status.hardware_id == 'cpu'
    for key in ('input rate (Hz)', 'output rate (Hz)', 'latency stamp to publish mean (s)',
                'inference time mean (s)', 'frames dropped (model busy)', 'device', 'precision',
                'model', 'steps'):
        assert key in values
    assert values['model'] == 'recording-fake' and values['steps'] == '4'
    assert values['frames failed'] == '0'



def test_warm_start_needs_an_estimator_that_supports_it(ros_context):
    class NoWarmStart:
        steps = 4

        def predict(self, rgb):
            return np.zeros((4, 4), np.float32)

        def describe(self):
            return {}

    with pytest.raises(ParameterError, match='init_depth and init_strength'):
        DepthNode(estimator=NoWarmStart(), context=ros_context,
                  parameter_overrides=overrides(temporal__mode='warm_start'))
    node = DepthNode(estimator=NoWarmStart(), context=ros_context, node_name='plain')
    try:
        result = node.set_parameters([Parameter('temporal.mode', value='warm_start')])[0]
        assert not result.successful and 'init_depth' in result.reason
        assert node.set_parameters([Parameter('temporal.mode', value='align')])[0].successful
    finally:
        node.destroy_node()


def test_unknown_parameters_are_reported_as_typos(ros_context):
    node = DepthNode(estimator=RecordingEstimator(), context=ros_context,
                     parameter_overrides=overrides(output__nera=1.0, output__near=1.0))
    try:
        assert node.params.unknown_overrides() == ['output.nera']
        assert node.params['output.near'] == 1.0
    finally:
        node.destroy_node()


@pytest.mark.parametrize('case, expected', [
    ('no_camera_info', "nothing has arrived on '/no_camera_info/camera_info'"),
    ('offset', 'stamps are -0.500 s apart, more than input.sync_slop (0.05 s)'),
    ('latest_no_camera_info', "nothing has arrived on '/latest_no_camera_info/camera_info'"),
])
def test_unpaired_images_are_reported_with_the_cause(ros_context, case, expected):
    """Images that find no CameraInfo: a warning that names the cause and the fix, and
    /diagnostics WARN with the counts, within a few seconds (it was silence and OK at 0 Hz)."""
    logs, diagnostics = [], []
    with RosGraph(ros_context) as graph:
        node, feeder, _ = start(graph, ros_context, RecordingEstimator(), topics=['depth/relative'],
                                namespace=case, diagnostics__period=0.2,
                                input__latest_camera_info=case.startswith('latest'))
        listener = graph.add(rclpy.create_node('unpaired_listener', context=ros_context))
        listener.create_subscription(Log, '/rosout', logs.append, 100)
        listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 100)

        def reported():
            warned = any(log.level == Log.WARN and expected in log.msg and case in log.name for log in logs)
            statuses = [s for array in list(diagnostics) for s in array.status if s.name == f'/{case}/depth_node']
            return warned and statuses and statuses[-1].level == DiagnosticStatus.WARN \
                and expected in statuses[-1].message

        rgb = pattern_image()
        for i in range(0, 400, 10):  # stamps 1 s apart, 5 per second
            if case == 'offset':
                feeder.send(i, rgb, INTR, info_index=i + 5)  # CameraInfo stamped 0.5 s later
            else:
                feeder.image_pub.publish(rgb_to_image_msg(rgb, header(i)))
            if wait_for(reported, timeout=0.2):
                break
        assert reported(), [log.msg for log in logs]
        status = [s for array in diagnostics for s in array.status if s.name == f'/{case}/depth_node'][-1]
        values = {v.key: v.value for v in status.values}
        assert int(values['pairing: received']) >= 5 and values['pairing: paired'] == '0'
        assert int(values['pairing: unpaired']) == int(values['pairing: received'])
        if case == 'offset':
            assert 'set input.latest_camera_info: true' in status.message


def test_model_compile_and_backend_reach_the_estimator(ros_context):
    """The node only passes model.compile/backend/onnx_path on; on this CPU compile falls back to
    eager, and the reason goes to the node's log (once) and its start line."""
    from ppd_ros.nodes.depth_node_params import model_options
    node = DepthNode(context=ros_context, node_name='compiled',
                     parameter_overrides=overrides(model__compile='on', model__device='cpu'))
    try:
        options = model_options(node.params)
        assert (options['compile'], options['backend'], options['onnx_path']) == ('on', 'torch', None)
        assert node.estimator.acceleration.startswith('eager (model.compile on needs a CUDA device')
        assert node._describe['acceleration'] == node.estimator.acceleration
    finally:
        node.destroy_node()
