"""Metric accuracy of scale fusion per metric source, on seeded synthetic scenes.

For each scene: a relative depth (model-like, made from the ground truth — or, with --model, a real
estimator's as depth_node publishes it: its frame pipeline with default settings and
output.resolution camera), the simulated sensors (64- and 16-line LiDAR, RGB-D with 50 % holes and
noise, one range finder), the same sample extraction and fits the fusion node runs, and the metric
AbsRel and δ1 against the ground truth. The oracle is the least-squares fit of log(d + 1) = a·r + b
against the full ground truth: the best any (a, b) can do with that relative depth.

Model-like relative depth (what PPD outputs, without needing a model): PPD's normalisation
r = (log(gt + 1) − q2) / (q98 − q2) (2 %/98 % quantiles of the frame's log depth, as in training),
plus a smooth low-frequency error field (bicubic-upsampled 4×3 random grid, σ = `--lowfreq` in r
units: the model's slowly varying scale errors over the image) and per-pixel Gaussian noise
(σ = `--noise`); pixels without ground truth (sky) get r = 1.2 (far, as the model predicts).

    python -m ppd_dev.fusion_report --scenes 8 [--kind indoor] [--model demo] [--range-mode offset]

Sequence evaluation (--sequence): a single range finder on a moving camera. Per sequence: frames of
`camera_sequence(motion='smooth')` → model-like relative per frame (per-frame normalisation, own
error field) → the depth node's frame pipeline with temporal.mode align (its TemporalAligner) → one
range reading per frame at the principal point → the per-frame prior fit and the windowed fit
(range_window) → metric AbsRel per frame. The oracle is the per-frame least squares of the same
aligned relative depth against the full ground truth.

    python -m ppd_dev.fusion_report --sequence --scenes 8 --frames 30 [--window 30]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from ppd_ros.eval import metrics
from ppd_ros.geometry.scale.depth_scale import metric_to_relative, near_far_scale, relative_to_metric
from ppd_ros.geometry.scale.range_window import RangePrior, RangeWindow, RangeWindowConfig
from ppd_ros.geometry.scale.fit import (RANGE_MODES, FitConfig, fit_scale, fit_single_range, fit_with_prior,
                                        least_squares)
from ppd_ros.geometry.scale.source_samples import (SampleError, samples_from_depth_image, samples_from_points,
                                                   samples_from_range)
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline, PipelineSettings, settings_for

SOURCES = ('lidar64', 'lidar16', 'rgbd50', 'range')
#: Range-finder prior per scene kind: metres at relative 0 and 1 (the 2 % / 98 % depths), the medians
#: over synthetic seeds 100–131 (disjoint from the scored seeds), and their log(d + 1) spreads.
RANGE_PRIORS = {'indoor': (0.8, 8.0), 'outdoor': (2.0, 50.0)}
RANGE_SIGMAS = (0.2, 0.5)
RANGE_WINDOW = 0  # the ray's own pixel: choosing an edge side by the prior helped indoors, hurt outdoors
SEQUENCE_SIZE = (160, 120)  # --sequence renders every frame: smaller than the per-scene default
MAX_DEPTH = 80.0  # PPD's training clips at 80 m; farther ground truth is not scored
FRAME_PERIOD_NS = 1_000_000_000 // 30  # stamps of the --sequence frames: a 30 Hz camera


def model_like_relative(gt: np.ndarray, valid: np.ndarray, seed: int, lowfreq: float = 0.03,
                        noise: float = 0.01) -> tuple[np.ndarray, float, float]:
    """(relative depth, a0, b0) where log(gt + 1) = a0·r + b0 before the perturbation."""
    rng = np.random.default_rng(seed)
    h, w = gt.shape
    mask = valid & np.isfinite(gt) & (gt <= MAX_DEPTH)
    log_gt = np.log1p(np.where(mask, gt, 0.0))
    q2, q98 = np.quantile(log_gt[mask], [0.02, 0.98])
    a0 = max(float(q98 - q2), 1e-6)
    b0 = float(q2)
    r = (log_gt - b0) / a0
    field = cv2.resize(rng.normal(0.0, 1.0, (3, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    r = r + lowfreq * field / max(float(field.std()), 1e-6) + rng.normal(0.0, noise, (h, w))
    r[~mask] = 1.2
    return r.astype(np.float32), a0, b0


class PreparedRelative:
    """An estimator for the frame pipeline that returns the relative depth prepared for the frame
    about to be processed (``relative``): model-like depth made from the ground truth, not the RGB."""

    def __init__(self):
        self.relative: np.ndarray | None = None

    def predict(self, rgb):
        if self.relative is None:
            raise RuntimeError('no relative depth prepared for this frame')
        relative, self.relative = self.relative, None
        return relative


def published_relative(pipeline: FramePipeline, rgb: np.ndarray, stamp_ns: int = 0) -> np.ndarray:
    """depth/relative as depth_node publishes it for this frame (``pipeline`` holds its settings and
    temporal state); the video model's frame once its window has run (flushed here)."""
    done = pipeline.process(FrameInput(rgb, stamp_ns), want_metric=False)
    if not done:
        done = pipeline.flush(want_metric=False)
    if len(done) != 1:
        raise RuntimeError(f'the frame pipeline returned {len(done)} frames for one')
    return done[0].relative


def node_relative(estimator, rgb: np.ndarray, settings: PipelineSettings = DEFAULTS) -> np.ndarray:
    """One frame's depth/relative from ``estimator`` as depth_node publishes it with ``settings``
    and output.resolution camera (the camera's pixels, as the ground truth and the sensors)."""
    pipeline = FramePipeline(estimator, settings_for(estimator, settings, resolution='camera'))
    return published_relative(pipeline, rgb)


# A failed fit (NaN prediction) is scored as entirely wrong instead of raising.
abs_rel = partial(metrics.abs_rel, invalid='miss')
delta1 = partial(metrics.delta1, invalid='miss')


@dataclass
class SourceResult:
    source: str
    abs_rel: float
    delta1: float
    oracle_abs_rel: float
    num_samples: int
    ok: bool
    note: str = ''


def source_fit(source: str, frame, relative, config: FitConfig, range_mode: str, prior, seed: int):
    """(fit or failure, number of samples) for one simulated source on one frame."""
    from ppd_ros.synthetic import simulate_lidar, simulate_range, simulate_rgbd
    intr = frame.intrinsics
    rng = np.random.default_rng(seed)
    if source.startswith('lidar'):
        scan = simulate_lidar(frame, lines=int(source[5:]), seed=seed)
        samples = samples_from_points(relative, intr, scan.points, scan.T_cam_lidar, min_depth=config.min_depth)
    elif source == 'rgbd50':
        depth = simulate_rgbd(frame, hole_fraction=0.5, seed=seed)
        samples = samples_from_depth_image(relative, depth)
    elif source == 'range' or source.startswith('range-'):
        range_mode = source[6:] or range_mode
        distance = simulate_range(frame, seed=seed)
        expected = metric_to_relative(np.array([distance]), *near_far_scale(*prior))[0]
        samples = samples_from_range(relative, intr, distance, None, window=RANGE_WINDOW, expected_relative=expected)
        return fit_single_range(samples.relative, samples.metric, range_mode, *prior, *RANGE_SIGMAS,
                                config=config), samples.count
    else:
        raise ValueError(f'unknown source {source}')
    return fit_scale(samples.relative, samples.metric, config, rng), samples.count


def evaluate_scene(seed: int, kind: str = 'indoor', width: int = 320, height: int = 240, estimator=None,
                   sources=SOURCES, range_mode: str = 'prior', prior=None, lowfreq: float = 0.03,
                   noise: float = 0.01, config: FitConfig = FitConfig()) -> list[SourceResult]:
    """Every source's metric accuracy on one seeded scene (see the module docstring)."""
    from ppd_ros.synthetic import render_frame
    frame = render_frame(seed, width, height, kind=kind)
    gt = frame.depth
    mask = frame.valid & np.isfinite(gt) & (gt <= MAX_DEPTH) & (gt >= config.min_depth)
    if estimator is None:
        relative, _, _ = model_like_relative(gt, frame.valid, seed + 10_000, lowfreq, noise)
    else:
        relative = node_relative(estimator, frame.rgb)
    ok_r = mask & np.isfinite(relative)
    a_o, b_o = least_squares(relative[ok_r], np.log1p(gt[ok_r]))
    oracle = abs_rel(relative_to_metric(relative, a_o, b_o), gt, mask)
    prior = prior or RANGE_PRIORS.get(kind, RANGE_PRIORS['indoor'])
    results = []
    for source in sources:
        try:
            fit, count = source_fit(source, frame, relative, config, range_mode, prior, seed)
        except SampleError as exc:
            results.append(SourceResult(source, 1.0, 0.0, oracle, 0, False, str(exc)))
            continue
        if not fit.ok:
            results.append(SourceResult(source, 1.0, 0.0, oracle, count, False, fit.reason))
            continue
        pred = relative_to_metric(relative, fit.a, fit.b)
        results.append(SourceResult(source, abs_rel(pred, gt, mask), delta1(pred, gt, mask), oracle, count, True))
    return results


def summarise(per_scene: list[list[SourceResult]]) -> list[dict]:
    """Mean over scenes per source; a failed fit counts as AbsRel 1, δ1 0."""
    rows = []
    for source in [r.source for r in per_scene[0]]:
        rs = [r for scene in per_scene for r in scene if r.source == source]
        absrel = float(np.mean([r.abs_rel for r in rs]))
        oracle = float(np.mean([r.oracle_abs_rel for r in rs]))
        rows.append({'source': source, 'abs_rel': absrel, 'delta1': float(np.mean([r.delta1 for r in rs])),
                     'oracle_abs_rel': oracle, 'ratio': absrel / oracle if oracle > 0 else float('inf'),
                     'samples': float(np.mean([r.num_samples for r in rs])),
                     'failures': sum(not r.ok for r in rs), 'scenes': len(rs)})
    return rows


def format_table(rows: list[dict], title: str = '') -> str:
    lines = [title] if title else []
    lines.append(f"{'source':<13}{'AbsRel':>9}{'δ1':>8}{'oracle':>9}{'ratio':>8}{'samples':>10}{'failed':>8}")
    for r in rows:
        lines.append(f"{r['source']:<13}{r['abs_rel']:>9.4f}{r['delta1']:>8.3f}{r['oracle_abs_rel']:>9.4f}"
                     f"{r['ratio']:>8.2f}{r['samples']:>10.0f}{r['failures']:>5}/{r['scenes']}")
    return '\n'.join(lines)


def evaluate_sequence(seed: int, kind: str = 'indoor', frames: int = 30, width: int = 160, height: int = 120,
                      window: RangeWindowConfig = RangeWindowConfig(), lowfreq: float = 0.03, noise: float = 0.01,
                      config: FitConfig = FitConfig(), settings: PipelineSettings = DEFAULTS) -> dict:
    """Per-frame metric AbsRel of a single range finder on one moving-camera sequence (see --sequence):
    {'prior': [...], 'window': [...], 'oracle': [...], 'kinds': [fit kind of the windowed fit per frame]}.
    The relative depth goes through depth_node's frame pipeline with ``settings`` and temporal.mode
    align."""
    from ppd_ros.synthetic import camera_sequence, simulate_range
    near, far = RANGE_PRIORS.get(kind, RANGE_PRIORS['indoor'])
    prior = RangePrior(near, far, *RANGE_SIGMAS)
    model = PreparedRelative()
    pipeline = FramePipeline(model, settings.replace(temporal_mode='align'))
    accumulator = RangeWindow(window)
    out = {'prior': [], 'window': [], 'oracle': [], 'kinds': []}
    for k, frame in enumerate(camera_sequence(seed, frames, width, height, kind, motion='smooth')):
        gt = frame.depth
        mask = frame.valid & np.isfinite(gt) & (gt <= MAX_DEPTH) & (gt >= config.min_depth)
        model.relative, _, _ = model_like_relative(gt, frame.valid, seed * 1000 + k + 10_000, lowfreq, noise)
        relative = published_relative(pipeline, frame.rgb, k * FRAME_PERIOD_NS)
        ok_r = mask & np.isfinite(relative)
        a_o, b_o = least_squares(relative[ok_r], np.log1p(gt[ok_r]))
        out['oracle'].append(abs_rel(relative_to_metric(relative, a_o, b_o), gt, mask))
        distance = simulate_range(frame, seed=seed * 1000 + k)
        try:
            samples = samples_from_range(relative, frame.intrinsics, distance)
        except SampleError:
            samples = None
        fits = {'prior': None, 'window': None}
        if samples is not None and samples.count:
            fits['prior'] = fit_with_prior(samples.relative, samples.metric, near, far, *RANGE_SIGMAS, config=config)
            accumulator.add(samples.relative[0], samples.metric[0], key=relative.shape)
            fits['window'] = accumulator.fit(prior, config)
        out['kinds'].append(fits['window'].kind if fits['window'] is not None and fits['window'].ok else 'none')
        for name, fit in fits.items():
            if fit is None or not fit.ok:
                out[name].append(1.0)  # no metric depth: counted as 100 % off
            else:
                out[name].append(abs_rel(relative_to_metric(relative, fit.a, fit.b), gt, mask))
    return out


def sequence_table(kind: str, seeds, frames: int, width: int, height: int, window: RangeWindowConfig,
                   lowfreq: float = 0.03, noise: float = 0.01) -> tuple[dict, str]:
    """Mean per-frame AbsRel over the sequences: (numbers, printable table)."""
    runs = [evaluate_sequence(seed, kind, frames, width, height, window, lowfreq, noise) for seed in seeds]
    oracle = float(np.mean([x for run in runs for x in run['oracle']]))
    rows = {}
    for name in ('prior', 'window'):
        value = float(np.mean([x for run in runs for x in run[name]]))
        rows[name] = {'abs_rel': value, 'oracle_abs_rel': oracle, 'ratio': value / oracle}
    kinds = [k for run in runs for k in run['kinds']]
    rows['window']['windowed_fraction'] = kinds.count('window') / max(len(kinds), 1)
    lines = [f'{kind}: {len(runs)} sequences x {frames} frames {width}x{height}, TemporalAligner, '
             f'range at the principal point, window {window.frames} frames, min_spread {window.min_spread:g}',
             f"{'fit':<22}{'AbsRel':>9}{'oracle':>9}{'ratio':>8}"]
    lines.append(f"{'per-frame prior':<22}{rows['prior']['abs_rel']:>9.4f}{oracle:>9.4f}{rows['prior']['ratio']:>8.2f}")
    lines.append(f"{'window':<22}{rows['window']['abs_rel']:>9.4f}{oracle:>9.4f}{rows['window']['ratio']:>8.2f}"
                 f"   ({100 * rows['window']['windowed_fraction']:.0f} % of frames fitted on the window)")
    return rows, '\n'.join(lines)


def _load_estimator(name: str):
    if name in ('', 'none', 'synthetic'):
        return None
    if name not in ('demo', 'random'):
        raise SystemExit(f"--model must be synthetic, demo or random, got '{name}'")
    from ppd_ros.model.factory import EstimatorBuildError, build_estimator
    try:
        return build_estimator('demo' if name == 'demo' else 'random-tiny', device='cpu', seed=0)
    except EstimatorBuildError as exc:
        raise SystemExit(f'fusion_report: {exc}') from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenes', type=int, default=8, help='seeded scenes per kind')
    parser.add_argument('--seed', type=int, default=0, help='first scene seed')
    parser.add_argument('--kind', choices=('indoor', 'outdoor', 'both'), default='both')
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--sources', default=','.join(SOURCES),
                        help=f"comma list of {', '.join(SOURCES)}, range-<mode>")
    parser.add_argument('--range-mode', choices=RANGE_MODES, default='prior')
    parser.add_argument('--lowfreq', type=float, default=0.03, help='model-like relative: low-frequency error σ')
    parser.add_argument('--noise', type=float, default=0.01, help='model-like relative: pixel noise σ')
    parser.add_argument('--model', default='synthetic',
                        help='relative depth from: synthetic (model-like, from GT), demo (bundled weights), random')
    parser.add_argument('--sequence', action='store_true', help='single range finder on moving-camera sequences')
    parser.add_argument('--frames', type=int, default=30, help='--sequence: frames per sequence')
    parser.add_argument('--window', type=int, default=30, help='--sequence: range.window_frames')
    parser.add_argument('--min-spread', type=float, default=RangeWindowConfig.min_spread,
                        help='--sequence: range.min_spread')
    args = parser.parse_args(argv)
    kinds = ('indoor', 'outdoor') if args.kind == 'both' else (args.kind,)
    if args.sequence:
        window = RangeWindowConfig(frames=args.window, min_spread=args.min_spread)
        for kind in kinds:
            seeds = range(args.seed, args.seed + args.scenes)
            print(sequence_table(kind, seeds, args.frames, *SEQUENCE_SIZE, window,
                                 args.lowfreq, args.noise)[1])
            print()
        return 0
    sources = tuple(s for s in args.sources.split(',') if s)
    unknown = set(sources) - set(SOURCES) - {f'range-{mode}' for mode in RANGE_MODES}
    if unknown:
        parser.error(f"unknown sources: {', '.join(sorted(unknown))}")
    estimator = _load_estimator(args.model)
    for kind in kinds:
        per_scene = [evaluate_scene(seed, kind, args.width, args.height, estimator, sources, args.range_mode,
                                    lowfreq=args.lowfreq, noise=args.noise)
                     for seed in range(args.seed, args.seed + args.scenes)]
        title = (f'{kind}: {args.scenes} scenes {args.width}x{args.height}, relative from {args.model}, '
                 f'range mode {args.range_mode} prior {RANGE_PRIORS[kind]} m')
        print(format_table(summarise(per_scene), title))
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
