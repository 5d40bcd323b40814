"""The one `main` every node of this package shares: Fast DDS profile, init, a clear start-up
error (exit 1), an executor until Ctrl-C, SIGTERM or shutdown, then a quiet exit 0.

Shutdown order matters: rclpy's own signal handler would shut the context down at the first
SIGINT, while the inference worker may still be publishing (an `RCLError: publisher's context is
invalid` logged as a failed frame), and a second SIGINT — `ros2 launch` sends one after the
terminal's — would raise KeyboardInterrupt wherever the main thread is, cleanup included. So
rclpy's handlers are off; SIGINT and SIGTERM only ask the spin loop to end (any number of times),
then the node is destroyed (its worker stopped and joined while the context is still valid), and
only then is the context shut down.

The executor is single-threaded: the callbacks only hand work over (inference runs in the node's
worker thread) or are short, and rclpy's MultiThreadedExecutor.shutdown destroys its guard
condition before its pool has run the callbacks still queued, which then fail ("exception was
never retrieved: cannot use Destroyable"). Here the last callback has returned when spin_once does.
"""
from __future__ import annotations

import signal
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from .image_codec import retain_freed_memory
from .params import ParameterError
from .qos import use_package_fastdds_profile

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SPIN_PERIOD_S = 0.1  # how soon a stop request is seen by the spin loop


def stop_on_signals() -> threading.Event:
    """An event that SIGINT and SIGTERM set, any number of times (a second SIGINT during
    cleanup must not become a KeyboardInterrupt)."""
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    return stop


def spin_until_stopped(node, stop: threading.Event) -> None:
    """Spin `node` until `stop` or shutdown; no callback is running when this returns."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while not stop.is_set() and node.context.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        pass
    finally:
        executor.shutdown(timeout_sec=5.0)


def run_node(make_node, name: str, args=None, startup_errors: tuple = ()) -> int:
    """Spin the node built by `make_node`; ParameterError and `startup_errors` at construction
    are reported on one line and give exit code 1. Ctrl-C / SIGTERM: quiet exit 0.
    For a process's main: it takes over SIGINT and SIGTERM for good."""
    use_package_fastdds_profile()
    retain_freed_memory()
    stop = stop_on_signals()  # also covers a Ctrl-C while the model loads
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        try:
            node = make_node()
        except (ParameterError, *startup_errors) as exc:
            rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
            print(f'{name}: error: {exc}', file=sys.stderr)
            return 1
        spin_until_stopped(node, stop)
        return 0
    finally:
        if node is not None:
            node.destroy_node()  # stops the worker while the context is still valid
        rclpy.try_shutdown()
        ignore_stop_signals()


def ignore_stop_signals() -> None:
    """From here on the process only exits: a late SIGINT is ignored. (Python's finalization puts
    SIG_DFL back in place of a Python handler, and SIGINT would then end the process with -2;
    it leaves SIG_IGN alone.)"""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
