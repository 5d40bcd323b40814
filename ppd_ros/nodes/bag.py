"""ppd-bag: depth for a recorded rosbag2, offline, into a new bag.

    ppd-bag IN_BAG OUT_BAG [--image-topic /camera/image_raw] [--info-topic /camera/camera_info]
            [--model demo | --dit ppd.pth --encoder depth_anything_v2_vitl.pth
                          | --dit ppvd.pth --encoder pi3.safetensors] [--storage mcap|sqlite3]

Reads an image topic (sensor_msgs/Image or CompressedImage) and its CameraInfo, runs the model on
every frame and writes ``/depth/image`` (32FC1 metres: MoGe-2's scale with the PPD-MoGe2 weights,
else the assumed --near/--far range; NaN invalid), ``/depth/relative`` (32FC1 relative depth),
``/depth/camera_info`` (describing those images) and ``/depth/points`` (organised PointCloud2) —
each with the input image's header (stamp, frame_id) and at the image's bag time. The video model
(PPVD) processes the whole bag as one clip: temporally consistent depth at the camera resolution.

Bags are read and written with ``rosbags`` (pip install 'ppd_ros[bag]'), mcap and sqlite3 alike;
frames become depth in the same frame pipeline as in depth_node (ppd_ros.pipeline, with its
defaults) and messages with the same code (nodes.depth_messages), so a frame's outputs are the
node's.
The output is written to OUT_BAG.partial and renamed when complete: an interrupted run leaves the
.partial bag (closed, readable) and says so; a new run starts over (restartable).
Exit status: 0 done; 1 some frames failed (each reason counted); 2 usage error, unusable bag,
missing topic or model; 130 interrupted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import threading
from collections import Counter
from pathlib import Path

from ppd_ros.model.factory import (MODELS, EstimatorBuildError, add_model_arguments, build_estimator,
                                     fast_options)
from ppd_ros.cli import flags
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline, settings_for

PROG = 'ppd-bag'
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
OUTPUTS = {'image': 'sensor_msgs/msg/Image', 'relative': 'sensor_msgs/msg/Image',
           'camera_info': INFO_TYPE, 'points': 'sensor_msgs/msg/PointCloud2'}


class BagError(Exception):
    """The bag cannot be used; the message says why (exit 2)."""


def _rosbags():
    try:
        from rosbags import rosbag2
        from rosbags.typesys import Stores, get_typestore
    except ImportError as exc:
        raise BagError(f'ppd-bag needs the rosbags package: pip install "ppd_ros[bag]" (or rosbags) ({exc})') from exc
    return rosbag2, get_typestore(Stores.LATEST)


# ---------------------------------------------------------------------------------- topics

def default_info_topic(image_topic: str) -> str:
    """camera_info beside the image (image_transport's rule, after dropping a transport suffix
    such as /compressed): /cam/image_raw[/compressed] → /cam/camera_info."""
    from ppd_ros.nodes.camera_info import sibling_camera_info
    topic = image_topic.rstrip('/')
    if topic.rsplit('/', 1)[-1] in ('compressed', 'compressedDepth'):
        topic = topic.rsplit('/', 1)[0]
    return sibling_camera_info(topic) if '/' in topic else 'camera_info'


def choose_topics(topics: dict[str, str], image_topic: str | None, info_topic: str | None) -> tuple[str, str]:
    """(image topic, camera_info topic) from {topic: msgtype}; BagError with the choices if unclear."""
    listing = ', '.join(f'{t} ({m.split("/")[-1]})' for t, m in sorted(topics.items())) or 'none'
    ours = {f'/depth/{name}' for name in OUTPUTS}  # depth outputs already in the bag (ppd-demo --record)
    images = [t for t, m in topics.items() if m in IMAGE_TYPES and t not in ours]
    if image_topic is None:
        if len(images) != 1:
            raise BagError(f'{"no" if not images else "several"} image topics; choose one with --image-topic '
                           f'(topics: {listing})')
        image_topic = images[0]
    elif image_topic not in topics:
        raise BagError(f'image topic {image_topic} is not in the bag (topics: {listing})')
    elif topics[image_topic] not in IMAGE_TYPES:
        raise BagError(f'{image_topic} is a {topics[image_topic]}, not an Image or CompressedImage')
    if info_topic is None:
        sibling = default_info_topic(image_topic)
        infos = [t for t, m in topics.items() if m == INFO_TYPE]
        if sibling in topics and topics[sibling] == INFO_TYPE:
            info_topic = sibling
        elif len(infos) == 1:
            info_topic = infos[0]
        else:
            raise BagError(f'no camera_info beside {image_topic} ({sibling}); choose one with --info-topic '
                           f'(topics: {listing})')
    elif info_topic not in topics or topics[info_topic] != INFO_TYPE:
        raise BagError(f'camera_info topic {info_topic} is not a CameraInfo topic in the bag (topics: {listing})')
    return image_topic, info_topic


# ---------------------------------------------------------------------------------- frames

def _infos_by_stamp(reader, connections, msg_class) -> list[tuple[int, object]]:
    """All CameraInfo messages (small) as sorted (stamp, msg)."""
    from rclpy.serialization import deserialize_message

    from ppd_ros.nodes.pairing import stamp_ns
    infos = [(stamp_ns(m), m) for m in (deserialize_message(bytes(raw), msg_class)
                                      for _, _, raw in reader.messages(connections=connections))]
    return sorted(infos, key=lambda item: item[0])


# ---------------------------------------------------------------------------------- recorder

class BagRecorder:
    """Write rclpy messages to a new rosbag2 (mcap or sqlite3); topics are added on first use.
    Used by ``ppd-demo --record`` and by the tests to make bags from the synthetic camera."""

    def __init__(self, path, storage: str = 'mcap'):
        rosbag2, self._typestore = _rosbags()
        if storage not in ('mcap', 'sqlite3'):
            raise ValueError(f'storage must be mcap or sqlite3, got {storage!r}')
        plugin = rosbag2.StoragePlugin.MCAP if storage == 'mcap' else rosbag2.StoragePlugin.SQLITE3
        self.path = Path(path)
        self._writer = rosbag2.Writer(self.path, version=8, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self._lock = threading.Lock()  # subscription callbacks may write from several threads
        self.count = 0

    def write(self, topic: str, msg, time_ns: int) -> bool:
        """Append one message; False (nothing written) once the recorder is closed."""
        from rclpy.serialization import serialize_message
        data = serialize_message(msg)
        with self._lock:
            if self._writer is None:
                return False
            if topic not in self._connections:
                package = type(msg).__module__.split('.')[0]
                msgtype = f'{package}/msg/{type(msg).__name__}'
                self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
            self._writer.write(self._connections[topic], int(time_ns), data)
            self.count += 1
            return True

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------- driver

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                epilog=flags.exit_status({0: 'done', 1: 'some frames failed (each reason counted)',
                                                          2: 'usage error, unusable bag, missing topic or model',
                                                          130: 'interrupted'})
                                       + ' Example: ppd-bag run1 run1_depth --image-topic /camera/image_raw '
                                       '--dit ppvd.pth --encoder pi3.safetensors')
    p.add_argument('input', type=Path, help='input rosbag2 (folder with metadata.yaml; mcap or sqlite3)')
    p.add_argument('output', type=Path, help='output bag folder (must not exist unless --overwrite)')
    p.add_argument('--image-topic', help='Image or CompressedImage topic (default: the only image topic)')
    p.add_argument('--info-topic', help='CameraInfo topic (default: camera_info beside the image topic)')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), help='output storage (default: as the input)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output bag')
    p.add_argument('--copy-inputs', action='store_true', help='also copy the image and camera_info topics')
    p.add_argument('--no-points', action='store_true', help='do not write /depth/points')
    p.add_argument('--no-points-rgb', dest='points_rgb', action='store_false',
                   help='do not colour the points with the image (as depth_node\'s output.points_rgb false)')
    p.add_argument('--points-rgb', dest='points_rgb', action=flags.Deprecated, const=True, new='the default',
                   note='--points-rgb is the default now (as depth_node); --no-points-rgb turns it off')
    flags.add_near_far_flags(p)
    flags.add_resolution_flag(p)
    p.add_argument('--video-new-frames', type=int, default=DEFAULTS.video_new_frames, metavar='N',
                   help=f'video model: new frames per window, 1..13 (default {DEFAULTS.video_new_frames}, '
                        'as depth_node; 13: the released offline windows, fewer frames run twice)')
    model = p.add_argument_group('model')
    model.add_argument('--model', choices=MODELS, default='demo',
                       help='without --dit: demo (bundled weights), random-tiny / random-ppvd (untrained, tests)')
    add_model_arguments(model)
    flags.add_sampling_flags(model, area_help="(default: the model's own; the video model always runs at its "
                                              'fixed size)')
    flags.add_quiet_flag(p)
    return p


def _error(message: str) -> int:
    print(f'{PROG}: error: {message}', file=sys.stderr)
    return EXIT_USAGE


def main(argv=None, estimator=None) -> int:
    args = build_parser().parse_args(argv)
    problem = flags.near_far_flags_problem(args)
    if problem:
        return _error(problem)
    if not 1 <= args.video_new_frames <= 13:
        return _error(f'--video-new-frames must be in 1..13, got {args.video_new_frames}')
    area = args.area
    if area is not None and min(area) < 16:
        return _error(f'--area needs both sides >= 16, got {flags.format_size(area)}')
    if args.output.exists() and not args.overwrite:
        return _error(f'{args.output} exists (use --overwrite to replace it)')
    if args.output.resolve() == args.input.resolve():
        return _error('the output bag must not be the input bag')
    try:
        rosbag2, typestore = _rosbags()
        from rclpy.serialization import deserialize_message, serialize_message  # noqa: F401
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    except BagError as exc:
        return _error(str(exc))
    except ImportError as exc:
        return _error(f'ppd-bag needs the ROS 2 Python messages (a ROS 2 install, or pip install "ppd_ros[ros]"): {exc}')

    try:
        reader = rosbag2.Reader(args.input)
        reader.open()
    except Exception as exc:  # noqa: BLE001 — rosbags raises several types for unusable bags
        return _error(f'{args.input}: cannot open the bag (missing, corrupt or not a rosbag2 folder): '
                      f'{type(exc).__name__}: {exc}')
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        try:
            image_topic, info_topic = choose_topics(topics, args.image_topic, args.info_topic)
        except BagError as exc:
            return _error(f'{args.input}: {exc}')
        image_conns = [c for c in reader.connections if c.topic == image_topic]
        info_conns = [c for c in reader.connections if c.topic == info_topic]
        try:
            infos = _infos_by_stamp(reader, info_conns, CameraInfo)
        except Exception as exc:  # noqa: BLE001
            return _error(f'{args.input}: cannot read {info_topic} (corrupt bag?): {type(exc).__name__}: {exc}')
        if not infos:
            return _error(f'{args.input}: {info_topic} has no messages')
        total = sum(c.msgcount for c in image_conns)
        if total == 0:
            return _error(f'{args.input}: {image_topic} has no messages')

        if estimator is None:
            try:
                estimator = build_estimator(args.model, args.dit, args.encoder, args.device, args.precision,
                                            args.steps, args.seed, area, **fast_options(args))
            except EstimatorBuildError as exc:
                print(exc.line(PROG), file=sys.stderr)
                return EXIT_USAGE
        return _convert(args, reader, rosbag2, typestore, image_conns, info_conns, infos, total, estimator,
                        Image if image_conns[0].msgtype.endswith('/Image') else CompressedImage)
    finally:
        reader.close()


def _convert(args, reader, rosbag2, typestore, image_conns, info_conns, infos, total, estimator,
             image_class) -> int:
    from rclpy.serialization import deserialize_message, serialize_message

    from ppd_ros.nodes.camera_info import calibration_of, looks_rectified
    from ppd_ros.nodes.depth_messages import depth_message, output_camera_info
    from ppd_ros.nodes.image_codec import rgb_from_any
    from ppd_ros.nodes.pairing import stamp_ns
    from ppd_ros.nodes.stamped_buffer import closest

    storage = args.storage or ('mcap' if any(args.input.glob('*.mcap')) else 'sqlite3')
    plugin = rosbag2.StoragePlugin.MCAP if storage == 'mcap' else rosbag2.StoragePlugin.SQLITE3
    # OUT.partial/OUT: the bag keeps its final name inside (file names in metadata.yaml stay right)
    staging = args.output.with_name(args.output.name + '.partial')
    partial = staging / args.output.name
    if staging.exists():
        print(f'{PROG}: {staging} is left from an interrupted run: starting over', file=sys.stderr)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    writer = rosbag2.Writer(partial, version=8, storage_plugin=plugin)
    writer.open()
    names = [n for n in OUTPUTS if not (n == 'points' and args.no_points)]
    conns = {n: writer.add_connection(f'/depth/{n}', OUTPUTS[n], typestore=typestore) for n in names}
    copies = {}
    if args.copy_inputs:
        for c in image_conns + info_conns:
            copies[c.id] = writer.add_connection(c.topic, c.msgtype, typestore=typestore)

    settings = settings_for(estimator, near=args.near, far=args.far, resolution=args.resolution,
                            points_rgb=args.points_rgb, video_new_frames=args.video_new_frames)
    pipeline = FramePipeline(estimator, settings, log=lambda line: print(f'{PROG}: warning: {line}', file=sys.stderr))
    input_rectified = looks_rectified(image_conns[0].topic)
    failures: Counter = Counter()  # frames skipped, by reason
    written = 0
    bar = flags.progress_bar(total, args.quiet, unit='frame')

    def write(done) -> None:
        nonlocal written
        for depth in done:
            bag_time, header, info = depth.context
            try:
                messages = {name: output_camera_info(depth, header, info) if name == 'camera_info'
                            else depth_message(name, depth, header) for name in names}
            except ValueError as exc:
                failures[str(exc).splitlines()[0]] += 1
                continue
            for name in names:
                writer.write(conns[name], bag_time, serialize_message(messages[name]))
            written += 1
            if bar is not None:
                bar.update(1)

    interrupted = False
    try:
        for conn, bag_time, raw in reader.messages(connections=image_conns + info_conns):
            if conn.id in copies:
                writer.write(copies[conn.id], bag_time, raw)
            if conn.topic != image_conns[0].topic:
                continue
            try:
                msg = deserialize_message(bytes(raw), image_class)
                rgb = rgb_from_any(msg)
            except Exception as exc:  # noqa: BLE001 — unknown encoding, corrupt data: count and go on
                failures[f'{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ""}'] += 1
                if bar is not None:
                    bar.update(1)
                continue
            info = closest(infos, stamp_ns(msg))[1]
            frame = FrameInput(rgb, stamp_ns(msg), calibration_of(info), (bag_time, msg.header, info),
                               input_rectified)
            try:
                write(pipeline.process(frame))
            except ValueError as exc:
                failures[str(exc).splitlines()[0]] += 1
        write(pipeline.flush())
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # noqa: BLE001 — a corrupt chunk in the middle of the bag
        writer.close()
        if bar is not None:
            bar.close()
        print(f'{PROG}: error: reading {args.input} failed after {written} frame(s) '
              f'({type(exc).__name__}: {exc}); the incomplete output is {partial}', file=sys.stderr)
        return EXIT_USAGE
    writer.close()
    if bar is not None:
        bar.close()
    if interrupted:
        print(f'{PROG}: interrupted: {written} of {total} frame(s) written to {partial} (incomplete; '
              f'run again to start over)', file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.output.exists():
        shutil.rmtree(args.output)
    partial.rename(args.output)
    staging.rmdir()
    for reason, count in failures.most_common():
        print(f'{PROG}: {count} frame(s) skipped: {reason}', file=sys.stderr)
    print(f'{PROG}: {written} of {total} frame(s) → {args.output} ({storage}; topics: '
          f'{", ".join(c.topic for c in conns.values())})', file=sys.stderr)
    return EXIT_SOME_FAILED if failures else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
