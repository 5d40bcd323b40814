"""Pixel-Perfect Depth on a camera: depth_node, optionally scale_fusion_node, rviz2, or a demo.

  ros2 launch ppd_ros depth.launch.py image_topic:=/camera/color/image_raw \
      camera_info_topic:=/camera/color/camera_info
  ros2 launch ppd_ros depth.launch.py demo:=true use_metric_fusion:=true rviz:=true

Arguments: namespace, image_topic, camera_info_topic, config_file (parameters of both nodes,
config/ppd.yaml by default), use_metric_fusion (adds scale_fusion_node; its metric source topic
is metric_source_topic, in demo mode the synthetic LiDAR with its known extrinsic), rviz (starts
rviz2 with config/ppd.rviz), demo (synthetic_camera_node instead of a real camera).
FASTDDS_DEFAULT_PROFILES_FILE is set to config/fastdds_shm.xml (large images over shared
memory) unless it is already set.
"""
import os
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'ppd_ros'


def _config_dir() -> Path:
    """share/ppd_ros/config when installed with colcon, else the source tree's config/."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE)) / 'config'
    except Exception:  # not installed (pip/venv use): next to this file
        return Path(__file__).resolve().parents[1] / 'config'


CONFIG = _config_dir()


def _true(value: str) -> bool:
    return value.strip().lower() in ('true', '1', 'yes', 'on')


def _synthetic_lidar_extrinsic() -> dict:
    """scale_fusion_node extrinsic parameters for the demo LiDAR (T_cam_lidar of the simulator)."""
    from ppd_ros.geometry.projection import matrix_to_quaternion
    from ppd_ros.synthetic.sensors import default_T_cam_lidar
    transform = default_T_cam_lidar()
    return {'source': 'pointcloud', 'use_tf': False,  # the simulator publishes no TF tree
            'extrinsic.translation': [float(v) for v in transform[:3, 3]],
            'extrinsic.rotation': [float(v) for v in matrix_to_quaternion(transform[:3, :3])]}


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    namespace, config_file = arg('namespace'), arg('config_file')
    demo, fusion = _true(arg('demo')), _true(arg('use_metric_fusion'))
    image_topic = 'image_raw' if demo else arg('image_topic')
    camera_info_topic = 'camera_info' if demo else arg('camera_info_topic')
    actions = []
    if demo:
        actions.append(Node(
            package=PACKAGE, executable='synthetic_camera_node', name='synthetic_camera',
            namespace=namespace, output='screen',
            parameters=[{'lidar_lines': 16 if fusion else 0}]))
    actions.append(Node(
        package=PACKAGE, executable='depth_node', name='depth_node', namespace=namespace,
        output='screen', parameters=[config_file],
        remappings=[('image', image_topic), ('image/compressed', image_topic + '/compressed'),
                    ('camera_info', camera_info_topic)]))
    if fusion:
        parameters, remappings = [config_file], []
        source_topic = 'lidar/points' if demo else arg('metric_source_topic')
        if demo:
            parameters.append(_synthetic_lidar_extrinsic())
        if source_topic:
            remappings.append(('metric_source/points', source_topic))
        actions.append(Node(
            package=PACKAGE, executable='scale_fusion_node', name='scale_fusion_node',
            namespace=namespace, output='screen', parameters=parameters, remappings=remappings))
    if _true(arg('rviz')):
        actions.append(Node(
            package='rviz2', executable='rviz2', name='rviz2', namespace=namespace,
            arguments=['-d', str(CONFIG / 'ppd.rviz')]))
    return actions


def generate_launch_description():
    description = LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of all nodes'),
        DeclareLaunchArgument('image_topic', default_value='image_raw',
                              description='Camera image (sensor_msgs/Image) for depth_node; with '
                                          'image_transport compressed its <image_topic>/compressed is read'),
        DeclareLaunchArgument('camera_info_topic', default_value='camera_info',
                              description='CameraInfo of that image; the default follows image_topic '
                                          '(camera_info beside it, as image_transport does)'),
        DeclareLaunchArgument('config_file', default_value=str(CONFIG / 'ppd.yaml'),
                              description='Parameter file of depth_node and scale_fusion_node'),
        DeclareLaunchArgument('use_metric_fusion', default_value='false',
                              description='Add scale_fusion_node (metric depth from a metric sensor)'),
        DeclareLaunchArgument('metric_source_topic', default_value='',
                              description='Topic remapped to scale_fusion_node metric_source/points '
                                          '(empty: no remapping; set source in config_file)'),
        DeclareLaunchArgument('rviz', default_value='false',
                              description='Start rviz2 with config/ppd.rviz'),
        DeclareLaunchArgument('demo', default_value='false',
                              description='Start synthetic_camera_node instead of a real camera'),
    ])
    if not os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        description.add_action(SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                                                      str(CONFIG / 'fastdds_shm.xml')))
    description.add_action(OpaqueFunction(function=_nodes))
    return description
