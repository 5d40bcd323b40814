"""One bag → one depth bag: the conversion ppd-bag runs, in its own process, a local worker or a
Ray actor alike (so the output bytes do not depend on where it ran).

``ModelSpec`` says how to build the model (each worker builds its own, once); ``ConvertOptions``
holds ppd-bag's per-bag flags; ``inspect`` is the cheap check of a bag (opens, has the topics)
that the driver runs before any model loads; ``convert`` writes OUT.partial/OUT, renames it to
OUT when complete and returns a ``BagResult`` (its ``lines`` say what the user should read).
"""
from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ppd_ros.pipeline.settings import DEFAULTS

from .bag_jobs import FAILED, FRAMES_FAILED, INTERRUPTED, OK, BagResult, Job, input_storage, staging_of
from .bag_signals import Interrupted, signal_name, signum_of, whole_frame

PROG = 'ppd-bag'
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
ALL_CAMERAS = 'all'  # --camera all: every image topic of the bag
OUTPUTS = {'image': 'sensor_msgs/msg/Image', 'relative': 'sensor_msgs/msg/Image',
           'camera_info': INFO_TYPE, 'points': 'sensor_msgs/msg/PointCloud2'}


class BagError(Exception):
    """The bag cannot be used; the message says why (exit 2)."""


@dataclass(frozen=True)
class ModelSpec:
    """How a worker builds its model: build_estimator's arguments (picklable, small)."""
    model: str = 'demo'
    dit: Path | None = None
    encoder: Path | None = None
    device: str = 'auto'
    precision: str = 'fp32'
    steps: int | None = None
    seed: int | None = DEFAULTS.seed   # as --seed: reproducible noise
    area: tuple | None = None
    compile: str = 'off'
    backend: str = 'torch'
    onnx: Path | None = None

    def build(self):
        """The estimator; EstimatorBuildError with a one-line reason."""
        from ppd_ros.model.factory import build_estimator
        return build_estimator(self.model, self.dit, self.encoder, self.device, self.precision, self.steps,
                               self.seed, self.area, compile=self.compile, backend=self.backend,
                               onnx_path=self.onnx, log=lambda line: print(f'ppd-bag: note: {line}', file=sys.stderr))


@dataclass(frozen=True)
class ConvertOptions:
    """ppd-bag's per-bag flags. ``settings``: (field, value) pairs of the pipeline settings that
    --params files change from DEFAULTS (nodes.params_file); the flags above win over them."""
    image_topic: str | None = None
    info_topic: str | None = None
    storage: str | None = None      # None: as the input
    overwrite: bool = False
    copy_inputs: bool = False
    no_points: bool = False
    points_rgb: bool = True
    near: float | None = None
    far: float | None = None
    resolution: str | None = None
    video_new_frames: int | None = None
    settings: tuple = ()
    cameras: tuple = ()             # --camera: image topics (ALL_CAMERAS: every one); () the single camera


def rosbags():
    """(rosbag2 module, typestore); BagError with the install line without rosbags."""
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


def camera_namespace(image_topic: str) -> str:
    """Where a camera's outputs go, as depth_node's ``<cam>/depth/...``: the image topic's parent
    (after a transport suffix): /front/image_raw[/compressed] → /front (outputs /front/depth/image)."""
    return default_info_topic(image_topic).rsplit('/', 1)[0]


def _is_output(topic: str) -> bool:
    """A depth output already in the bag (ppd-demo --record, an earlier ppd-bag --camera run)."""
    return any(topic.endswith(f'/depth/{name}') or topic == f'depth/{name}' for name in OUTPUTS)


def choose_cameras(topics: dict[str, str], cameras: tuple) -> list[tuple[str, str]]:
    """--camera: [(image topic, camera_info topic)] from {topic: msgtype}, each CameraInfo the
    sibling of its image (default_info_topic); BagError with the choices if one cannot be used."""
    listing = ', '.join(f'{t} ({m.split("/")[-1]})' for t, m in sorted(topics.items())) or 'none'
    if ALL_CAMERAS in cameras:
        images = sorted(t for t, m in topics.items() if m in IMAGE_TYPES and not _is_output(t))
        if not images:
            raise BagError(f'--camera {ALL_CAMERAS}: no image topics (topics: {listing})')
    else:
        images = list(cameras)
    chosen, spaces = [], {}
    for image in images:
        if image not in topics:
            raise BagError(f'--camera {image} is not in the bag (topics: {listing})')
        if topics[image] not in IMAGE_TYPES:
            raise BagError(f'--camera {image} is a {topics[image]}, not an Image or CompressedImage')
        info = default_info_topic(image)
        if topics.get(info) != INFO_TYPE:
            raise BagError(f'--camera {image}: no CameraInfo beside it ({info}) (topics: {listing})')
        space = camera_namespace(image)
        if space in spaces:
            raise BagError(f'--camera {spaces[space]} and {image} would both write {space}/depth/...: '
                           'name one camera per namespace with --camera')
        spaces[space] = image
        chosen.append((image, info))
    return chosen


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


# ---------------------------------------------------------------------------------- reading

def _open(path: Path):
    rosbag2, _ = rosbags()
    try:
        reader = rosbag2.Reader(path)
        reader.open()
    except Exception as exc:  # noqa: BLE001 — rosbags raises several types for unusable bags
        raise BagError(f'{path}: cannot open the bag (missing, corrupt or not a rosbag2 folder): '
                       f'{type(exc).__name__}: {exc}') from exc
    return reader


def _topics_of(reader, path: Path, options: ConvertOptions):
    """([(image connections, info connections)] one per camera, image message count); BagError
    if unusable."""
    topics = {c.topic: c.msgtype for c in reader.connections}
    try:
        pairs = (choose_cameras(topics, options.cameras) if options.cameras
                 else [choose_topics(topics, options.image_topic, options.info_topic)])
    except BagError as exc:
        raise BagError(f'{path}: {exc}') from None
    cameras, total = [], 0
    for image_topic, info_topic in pairs:
        image_conns = [c for c in reader.connections if c.topic == image_topic]
        info_conns = [c for c in reader.connections if c.topic == info_topic]
        count = sum(c.msgcount for c in image_conns)
        if count == 0:
            raise BagError(f'{path}: {image_topic} has no messages')
        cameras.append((image_conns, info_conns))
        total += count
    return cameras, total


def inspect(path: Path, options: ConvertOptions) -> int:
    """The number of image messages the bag lists; BagError if it cannot be used (opens, has
    the topics). Cheap: reads the bag's index, not its messages."""
    reader = _open(path)
    try:
        return _topics_of(reader, path, options)[1]
    finally:
        reader.close()


def _infos_by_stamp(reader, connections, msg_class) -> list[tuple[int, object]]:
    """All CameraInfo messages (small) as sorted (stamp, msg)."""
    from rclpy.serialization import deserialize_message

    from ppd_ros.nodes.pairing import stamp_ns
    infos = [(stamp_ns(m), m) for m in (deserialize_message(bytes(raw), msg_class)
                                      for _, _, raw in reader.messages(connections=connections))]
    return sorted(infos, key=lambda item: item[0])


# ---------------------------------------------------------------------------------- conversion

def canonical_cdr(typestore, raw: bytes, msgtype: str) -> bytes:
    """The CDR bytes of a message with its alignment padding zeroed. rclpy's serialize_message
    leaves the padding bytes (after a string such as frame_id) as it found them in memory, so the
    same message would give different bag bytes from run to run; rosbags writes zeros."""
    return bytes(typestore.serialize_cdr(typestore.deserialize_cdr(raw, msgtype), msgtype))


def peak_memory_mb() -> float:
    """This process's peak resident memory (MiB; 0 where the platform does not say)."""
    try:
        import resource
    except ImportError:
        return 0.0
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


@dataclass
class _Camera:
    """One camera topic of the bag being converted: its inputs, pipeline and output connections."""
    topic: str
    image_conns: list
    info_conns: list
    infos: list
    image_class: type
    input_rectified: bool
    namespace: str            # outputs under NAMESPACE/depth/...; '' without --camera
    label: str                # before its failure reasons: 'TOPIC: ' with --camera
    pipeline: object = None
    conns: dict | None = None


def convert(job: Job, options: ConvertOptions, estimator, report=None, should_stop=None,
            worker: str = '') -> BagResult:
    """Depth for ``job.input`` into ``job.output``. ``report(frames_done)`` after each frame;
    ``should_stop()`` is asked before each frame (a signal number: stop as interrupted by it). Never raises for a bad bag: the result says what happened."""
    start = time.monotonic()
    result = BagResult.of(job, worker=worker, attempts=1)
    try:
        _, typestore = rosbags()
        reader = _open(job.input)
    except BagError as exc:
        result.status, result.error = FAILED, str(exc)
        return result
    try:
        _run(job, options, estimator, reader, typestore, result, report, should_stop)
    except BagError as exc:
        result.status, result.error = FAILED, str(exc)
    finally:
        reader.close()
        result.seconds = round(time.monotonic() - start, 3)
        result.peak_mb = peak_memory_mb()
    return result


def _run(job, options, estimator, reader, typestore, result, report, should_stop) -> None:
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from ppd_ros.nodes.camera_info import calibration_of, looks_rectified
    from ppd_ros.nodes.depth_messages import depth_message, output_camera_info
    from ppd_ros.nodes.image_codec import rgb_from_any
    from ppd_ros.nodes.pairing import stamp_ns
    from ppd_ros.nodes.stamped_buffer import closest
    from ppd_ros.pipeline import FrameInput, FramePipeline, settings_for

    rosbag2, _ = rosbags()
    pairs, total = _topics_of(reader, job.input, options)
    result.total = total
    multi = bool(options.cameras)  # --camera: outputs under each camera's namespace, frames batched
    cameras: dict[str, _Camera] = {}
    for image_conns, info_conns in pairs:
        info_topic = info_conns[0].topic
        try:
            infos = _infos_by_stamp(reader, info_conns, CameraInfo)
        except Exception as exc:  # noqa: BLE001
            raise BagError(f'{job.input}: cannot read {info_topic} (corrupt bag?): {type(exc).__name__}: '
                           f'{exc}') from exc
        if not infos:
            raise BagError(f'{job.input}: {info_topic} has no messages')
        topic = image_conns[0].topic
        cameras[topic] = _Camera(topic, image_conns, info_conns, infos,
                                 Image if image_conns[0].msgtype.endswith('/Image') else CompressedImage,
                                 looks_rectified(topic), camera_namespace(topic) if multi else '',
                                 f'{topic}: ' if multi else '')

    changes = {k: v for k, v in dict(near=options.near, far=options.far, resolution=options.resolution,
                                     video_new_frames=options.video_new_frames).items() if v is not None}
    settings = settings_for(estimator, DEFAULTS.replace(**dict(options.settings)), points_rgb=options.points_rgb,
                            **changes)
    warnings: Counter = Counter()
    try:
        for camera in cameras.values():  # one per camera: its temporal state, scale, rectification maps
            camera.pipeline = FramePipeline(estimator, settings, log=lambda line: warnings.update([line]))
    except ValueError as exc:  # settings this model cannot run (--params: temporal.mode, confidence_min ...)
        raise BagError(f'{job.input}: {exc}') from None

    storage = options.storage or input_storage(job.input)
    plugin = rosbag2.StoragePlugin.MCAP if storage == 'mcap' else rosbag2.StoragePlugin.SQLITE3
    staging, partial = staging_of(job.output)
    if staging.exists():
        result.lines.append(f'{staging} is left from an interrupted run: starting over')
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    writer = rosbag2.Writer(partial, version=8, storage_plugin=plugin)
    writer.open()
    names = [n for n in OUTPUTS if not (n == 'points' and options.no_points)]
    for camera in cameras.values():
        camera.conns = {n: writer.add_connection(f'{camera.namespace}/depth/{n}', OUTPUTS[n], typestore=typestore)
                        for n in names}
    inputs = [c for camera in cameras.values() for c in camera.image_conns + camera.info_conns]
    copies = {}
    if options.copy_inputs:
        for c in inputs:
            copies[c.id] = writer.add_connection(c.topic, c.msgtype, typestore=typestore)
    failures: Counter = Counter()  # frames skipped, by reason
    written = seen = 0

    def write(camera: _Camera, done) -> None:
        nonlocal written
        for depth in done:
            bag_time, header, info = depth.context
            try:
                messages = {name: output_camera_info(depth, header, info) if name == 'camera_info'
                            else depth_message(name, depth, header) for name in names}
            except ValueError as exc:
                failures[camera.label + str(exc).splitlines()[0]] += 1
                continue
            with whole_frame():
                for name in names:
                    data = canonical_cdr(typestore, serialize_message(messages[name]), OUTPUTS[name])
                    writer.write(camera.conns[name], bag_time, data)
            written += 1
            if report is not None:
                report(written)

    def frames():
        """(camera, FrameInput) in the bag's order; copies the inputs, counts unreadable frames."""
        nonlocal seen
        for conn, bag_time, raw in reader.messages(connections=inputs):
            if conn.id in copies:
                with whole_frame():
                    writer.write(copies[conn.id], bag_time, raw)
            camera = cameras.get(conn.topic)
            if camera is None:
                continue
            signum = should_stop() if should_stop is not None else 0
            if signum:
                raise Interrupted(signum)
            seen += 1
            try:
                msg = deserialize_message(bytes(raw), camera.image_class)
                rgb = rgb_from_any(msg)
            except Exception as exc:  # noqa: BLE001 — unknown encoding, corrupt data: count and go on
                failures[f'{camera.label}{type(exc).__name__}: '
                         f'{str(exc).splitlines()[0] if str(exc) else ""}'] += 1
                continue
            info = closest(camera.infos, stamp_ns(msg))[1]
            yield camera, FrameInput(rgb, stamp_ns(msg), calibration_of(info), (bag_time, msg.header, info),
                                     camera.input_rectified)

    try:
        if multi:  # as the multi-camera depth_node: frames of one model resolution run as one batch
            from ppd_ros.pipeline.batch import CameraFrame, convert_cameras
            pipelines = {topic: camera.pipeline for topic, camera in cameras.items()}
            for topic, depth in convert_cameras(pipelines, ((camera.topic, CameraFrame(frame))
                                                            for camera, frame in frames()), estimator):
                if isinstance(depth, ValueError):  # this camera's frame only (FrameError and the like)
                    failures[cameras[topic].label + str(depth).splitlines()[0]] += 1
                elif isinstance(depth, BaseException):
                    raise depth
                else:
                    write(cameras[topic], [depth])
        else:
            (camera,) = cameras.values()
            for _, frame in frames():
                try:
                    write(camera, camera.pipeline.process(frame))
                except ValueError as exc:
                    failures[str(exc).splitlines()[0]] += 1
            write(camera, camera.pipeline.flush())
    except KeyboardInterrupt as exc:
        writer.close()
        result.frames, result.status, result.signum = written, INTERRUPTED, signum_of(exc)
        name = signal_name(exc)
        result.error = f'interrupted ({name}) after {written} frame(s)'
        result.lines.append(f'interrupted ({name}): {written} of {total} frame(s) written to {partial} '
                            '(incomplete; run again to start over)')
        return
    except Exception as exc:  # noqa: BLE001 — a corrupt chunk in the middle of the bag, a model error
        writer.close()
        result.frames = written
        raise BagError(f'{job.input} failed after {written} frame(s) ({type(exc).__name__}: {exc}); '
                       f'the incomplete output is {partial}') from exc
    writer.close()
    result.frames = written
    for line, count in warnings.items():
        result.lines.append(f'warning: {line}' + (f' ({count} times)' if count > 1 else ''))
    lost = max(0, total - seen)  # the index lists frames that could not be read (corrupted mid-file)
    if job.output.exists():
        shutil.rmtree(job.output)
    partial.rename(job.output)
    staging.rmdir()
    for reason, count in failures.most_common():
        result.lines.append(f'{count} frame(s) skipped: {reason}')
    if lost:
        result.lines.append(f'{lost} frame(s) lost: {job.input} lists {total} image message(s), only {seen} '
                            'could be read (corrupt bag?)')
    result.lines.append(f'{written} of {total} frame(s) → {job.output} ({storage}; topics: '
                        f'{", ".join(c.topic for camera in cameras.values() for c in camera.conns.values())})')
    problems = [f'{count} frame(s) skipped: {reason}' for reason, count in failures.most_common()]
    if lost:
        problems.insert(0, f'{lost} frame(s) lost (unreadable in the bag)')
    if problems:
        result.status, result.error = FRAMES_FAILED, '; '.join(problems)
    else:
        result.status = OK
