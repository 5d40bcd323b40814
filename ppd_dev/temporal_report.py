"""Temporal smoothing report: flicker, accuracy cost and speed of depth_node's temporal.mode.

Runs a synthetic smooth camera sequence (ground truth known) through the frame pipeline that
depth_node runs (ppd_ros.pipeline.FramePipeline, default settings but for `temporal_mode`), so the
relative depth measured is the relative depth the node publishes:
  off         every frame predicted on its own
  align       each prediction mapped onto a running reference (geometry.temporal.TemporalAligner)
  warm_start  sampling starts from the previous prediction, re-running a fraction `strength`
              of the steps (predict(rgb, init_depth=prev, init_strength=strength)); a non-finite
              prediction is not used as a start (the next frame starts cold)
and prints, per mode:
  flicker (seq)    temporal_flicker after ONE (a, b) for the whole sequence (align_sequence):
                   frame-to-frame scale jitter counts, as a robot sees it
  flicker (frame)  the same after per-frame alignment (align_to_gt): only structural flicker
  AbsRel           per-frame aligned (standard) and sequence aligned — the accuracy cost
  ms/frame         inference time: the estimator's predict calls the pipeline makes (warm_start
                   runs fewer sampling steps; the semantic encoder still runs every frame)

Estimators: `demo` (bundled demo weights), `random-tiny` (untrained: timings are real, accuracy
numbers are meaningless), `stand-in` (NOT the model: ground-truth log-depth normalised per frame
like PPD's training target, plus per-frame scale/shift jitter and noise; warm start is emulated
by blending with the previous output — it only checks the measurement and TemporalAligner).
`auto` (default) uses demo weights when bundled, else the stand-in for accuracy and flicker and
random-tiny for speed; `--speed-estimator random-released` times the released model size with
random weights. Every table says which estimator produced it.

  python -m ppd_dev.temporal_report [--frames 24] [--json report.json]
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ppd_ros.eval.metrics import abs_rel, align_sequence, align_to_gt, temporal_flicker
from ppd_ros.eval.protocol import ground_truth_at
from ppd_ros.model.factory import EstimatorBuildError, build_estimator
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline
from ppd_ros.synthetic import camera_sequence

#: stamps of the synthetic sequence: a 30 Hz camera (the pipeline restarts its state when time goes back)
FRAME_PERIOD_NS = 1_000_000_000 // 30
STAND_IN_LABEL = 'STAND-IN (noisy ground truth, NOT the PPD model; warm start emulated)'
RANDOM_TINY_LABEL = 'random-tiny (untrained tiny PPD: accuracy meaningless, timing real)'
RANDOM_RELEASED_LABEL = 'random-released (released ViT-L + DiT-L sizes, random weights: timing only)'


class StandInEstimator:
    """PPD-like relative depth from ground truth with the kinds of error PPD has frame to frame:
    per-frame 2–98 % normalisation of log(d + 1), a random global scale/shift jitter, smooth
    low-frequency error and pixel noise, all redrawn every frame. Warm start keeps
    (1 − strength) of the previous output. Looks up the ground truth by the frame's RGB."""

    def __init__(self, frames, seed: int = 0, jitter: float = 0.04, smooth_noise: float = 0.03,
                 pixel_noise: float = 0.01):
        self._truth = {f.rgb.tobytes(): np.where(f.valid, f.depth, np.nan) for f in frames}
        self._rng = np.random.default_rng(seed)
        self.jitter, self.smooth_noise, self.pixel_noise = jitter, smooth_noise, pixel_noise
        self.steps = 4

    def predict(self, rgb, init_depth=None, init_strength=None):
        log_depth = np.log1p(self._truth[rgb.tobytes()])
        lo, hi = np.nanpercentile(log_depth, (2, 98))
        relative = (log_depth - lo) / max(hi - lo, 1e-6)
        h, w = relative.shape
        coarse = self._rng.normal(0.0, self.smooth_noise, size=(4, 4)).astype(np.float32)
        relative = relative * (1 + self._rng.normal(0, self.jitter)) + self._rng.normal(0, self.jitter)
        relative += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        relative += self._rng.normal(0.0, self.pixel_noise, size=(h, w))
        relative = np.nan_to_num(relative.astype(np.float32), nan=1.0)
        if init_depth is not None:
            strength = 0.5 if init_strength is None else init_strength
            relative = (1.0 - strength) * init_depth + strength * relative
        return relative.astype(np.float32)

    def describe(self):
        return {'model': STAND_IN_LABEL, 'device': 'cpu', 'precision': 'fp32', 'steps': self.steps}


@dataclass
class ModeResult:
    mode: str
    flicker_sequence: float
    flicker_frame: float
    abs_rel_frame: float
    abs_rel_sequence: float
    ms_per_frame: float


class _TimedEstimator:
    """``estimator`` with the duration of every predict call recorded in ``seconds``; predict keeps
    its signature (the pipeline reads it to know whether warm starts are supported)."""

    def __init__(self, estimator):
        self._estimator = estimator
        self.seconds: list[float] = []

        @functools.wraps(estimator.predict)
        def predict(*args, **kwargs):
            started = time.perf_counter()
            try:
                return estimator.predict(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - started)
        self.predict = predict

    def __getattr__(self, name):
        return getattr(self._estimator, name)


def run_mode(estimator, frames, mode: str, strength: float = 0.5):
    """Relative depth of the sequence as depth_node publishes it under one temporal mode (its frame
    pipeline, default settings otherwise), and the model's ms/frame."""
    timed = _TimedEstimator(estimator)
    settings = DEFAULTS.replace(temporal_mode=mode, warm_start_strength=strength)
    pipeline = FramePipeline(timed, settings)
    predictions = []
    for k, frame in enumerate(frames):
        done = pipeline.process(FrameInput(frame.rgb, k * FRAME_PERIOD_NS, context=k), want_metric=False)
        if [depth.context for depth in done] != [k]:
            raise RuntimeError(f'the pipeline returned frames {[d.context for d in done]} for frame {k}')
        predictions.append(done[0].relative)
    times = timed.seconds
    steady = times[1:] if len(times) > 1 else times  # the first frame warms caches up
    return predictions, 1e3 * float(np.mean(steady))


def evaluate(predictions, frames, mode: str, ms_per_frame: float) -> ModeResult:
    truths = [ground_truth_at(f, *p.shape)[:2] for f, p in zip(frames, predictions)]
    gts = [np.where(valid, depth, 0.0).astype(np.float32) for depth, valid in truths]
    masks = [valid for _, valid in truths]
    per_frame = [align_to_gt(p, g, m)[0] for p, g, m in zip(predictions, gts, masks)]
    per_sequence, _, _ = align_sequence(predictions, gts, masks)
    return ModeResult(
        mode=mode,
        flicker_sequence=temporal_flicker(per_sequence, gts, masks),
        flicker_frame=temporal_flicker(per_frame, gts, masks),
        abs_rel_frame=float(np.mean([abs_rel(p, g, m) for p, g, m in zip(per_frame, gts, masks)])),
        abs_rel_sequence=float(np.mean([abs_rel(p, g, m) for p, g, m in zip(per_sequence, gts, masks)])),
        ms_per_frame=ms_per_frame)


def report(estimator, frames, strengths) -> list[ModeResult]:
    modes = [('off', 'off', None), ('align', 'align', None)]
    modes += [(f'warm_start {s:g}', 'warm_start', s) for s in strengths]
    results = []
    for name, mode, strength in modes:
        predictions, ms = run_mode(estimator, frames, mode, strength if strength is not None else 0.5)
        results.append(evaluate(predictions, frames, name, ms))
    return results


def speed(estimator, frames, strengths, repeats: int) -> dict:
    """Median ms/frame of cold predictions and of warm starts from the frame before, timed
    interleaved (cold, warm …, cold, warm …) so a busy machine slows all of them alike."""
    rgb = [f.rgb for f in frames[:repeats + 1]]
    previous = estimator.predict(rgb[0])  # also warms caches up
    timings = {'cold': []} | {f'warm_start {s:g}': [] for s in strengths}
    for image in rgb[1:]:
        for strength in strengths:
            started = time.perf_counter()
            estimator.predict(image, init_depth=previous, init_strength=strength)
            timings[f'warm_start {strength:g}'].append(time.perf_counter() - started)
        started = time.perf_counter()
        previous = estimator.predict(image)
        timings['cold'].append(time.perf_counter() - started)
    return {name: 1e3 * float(np.median(values)) for name, values in timings.items()}


def _print_table(title: str, results: list[ModeResult]) -> None:
    print(f'\n{title}')
    print(f"{'mode':<16}{'flicker (seq)':>15}{'flicker (frame)':>17}{'AbsRel (frame)':>16}"
          f"{'AbsRel (seq)':>14}{'ms/frame':>10}")
    for r in results:
        print(f'{r.mode:<16}{r.flicker_sequence:>15.4f}{r.flicker_frame:>17.4f}{r.abs_rel_frame:>16.4f}'
              f'{r.abs_rel_sequence:>14.4f}{r.ms_per_frame:>10.1f}')


def _model_estimator(kind: str, steps: int, target_area, device: str):
    """demo weights, random-tiny, or random-released: the released ViT-L + DiT-L sizes with random
    weights (accuracy meaningless, but its timing is what the real model costs); through the shared
    factory, with a clear one-line exit when that fails."""
    model = 'random-large' if kind == 'random-released' else kind
    try:
        return build_estimator(model, steps=steps, device=device, target_area=target_area)
    except EstimatorBuildError as err:
        raise SystemExit(f'temporal_report: error: {err}') from err


def _label(kind: str) -> str:
    return {'demo': 'demo model', 'stand-in': STAND_IN_LABEL, 'random-tiny': RANDOM_TINY_LABEL,
            'random-released': RANDOM_RELEASED_LABEL}[kind]


def _demo_weights_available() -> bool:
    try:
        from ppd_ros.model.estimator import WEIGHTS_DIR
    except ImportError:
        return False
    return any(WEIGHTS_DIR.glob('demo_*.safetensors'))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m ppd_dev.temporal_report',
                                description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--estimator', choices=('auto', 'demo', 'random-tiny', 'stand-in'), default='auto',
                   help='estimator for flicker and accuracy (auto: demo weights if bundled, else stand-in)')
    p.add_argument('--speed-estimator', choices=('demo', 'random-tiny', 'random-released'),
                   help='estimator for the speed table (default: the one above; random-tiny for the stand-in)')
    p.add_argument('--frames', type=int, default=24, help='sequence length (default 24)')
    p.add_argument('--width', type=int, default=256)
    p.add_argument('--height', type=int, default=192)
    p.add_argument('--kind', choices=('indoor', 'outdoor'), default='indoor')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--steps', type=int, default=4)
    p.add_argument('--strengths', type=float, nargs='+', default=[0.25, 0.5], metavar='S',
                   help='warm_start strengths to compare (default 0.25 0.5)')
    p.add_argument('--target-area', type=int, nargs=2, metavar=('W', 'H'),
                   help='model resolution area (default: the model\'s own; the camera size for the stand-in)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--speed-frames', type=int, default=6, help='frames timed for the speed table')
    p.add_argument('--json', type=str, help='also write the numbers as JSON')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames < 2:
        build_parser().error('--frames must be at least 2')
    try:
        import torch
        torch.manual_seed(args.seed)  # the sampler's noise: reproducible report
    except ImportError:
        pass
    target_area = args.target_area
    print(f'synthetic {args.kind} sequence: {args.frames} frames {args.width}x{args.height}, smooth motion, '
          f'seed {args.seed}')
    frames = camera_sequence(args.seed, args.frames, args.width, args.height, kind=args.kind, motion='smooth')

    kind = args.estimator
    if kind == 'auto':
        kind = 'demo' if _demo_weights_available() else 'stand-in'
    if kind == 'stand-in':
        accuracy_estimator = StandInEstimator(frames, seed=args.seed)
    else:
        accuracy_estimator = _model_estimator(kind, args.steps, target_area, args.device)
    results = report(accuracy_estimator, frames, args.strengths)
    _print_table(f'flicker and accuracy — estimator: {_label(kind)}', results)

    speed_kind = args.speed_estimator or (kind if kind != 'stand-in' else
                                          'demo' if _demo_weights_available() else 'random-tiny')
    speed_estimator = accuracy_estimator if speed_kind == kind else _model_estimator(
        speed_kind, args.steps, target_area, args.device)
    timings = speed(speed_estimator, frames, args.strengths, args.speed_frames)
    print(f'\nspeed — estimator: {_label(speed_kind)}, {args.steps} steps, {args.device}, '
          f'{args.width}x{args.height}, model resolution '
          f"{'x'.join(map(str, speed_estimator.infer_size(args.height, args.width)[::-1])) if hasattr(speed_estimator, 'infer_size') else 'camera'}")
    for name, ms in timings.items():
        print(f'{name:<16}{ms:>10.1f} ms/frame  ({timings["cold"] / ms:.2f}x vs cold)')

    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'accuracy_estimator': _label(kind), 'speed_estimator': _label(speed_kind),
                       'frames': args.frames, 'size': [args.width, args.height], 'kind': args.kind,
                       'results': [asdict(r) for r in results], 'speed_ms': timings}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
