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

`-h/--help` before any `--ros-args` prints the node's topics (its docstring) and its parameters
(its ParamSpec table), then exits 0 without starting: no rclpy.init, no node, no model. Arguments
after `--ros-args` (up to a lone `--`) are ROS's and are not looked at.
"""
from __future__ import annotations

import signal
import sys
import textwrap
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from .image_codec import retain_freed_memory
from .params import ParameterError, ParamSpec, _type_name
from .qos import use_package_fastdds_profile

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SPIN_PERIOD_S = 0.1  # how soon a stop request is seen by the spin loop
EXIT_OK, EXIT_CANNOT_START = 0, 1
HELP_FLAGS = ('-h', '--help')


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


def run_node(make_node, name: str, args=None, startup_errors: tuple = (), help=None) -> int:
    """Spin the node built by `make_node`; ParameterError and `startup_errors` at construction
    are reported on one line and give exit code 1. Ctrl-C / SIGTERM: quiet exit 0.
    For a process's main: it takes over SIGINT and SIGTERM for good.

    `args`: the process's arguments as rclpy.init takes them (None: sys.argv). `help`:
    (text, parameter specs) — with -h/--help among the arguments before --ros-args,
    `node_help(name, text, specs)` is printed and 0 returned without starting anything."""
    if help is not None and wants_help(args):
        text, specs = help
        print(node_help(name, text, specs))
        return EXIT_OK
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
            return EXIT_CANNOT_START
        spin_until_stopped(node, stop)
        return EXIT_OK
    finally:
        if node is not None:
            node.destroy_node()  # stops the worker while the context is still valid
        rclpy.try_shutdown()
        ignore_stop_signals()


def wants_help(args=None) -> bool:
    """-h/--help among the node's own arguments: those outside --ros-args … [--] (args None:
    sys.argv[1:]; a list given to main may or may not start with the program name)."""
    argv = sys.argv[1:] if args is None else list(args)
    in_ros_args = False
    for arg in argv:
        if arg == '--ros-args':
            in_ros_args = True
        elif in_ros_args:
            in_ros_args = arg != '--'
        elif arg in HELP_FLAGS:
            return True
    return False


def node_help(name: str, text: str, specs) -> str:
    """The --help page of a node executable: usage, its docstring (what it does, its topics),
    every parameter of `specs` (type, default, constraints, description), the exit codes."""
    lines = [f'usage: {name} [-h] [--ros-args [-r FROM:=TO] [-p NAME:=VALUE] [--params-file FILE] ...]', '',
             textwrap.dedent(text or '').strip(), '',
             'Parameters (--ros-args -p NAME:=VALUE, or a --params-file; `ros2 param describe` tells the same):']
    for spec in specs:
        spec: ParamSpec
        kind = _type_name(spec.default, spec.array_of).split(' ', 1)[1]
        lines.append(f'  {spec.name}  ({kind}, default {_shown(spec.default)})')
        lines.extend(textwrap.wrap(f'{spec.description} ({spec.constraints()})', width=96, initial_indent=' ' * 6,
                                   subsequent_indent=' ' * 6, break_on_hyphens=False))
    lines += ['', f'Exit status: {EXIT_OK} stopped (Ctrl-C, SIGTERM, ROS shutdown) or --help; '
                  f'{EXIT_CANNOT_START} cannot start (a bad parameter, a model that cannot be loaded).']
    return '\n'.join(lines)


def _shown(value) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_shown(v) for v in value) + ']'
    return repr(value)


def ignore_stop_signals() -> None:
    """From here on the process only exits: a late SIGINT is ignored. (Python's finalization puts
    SIG_DFL back in place of a Python handler, and SIGINT would then end the process with -2;
    it leaves SIG_IGN alone.)"""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
