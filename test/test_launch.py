"""launch/depth.launch.py and the config files it uses.

launch / launch_ros are not installable from PyPI: the file is always checked statically (ast),
and built with generate_launch_description() only where launch_ros is importable.
"""
import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / 'launch' / 'depth.launch.py'
REQUIRED_ARGUMENTS = {'namespace', 'image_topic', 'camera_info_topic', 'config_file', 'use_metric_fusion',
                      'rviz', 'demo'}


def _calls(tree, name):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keyword(call, name):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def _console_scripts() -> set:
    tree = ast.parse((REPO / 'setup.py').read_text())
    scripts = set()
    for call in _calls(tree, 'setup'):
        for keyword in call.keywords:
            if keyword.arg == 'entry_points':
                entry_points = ast.literal_eval(keyword.value)
                scripts |= {line.split('=')[0].strip() for line in entry_points['console_scripts']}
    return scripts


def test_launch_file_declares_arguments_and_uses_existing_executables_and_files():
    tree = ast.parse(LAUNCH_FILE.read_text())
    declared = {call.args[0].value for call in _calls(tree, 'DeclareLaunchArgument')
                if call.args and isinstance(call.args[0], ast.Constant)}
    assert REQUIRED_ARGUMENTS <= declared, REQUIRED_ARGUMENTS - declared

    nodes = [(_keyword(call, 'package'), _keyword(call, 'executable')) for call in _calls(tree, 'Node')]
    package = {node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
               and any(getattr(t, 'id', None) == 'PACKAGE' for t in node.targets)}
    assert package == {'ppd_ros'}
    ours = {executable for pkg, executable in nodes if pkg is None}  # package=PACKAGE
    assert ours == {'synthetic_camera_node', 'depth_node', 'scale_fusion_node'}
    assert ours <= _console_scripts()
    for module in ('depth_node', 'synthetic_camera_node', 'scale_fusion_node'):
        assert (REPO / 'ppd_ros' / 'nodes' / f'{module}.py').is_file()
    assert ('rviz2', 'rviz2') in nodes

    files = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
             and isinstance(node.value, str) and re.fullmatch(r'[\w.-]+\.(yaml|rviz|xml)', node.value)}
    assert files == {'ppd.yaml', 'ppd.rviz', 'fastdds_shm.xml'}
    for name in files:
        assert (REPO / 'config' / name).is_file(), name
    assert 'FASTDDS_DEFAULT_PROFILES_FILE' in LAUNCH_FILE.read_text()


def test_generate_launch_description_when_launch_ros_is_available():
    pytest.importorskip('launch_ros')
    from launch.actions import DeclareLaunchArgument
    spec = importlib.util.spec_from_file_location('depth_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert REQUIRED_ARGUMENTS <= declared


def _flatten(tree, prefix=''):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


@pytest.mark.parametrize('node', ['depth_node', 'scale_fusion_node'])
def test_config_yaml_lists_every_parameter_with_its_default(node):
    if node == 'depth_node':
        from ppd_ros.nodes.depth_node import DEPTH_NODE_PARAMETERS as specs
    else:
        from ppd_ros.nodes.scale_fusion_node import PARAMS as specs
    config = yaml.safe_load((REPO / 'config' / 'ppd.yaml').read_text())
    values = dict(_flatten(config[f'/**/{node}']['ros__parameters']))
    assert set(values) == {spec.name for spec in specs}
    for spec in specs:
        assert values[spec.name] == spec.default, spec.name
        assert type(values[spec.name]) is type(spec.default), spec.name  # 1.0 stays a double


def test_config_yaml_is_read_by_a_namespaced_depth_node(ros_context):
    from ppd_ros.nodes.depth_node import DEPTH_NODE_PARAMETERS, DepthNode
    from test_depth_node_harness import RecordingEstimator
    node = DepthNode(estimator=RecordingEstimator(), context=ros_context, namespace='robot',
                     cli_args=['--ros-args', '--params-file', str(REPO / 'config' / 'ppd.yaml')])
    try:
        assert set(node._parameter_overrides) == {spec.name for spec in DEPTH_NODE_PARAMETERS}
    finally:
        node.destroy_node()


def test_rviz_config_shows_input_depth_and_cloud():
    config = yaml.safe_load((REPO / 'config' / 'ppd.rviz').read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'camera_optical_frame'
    displays = {(d['Class'], d.get('Topic', {}).get('Value')): d for d in manager['Displays']}
    assert ('rviz_default_plugins/Image', 'image_raw') in displays
    assert ('rviz_default_plugins/Image', 'depth/colorized') in displays
    cloud = displays[('rviz_default_plugins/PointCloud2', 'depth/points')]
    assert cloud['Color Transformer'] == 'RGB8'
