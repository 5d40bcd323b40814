"""ppd-eval: score a depth estimator on seeded synthetic scenes or on a folder of RGB + depth pairs.

  ppd-eval --baseline oracle --scenes 20 --camera-size 512x384
  ppd-eval --model demo --scenes 50 --kind mixed --json results.json
  ppd-eval --dit ppd.pth --encoder depth_anything_v2_vitl.pth --folder my_pairs/ --fx 525

Estimators: `--model demo` (bundled demo weights), `--dit/--encoder` (released weights), or a
ground-truth baseline (`--baseline oracle`: exact GT; `--baseline gt-bilinear`: GT at 1/8
resolution enlarged bilinearly — a blurry, flying-pixel reference). Baselines produce their output
at the model resolution of `--area`, like the model.

Data: `--scenes N --scene-seed S --kind indoor|outdoor|mixed` (mixed alternates, starting indoor;
scene i uses seed S + i), or `--folder DIR` holding `NAME.png|jpg` with `NAME_depth.npy` (float
metres; 0, NaN, inf = invalid) or `NAME_depth.png` (16-bit, millimetres; 0 = invalid). Folder
intrinsics: `--fx/--fy/--cx/--cy`, else DIR/intrinsics.json ({"fx", "fy", "cx", "cy"}, for the
images' size), else `--hfov` (default 60°, with a warning).

Scoring (ppd_ros/eval/protocol.py): each relative prediction is aligned to the GT by least
squares in log(d + 1) and scored at the output resolution: `--resolution inference` (the model
resolution) against GT resized with nearest (never blended), or `--resolution camera` after
enlarging the prediction with `--upsample`.
Printed: AbsRel, δ1, edge Chamfer (m), flying-pixel rate, latency (ms, median per frame), then
one summary line.

Old spellings (one more release, with a note on stderr): --width/--height → --camera-size,
--no-progress → --quiet, --at model|camera → --resolution inference|camera; --seed is still the
scene seed (use --scene-seed; --seed becomes the noise seed, now --noise-seed).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ppd_ros.cli.flags import (add_quiet_flag, add_resolution_flag, add_sampling_flags, add_scene_flags,
                               exit_status, format_size, progress_bar, summary_line)
from ppd_ros.model.factory import EstimatorBuildError, add_model_arguments, build_estimator, fast_options

PROG = 'ppd-eval'
EXIT_OK, EXIT_USAGE = 0, 2
EXIT_CODES = {EXIT_OK: 'scored', EXIT_USAGE: 'usage error, bad data or a model that cannot be loaded'}
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


class SetupError(Exception):
    """Bad input or a model that cannot be loaded; printed as one line, exit status 2."""


@dataclass
class PairFrame:
    """An RGB-D pair from a folder, shaped like a synthetic Frame for the evaluation protocol."""
    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    intrinsics: object
    kind: str = 'folder'


def build_parser() -> argparse.ArgumentParser:
    sections = __doc__.split('\n\n')
    p = argparse.ArgumentParser(prog=PROG, description=sections[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(sections[1:]) + '\n\n' + exit_status(EXIT_CODES))
    est = p.add_argument_group('estimator (one of)')
    est.add_argument('--model', choices=('demo',), help='bundled demo weights')
    add_model_arguments(est)
    est.add_argument('--baseline', choices=('gt-bilinear', 'oracle'), help='ground-truth reference instead of a model')
    est.add_argument('--bilinear-scale', type=float, default=0.125,
                     help='gt-bilinear: resolution factor of the shrunk GT (default 0.125)')
    add_sampling_flags(est, scene=True, area_help="(default: the model's own; 1024x768 for the ground-truth "
                                                  'baselines)')
    data = p.add_argument_group('data')
    data.add_argument('--scenes', type=int, default=20, help='number of synthetic scenes (default 20)')
    add_scene_flags(data, camera_size=(640, 480), scene_seed_help=': of the first scene; scene i uses N + i')
    data.add_argument('--kind', choices=('indoor', 'outdoor', 'mixed'), default='mixed')
    data.add_argument('--folder', type=Path, metavar='DIR', help='RGB + depth pairs instead of synthetic scenes')
    for name in ('fx', 'fy', 'cx', 'cy'):
        data.add_argument(f'--{name}', type=float, help=f'folder intrinsics: {name} in image pixels')
    data.add_argument('--hfov', type=float, metavar='DEG', help='folder intrinsics from a horizontal FOV')
    score = p.add_argument_group('scoring and output')
    add_resolution_flag(score, help_tail=': where the prediction is scored', old='--at',
                        old_choices={'model': 'inference', 'camera': 'camera'})
    score.add_argument('--upsample', default=None, choices=('guided', 'edge_aware', 'bilinear', 'nearest', 'area'),
                       help='with --resolution camera: how the prediction is enlarged (default guided)')
    score.add_argument('--json', type=Path, metavar='OUT', help='also write all numbers as JSON')
    score.add_argument('--per-frame', action='store_true', help='print one line per frame')
    add_quiet_flag(score, old=('--no-progress',))
    return p


# ------------------------------------------------------------------------------ estimators

def choose_estimator(args):
    """A ground-truth baseline, or the model through the shared factory, as the flags ask;
    raises SetupError with a one-line reason."""
    chosen = [name for name, on in (('--model', args.model), ('--dit', args.dit), ('--baseline', args.baseline)) if on]
    if len(chosen) != 1:
        raise SetupError('choose exactly one estimator: --model demo, --dit PATH [--encoder PATH] or --baseline '
                         + ('(got ' + ', '.join(chosen) + ')' if chosen else ''))
    if args.baseline:
        from ppd_ros.eval.baselines import GroundTruthResampled, Oracle
        from ppd_ros.model.preprocess import DEFAULT_TARGET_AREA, model_size
        area = args.area or DEFAULT_TARGET_AREA
        size = lambda h, w: model_size(h, w, area)  # noqa: E731
        if args.baseline == 'oracle':
            return Oracle(output_size=size)
        try:
            return GroundTruthResampled(args.bilinear_scale, output_size=size)
        except ValueError as err:
            raise SetupError(str(err)) from err
    try:
        return build_estimator('demo', args.dit, args.encoder, args.device, args.precision, args.steps,
                               args.seed, args.area, synthetic_input=args.folder is None, **fast_options(args))
    except EstimatorBuildError as err:
        raise SetupError(str(err)) from err


# ------------------------------------------------------------------------------------ data

def synthetic_frames(args):
    """(name, frame) for each seeded scene; rendered one at a time."""
    from ppd_ros.synthetic import render_frame
    for i in range(args.scenes):
        kind = args.kind if args.kind != 'mixed' else ('indoor', 'outdoor')[i % 2]
        seed = args.scene_seed + i
        width, height = args.camera_size
        yield f'{kind}-{seed}', render_frame(seed, width=width, height=height, kind=kind)


def folder_pairs(folder: Path) -> list:
    """(name, image path, depth path) for every image with a NAME_depth.npy / NAME_depth.png."""
    if not folder.is_dir():
        raise SetupError(f'--folder {folder}: not a folder')
    pairs = []
    for image in sorted(folder.iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES or image.stem.endswith('_depth'):
            continue
        for suffix in ('.npy', '.png'):
            depth = image.with_name(f'{image.stem}_depth{suffix}')
            if depth.is_file():
                pairs.append((image.stem, image, depth))
                break
    if not pairs:
        raise SetupError(f'--folder {folder}: no NAME.png|jpg with NAME_depth.npy|png pairs found')
    return pairs


def read_depth(path: Path) -> np.ndarray:
    """Metres (float32), NaN where invalid."""
    if path.suffix == '.npy':
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SetupError(f'{path}: cannot read depth ({err})') from err
        depth = np.asarray(depth, dtype=np.float32)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
            raise SetupError(f'{path}: depth PNGs must be single-channel 16-bit (millimetres)')
        depth = raw.astype(np.float32) / 1000.0
    if depth.ndim != 2:
        raise SetupError(f'{path}: depth must be a 2-D array, got shape {depth.shape}')
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def folder_intrinsics(args, folder: Path, width: int, height: int):
    from ppd_ros.geometry.camera import Intrinsics
    if args.fx is not None:
        return Intrinsics.from_focal(args.fx, width, height, args.fy, args.cx, args.cy)
    file = folder / 'intrinsics.json'
    if file.is_file():
        try:
            k = json.loads(file.read_text())
            return Intrinsics(float(k['fx']), float(k['fy']), float(k['cx']), float(k['cy']), width, height)
        except (ValueError, KeyError, TypeError) as err:
            raise SetupError(f'{file}: needs numbers fx, fy, cx, cy ({err})') from err
    hfov = args.hfov if args.hfov is not None else 60.0
    if args.hfov is None:
        print(f'{PROG}: warning: no intrinsics given (--fx or {file}); assuming a {hfov:g}° horizontal FOV',
              file=sys.stderr)
    return Intrinsics.from_fov(hfov, width, height)


def folder_frames(args):
    warned = {}
    for name, image_path, depth_path in folder_pairs(args.folder):
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SetupError(f'{image_path}: cannot read image')
        depth = read_depth(depth_path)
        if depth.shape != bgr.shape[:2]:
            raise SetupError(f'{depth_path}: depth is {depth.shape[1]}x{depth.shape[0]} but the image is '
                             f'{bgr.shape[1]}x{bgr.shape[0]}')
        size = bgr.shape[:2]
        if size not in warned:
            warned[size] = folder_intrinsics(args, args.folder, size[1], size[0])
        valid = np.isfinite(depth)
        yield name, PairFrame(bgr[..., ::-1].copy(), np.where(valid, depth, np.inf).astype(np.float32), valid,
                              warned[size])


# ------------------------------------------------------------------------------------- run

def _fmt(value, digits=4, scale=1.0):
    return 'n/a' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value * scale:.{digits}f}'


def format_table(summary: dict) -> str:
    header = f'{"":10}{"frames":>7}{"AbsRel":>9}{"delta1":>9}{"EdgeChamfer[m]":>16}{"Flying[%]":>11}{"latency[ms]":>13}'
    lines = [header]
    for group, s in summary.items():
        lines.append(f'{group:10}{s["frames"]:>7}{_fmt(s["abs_rel"]):>9}{_fmt(s["delta1"]):>9}'
                     f'{_fmt(s["edge_chamfer"]):>16}{_fmt(s["flying_pixel_rate"], 2, 100.0):>11}'
                     f'{_fmt(s.get("latency_ms_median"), 1):>13}')
    return '\n'.join(lines)


def run(estimator, frames, total: int, at: str, upsample, quiet: bool, per_frame: bool) -> list:
    """Score every frame; `at` is the protocol's scoring resolution (model | camera). A progress
    bar on a terminal only (none with `quiet` or for one frame)."""
    from tqdm import tqdm

    from ppd_ros.eval.baselines import predict_for_eval
    from ppd_ros.eval.protocol import evaluate_prediction
    rows = []
    bar = progress_bar(total, quiet or total <= 1, desc=PROG, unit='frame')
    try:
        for name, frame in frames:
            start = time.perf_counter()
            pred = predict_for_eval(estimator, frame)
            latency = (time.perf_counter() - start) * 1000.0
            row = {'name': name, 'kind': getattr(frame, 'kind', 'folder'), 'latency_ms': latency,
                   'pred_width': int(np.shape(pred)[1]), 'pred_height': int(np.shape(pred)[0])}
            row.update(evaluate_prediction(pred, frame, at=at, upsample=upsample))
            rows.append(row)
            if per_frame:
                tqdm.write(f'{name:>16}  AbsRel {_fmt(row["abs_rel"])}  delta1 {_fmt(row["delta1"])}  '
                           f'chamfer {_fmt(row["edge_chamfer"])} m  flying {_fmt(row["flying_pixel_rate"], 2, 100.0)} %  '
                           f'{latency:.1f} ms', file=sys.stdout)
            bar.update(1)
    finally:
        bar.close()
    return rows


#: --resolution (the output-resolution vocabulary) → the protocol's scoring resolution
PROTOCOL_AT = {'inference': 'model', 'camera': 'camera'}


def main(argv=None, estimator=None) -> int:
    """Entry point; `estimator` (predict/predict_frame, steps, describe) replaces the flags' one, for tests."""
    from ppd_ros.eval.protocol import summarize
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error('--scenes must be >= 1')
    if min(args.camera_size) < 1:
        parser.error(f'--camera-size must be positive, got {format_size(args.camera_size)}')
    if args.upsample is not None and args.resolution != 'camera':
        parser.error('--upsample only applies with --resolution camera')
    at = PROTOCOL_AT[args.resolution]
    started = time.perf_counter()
    try:
        if estimator is None:
            estimator = choose_estimator(args)
        elif args.steps is not None:
            estimator.steps = args.steps
        if args.folder is not None:
            total = len(folder_pairs(args.folder))
            frames = folder_frames(args)
            source = f'{total} RGB-D pairs from {args.folder}'
            counted = f'{total} RGB-D pair{"s" * (total != 1)}'
        else:
            total = args.scenes
            frames = synthetic_frames(args)
            source = (f'{args.scenes} synthetic scenes ({args.kind}, {format_size(args.camera_size)}, '
                      f'seeds {args.scene_seed}-{args.scene_seed + args.scenes - 1})')
            counted = f'{total} scene{"s" * (total != 1)}'
        rows = run(estimator, frames, total, at, args.upsample, quiet=args.quiet, per_frame=args.per_frame)
    except SetupError as err:
        print(f'{PROG}: error: {err}', file=sys.stderr)
        return EXIT_USAGE
    summary = {}
    kinds = sorted({r['kind'] for r in rows})
    if len(kinds) > 1:
        for kind in kinds:
            summary[kind] = summarize([r for r in rows if r['kind'] == kind])
    summary['all'] = summarize(rows)
    description = estimator.describe() if hasattr(estimator, 'describe') else {'model': type(estimator).__name__}
    first = rows[0]
    where = (f"model resolution ({first['eval_width']}x{first['eval_height']}, GT resized nearest)"
             if at == 'model' else f"camera resolution ({first['eval_width']}x{first['eval_height']}, "
                                   f"prediction upsampled {args.upsample or 'guided'})")
    print(f'{PROG}: {description.get("model")} | {source} | scored at {where}')
    print(format_table(summary))
    if args.json is not None:
        payload = {'estimator': {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                                 for k, v in description.items()},
                   'data': source, 'resolution': args.resolution, 'at': at, 'upsample': args.upsample,
                   'summary': summary, 'frames': rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, allow_nan=True))
    everything = summary['all']
    summary_line(PROG, f'{counted} scored in {time.perf_counter() - started:.1f} s: AbsRel '
                       f'{_fmt(everything["abs_rel"])}, delta1 {_fmt(everything["delta1"])}'
                       + (f' → {args.json}' if args.json is not None else ''))
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
