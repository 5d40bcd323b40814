"""Parameters typed as a ROS user types them (issue 26): ROS reads values as YAML 1.1, where on,
off, yes and no are booleans — on the command line (`-p temporal.mode:=off`), in parameter files
(which the launch file passes on) and in `ros2 param set` (a SetParameters request with a bool).

Every parameter with on/off values in the four node executables is covered: the word parameters
whose choices include on/off take the booleans as those words, the switches are boolean
parameters (model.compile, once a word, still takes the old 'on'/'off').
"""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip('rclpy')

from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402

from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.nodes import depth_node_params, scale_fusion_params, synthetic_camera_params  # noqa: E402
from ppd_ros.nodes.depth_lifecycle_node import DepthLifecycleNode  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.params import ParameterError  # noqa: E402
from ppd_ros.nodes.scale_fusion_node import ScaleFusionNode  # noqa: E402
from test_depth_node_harness import (Collector, Feeder, RecordingEstimator, RosGraph, camera_info,  # noqa: E402
                                     header, pattern_image, wait_for)

REPO = Path(__file__).resolve().parents[1]
INTR = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
TABLES = {'depth_node': depth_node_params.PARAMETERS, 'depth_lifecycle_node': depth_node_params.PARAMETERS,
          'scale_fusion_node': scale_fusion_params.PARAMETERS,
          'synthetic_camera_node': synthetic_camera_params.PARAMETERS}


def on_off(specs):
    """The parameters a user sets with on/off: the switches (booleans) and the words with on/off."""
    return [s for s in specs if isinstance(s.default, bool) or {'on', 'off'} & set(s.choices)]


def meaning(spec, word: str):
    """What `name:=word` means for this parameter."""
    return (word == 'on') if isinstance(spec.default, bool) else word


def make(executable: str, context, **kwargs):
    if executable == 'depth_node':
        return DepthNode(estimator=RecordingEstimator(), context=context, **kwargs)
    if executable == 'depth_lifecycle_node':
        return DepthLifecycleNode(estimator=RecordingEstimator(), context=context, **kwargs)
    return ScaleFusionNode(context=context, **kwargs)


CASES = [(executable, spec.name, word) for executable, specs in TABLES.items() for spec in on_off(specs)
         for word in ('off', 'on') if isinstance(spec.default, bool) or word in spec.choices]


def test_the_on_off_parameters_are_known():
    """The decision per parameter: tri-state and mode words stay words, model.compile is a switch;
    the synthetic camera has none."""
    words = {s.name: s.choices for s in on_off(depth_node_params.PARAMETERS) if not isinstance(s.default, bool)}
    assert words == {'input.rectify': ('auto', 'on', 'off'), 'temporal.mode': ('off', 'align', 'warm_start', 'video')}
    switches = {s.name for s in on_off(depth_node_params.PARAMETERS) if isinstance(s.default, bool)}
    assert {'model.compile', 'output.points_rgb', 'input.latest_camera_info'} <= switches
    assert {s.name for s in on_off(scale_fusion_params.PARAMETERS)} == {'use_tf', 'model_fallback',
                                                                        'input.latest_camera_info'}
    assert on_off(synthetic_camera_params.PARAMETERS) == []


@pytest.mark.parametrize('executable, name, word', CASES)
def test_node_arguments_with_bare_on_off_start_the_node(ros_context, executable, name, word):
    """`--ros-args -p NAME:=off` (a boolean for ROS) starts every node with what the user meant."""
    spec = next(s for s in TABLES[executable] if s.name == name)
    node = make(executable, ros_context, cli_args=['--ros-args', '-p', f'{name}:={word}'])
    try:
        assert node.params[name] == meaning(spec, word)
        assert node.get_parameter(name).value == meaning(spec, word)  # what `ros2 param get` shows
    finally:
        node.destroy_node()


@pytest.mark.parametrize('executable', ['depth_node', 'depth_lifecycle_node'])
def test_the_issue_command_lines_and_a_parameter_file(ros_context, tmp_path, executable):
    args = ['--ros-args', '-p', 'temporal.mode:=off', '-p', 'input.rectify:=off', '-p', 'model.compile:=on']
    node = make(executable, ros_context, cli_args=args)
    try:
        assert (node.params['temporal.mode'], node.params['input.rectify'], node.params['model.compile']) == \
            ('off', 'off', True)
    finally:
        node.destroy_node()
    # a YAML file as users write it (and as depth.launch.py passes config_file on): bare words
    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    temporal:\n      mode: off\n    input:\n      rectify: on\n'
                      '    model:\n      compile: yes\n    output:\n      points_rgb: off\n')
    node = make(executable, ros_context, cli_args=['--ros-args', '--params-file', str(params)])
    try:
        assert (node.params['temporal.mode'], node.params['input.rectify'], node.params['model.compile'],
                node.params['output.points_rgb']) == ('off', 'on', True, False)
    finally:
        node.destroy_node()


@pytest.mark.parametrize('args, message', [
    (['-p', 'temporal.mode:=on'], "parameter 'temporal.mode' must be one of off, align, warm_start, video, got 'on'"),
    (['-p', 'model.compile:=maybe'], "parameter 'model.compile' must be a boolean"),
    (['-p', 'input.rectify:=2'], "parameter 'input.rectify' must be a string"),
])
def test_what_cannot_be_meant_still_refuses_to_start(ros_context, args, message):
    with pytest.raises(ParameterError, match=message):
        make('depth_node', ros_context, cli_args=['--ros-args', *args])


def test_old_word_spellings_of_the_switch_still_work(ros_context):
    for word, value in (("'on'", True), ("'off'", False), ('"true"', True)):
        node = make('depth_node', ros_context, cli_args=['--ros-args', '-p', f'model.compile:={word}'])
        try:
            assert node.params['model.compile'] is value
        finally:
            node.destroy_node()


# ------------------------------------------------------------------ ros2 param set, over the service

class ParamClient:
    """`ros2 param set NODE NAME VALUE` as ros2param does it: the value parsed as YAML, then one
    SetParameters request to the node's service."""

    def __init__(self, graph, context, node_name: str):
        self.node = graph.add(rclpy.create_node('param_client', context=context))
        self.set_client = self.node.create_client(SetParameters, f'/{node_name}/set_parameters')
        self.get_client = self.node.create_client(GetParameters, f'/{node_name}/get_parameters')
        assert self.set_client.wait_for_service(timeout_sec=10.0) and self.get_client.wait_for_service(10.0)

    def set(self, name: str, typed: str):
        value = yaml.safe_load(typed)  # ros2param.api.get_parameter_value: YAML, so off → False
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self._call(self.set_client, request).results[0]

    def get(self, name: str):
        response = self._call(self.get_client, GetParameters.Request(names=[name]))
        return parameter_value_to_python(response.values[0])

    @staticmethod
    def _call(client, request):
        future = client.call_async(request)
        assert wait_for(future.done, timeout=10.0), 'no answer from the parameter service'
        return future.result()


def distorted_info(i):
    info = camera_info(INTR, header(i))
    info.d = [-0.3, 0.1, 0.0, 0.0, 0.0]
    return info


def test_param_set_off_and_on_take_effect_on_depth_node(ros_context):
    estimator = RecordingEstimator(scale=1.0)
    rgb = pattern_image()
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=estimator, context=ros_context,
                                   cli_args=['--ros-args', '-p', 'temporal.mode:=align']))
        feeder = graph.add(Feeder(ros_context))
        collector = graph.add(Collector(ros_context, topics=['depth/relative', 'depth/points']))
        assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == {'relative', 'points'})
        client = ParamClient(graph, ros_context, 'depth_node')

        # temporal.mode off: the pipeline's temporal step is off from the next frame
        assert node.pipeline.settings.temporal_mode == 'align'
        assert client.set('temporal.mode', 'off').successful
        assert node.params['temporal.mode'] == 'off' and node.pipeline.settings.temporal_mode == 'off'
        assert client.get('temporal.mode') == 'off'
        result = client.set('temporal.mode', 'on')
        assert not result.successful and "must be one of off, align, warm_start, video, got 'on'" in result.reason

        # input.rectify off / on: the distorted image reaches the model as it is / rectified
        assert client.set('input.rectify', 'off').successful and client.get('input.rectify') == 'off'
        feeder.send(0, rgb, INTR, info=distorted_info(0))
        assert wait_for(lambda: collector.has_frame(0))
        np.testing.assert_array_equal(estimator.inputs[-1], rgb)
        assert client.set('input.rectify', 'on').successful and node.params['input.rectify'] == 'on'
        feeder.send(1, rgb, INTR, info=distorted_info(1))
        assert wait_for(lambda: collector.has_frame(1))
        assert not np.array_equal(estimator.inputs[-1], rgb)

        # output.points_rgb off: the cloud loses its rgb field
        assert 'rgb' in [f.name for f in collector.by_stamp('depth/points', 1).fields]
        assert client.set('output.points_rgb', 'off').successful
        feeder.send(2, rgb, INTR)
        assert wait_for(lambda: collector.has_frame(2))
        assert 'rgb' not in [f.name for f in collector.by_stamp('depth/points', 2).fields]
        assert client.set('output.points_rgb', 'on').successful and node.params['output.points_rgb'] is True

        # read-only switches are refused as such (not as a wrong type)
        for name in ('model.compile', 'input.latest_camera_info'):
            result = client.set(name, 'on')
            assert not result.successful and 'read-only' in result.reason, (name, result.reason)
        assert node.errors == 0


def test_param_set_on_the_lifecycle_node_while_unconfigured(ros_context):
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthLifecycleNode(estimator=RecordingEstimator(), context=ros_context))
        client = ParamClient(graph, ros_context, 'depth_node')
        for name, typed, value in (('model.compile', 'on', True), ('model.compile', 'off', False),
                                   ('temporal.mode', 'off', 'off'), ('input.rectify', 'on', 'on'),
                                   ('output.points_rgb', 'no', False)):
            assert client.set(name, typed).successful, name
            assert node.params[name] == value and client.get(name) == value


def test_param_set_off_takes_effect_on_scale_fusion_node(ros_context):
    with RosGraph(ros_context) as graph:
        node = graph.add(ScaleFusionNode(context=ros_context))
        client = ParamClient(graph, ros_context, 'scale_fusion_node')
        assert client.set('model_fallback', 'off').successful
        assert node.params['model_fallback'] is False and client.get('model_fallback') is False
        assert client.set('model_fallback', 'on').successful and node.params['model_fallback'] is True
        for name in ('use_tf', 'input.latest_camera_info'):
            result = client.set(name, 'off')
            assert not result.successful and 'read-only' in result.reason, (name, result.reason)


# ------------------------------------------------------------------ the executable itself

def test_depth_node_executable_starts_with_the_issue_command_line():
    """`depth_node --ros-args -p temporal.mode:=off -p input.rectify:=off -p model.compile:=on`,
    a real process with the bundled demo model: it starts (was: 'cannot start: … expecting type
    STRING') and stops on Ctrl-C with exit 0."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    process = subprocess.Popen(
        [sys.executable, '-m', 'ppd_ros.nodes.depth_node', '--ros-args', '-r', '__node:=onoff_depth_node',
         '-p', 'temporal.mode:=off', '-p', 'input.rectify:=off', '-p', 'model.compile:=on'],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, ready = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if 'ready:' in line:
                ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(120.0), ''.join(lines)
        assert 'rectify off' in ''.join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(30.0)
        reader.join(5.0)
    assert code == 0, ''.join(lines)
    assert 'cannot start' not in ''.join(lines)
