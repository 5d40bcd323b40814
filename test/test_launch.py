"""launch/depth.launch.py and the config files it uses.

launch / launch_ros are not installable from PyPI: the launch description is built and run
against test-only stand-ins of their API (test/stand_ins/launch, test/stand_ins/launch_ros), with
a temporary ament index holding this package's config/ (and rviz2 or not). Where the real
launch_ros is importable, generate_launch_description() is also built with it.
"""
import ast
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / 'launch' / 'depth.launch.py'
STAND_INS = Path(__file__).resolve().parent / 'stand_ins'
REQUIRED_ARGUMENTS = {'namespace', 'image_topic', 'camera_info_topic', 'config_file', 'use_metric_fusion',
                      'metric_source_topic', 'rviz', 'demo', 'use_sim_time', 'log_level', 'cameras', 'lifecycle'}
STAND_IN_MODULES = ('launch', 'launch.actions', 'launch.logging', 'launch.substitutions', 'launch.utilities',
                    'launch_ros', 'launch_ros.actions', 'launch_ros.substitutions')


def _console_scripts() -> set:
    tree = ast.parse((REPO / 'setup.py').read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'entry_points':
            entry_points = ast.literal_eval(node.value)
            scripts |= {line.split('=')[0].strip() for line in entry_points['console_scripts']}
    return scripts


@pytest.fixture
def launch_file(monkeypatch):
    """The launch file's module, imported against the stand-ins (which replace a real launch for the
    test's duration; only the launch packages are taken from test/stand_ins)."""
    saved = {name: module for name, module in sys.modules.items() if name.split('.')[0] in ('launch', 'launch_ros')}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(STAND_INS))
    try:
        for name in STAND_IN_MODULES:
            importlib.import_module(name)
    finally:
        sys.path.remove(str(STAND_INS))
    assert Path(sys.modules['launch'].__file__).is_relative_to(STAND_INS)
    spec = importlib.util.spec_from_file_location('depth_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in [n for n in sys.modules if n.split('.')[0] in ('launch', 'launch_ros')]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture
def ament_index(tmp_path, monkeypatch):
    """An install prefix with ppd_ros (its share/ppd_ros/config is this repository's config/);
    `add(package)` registers another package (rviz2)."""
    resources = tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages'
    resources.mkdir(parents=True)
    (tmp_path / 'share' / 'ppd_ros').mkdir()
    (tmp_path / 'share' / 'ppd_ros' / 'config').symlink_to(REPO / 'config')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))

    def add(package):
        (resources / package).touch()
    add('ppd_ros')
    add.share = tmp_path / 'share' / 'ppd_ros'
    return add


def launch(module, **arguments):
    """Runs the description like `ros2 launch ppd_ros depth.launch.py name:=value ...`: every action
    executed in order (and those the opaque function returns). → (context, declared, nodes)."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    pending, declared, nodes = list(module.generate_launch_description().entities), {}, []
    while pending:
        action = pending.pop(0)
        if isinstance(action, DeclareLaunchArgument):
            declared[action.name] = action
        if isinstance(action, Node):
            nodes.append(action)
        pending[:0] = action.execute(context) or []
    return context, declared, {node.node_name: node for node in nodes}


def performed(context, value):
    """Substitutions inside parameters/arguments → plain values, as launch_ros hands them to the node."""
    if hasattr(value, 'perform'):
        return value.perform(context)
    if isinstance(value, dict):
        return {key: performed(context, v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(performed(context, v) for v in value)
    return value


def test_defaults_start_depth_node_on_the_camera_topics(launch_file, ament_index, monkeypatch):
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    context, declared, nodes = launch(launch_file)
    assert set(declared) == REQUIRED_ARGUMENTS
    assert all(argument.description for argument in declared.values())
    assert list(nodes) == ['depth_node']
    node = nodes['depth_node']
    assert (node.node_package, node.node_executable, node.node_namespace, node.output) == \
        ('ppd_ros', 'depth_node', '', 'screen')
    assert performed(context, node.parameters) == [str(ament_index.share / 'config' / 'ppd.yaml'),
                                                   {'use_sim_time': False}]
    assert node.ros_arguments == ['--log-level', 'info']
    assert node.remappings == [('image', 'image_raw')]  # camera_info and compressed: derived by the node
    assert context.environment['FASTDDS_DEFAULT_PROFILES_FILE'] == str(ament_index.share / 'config' / 'fastdds_shm.xml')
    for path in (context.environment['FASTDDS_DEFAULT_PROFILES_FILE'], node.parameters[0].perform(context)):
        assert Path(path).is_file(), path


def test_sim_time_and_log_level_reach_every_node(launch_file, ament_index, monkeypatch):
    ament_index('rviz2')
    monkeypatch.setenv('FASTDDS_DEFAULT_PROFILES_FILE', '/my/profile.xml')
    context, _, nodes = launch(launch_file, demo='true', use_metric_fusion='true', rviz='true',
                               use_sim_time='true', log_level='debug', namespace='cam')
    assert set(nodes) == {'synthetic_camera', 'depth_node', 'scale_fusion_node', 'rviz2'}
    for node in nodes.values():
        assert performed(context, node.parameters)[-1] == {'use_sim_time': True}, node.node_name
        assert node.ros_arguments == ['--log-level', 'debug'], node.node_name
        assert node.node_namespace == 'cam'
    assert context.environment['FASTDDS_DEFAULT_PROFILES_FILE'] == '/my/profile.xml'  # kept when set
    assert performed(context, nodes['rviz2'].arguments) == ['-d', str(ament_index.share / 'config' / 'ppd.rviz')]
    fusion = nodes['scale_fusion_node']
    assert fusion.remappings == [('metric_source/points', 'lidar/points')]
    config_file, demo_lidar, _ = performed(context, fusion.parameters)
    assert Path(config_file).name == 'ppd.yaml' and Path(demo_lidar).is_file()
    assert nodes['synthetic_camera'].parameters[0] == {'lidar_lines': 16}


def test_real_camera_with_a_lidar_topic(launch_file, ament_index):
    _, _, nodes = launch(launch_file, image_topic='/cam/color/image_raw')
    assert nodes['depth_node'].remappings == [('image', '/cam/color/image_raw')]
    context, _, nodes = launch(launch_file, image_topic='/cam/color/image_raw', use_metric_fusion='true',
                               camera_info_topic='/cam/info', metric_source_topic='/lidar/points')
    assert set(nodes) == {'depth_node', 'scale_fusion_node'}
    assert nodes['depth_node'].remappings == [('image', '/cam/color/image_raw'), ('camera_info', '/cam/info')]
    assert nodes['scale_fusion_node'].remappings == [('metric_source/points', '/lidar/points')]
    assert len(nodes['scale_fusion_node'].parameters) == 2  # config_file, use_sim_time: no demo extrinsic


def test_cameras_start_one_depth_node_for_all_of_them(launch_file, ament_index):
    context, _, nodes = launch(launch_file, cameras='front, left,right', namespace='robot',
                               image_topic='/ignored', lifecycle='true')
    node = nodes['depth_node']
    assert (node.node_executable, node.node_namespace, node.remappings) == ('depth_lifecycle_node', 'robot', [])
    assert performed(context, node.parameters)[1] == {'cameras': ['front', 'left', 'right']}
    context, _, nodes = launch(launch_file, cameras='front,left', demo='true')
    assert set(nodes) == {'synthetic_camera_front', 'synthetic_camera_left', 'depth_node'}
    assert nodes['synthetic_camera_left'].remappings == [('image_raw', 'left/image'), ('camera_info', 'left/camera_info')]


def test_multi_camera_config_is_read_by_depth_node(ros_context):
    from ppd_ros.nodes.depth_node import DepthNode
    from test_depth_node_harness import RecordingEstimator
    node = DepthNode(estimator=RecordingEstimator(), context=ros_context, namespace='robot',
                     cli_args=['--ros-args', '--params-file', str(REPO / 'config' / 'multi_camera.yaml')])
    try:
        assert node.camera_names == ['front', 'left', 'right']
        assert node.resolve_topic_name('front/depth/image') == '/robot/front/depth/image'
        assert sorted(node._outputs)[:2] == ['front/camera_info', 'front/colorized']
    finally:
        node.destroy_node()


def test_rviz_without_rviz2_warns_and_starts_the_rest(launch_file, ament_index, caplog):
    with caplog.at_level(logging.WARNING):
        _, _, nodes = launch(launch_file, rviz='true', demo='true')
    assert set(nodes) == {'synthetic_camera', 'depth_node'}
    assert any('rviz2 is not installed' in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_the_stand_in_aborts_on_a_missing_package_as_launch_does(launch_file, ament_index):
    """Why the launch file checks for rviz2 itself: a Node of an unknown package stops the launch."""
    from ament_index_python.packages import PackageNotFoundError
    from launch_ros.actions import Node
    with pytest.raises(PackageNotFoundError):
        Node(package='rviz2', executable='rviz2').execute(None)


def test_demo_lidar_extrinsic_is_the_simulators():
    from ppd_ros.geometry.projection import transform_from_translation_quaternion
    from ppd_ros.synthetic.sensors import default_T_cam_lidar
    params = yaml.safe_load((REPO / 'config' / 'demo_lidar.yaml').read_text())['/**/scale_fusion_node']['ros__parameters']
    assert params['source'] == 'pointcloud' and params['use_tf'] is False
    transform = transform_from_translation_quaternion(params['extrinsic']['translation'], params['extrinsic']['rotation'])
    np.testing.assert_allclose(transform, default_T_cam_lidar(), atol=1e-12)


def test_launch_file_imports_no_package_code_and_uses_installed_executables():
    tree = ast.parse(LAUNCH_FILE.read_text())
    imported = {alias.name.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {'os', 'launch', 'launch_ros', 'ament_index_python'}, imported
    executables = {node.args[1].value for node in ast.walk(tree) if isinstance(node, ast.Call)
                   and getattr(node.func, 'id', None) == 'node' and len(node.args) > 1}
    assert executables == {'synthetic_camera_node', 'depth_node', 'depth_lifecycle_node', 'scale_fusion_node', 'rviz2'}
    assert executables - {'rviz2'} <= _console_scripts()  # installed to lib/ppd_ros from setup.py


def test_generate_launch_description_with_the_real_launch_ros():
    pytest.importorskip('launch_ros')
    if Path(sys.modules['launch_ros'].__file__).is_relative_to(STAND_INS):
        pytest.skip('only the stand-in is importable')
    from launch.actions import DeclareLaunchArgument
    spec = importlib.util.spec_from_file_location('depth_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == REQUIRED_ARGUMENTS


def _flatten(tree, prefix=''):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


@pytest.mark.parametrize('node', ['depth_node', 'scale_fusion_node'])
def test_config_yaml_lists_every_parameter_with_its_default(node):
    if node == 'depth_node':
        from ppd_ros.nodes.depth_node_params import PARAMETERS as specs
    else:
        from ppd_ros.nodes.scale_fusion_params import PARAMETERS as specs
    config = yaml.safe_load((REPO / 'config' / 'ppd.yaml').read_text())
    values = dict(_flatten(config[f'/**/{node}']['ros__parameters']))
    assert set(values) == {spec.name for spec in specs}
    for spec in specs:
        assert values[spec.name] == spec.default, spec.name
        assert type(values[spec.name]) is type(spec.default), spec.name  # 1.0 stays a double


def test_config_yaml_is_read_by_a_namespaced_depth_node(ros_context):
    from ppd_ros.nodes.depth_node import DepthNode
    from ppd_ros.nodes.depth_node_params import PARAMETERS as DEPTH_NODE_PARAMETERS
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


def test_the_parameter_page_shows_every_node_table():
    from ppd_ros.nodes.depth_node_params import PARAMETERS as depth
    from ppd_ros.nodes.params import parameter_table_markdown
    from ppd_ros.nodes.scale_fusion_params import PARAMETERS as fusion
    from ppd_ros.nodes.synthetic_camera_params import PARAMETERS as camera
    page = (REPO / 'docs' / 'parameters.md').read_text()
    for specs in (depth, fusion, camera):
        assert parameter_table_markdown(specs) in page, 'docs/parameters.md: paste params.parameter_table_markdown'
