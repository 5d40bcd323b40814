"""The one `main` every node of this package shares: Fast DDS profile, init, a clear start-up
error (exit 1), a multi-threaded executor until Ctrl-C or shutdown."""
from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from .image_codec import retain_freed_memory
from .params import ParameterError
from .qos import use_package_fastdds_profile


def run_node(make_node, name: str, args=None, startup_errors: tuple = ()) -> int:
    """Spin the node built by `make_node`; ParameterError and `startup_errors` at construction
    are reported on one line and give exit code 1."""
    use_package_fastdds_profile()
    retain_freed_memory()
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = make_node()
        except (ParameterError, *startup_errors) as exc:
            rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
            print(f'{name}: error: {exc}', file=sys.stderr)
            return 1
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
