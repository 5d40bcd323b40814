"""depth_node with the cameras parameter, over real topics: three cameras of different sizes in
one node, one of which stops and one with a bad CameraInfo; the healthy ones keep publishing,
each camera's depth equals a single-camera pipeline's, /diagnostics reports per camera, and bad
camera names are refused at start."""
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402

from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.model.estimator import PPDEstimator  # noqa: E402
from ppd_ros.nodes.camera_info import calibration_of  # noqa: E402
from ppd_ros.nodes.depth_lifecycle_node import DepthLifecycleNode  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.params import ParameterError  # noqa: E402
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline  # noqa: E402
from test_depth_node_harness import (Collector, Feeder, RosGraph, camera_info, float_image,  # noqa: E402
                                     header, overrides, pattern_image, stamp, wait_for)

SIZES = {'front': (48, 64), 'left': (48, 64), 'right': (80, 48)}  # (height, width)


def intrinsics(height, width):
    return Intrinsics(0.8 * width, 0.8 * width, (width - 1) / 2, (height - 1) / 2, width, height)


@pytest.fixture(scope='module')
def estimator():
    return PPDEstimator.demo(device='cpu', seed=0, target_area=(64, 48))


def test_three_cameras_one_stops_one_bad_the_healthy_one_equals_a_single_camera(ros_context, estimator):
    diagnostics = []
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=estimator, context=ros_context, parameter_overrides=overrides(
            cameras=list(SIZES), temporal__mode='align', diagnostics__period=0.2)))
        feeders = {cam: graph.add(Feeder(ros_context, namespace=cam)) for cam in SIZES}
        collectors = {cam: graph.add(Collector(ros_context, namespace=cam, topics=['depth/relative']))
                      for cam in SIZES}
        listener = graph.add(rclpy.create_node('diag_listener', context=ros_context))
        listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 100)
        assert wait_for(lambda: all(f.connected() for f in feeders.values())
                        and all(c.wanted_outputs() == {'relative'} for c in node.camera_set.cameras.values()))
        frames = {cam: [pattern_image(h, w, seed=10 * k + i) for i in range(4)]
                  for k, (cam, (h, w)) in enumerate(SIZES.items())}
        sent = {cam: [] for cam in SIZES}
        for i in range(4):
            for cam, (h, w) in SIZES.items():
                if cam == 'left' and i >= 2:
                    continue  # left stops after two frames
                info = camera_info(intrinsics(h, w), header(i))
                if cam == 'right' and i >= 1:
                    info = camera_info(intrinsics(40, 64), header(i))  # a CameraInfo of another size
                feeders[cam].send(i, frames[cam][i], intrinsics(h, w), info=info)
                sent[cam].append((i, info))
            healthy = ['front'] + (['left'] if i < 2 else [])
            assert wait_for(lambda: all(collectors[c].has_frame(i) for c in healthy)), f'frame {i}'
        assert wait_for(lambda: any(s.name == '/depth_node: right' and s.level != DiagnosticStatus.OK
                                    for a in diagnostics for s in a.status))
        assert wait_for(lambda: node.camera_set.cameras['right'].errors >= 3)

        def latest(name, key):
            values = [{v.key: v.value for v in s.values} for a in diagnostics for s in a.status if s.name == name]
            return values[-1].get(key) if values else None
        assert wait_for(lambda: latest('/depth_node: right', 'frames failed') == '3'
                        and latest('/depth_node: front', 'frames published') == '4')
        right = node.camera_set.cameras['right']
        assert right.published_frames == 1 and 'CameraInfo is 64x40' in right.last_error
        assert collectors['right'].count('depth/relative') == 1
        assert node.camera_set.cameras['front'].published_frames == 4
        assert node.camera_set.cameras['left'].published_frames == 2

    # what a single-camera pipeline gives for the same frames (per camera: its own temporal state)
    for cam in ('front', 'left'):
        single = FramePipeline(estimator, DEFAULTS.replace(temporal_mode='align'))
        for i, info in sent[cam]:
            sec, nanosec = stamp(i)
            expected = single.process(FrameInput(frames[cam][i], sec * 10**9 + nanosec, calibration_of(info)))[0]
            got = float_image(collectors[cam].by_stamp('depth/relative', i))
            np.testing.assert_allclose(got, expected.relative, atol=1e-5, equal_nan=True)

    by_name = {}
    for array in diagnostics:
        for status in array.status:
            by_name[status.name] = status
    assert {'/depth_node: front', '/depth_node: left', '/depth_node: right'} <= set(by_name)
    values = {v.key: v.value for v in by_name['/depth_node: right'].values}
    assert values['camera'] == 'right' and values['frames failed'] == '3'
    front = {v.key: v.value for v in by_name['/depth_node: front'].values}
    assert front['frames failed'] == '0' and 'frame age at the model max (s)' in front


@pytest.mark.parametrize('cameras, message', [
    (['front', 'front'], "names front more than once"),
    (['front', ''], 'has an empty name'),
    (['front', 'left-cam'], "'left-cam' is not a valid camera name"),
    ('front,,left', 'has an empty name'),
])
def test_bad_camera_names_are_refused_with_one_line(ros_context, cameras, message):
    with pytest.raises(ParameterError, match=message):
        DepthNode(estimator=PPDEstimator.from_config(device='cpu'), context=ros_context,
                  parameter_overrides=overrides(cameras=cameras))


def test_two_cameras_on_one_topic_are_refused(ros_context):
    with pytest.raises(ParameterError, match="cameras 'front' and 'left' both read /front/image"):
        DepthNode(estimator=PPDEstimator.from_config(device='cpu'), context=ros_context,
                  parameter_overrides=overrides(cameras=['front', 'left']),
                  cli_args=['--ros-args', '-r', 'left/image:=/front/image'])


def test_a_comma_separated_string_names_the_cameras_and_the_lifecycle_node_runs_them(ros_context):
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthLifecycleNode(estimator=PPDEstimator.from_config(device='cpu', seed=0),
                                            context=ros_context,
                                            parameter_overrides=overrides(cameras='a, b')))
        assert node.camera_names == ['a', 'b']
        node.trigger_configure()
        node.trigger_activate()
        feeder = graph.add(Feeder(ros_context, namespace='b'))
        collector = graph.add(Collector(ros_context, namespace='b', topics=['depth/relative']))
        assert wait_for(lambda: feeder.connected() and node.camera_set.cameras['b'].wanted_outputs())
        feeder.send(0, pattern_image(), intrinsics(48, 64))
        assert wait_for(lambda: collector.has_frame(0))
        node.trigger_deactivate()
        node.trigger_cleanup()
        assert node.camera_set is None and not node._outputs


def test_the_executable_refuses_bad_cameras_with_one_line_before_loading_the_model():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, '-m', 'ppd_ros.nodes.depth_node', '--ros-args', '-p', 'cameras:=[a, b, a]'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "depth_node: error: parameter 'cameras' names a more than once"
