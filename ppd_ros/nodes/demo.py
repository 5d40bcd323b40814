"""ppd-demo: the whole pipeline offline, in one process, over real ROS topics.

synthetic_camera_node → depth_node (→ scale_fusion_node fed by the synthetic LiDAR with
--metric-fusion) → a monitor node, all on one SingleThreadedExecutor (as runner.run_node: with
MultiThreadedExecutor the exit printed "never retrieved: cannot use Destroyable"). Prints live rates and
latency, stops after --frames depth frames (or Ctrl-C) and writes a snapshot PNG:
input | colorized depth | the point cloud rendered from a virtual camera beside the real one.

--model demo uses the bundled demo weights (works offline). --model random-tiny builds a tiny
randomly initialised model: it shows the plumbing only — its depth is meaningless, and the
snapshot and printout say so.

On a terminal a status line (rates, latency) is rewritten in place while it runs (not with
--quiet); the run ends with one summary line. Old spellings (one more release, with a note on
stderr): --target-area W H → --area WxH, --width/--height → --camera-size WxH; --seed is still
the scene seed (use --scene-seed; --seed becomes the noise seed, now --noise-seed).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from ppd_ros.cli.flags import (Deprecated, add_near_far_flags, add_quiet_flag, add_resolution_flag,
                               add_sampling_flags, add_scene_flags, exit_status, format_size,
                               near_far_flags_problem, summary_line)
from .snapshot import write_snapshot
from ppd_ros.model.factory import (MODELS, EstimatorBuildError, add_model_arguments, build_estimator,
                                     fast_options, model_flags_problem)

PROG = 'ppd-demo'
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = {EXIT_OK: 'done', EXIT_FAILED: 'a node failed to start or no depth frame arrived',
              EXIT_USAGE: 'usage error or the model could not be loaded'}
RANDOM_TINY_LABEL = 'RANDOM-TINY MODEL (untrained): depth is meaningless, plumbing demo only'


def build_parser() -> argparse.ArgumentParser:
    sections = __doc__.split('\n\n')
    p = argparse.ArgumentParser(prog=PROG, description=sections[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(sections[1:]) + '\n\n' + exit_status(EXIT_CODES))
    p.add_argument('--frames', type=int, default=30, help='stop after this many depth frames (default 30)')
    p.add_argument('--snapshot', type=Path, metavar='PATH', help='write input | depth | cloud as a PNG')
    p.add_argument('--model', choices=MODELS, default='demo',
                   help='demo: bundled demo weights (default); random-tiny / random-ppvd: untrained tiny '
                        'image / video model, plumbing only (meaningless depth)')
    add_model_arguments(p)
    add_sampling_flags(p, scene=True)
    p.add_argument('--target-area', dest='area', type=int, nargs=2, action=Deprecated, new='--area WxH',
                   convert=tuple)
    p.add_argument('--metric-fusion', action='store_true',
                   help='add scale_fusion_node, fed by the synthetic 16-line LiDAR')
    camera = p.add_argument_group('synthetic camera')
    camera.add_argument('--rate', type=float, default=5.0, help='camera rate in Hz (default 5)')
    add_scene_flags(camera, camera_size=(320, 240))
    camera.add_argument('--kind', choices=('indoor', 'outdoor'), default='indoor')
    depth = p.add_argument_group('depth_node')
    depth.add_argument('--temporal', choices=('off', 'align', 'warm_start', 'video'), default='off',
                       help='depth_node temporal.mode (video is chosen by itself for the video model)')
    add_resolution_flag(depth, help_tail=' of depth_node (output.resolution)')
    add_near_far_flags(depth)
    p.add_argument('--record', type=Path, metavar='BAG',
                   help='also record the camera (image_raw, camera_info) and depth topics into a new rosbag2 '
                        '(needs rosbags); ppd-bag can process it again later')
    p.add_argument('--record-storage', choices=('mcap', 'sqlite3'), default='mcap')
    p.add_argument('--timeout', type=float, default=600.0, help='give up after this many seconds')
    add_quiet_flag(p)
    return p


def load_estimator(args):
    """(estimator, label) from the options — released checkpoints, the demo model (as depth_node
    builds it) or the random tiny model; raises SystemExit(2) with one line when it cannot be built."""
    random_tiny = args.dit is None and args.model == 'random-tiny'
    try:
        # defer_warm_up: depth_node warms the model up on its inference thread
        estimator = build_estimator(args.model, args.dit, args.encoder, args.device, args.precision,
                                    args.steps, seed=args.seed, target_area=args.area, defer_warm_up=True,
                                    synthetic_input=True, **fast_options(args))
    except EstimatorBuildError as exc:
        demo_model = args.dit is None and not random_tiny
        hint = ' (try --model random-tiny to see the plumbing without weights)' if demo_model else ''
        print(f'{PROG}: error: {exc}{hint}', file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return estimator, RANDOM_TINY_LABEL if random_tiny else ''


# ------------------------------------------------------------------------------ the pipeline

class Monitor:
    """Subscribes the outputs like a user would; measures rate and end-to-end latency and keeps
    the newest matching (input, colorized, cloud) for the snapshot. `cloud_topics` in order of
    preference (metric/points before depth/points); `scale_topic` adds the fusion status."""

    def __init__(self, node, target: int, cloud_topics=('depth/points',), scale_topic: str | None = None):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2
        self.node = node
        self.target = target
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.inputs: deque = deque(maxlen=60)
        self.colorized: dict = {}
        self.clouds: dict = {topic: {} for topic in cloud_topics}
        self.scale = None
        self.count = 0
        self.latencies: deque = deque(maxlen=50)
        self.arrivals: deque = deque(maxlen=20)
        self.lock = threading.Lock()
        self.done = threading.Event()
        node.create_subscription(Image, 'image_raw', self._on_input, qos)
        node.create_subscription(Image, 'depth/colorized', self._on_colorized, qos)
        for topic in cloud_topics:
            node.create_subscription(PointCloud2, topic, lambda m, t=topic: self._on_cloud(t, m), qos)
        if scale_topic:
            from ppd_ros.msg import DepthScale
            node.create_subscription(DepthScale, scale_topic, self._on_scale, qos)

    @staticmethod
    def _key(msg):
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def _on_input(self, msg):
        with self.lock:
            self.inputs.append(msg)

    def _on_colorized(self, msg):
        from rclpy.time import Time
        now = self.node.get_clock().now()
        with self.lock:
            self._keep(self.colorized, msg)
            self.count += 1
            self.latencies.append((now - Time.from_msg(msg.header.stamp)).nanoseconds * 1e-9)
            self.arrivals.append(time.monotonic())
            if self.count >= self.target:
                self.done.set()

    def _on_cloud(self, topic, msg):
        with self.lock:
            self._keep(self.clouds[topic], msg)

    def _on_scale(self, msg):
        self.scale = msg

    def _keep(self, store: dict, msg, size: int = 5) -> None:
        store[self._key(msg)] = msg
        while len(store) > size:
            del store[min(store)]

    def rate(self) -> float:
        with self.lock:
            times = list(self.arrivals)
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def latest_snapshot(self):
        """(input, colorized, cloud, cloud topic) of the newest stamp that has all three, the
        preferred cloud topic first; or None."""
        with self.lock:
            inputs = {self._key(m): m for m in self.inputs}
            for topic, clouds in self.clouds.items():
                for key in sorted(self.colorized, reverse=True):
                    if key in inputs and key in clouds:
                        return inputs[key], self.colorized[key], clouds[key], topic
        return None


def _fusion_overrides(T_cam_lidar):
    from rclpy.parameter import Parameter
    from ppd_ros.geometry.projection import matrix_to_quaternion
    return [Parameter('source', value='pointcloud'), Parameter('use_tf', value=False),  # no TF tree here
            Parameter('extrinsic.translation', value=[float(v) for v in T_cam_lidar[:3, 3]]),
            Parameter('extrinsic.rotation', value=[float(v) for v in matrix_to_quaternion(T_cam_lidar[:3, :3])])]


def run(args) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from .depth_node import DepthNode
    from .params import ParameterError
    from .qos import use_package_fastdds_profile
    from .synthetic_camera_node import SyntheticCameraNode

    estimator, label = load_estimator(args)
    if getattr(estimator, 'is_video', False) and args.temporal != 'video':
        print(f'{PROG}: the video model runs with temporal mode video')
        args.temporal = 'video'
    recorder = None
    if args.record is not None:  # record_problem() refused impossible paths before the model loaded
        from .bag import BagError, BagRecorder
        try:
            recorder = BagRecorder(args.record, args.record_storage)
        except BagError as exc:
            print(f'ppd-demo: error: --record: {exc}', file=sys.stderr)
            return EXIT_USAGE
    describe = estimator.describe()
    print(f"ppd-demo: model {describe.get('model')} on {describe.get('device')} "
          f"({describe.get('precision')}, {estimator.steps} steps)" + (f'\n  *** {label} ***' if label else ''))

    use_package_fastdds_profile()
    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    nodes, spinner, stop = [], None, threading.Event()
    summary = None  # the last line, once depth frames arrived
    try:
        try:
            width, height = args.camera_size
            camera = SyntheticCameraNode(context=context, parameter_overrides=[
                Parameter('rate', value=float(args.rate)), Parameter('width', value=width),
                Parameter('height', value=height), Parameter('kind', value=args.kind),
                Parameter('seed', value=args.scene_seed), Parameter('num_frames', value=20),
                Parameter('lidar_lines', value=16 if args.metric_fusion else 0)])
            nodes.append(camera)
            depth = DepthNode(estimator=estimator, context=context,
                              cli_args=['--ros-args', '-r', 'image:=image_raw'],
                              parameter_overrides=[Parameter('temporal.mode', value=args.temporal),
                                                   Parameter('model.steps', value=int(estimator.steps)),
                                                   Parameter('output.resolution', value=args.resolution),
                                                   Parameter('output.near', value=float(args.near)),
                                                   Parameter('output.far', value=float(args.far))])
            nodes.append(depth)
            cloud_topics, scale_topic = ('depth/points',), None
            if args.metric_fusion:
                try:
                    from .scale_fusion_node import ScaleFusionNode
                except ImportError as exc:
                    print(f'ppd-demo: error: --metric-fusion needs scale_fusion_node: {exc}', file=sys.stderr)
                    return EXIT_FAILED
                nodes.append(ScaleFusionNode(context=context, cli_args=[
                    '--ros-args', '-r', 'metric_source/points:=lidar/points'],
                    parameter_overrides=_fusion_overrides(camera.T_cam_lidar)))
                cloud_topics, scale_topic = ('metric/points', 'depth/points'), 'metric/scale'
        except ParameterError as exc:
            print(f'ppd-demo: error: {exc}', file=sys.stderr)
            return EXIT_FAILED
        monitor_node = rclpy.create_node('ppd_demo_monitor', context=context)
        nodes.append(monitor_node)
        monitor = Monitor(monitor_node, args.frames, cloud_topics, scale_topic)
        if recorder is not None:
            _record_topics(monitor_node, recorder)
        for node in nodes:
            executor.add_node(node)

        def spin():
            try:
                while not stop.is_set() and context.ok():
                    executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:  # Ctrl-C shut the context down
                pass

        spinner = threading.Thread(target=spin, name='ppd-demo-executor', daemon=True)
        spinner.start()
        started = time.monotonic()
        live = not args.quiet and sys.stdout.isatty()  # the status line is for a terminal only
        try:
            while not monitor.done.wait(1.0):
                if time.monotonic() - started > args.timeout:
                    print(f'{PROG}: timed out after {args.timeout:.0f} s', file=sys.stderr)
                    break
                if live:
                    print('\r' + _status(monitor, depth, args.frames), end='', flush=True)
        except KeyboardInterrupt:
            print(f'\n{PROG}: interrupted', file=sys.stderr)
        if live:
            print('\r' + _status(monitor, depth, args.frames), flush=True)
        elapsed = time.monotonic() - started
        if monitor.count == 0:
            print(f'{PROG}: error: no depth frame arrived', file=sys.stderr)
            return EXIT_FAILED
        summary = _summary(monitor, depth, elapsed)
        if args.snapshot is not None:
            snapshot = monitor.latest_snapshot()
            if snapshot is None:
                print(f'{PROG}: error: no complete (input, depth, cloud) frame for the snapshot', file=sys.stderr)
                summary = None
                return EXIT_FAILED
            write_snapshot(args.snapshot, snapshot, camera.frames[0].intrinsics.fx, label,
                           metric=getattr(estimator, 'has_metric_model', False))  # MoGe-2: true metres
            summary += f'; snapshot {args.snapshot}'
        return EXIT_OK
    finally:
        stop.set()
        if spinner is not None:
            spinner.join(5.0)
        executor.shutdown(timeout_sec=2.0)
        recorded = ''
        if recorder is not None:
            recorder.close()
            recorded = f'recorded {recorder.count} message(s) to {args.record}'
            if summary is None:
                print(f'{PROG}: {recorded}')
        for node in reversed(nodes):
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
        if summary is not None:
            summary_line(PROG, summary + (f'; {recorded}' if recorded else ''))


def record_problem(path: Path | None) -> str | None:
    """Why --record PATH cannot be written, or None; checked before the model loads (rosbag2
    refuses an existing path, and a path under a regular file cannot be created)."""
    if path is None:
        return None
    if path.exists() or path.is_symlink():
        return f'--record: {path} exists (choose a new bag name)'
    existing = next((parent for parent in path.parents if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        return f'--record: {existing} is not a folder, so {path} cannot be created there'
    return None


RECORDED_TOPICS = {'image_raw': 'Image', 'camera_info': 'CameraInfo', 'depth/image': 'Image',
                   'depth/relative': 'Image', 'depth/camera_info': 'CameraInfo', 'depth/points': 'PointCloud2'}


def _record_topics(node, recorder) -> None:
    """Subscribe the camera and depth topics and write every message (receive time as bag time)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs import msg as sensor_msgs
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def write(topic, msg):
        recorder.write('/' + topic, msg, node.get_clock().now().nanoseconds)

    for topic, kind in RECORDED_TOPICS.items():
        node.create_subscription(getattr(sensor_msgs, kind), topic, lambda m, t=topic: write(t, m), qos)


def _status(monitor: Monitor, depth, frames: int) -> str:
    """The live status line (rewritten in place on a terminal)."""
    latencies = list(monitor.latencies)
    inference = depth.inference_time.summary()
    stats = depth.worker.stats()
    latency = f'{np.mean(latencies) * 1e3:6.0f} ms' if latencies else '     - ms'
    inference_ms = inference['mean'] * 1e3 if inference['count'] else float('nan')
    return (f'frames {monitor.count:4d}/{frames}  camera {depth.input_rate.rate():5.1f} Hz  '
            f'depth {monitor.rate():5.1f} Hz  latency {latency}  inference {inference_ms:6.0f} ms  '
            f"dropped {stats['dropped']:4d}{_scale_text(monitor.scale)}")


def _summary(monitor: Monitor, depth, elapsed: float) -> str:
    """The run in one line (without the 'ppd-demo: ' prefix)."""
    latencies = list(monitor.latencies)
    inference = depth.inference_time.summary()
    latency = f'{np.mean(latencies) * 1e3:.0f} ms' if latencies else '- ms'
    inference_ms = f"{inference['mean'] * 1e3:.0f} ms" if inference['count'] else '- ms'
    return (f'{monitor.count} depth frame{"s" * (monitor.count != 1)} in {elapsed:.1f} s: camera '
            f'{depth.input_rate.rate():.1f} Hz, depth {monitor.rate():.1f} Hz, latency {latency}, inference '
            f"{inference_ms}, dropped {depth.worker.stats()['dropped']}{_scale_text(monitor.scale, ',')}")


def _scale_text(scale, separator: str = ' ') -> str:
    """The fusion node's latest metric/scale in a few words."""
    if scale is None:
        return ''
    if scale.status in (scale.STATUS_OK, scale.STATUS_HELD):
        return f'{separator} fusion: a={scale.a:.3f} b={scale.b:.3f} inliers {scale.inlier_ratio:.0%}'
    return f'{separator} fusion: {scale.message[:60]}'



def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error('--frames must be at least 1')
    problem = model_flags_problem(args)
    if problem:
        parser.error(problem)
    if min(args.camera_size) < 16:
        parser.error(f'--camera-size must be at least 16x16, got {format_size(args.camera_size)}')
    problem = near_far_flags_problem(args) or record_problem(args.record)
    if problem:
        parser.error(problem)
    try:
        return run(args)
    except SystemExit as exc:
        return int(exc.code)


if __name__ == '__main__':
    sys.exit(main())
