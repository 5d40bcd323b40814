"""ppd-bag: depth for recorded rosbag2 bags, offline, into new bags (many: local workers or Ray).

    ppd-bag IN_BAG OUT_BAG [--image-topic /camera/image_raw] [--info-topic /camera/camera_info]
    ppd-bag IN_BAG OUT_BAG --camera /front/image_raw --camera /left/image_raw ... | --camera all
            [--model demo | --dit ppd.pth --encoder depth_anything_v2_vitl.pth
                          | --dit ppvd.pth --encoder pi3.safetensors] [--storage mcap|sqlite3]
    ppd-bag BAG... | FOLDER_OF_BAGS | 'GLOB' OUT_FOLDER [--workers N | --ray auto|ADDRESS]

Reads an image topic (sensor_msgs/Image or CompressedImage) and its CameraInfo, runs the model on
every frame and writes ``/depth/image`` (32FC1 metres: MoGe-2's scale with the PPD-MoGe2 weights,
else the assumed --near/--far range; NaN invalid), ``/depth/relative`` (32FC1 relative depth),
``/depth/camera_info`` (describing those images) and ``/depth/points`` (organised PointCloud2) —
each with the input image's header (stamp, frame_id) and at the image's bag time. The video model
(PPVD) processes the whole bag as one clip: temporally consistent depth at the camera resolution.
Several cameras of one bag (``--camera TOPIC`` repeated, or ``--camera all``: every image topic)
run as in the multi-camera depth_node (``pipeline.batch.convert_cameras``: one model, frames of one
model resolution batched, state per camera); each camera's outputs go under its namespace,
``/front/image_raw`` → ``/front/depth/image``, and equal a run with that camera alone.

Bags are read and written with ``rosbags`` (pip install 'ppd_ros[bag]'), mcap and sqlite3 alike;
frames become depth in the same frame pipeline as in depth_node (ppd_ros.pipeline, with its
defaults, or with a depth_node parameter file's settings: --params config/ppd_costmap.yaml gives
the costmap filters) and messages with the same code (nodes.depth_messages), so a frame's outputs
are the node's. The conversion of one bag is ``bag_convert.convert``, wherever it runs (this process,
a local worker, a Ray actor), so the output is the same byte for byte.
Each output is written to OUT.partial/OUT and renamed when complete: an interrupted run (SIGINT,
SIGTERM, SIGHUP) leaves the .partial bag (closed, readable) and says so; a new run starts it over.
With many bags, OUTPUT is a folder: a rerun skips the bags whose output is complete
(--overwrite redoes them) and the run ends with a summary table, also written as
OUTPUT/ppd-bag-summary.json.
Exit status: 0 done; 1 some frames failed or were lost (each reason counted); 2 usage error,
unusable bag, missing topic or model (with many bags: any bag failed); 128+N interrupted by
signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from ppd_ros.model.factory import MODELS, EstimatorBuildError, add_model_arguments, model_flags_problem
from ppd_ros.cli import flags
from ppd_ros.pipeline import DEFAULTS

from . import bag_jobs
from .bag_convert import (ALL_CAMERAS, IMAGE_TYPES, INFO_TYPE, OUTPUTS, BagError,  # noqa: F401
                          ConvertOptions, ModelSpec,
                          choose_topics, default_info_topic, inspect, rosbags as _rosbags)
from .bag_jobs import FAILED, SKIPPED, BagResult
from .bag_signals import signal_name, signum_of

__all__ = ['IMAGE_TYPES', 'INFO_TYPE', 'OUTPUTS', 'BagError', 'BagRecorder', 'build_parser', 'choose_topics',
           'default_info_topic', 'main']
PROG = 'ppd-bag'
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_RETRIES = 2


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
                                usage='%(prog)s [options] INPUT [INPUT ...] OUTPUT',
                                epilog=flags.exit_status({0: 'done', 1: 'some frames failed or were lost (each reason '
                                                                         'counted)',
                                                          2: 'usage error, unusable bag, missing topic or model '
                                                             '(many bags: any bag failed)',
                                                          130: 'interrupted (128+N for signal N: 143 SIGTERM, '
                                                               '129 SIGHUP)'})
                                       + ' Example: ppd-bag run1 run1_depth --image-topic /camera/image_raw '
                                       '--dit ppvd.pth --encoder pi3.safetensors; ppd-bag recordings/ depth/ '
                                       '--workers 2')
    p.add_argument('input', type=Path, nargs='+', metavar='INPUT',
                   help='input rosbag2 (folder with metadata.yaml, or a bare .mcap/.db3 file); several bags, a '
                        'folder of bags or a quoted glob make OUTPUT a folder of output bags')
    p.add_argument('output', type=Path, metavar='OUTPUT',
                   help='output bag folder (must not exist unless --overwrite), or with many bags the output '
                        'folder: one bag per input, named as the input; complete ones are skipped on a rerun')
    p.add_argument('--image-topic', help='Image or CompressedImage topic (default: the only image topic)')
    p.add_argument('--info-topic', help='CameraInfo topic (default: camera_info beside the image topic)')
    p.add_argument('--camera', action='append', metavar='TOPIC|all',
                   help='several cameras of one bag, batched as the multi-camera depth_node: an image topic '
                        '(repeat the flag), its CameraInfo beside it; "all": every image topic. Outputs go '
                        'under each camera\'s namespace: /front/image_raw → /front/depth/image ...')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), help='output storage (default: as the input)')
    p.add_argument('--overwrite', action='store_true', help='replace existing output bags (with many bags: redo '
                                                            'the complete ones too)')
    p.add_argument('--copy-inputs', action='store_true', help='also copy the image and camera_info topics')
    p.add_argument('--no-points', action='store_true', help='do not write /depth/points')
    p.add_argument('--no-points-rgb', dest='points_rgb', action='store_false',
                   help='do not colour the points with the image (as depth_node\'s output.points_rgb false)')
    p.add_argument('--points-rgb', dest='points_rgb', action=flags.Deprecated, const=True, new='the default',
                   note='--points-rgb is the default now (as depth_node); --no-points-rgb turns it off')
    flags.add_params_flag(p, help_tail='. The costmap filters and cloud.* shape /depth/image and /depth/points as '
                                       "in the node (/depth/relative is never filtered; there is no /depth/scan)")
    flags.add_near_far_flags(p)
    flags.add_resolution_flag(p)
    p.add_argument('--video-new-frames', type=int, default=DEFAULTS.video_new_frames, metavar='N',
                   help=f'video model: new frames per window, 1..13 (default {DEFAULTS.video_new_frames}, '
                        'as depth_node; 13: the released offline windows, fewer frames run twice)')
    fleet = p.add_argument_group('many bags')
    fleet.add_argument('--workers', type=int, metavar='N',
                       help='bags processed in parallel, one model each: local processes (default 1: in this '
                            'process), or with --ray the actors (default: one per GPU, else one per node)')
    fleet.add_argument('--ray', metavar='auto|ADDRESS',
                       help="run the bags on Ray actors (pip install 'ppd_ros[fleet]'): auto = the running "
                            'cluster, else a new one on this machine; ADDRESS = a head node (HOST:6379)')
    fleet.add_argument('--retries', type=int, default=DEFAULT_RETRIES, metavar='N',
                       help=f'a worker that dies mid-bag: retry the bag up to N times (default {DEFAULT_RETRIES})')
    fleet.add_argument('--cpus-per-worker', type=float, default=1, metavar='C',
                       help='with --ray: CPUs each actor asks for (its torch threads without a GPU; default 1)')
    fleet.add_argument('--gpus-per-worker', type=float, default=1, metavar='G',
                       help='with --ray on a cluster with GPUs: GPUs each actor asks for (default 1; 0.5 shares one)')
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


def _say(line: str) -> None:
    print(f'{PROG}: {line}', file=sys.stderr, flush=True)


def _options_problem(args) -> str | None:
    """Flags that cannot work, found before anything is opened or loaded."""
    problem = flags.near_far_flags_problem(args)
    if problem:
        return problem
    if not 1 <= args.video_new_frames <= 13:
        return f'--video-new-frames must be in 1..13, got {args.video_new_frames}'
    if args.area is not None and min(args.area) < 16:
        return f'--area needs both sides >= 16, got {flags.format_size(args.area)}'
    if args.camera and (args.image_topic or args.info_topic):
        return '--camera replaces --image-topic/--info-topic: give one or the other'
    if args.camera and len(set(args.camera)) != len(args.camera):
        return f'--camera names a topic twice: {", ".join(args.camera)}'
    if args.camera and ALL_CAMERAS in args.camera and len(args.camera) > 1:
        return f'--camera {ALL_CAMERAS} takes every image topic: give it alone'
    if args.workers is not None and args.workers < 1:
        return f'--workers must be at least 1, got {args.workers}'
    if args.retries < 0:
        return f'--retries must be 0 or more, got {args.retries}'
    if args.cpus_per_worker <= 0 or args.gpus_per_worker <= 0:
        return '--cpus-per-worker and --gpus-per-worker must be positive'
    return model_flags_problem(args)


def _spec(args) -> ModelSpec:
    return ModelSpec(args.model, args.dit, args.encoder, args.device, args.precision, args.steps, args.seed,
                     tuple(args.area) if args.area is not None else None, args.compile, args.backend, args.onnx)


#: The flags that are also pipeline settings ({dest: PipelineSettings field}): a --params file sets
#: them unless the command line gives them.
PARAMS_FLAGS = {'near': 'near', 'far': 'far', 'resolution': 'resolution', 'video_new_frames': 'video_new_frames',
                'points_rgb': 'points_rgb'}


def _convert_options(args) -> ConvertOptions:
    files = getattr(args, 'params_settings', None)
    changes = files.changes() if files is not None else {}
    settings = tuple(sorted((name, value) for name, value in changes.items() if name not in PARAMS_FLAGS.values()))
    return ConvertOptions(args.image_topic, args.info_topic, args.storage, args.overwrite, args.copy_inputs,
                          args.no_points, args.points_rgb, args.near, args.far, args.resolution, args.video_new_frames,
                          settings, tuple(args.camera or ()))


def main(argv=None, estimator=None, spec=None) -> int:
    """ppd-bag. ``estimator``: use this model (in this process) instead of building one;
    ``spec``: a ModelSpec (anything picklable with ``build()``) that each worker builds instead of
    the one the flags say."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        args.params_settings = flags.apply_params_files(PROG, parser, args, args.argv, PARAMS_FLAGS)
    except ValueError as exc:  # nodes.params_file.ParamsFileError: one line naming the file and parameter
        return _error(str(exc))
    problem = _options_problem(args)
    if problem:
        return _error(problem)
    args.model_spec = spec if spec is not None else _spec(args)
    try:
        single, jobs = bag_jobs.plan(args.input, args.output)
    except ValueError as exc:
        return _error(str(exc))
    problem = _outputs_problem(args, single, jobs) or _readers_problem()
    if problem:
        return _error(problem)
    options = _convert_options(args)
    try:
        results, todo, totals = _preflight(args, single, jobs, options)
    except BagError as exc:  # the one bag cannot be used
        return _error(str(exc))
    if not single:
        _say(f'{len(jobs)} bag(s) → {args.output}/: {len(todo)} to do, '
             f'{sum(r.status == SKIPPED for r in results.values())} complete already (skipped), '
             f'{sum(r.status == FAILED for r in results.values())} unusable')
        args.output.mkdir(parents=True, exist_ok=True)
    if todo:
        try:
            done = _run(args, todo, totals, options, estimator, single)
        except (EstimatorBuildError, BagError) as exc:
            print(exc.line(PROG) if isinstance(exc, EstimatorBuildError) else f'{PROG}: error: {exc}', file=sys.stderr)
            return EXIT_USAGE
        except RuntimeError as exc:  # Ray missing or unreachable (bag_ray.RayUnavailable)
            return _error(str(exc))
        except KeyboardInterrupt as exc:  # while the model loads
            _say(f'interrupted ({signal_name(exc)}) before the first frame')
            return 128 + signum_of(exc)
        model_errors = [r for r in done if r.model_error]
        if model_errors:
            print(model_errors[0].error, file=sys.stderr)
            return EXIT_USAGE
        results.update({job.index: result for job, result in zip(todo, done)})
    ordered = [results[job.index] for job in jobs]
    if single and ordered[0].status == FAILED:
        return _error(ordered[0].error)
    if not single:
        _summarize(args, ordered)
    return bag_jobs.exit_code(ordered)


def _outputs_problem(args, single: bool, jobs) -> str | None:
    """Output paths that cannot work (before anything is opened or loaded)."""
    if single:
        job = jobs[0]
        if job.output.is_dir() and not args.overwrite:
            return f'{job.output} exists (use --overwrite to replace it)'
        if job.input.exists() and job.output.resolve() == job.input.resolve():
            return 'the output bag must not be the input bag'
        return bag_jobs.output_problem(job.output, args.overwrite)
    problem = bag_jobs.output_problem(args.output, False, 'output folder')
    if problem:
        return problem
    inputs = {job.input.resolve() for job in jobs}
    clash = next((job for job in jobs if job.output.resolve() in inputs), None)
    if clash is not None:
        return f'{clash.output} would be both an input and an output bag: choose another output folder'
    return None


def _readers_problem() -> str | None:
    try:
        _rosbags()
        import rclpy.serialization  # noqa: F401
        import sensor_msgs.msg  # noqa: F401
    except BagError as exc:
        return str(exc)
    except ImportError as exc:
        return f'ppd-bag needs the ROS 2 Python messages (a ROS 2 install, or pip install "ppd_ros[ros]"): {exc}'
    return None


def _preflight(args, single: bool, jobs, options):
    """(results so far, jobs to do, their image counts), before any model loads: complete
    outputs are skipped (many bags, no --overwrite), unusable bags and outputs fail. With one bag,
    BagError says why it cannot be used."""
    results: dict[int, BagResult] = {}
    todo, totals = [], {}
    for job in jobs:
        try:
            if not single:
                problem = bag_jobs.output_problem(job.output, args.overwrite)
                if problem is not None:
                    raise BagError(problem)
                if job.output.is_dir() and not args.overwrite:
                    results[job.index] = BagResult.of(job, status=SKIPPED,
                                                      error='output complete (--overwrite redoes it)')
                    continue
            totals[job.index] = inspect(job.input, options)
        except BagError as exc:
            if single:
                raise
            results[job.index] = BagResult.of(job, status=FAILED, error=str(exc))
            continue
        todo.append(job)
    return results, todo, totals


def _print_result(result: BagResult, single: bool) -> None:
    """What became of a bag, as it ends (with many bags: each line names the bag)."""
    name = '' if single else f'{Path(result.bag).name}: '
    for line in result.lines:
        _say(name + line)
    if result.status == FAILED and not single:
        _say(f'{name}failed: {result.error}')


def _run(args, todo, totals, options, estimator, single) -> list[BagResult]:
    from .bag_progress import FleetProgress
    progress = FleetProgress(todo, totals, quiet=args.quiet)
    on_result = lambda result: _print_result(result, single)  # noqa: E731
    try:
        if args.ray is not None:
            from .bag_ray import run_ray
            return run_ray(todo, options, args.model_spec, args.ray, args.workers, args.retries, progress, on_result,
                           _say, args.cpus_per_worker, args.gpus_per_worker)
        workers = min(args.workers or 1, len(todo))
        if estimator is not None or workers == 1:
            from .bag_local import run_here
            return run_here(todo, options, (lambda: estimator) if estimator is not None else args.model_spec.build,
                            progress, on_result)
        from .bag_local import run_workers
        return run_workers(todo, options, args.model_spec, workers, args.retries, progress, on_result, _say)
    finally:
        progress.close()


def _summarize(args, results: list[BagResult]) -> None:
    """The table on stderr and the JSON file next to the outputs."""
    settings = {'argv': args.argv, 'model': _spec(args).__dict__,
                'options': _convert_options(args).__dict__, 'workers': args.workers, 'ray': args.ray}
    try:
        path = bag_jobs.write_summary(args.output, results, settings)
        where = f' (also {path})'
    except OSError as exc:
        where = f' (could not write {args.output / bag_jobs.SUMMARY_NAME}: {exc})'
    _say(f'summary: {bag_jobs.counts(results)}{where}')
    print(bag_jobs.table(results), file=sys.stderr, flush=True)


if __name__ == '__main__':
    sys.exit(main())
