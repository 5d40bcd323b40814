"""ppd-depth: Pixel-Perfect Depth on image files, folders and videos.

Exit status: 0 every input was processed; 1 some inputs failed (one error line each on stderr,
the others were still processed); 2 usage error, nothing to process, or the model could not be
loaded (missing/invalid weights).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.colorize import colorize_depth
from ppd_ros.geometry.rectify import Calibration
from ppd_ros.geometry.scale.model_scale import SOURCE_MODEL
from ppd_ros.model.factory import (MODELS, EstimatorBuildError, add_model_arguments, build_estimator,
                                     fast_options, metric_model_problem, model_flags_problem)
from ppd_ros.pipeline import (DEFAULTS, FrameDepth, FrameError, FrameInput, FramePipeline, PipelineSettings,
                              settings_for)
from ppd_ros.pipeline.settings import UPSAMPLE_METHODS
from ppd_ros.cli import depth_video, flags, io

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
FORMATS = ('color', 'png16', 'npy')
PROG = 'ppd-depth'

#: Output file suffixes, appended to the output stem of each image / video frame.
SUFFIXES = {'color': '_depth_color.png', 'png16': '_depth16.png', 'npy': '_depth.npy', 'ply': '_points.ply'}


#: The flags that are also pipeline settings ({dest: PipelineSettings field}): a --params file sets
#: them unless the command line gives them.
PARAMS_FLAGS = {'near': 'near', 'far': 'far', 'resolution': 'resolution', 'upsample': 'upsample'}


# ------------------------------------------------------------------------------ command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Relative depth with Pixel-Perfect Depth for images, folders (recursive) and videos '
                    '(.mp4 .avi .mkv .mov, frame by frame).',
        epilog='Output names: <stem>_depth_color.png, <stem>_depth16.png, <stem>_depth.npy, <stem>_points.ply; '
               'video frames go to <out>/<video>/<video>_<frame number, 6 digits>_*. '
               'PPD predicts RELATIVE depth (normalised log-depth, larger = farther); png16 maps its '
               'min..max to 0..65535 and stores min/max in the PNG (tEXt "ppd_depth") so '
               'relative = min + value/65535*(max-min). Every video (and, with the video model, every folder '
               'of frames) also gets an mp4 preview <out>/<video>_depth.mp4 (--no-preview: none). '
               + flags.exit_status({0: 'all inputs done', 1: 'some inputs failed (one error line each)',
                                    2: 'usage error, nothing to process, or model not loadable'}))
    p.add_argument('inputs', nargs='+', metavar='INPUT', help='image files, folders or video files')
    p.add_argument('--out', '-o', required=True, type=Path, metavar='DIR', help='output folder (created)')
    p.add_argument('--format', dest='formats', action='extend', nargs='+', choices=FORMATS, metavar='FMT',
                   help='one or more of: color (colourised PNG, default), png16 (16-bit PNG of the relative '
                        'depth), npy (float32 relative depth); repeatable')
    flags.add_resolution_flag(p, help_tail=', enlarged without blending across depth edges', old='--size',
                              old_choices={'model': 'inference', 'input': 'camera'})
    p.add_argument('--upsample', choices=UPSAMPLE_METHODS, default=DEFAULTS.upsample,
                   help=f'how --resolution camera enlarges (default {DEFAULTS.upsample}: edges follow the image)')
    p.add_argument('--color-range', type=float, nargs=2, metavar=('LO', 'HI'),
                   help='relative depth range of the colour map (near = red, far = blue); default: the '
                        '2nd..98th percentile of each image. A fixed range keeps video colours stable')
    flags.add_params_flag(p, help_tail='. The costmap filters (output.max_range, min_range, confidence_min, '
                                       'edge_filter; cloud.stride) apply to the metres of --metric and to the PLY '
                                       'as to depth/image and depth/points; the relative depth is never filtered')
    p.add_argument('--no-preview', dest='preview', action='store_false',
                   help='no mp4 preview of videos (<video>_depth.mp4, the colourised depth; written by default '
                        'with any model, beside the per-frame files)')

    p.add_argument('--metric', action='store_true',
                   help='metric depth from the camera alone (needs MoGe-2 weights: --dit ppd_moge.pth '
                        '--encoder moge2.pt): PPD\'s relative depth fitted to MoGe-2\'s metric depth; npy in '
                        'metres, png16 in millimetres (0 = invalid), PLY in metres with MoGe-2\'s intrinsics '
                        'unless --fx/--hfov are given (default formats with --metric: color npy png16, and '
                        'the PLY); pixels MoGe-2 marks invalid (sky) are NaN / 0')
    model = p.add_argument_group('model')
    model.add_argument('--model', choices=MODELS, default='demo',
                       help='demo: the bundled demo weights (default); random-tiny / random-ppvd: a tiny '
                            'randomly initialised image / video model (plumbing tests only, output is '
                            'meaningless). With --dit ppvd.pth --encoder pi3.safetensors (the video model, '
                            'PPVD), every video and every folder of frames is one temporally consistent '
                            'clip (its mp4 preview: <clip>_depth.mp4)')
    add_model_arguments(model)
    flags.add_sampling_flags(model)

    cloud = p.add_argument_group(
        'point cloud',
        'PPD depth is relative: metres are obtained from an ASSUMED depth range, relative 0 → --near and '
        '1 → --far (log(d+1) affine), so the cloud has the right shape up to that assumption, not true scale.')
    cloud.add_argument('--ply', action='store_true', help='also write a coloured point cloud (binary PLY)')
    cloud.add_argument('--fx', type=float, help='focal length in input-image pixels')
    cloud.add_argument('--fy', type=float, help='(default: --fx)')
    cloud.add_argument('--cx', type=float, help='principal point in input-image pixels (default: image centre)')
    cloud.add_argument('--cy', type=float, help='(default: image centre)')
    cloud.add_argument('--hfov', type=float, metavar='DEG', help='horizontal field of view instead of --fx/--fy')
    flags.add_near_far_flags(cloud)

    flags.add_quiet_flag(p)
    return p


@dataclass(frozen=True)
class CameraOptions:
    """Intrinsics as the user gave them (input-image pixels), resolved per image size."""
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    hfov: float | None = None

    def for_image(self, width: int, height: int) -> Intrinsics | None:
        if self.hfov is not None:
            return Intrinsics.from_fov(self.hfov, width, height)
        if self.fx is None:
            return None  # --metric without a camera: the model's intrinsics are used
        return Intrinsics.from_focal(self.fx, width, height, self.fy, self.cx, self.cy)


@dataclass(frozen=True)
class OutputOptions:
    out_dir: Path
    formats: tuple[str, ...]
    resolution: str = DEFAULTS.resolution
    upsample: str = DEFAULTS.upsample
    color_range: tuple[float, float] | None = None
    camera: CameraOptions | None = None  # set ⇔ --ply
    near: float = DEFAULTS.near
    far: float = DEFAULTS.far
    metric: bool = False  # --metric: depth is metres (MoGe-2 scale), not relative
    preview: bool = True  # an mp4 preview of every video (--no-preview: none)
    settings: PipelineSettings = DEFAULTS  # the pipeline settings of --params files (the flags above win)


def _check_args(parser: argparse.ArgumentParser, args) -> OutputOptions:
    """Cross-option checks argparse cannot express; usage errors exit with status 2."""
    problem = model_flags_problem(args)
    if problem:
        parser.error(problem)
    if args.steps is not None and args.steps < 1:
        parser.error(f'--steps must be >= 1, got {args.steps}')
    if args.area is not None and min(args.area) < 16:
        parser.error(f'--area needs both sides >= 16, got {flags.format_size(args.area)}')
    camera = None
    if args.metric:  # the authors' point-cloud outputs: metres, millimetres, and the metric cloud
        args.ply = True
        args.formats = args.formats or ['color', 'npy', 'png16']
    if args.ply:
        if args.hfov is not None and args.fx is not None:
            parser.error('give either --hfov or --fx/--fy, not both')
        if args.hfov is None and args.fx is None and not args.metric:
            parser.error('--ply needs the camera: --hfov DEG, or --fx (and optionally --fy --cx --cy), '
                         'or --metric (MoGe-2\'s intrinsics)')
        if args.hfov is not None and not 0 < args.hfov < 180:
            parser.error(f'--hfov must be in (0, 180) degrees, got {args.hfov}')
        if args.fx is not None and (args.fx <= 0 or (args.fy is not None and args.fy <= 0)):
            parser.error('--fx/--fy must be positive')
        problem = flags.near_far_flags_problem(args)
        if problem:
            parser.error(problem)
        camera = CameraOptions(args.fx, args.fy, args.cx, args.cy, args.hfov)
    elif any(v is not None for v in (args.fx, args.fy, args.cx, args.cy, args.hfov)):
        parser.error('--fx/--fy/--cx/--cy/--hfov only make sense with --ply')
    formats = tuple(dict.fromkeys(args.formats or ['color']))
    color_range = tuple(args.color_range) if args.color_range else None
    if color_range is not None and not (np.isfinite(color_range).all() and color_range[0] < color_range[1]):
        parser.error(f'--color-range needs finite LO < HI, got {color_range[0]} {color_range[1]}')
    files = args.params_settings
    return OutputOptions(args.out, formats, args.resolution, args.upsample, color_range, camera, args.near, args.far,
                         args.metric, args.preview, files.settings if files is not None else DEFAULTS)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# ------------------------------------------------------------------------------ per image

def colorize(depth: np.ndarray, color_range: tuple[float, float] | None = None) -> np.ndarray:
    """H×W×3 uint8 BGR picture (turbo, near = red): per-image percentile range unless fixed."""
    if color_range is None:
        return colorize_depth(depth, 'percentile')
    return colorize_depth(depth, 'fixed', *color_range)


def pipeline_settings(estimator, opts: OutputOptions) -> PipelineSettings:
    """The frame pipeline's settings for these options: depth_node's defaults (or the --params
    files' settings) otherwise."""
    no_camera = opts.camera is None or (opts.camera.fx is None and opts.camera.hfov is None)
    base = opts.settings
    return settings_for(estimator, base, near=opts.near, far=opts.far, resolution=opts.resolution,
                        upsample=opts.upsample, metric_source='model' if opts.metric else base.metric_source,
                        intrinsics='model' if opts.metric and no_camera else base.intrinsics)


def frame_input(rgb: np.ndarray, stem: str, opts: OutputOptions, stamp_ns: int = 0) -> FrameInput:
    """The pipeline's input for one image: its calibration from --fx/--hfov, if given."""
    height, width = rgb.shape[:2]
    intrinsics = opts.camera.for_image(width, height) if opts.camera is not None else None
    calibration = None
    if intrinsics is not None:
        k = intrinsics.K
        calibration = Calibration.of(width, height, 'plumb_bob', [0.0] * 5, k.ravel(), np.eye(3).ravel(),
                                     np.hstack((k, np.zeros((3, 1)))).ravel())
    return FrameInput(rgb, stamp_ns, calibration, stem)


def write_outputs(depth: FrameDepth, opts: OutputOptions, color_range=None) -> list[Path]:
    """All requested files for one image / frame (``depth.context`` is its output stem); returns
    their paths. With --metric the files hold MoGe-2's metres, else the relative depth. The costmap
    filters of --params (output.max_range ...) apply to the metres and the PLY, as to depth_node's
    depth/image and depth/points; the relative depth is never filtered (as depth/relative)."""
    if opts.metric and (depth.scale is None or depth.scale.source != SOURCE_MODEL):
        raise ValueError(f'no metric scale for this image: {depth.scale.message if depth.scale else "none"}')
    values = depth.output_depth if opts.metric else depth.relative
    base = opts.out_dir / depth.context
    written = []
    for fmt in opts.formats:
        path = base.with_name(base.name + SUFFIXES[fmt])
        if fmt == 'color':
            io.write_color_png(path, colorize(values, color_range or opts.color_range))
        elif fmt == 'png16' and opts.metric:
            io.write_png16_millimetres(path, values)
        elif fmt == 'png16':
            io.write_png16(path, values)
        else:
            io.write_npy(path, values)
        written.append(path)
    if opts.camera is not None:
        path = base.with_name(base.name + SUFFIXES['ply'])
        try:
            points, colours = depth.cloud  # the filtered points, every cloud.stride-th (depth/points')
        except FrameError as err:
            raise ValueError(f'{err}: give --fx or --hfov for the PLY') from None
        if colours is None:  # output.points_rgb false: grey points
            colours = np.full(points.shape, 128, np.uint8)
        io.write_ply(path, points, colours)
        written.append(path)
    return written


def process_rgb(pipeline: FramePipeline, rgb: np.ndarray, stem: str, opts: OutputOptions,
                stamp_ns: int = 0, preview: io.PreviewWriter | None = None) -> list[Path]:
    """Depth of one image / frame through the pipeline, and its files; a video frame's picture
    also goes to its `preview` (the colours of its _depth_color.png)."""
    written = []
    want_metric = opts.metric or opts.camera is not None
    for depth in pipeline.process(frame_input(rgb, stem, opts, stamp_ns), want_metric):
        written += write_outputs(depth, opts)
        if preview is not None:
            preview.write(colorize(depth.output_depth if opts.metric else depth.relative, opts.color_range))
    return written


# ------------------------------------------------------------------------------ driver

class Reporter:
    """One line per failed input on stderr (through tqdm so the bar stays intact)."""

    def __init__(self, bar):
        self.bar = bar
        self.failed: list[str] = []

    def error(self, what: str, message: str) -> None:
        self.failed.append(what)
        self._print(f'{what}: error: {message}')

    def warning(self, message: str) -> None:
        self._print(f'{PROG}: warning: {message}')

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)


def _progress_bar(items: list[io.InputItem], quiet: bool):
    total = 0
    for item in items:
        if item.kind == 'video':
            total += io.video_frame_count(item.path) or 1
        elif item.kind == 'image':
            total += 1
    if quiet or total <= 1:
        return None
    return flags.progress_bar(total, unit='img')


def _describe_error(err: Exception) -> str:
    if isinstance(err, (io.InputError, ValueError, OSError)):
        return _one_line(err)
    return f'{type(err).__name__}: {_one_line(err)}'


def run_item(pipeline: FramePipeline, item: io.InputItem, opts: OutputOptions, reporter: Reporter, bar) -> None:
    if item.kind == 'unsupported':
        reporter.error(str(item.path), item.problem)
        return
    pipeline.reset()  # every image, and every video, starts afresh (scale, temporal state)
    if item.kind == 'image':
        try:
            process_rgb(pipeline, io.read_image_rgb(item.path), item.name, opts)
        except Exception as err:  # noqa: BLE001 — report and go on with the next file
            reporter.error(str(item.path), _describe_error(err))
        if bar is not None:
            bar.update(1)
        return
    video_stem = Path(item.name).name
    fps = io.video_fps(item.path) or depth_video.FOLDER_FPS
    preview = None
    if opts.preview:  # the mp4 of the video, whatever the model
        preview = io.PreviewWriter(opts.out_dir / f'{item.name}{depth_video.PREVIEW_SUFFIX}', fps)
    try:
        for index, rgb in io.iter_video_frames(item.path):
            try:
                process_rgb(pipeline, rgb, f'{item.name}/{video_stem}_{index:06d}', opts, round(index * 1e9 / fps),
                            preview)
            except Exception as err:  # noqa: BLE001
                reporter.error(f'{item.path} [frame {index}]', _describe_error(err))
            if bar is not None:
                bar.update(1)
    except io.InputError as err:
        reporter.error(str(item.path), _one_line(err))
    finally:
        if preview is not None:
            preview.close()


def main(argv=None, estimator=None) -> int:
    """Entry point; `estimator` (anything with predict/steps/describe) replaces the model, for tests."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.params_settings = flags.apply_params_files(PROG, parser, args, argv, PARAMS_FLAGS)
    except ValueError as err:  # nodes.params_file.ParamsFileError: one line naming the file and parameter
        print(f'{PROG}: error: {err}', file=sys.stderr)
        return EXIT_USAGE
    opts = _check_args(parser, args)

    items = io.discover_inputs(args.inputs, exclude=args.out)
    if not items:
        print(f'{PROG}: error: no images or videos found in {" ".join(args.inputs)}', file=sys.stderr)
        return EXIT_USAGE

    if estimator is None:
        problem = opts.metric and metric_model_problem(args.model, args.dit, args.encoder)
        if problem:  # before the model loads
            print(f'{PROG}: error: {problem}', file=sys.stderr)
            return EXIT_USAGE
        try:
            estimator = build_estimator(args.model, args.dit, args.encoder, args.device, args.precision,
                                        args.steps, args.seed, args.area, **fast_options(args),
                                        log=lambda line: print(f'{PROG}: note: {line}', file=sys.stderr))
        except EstimatorBuildError as err:
            print(err.line(PROG), file=sys.stderr)
            return EXIT_USAGE
    elif args.steps is not None:
        estimator.steps = args.steps
    if opts.metric and not getattr(estimator, 'has_metric_model', False):
        print(f'{PROG}: error: --metric needs MoGe-2 weights (--dit ppd_moge.pth --encoder moge2.pt); '
              'this model has no metric depth', file=sys.stderr)
        return EXIT_USAGE

    try:
        opts.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f'{opts.out_dir}: error: cannot create output folder: {err.strerror or err}', file=sys.stderr)
        return EXIT_USAGE

    try:
        pipeline = FramePipeline(estimator, pipeline_settings(estimator, opts),
                                 log=lambda line: reporter.warning(line))
    except ValueError as err:  # settings this model cannot run
        print(f'{PROG}: error: {err}', file=sys.stderr)
        return EXIT_USAGE
    bar = _progress_bar(items, args.quiet)
    reporter = Reporter(bar)
    try:
        if depth_video.is_video_model(estimator):
            for item in items:
                if item.kind == 'unsupported':
                    reporter.error(str(item.path), item.problem)
            for name, members in depth_video.clips(items):
                if bar is not None:
                    bar.set_postfix_str(name, refresh=False)
                depth_video.run_clip(pipeline, name, members, opts, reporter, bar, frame_input, write_outputs,
                                     colorize)
        else:
            for item in items:
                if bar is not None:
                    bar.set_postfix_str(item.path.name, refresh=False)
                run_item(pipeline, item, opts, reporter, bar)
    finally:
        if bar is not None:
            bar.close()
    flags.summary_line(PROG, f'{len(items)} input(s), {len(reporter.failed)} failure(s) → {opts.out_dir}')
    return EXIT_SOME_FAILED if reporter.failed else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
