"""Pixel-Perfect Depth on a camera: depth_node, optionally scale_fusion_node, rviz2, or a demo.

  ros2 launch ppd_ros depth.launch.py image_topic:=/camera/color/image_raw
  ros2 launch ppd_ros depth.launch.py demo:=true use_metric_fusion:=true rviz:=true

Arguments: namespace, image_topic, camera_info_topic (default: camera_info beside image_topic,
as image_transport derives it), config_file (parameters of both nodes, config/ppd.yaml by
default), use_metric_fusion (adds scale_fusion_node; its metric source topic
is metric_source_topic, in demo mode the synthetic LiDAR with the extrinsic of
config/demo_lidar.yaml), rviz (starts rviz2 with config/ppd.rviz; a warning and no rviz2 where
it is not installed), demo (synthetic_camera_node instead of a real camera), use_sim_time and
log_level (passed to every node). cameras (e.g. front,left,right): one depth_node for several
cameras, each read from <namespace>/<camera>/image (and camera_info; image_topic is then not used)
and published under <namespace>/<camera>/depth/... (config/multi_camera.yaml documents it; in
demo mode one synthetic camera per name). lifecycle:=true starts depth_lifecycle_node instead
(configure and activate it, e.g. with a Nav2 lifecycle manager). FASTDDS_DEFAULT_PROFILES_FILE is set to config/fastdds_shm.xml
(large images over shared memory) unless it is already set, or FASTDDS_BUILTIN_TRANSPORTS (e.g.
LARGE_DATA) is.

Nothing of the package's own Python code is imported here: launching stays cheap and works
without torch or numpy on the machine that runs `ros2 launch`.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'ppd_ros'
TRUE = ('true', '1', 'yes', 'on')


def config(name: str) -> PathJoinSubstitution:
    """share/ppd_ros/config/NAME of the installed package."""
    return PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', name])


def rviz2_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError:
        return False
    return True


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    def node(package, executable, name, parameters=(), **kwargs):
        """Every node gets the namespace, use_sim_time and log_level."""
        return Node(package=package, executable=executable, name=name, namespace=arg('namespace'),
                    output='screen', ros_arguments=['--log-level', arg('log_level')],
                    parameters=[*parameters, {'use_sim_time': arg('use_sim_time').strip().lower() in TRUE}],
                    **kwargs)

    config_file = LaunchConfiguration('config_file')
    demo, fusion = arg('demo').strip().lower() in TRUE, arg('use_metric_fusion').strip().lower() in TRUE
    # depth_node derives camera_info and <image>/compressed from its image topic (image_transport's
    # rule); camera_info is remapped only when given.
    remappings = [('image', 'image_raw' if demo else arg('image_topic'))]
    if not demo and arg('camera_info_topic'):
        remappings.append(('camera_info', arg('camera_info_topic')))
    # several cameras: the names as typed (depth_node refuses empty or bad ones with one line)
    cameras = [name.strip() for name in arg('cameras').split(',')] if arg('cameras').strip() else []
    depth_parameters = [config_file, {'cameras': cameras}] if cameras else [config_file]
    actions = []
    if demo and cameras:
        actions += [node(PACKAGE, 'synthetic_camera_node', f'synthetic_camera_{name}',
                         remappings=[('image_raw', f'{name}/image'), ('camera_info', f'{name}/camera_info')])
                    for name in cameras]
    elif demo:
        actions.append(node(PACKAGE, 'synthetic_camera_node', 'synthetic_camera',
                            parameters=[{'lidar_lines': 16 if fusion else 0}]))
    depth_remappings = [] if cameras else remappings
    if arg('lifecycle').strip().lower() in TRUE:
        actions.append(node(PACKAGE, 'depth_lifecycle_node', 'depth_node', parameters=depth_parameters,
                            remappings=depth_remappings))
    else:
        actions.append(node(PACKAGE, 'depth_node', 'depth_node', parameters=depth_parameters,
                            remappings=depth_remappings))
    if fusion and cameras:
        get_logger('launch.user').warning('use_metric_fusion with cameras: scale_fusion_node fuses one camera; '
                                          'not started (run one per camera, remapped to <camera>/depth/...)')
        fusion = False
    if fusion:
        parameters, remappings = [config_file], []
        source_topic = 'lidar/points' if demo else arg('metric_source_topic')
        if demo:
            parameters.append(config('demo_lidar.yaml'))
        if source_topic:
            remappings.append(('metric_source/points', source_topic))
        actions.append(node(PACKAGE, 'scale_fusion_node', 'scale_fusion_node', parameters=parameters,
                            remappings=remappings))
    if arg('rviz').strip().lower() in TRUE:
        if rviz2_installed():
            actions.append(node('rviz2', 'rviz2', 'rviz2', arguments=['-d', config('ppd.rviz')]))
        else:
            get_logger('launch.user').warning(
                'rviz:=true, but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2): '
                'starting the other nodes without it')
    return actions


def generate_launch_description():
    description = LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of all nodes'),
        DeclareLaunchArgument('image_topic', default_value='image_raw',
                              description='Camera image (sensor_msgs/Image) for depth_node; with '
                                          'image_transport compressed its <image_topic>/compressed is read'),
        DeclareLaunchArgument('camera_info_topic', default_value='',
                              description='CameraInfo of that image; empty (default): camera_info beside '
                                          'image_topic, as image_transport derives it'),
        DeclareLaunchArgument('config_file', default_value=config('ppd.yaml'),
                              description='Parameter file of depth_node and scale_fusion_node'),
        DeclareLaunchArgument('use_metric_fusion', default_value='false',
                              description='Add scale_fusion_node (metric depth from a metric sensor)'),
        DeclareLaunchArgument('metric_source_topic', default_value='',
                              description='Topic remapped to scale_fusion_node metric_source/points '
                                          '(empty: no remapping; set source in config_file)'),
        DeclareLaunchArgument('rviz', default_value='false',
                              description='Start rviz2 with config/ppd.rviz (a warning where rviz2 is '
                                          'not installed)'),
        DeclareLaunchArgument('demo', default_value='false',
                              description='Start synthetic_camera_node instead of a real camera'),
        DeclareLaunchArgument('cameras', default_value='',
                              description='Several cameras in one depth_node, e.g. front,left,right: each '
                                          'reads <camera>/image and <camera>/camera_info and publishes '
                                          'under <camera>/depth/... (one model, batched); empty: one camera '
                                          'on image_topic'),
        DeclareLaunchArgument('lifecycle', default_value='false',
                              description='Start depth_lifecycle_node (a managed node: configure and '
                                          'activate it) instead of depth_node'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Every node uses /clock (bag replay, simulation)'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level of every node: debug, info, warn, error or fatal'),
    ])
    if not os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') and not os.environ.get('FASTDDS_BUILTIN_TRANSPORTS'):
        description.add_action(SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', config('fastdds_shm.xml')))
    description.add_action(OpaqueFunction(function=_nodes))
    return description
