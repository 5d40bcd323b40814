"""The Nav2 (VoxelLayer/ObstacleLayer, STVL) and MoveIt configs in config/: every topic they read
is one depth_node publishes, with that message type, and their frames are the ones it stamps."""
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip('rclpy')

from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.pipeline import DEFAULTS  # noqa: E402
from test_depth_node_harness import RecordingEstimator  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / 'config'
NAV2_TYPES = {'PointCloud2': 'sensor_msgs/msg/PointCloud2', 'LaserScan': 'sensor_msgs/msg/LaserScan'}


@pytest.fixture(scope='module')
def published(ros_context_module):
    # a name no other test's node has: the graph is shared with every node still alive in this process
    node = DepthNode(estimator=RecordingEstimator(), node_name='costmap_config_probe', context=ros_context_module)
    try:
        return {name.lstrip('/'): types for name, types in node.get_publisher_names_and_types_by_node(
            node.get_name(), node.get_namespace())}
    finally:
        node.destroy_node()


@pytest.fixture(scope='module')
def ros_context_module():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def observation_sources(path):
    layers = yaml.safe_load(path.read_text())['local_costmap']['local_costmap']['ros__parameters']
    for name in layers['plugins']:
        layer = layers[name]
        for source in layer.get('observation_sources', '').split():
            yield layer['plugin'], layer[source]


@pytest.mark.parametrize('file', ['nav2_costmap.yaml', 'nav2_stvl.yaml'])
def test_nav2_observation_sources_read_what_depth_node_publishes(file, published):
    sources = list(observation_sources(CONFIG / file))
    assert sources
    for plugin, source in sources:
        topic = source['topic'].lstrip('/')
        assert topic in published, f'{file}: {topic} is not published by depth_node'
        assert NAV2_TYPES[source['data_type']] in published[topic], f'{file}: {topic} type'
        # '' = the message's own frame: the camera frame for the cloud, scan.frame_id for the scan
        assert source.get('sensor_frame', '') in ('', DEFAULTS.scan_frame_id if topic == 'depth/scan' else '')
        if source.get('marking') and 'min_obstacle_height' in source:
            assert source['min_obstacle_height'] >= 0.2 - 1e-9  # floor noise stays out (Nav2's tutorial)
    plugins = {plugin for plugin, _ in sources}
    if file == 'nav2_costmap.yaml':
        assert plugins == {'nav2_costmap_2d::VoxelLayer', 'nav2_costmap_2d::ObstacleLayer'}
        scan = next(s for _, s in sources if s['data_type'] == 'LaserScan')
        assert scan['topic'].lstrip('/') == 'depth/scan' and scan['inf_is_valid'] is True
    else:
        assert plugins == {'spatio_temporal_voxel_layer/SpatioTemporalVoxelLayer'}


@pytest.mark.parametrize('file, plugin, topics', [
    ('moveit_sensors_3d.yaml', 'occupancy_map_monitor/PointCloudOctomapUpdater',
     {'point_cloud_topic': 'sensor_msgs/msg/PointCloud2'}),
    ('moveit_sensors_3d_depth_image.yaml', 'occupancy_map_monitor/DepthImageOctomapUpdater',
     {'image_topic': 'sensor_msgs/msg/Image'}),
])
def test_moveit_sensors_read_what_depth_node_publishes(file, plugin, topics, published):
    config = yaml.safe_load((CONFIG / file).read_text())
    for sensor in config['sensors']:
        entry = config[sensor]
        assert entry['sensor_plugin'] == plugin
        for key, msg_type in topics.items():
            topic = entry[key].lstrip('/')
            assert topic in published and msg_type in published[topic], f'{file}: {key}'
            if key == 'image_topic':  # the camera subscriber reads camera_info beside the image
                info = topic.rsplit('/', 1)[0] + '/camera_info'
                assert 'sensor_msgs/msg/CameraInfo' in published[info]
        if 'max_range' in entry:
            assert entry['max_range'] > 0 and entry['point_subsample'] >= 1


def test_the_costmap_parameter_file_names_only_depth_node_parameters():
    """Read as depth_node's table reads it (the --params reader): every name known, every value
    allowed, the cross-checks pass, and it changes the settings it is meant to."""
    from ppd_ros.nodes.params_file import read
    settings = read([CONFIG / 'ppd_costmap.yaml']).settings
    assert (settings.max_range, settings.min_range, settings.cloud_stride, settings.cloud_organized) == \
        (8.0, 0.3, 2, False)
    assert settings.scan_frame_id == DEFAULTS.scan_frame_id
