"""ppd_ros: Pixel-Perfect Depth for ROS 2.

Layers: ``model`` (torch), ``geometry`` (numpy), ``synthetic``, ``eval``, ``cli`` (command
lines without ROS) and ``nodes`` (the only layer that imports ROS). Developer-only code lives
in ``ppd_dev`` beside this package.
"""
import pkgutil

# The generated ROS interfaces (``ppd_ros.msg``) may be installed in another prefix than this
# source tree (colcon's install space, or a venv built with the PyPI ROS wheels): search them all.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = '0.1.0'
