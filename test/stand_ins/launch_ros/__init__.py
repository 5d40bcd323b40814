"""Test-only stand-in for the parts of ROS 2 `launch_ros` that launch/depth.launch.py uses (not
installable from PyPI): Node, which records its arguments and, when executed, resolves its package
through the ament index as upstream does (an unknown package raises), and FindPackageShare."""
