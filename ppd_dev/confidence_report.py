"""Which per-pixel uncertainty of the sampler ranks PPD's real errors: sparsification and AUSE.

On seeded synthetic frames (indoor and outdoor, seeds disjoint from the demo model's training
seeds) at the model resolution: the demo model's depth, aligned to the ground truth as the
evaluation protocol does (log(d + 1) least squares), per-pixel AbsRel as the error. Each candidate
ranks the pixels; AUSE (ppd_ros.eval.sparsification) per frame, averaged; next to the oracle (0)
and a random order. Candidates: the sampler's signals at no extra model call (x0_change,
velocity_disagreement), the spread over K noise seeds (K× the frame), and a depth-gradient
heuristic (how far the depth changes around a pixel: edges), which needs no sampler at all.

    python -m ppd_dev.confidence_report --frames 16 [--samples 4] [--steps 4]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ppd_ros.eval.metrics import align_to_gt, valid_gt
from ppd_ros.eval.sparsification import FRACTIONS, ause, sparsification_curve
from ppd_ros.geometry.confidence import depth_gradient

FIRST_SEED = 9000


def run(frames: int, samples: int, steps: int, seed: int = 0) -> dict:
    from ppd_ros.model.estimator import PPDEstimator
    from ppd_ros.synthetic.render import render_frame
    estimator = PPDEstimator.demo(device='cpu', seed=seed, steps=steps)
    width, height = estimator.target_area
    rng = np.random.default_rng(0)
    scores: dict[str, list] = {}
    curves: dict[str, list] = {}
    absrel = []
    for i in range(frames):
        frame = render_frame(FIRST_SEED + i, width, height, kind=('indoor', 'outdoor')[i % 2])
        relative, signals = estimator.predict_with_uncertainty(frame.rgb, samples=samples)
        valid = valid_gt(frame.depth, frame.valid)
        metric, _, _ = align_to_gt(relative, frame.depth, valid)
        error = np.abs(metric[valid] - frame.depth[valid]) / frame.depth[valid]
        absrel.append(float(error.mean()))
        candidates = {name: value[valid] for name, value in signals.items()}
        candidates['depth_gradient'] = depth_gradient(relative)[valid]
        candidates['random'] = rng.random(error.size)
        candidates['oracle'] = error
        for name, value in candidates.items():
            scores.setdefault(name, []).append(ause(error, value))
            curves.setdefault(name, []).append(sparsification_curve(error, value))
    return {'absrel': float(np.mean(absrel)), 'ause': {k: float(np.mean(v)) for k, v in scores.items()},
            'curves': {k: np.mean(v, axis=0) for k, v in curves.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--frames', type=int, default=16)
    p.add_argument('--samples', type=int, default=4, help='K noise seeds for seed_spread (1: leave it out)')
    p.add_argument('--steps', type=int, default=4)
    a = p.parse_args(argv)
    result = run(a.frames, a.samples, a.steps)
    print(f'demo model, {a.steps} steps, {a.frames} synthetic frames (seeds {FIRST_SEED}..), '
          f'mean AbsRel {result["absrel"]:.4f}')
    random = result['ause']['random']
    print('| signal | AUSE (lower is better) | vs random | kept-error at 50 % removed |')
    print('| --- | --- | --- | --- |')
    half = int(np.argmin(np.abs(FRACTIONS - 0.5)))
    for name, value in sorted(result['ause'].items(), key=lambda kv: kv[1]):
        print(f'| {name} | {value:.4f} | {value / random:.2f}× | {result["curves"][name][half]:.3f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
