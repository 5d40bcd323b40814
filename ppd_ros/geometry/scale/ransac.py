"""The released relative → metric depth recovery (``recover_metric_depth_ransac``), in numpy.

The authors' point-cloud script fits log(d + 1) = a·r + b of PPD's relative depth r to MoGe-2's
metric depth d with scikit-learn's ``RANSACRegressor`` (defaults, ``max_trials=1000``). This is our
own implementation of the same semantics, so no scikit-learn is needed at run time:

* hypotheses from 2 distinct random samples (their least-squares line);
* a sample is an inlier if |y − (a·r + b)| ≤ the median absolute deviation of y;
* the hypothesis with the most inliers wins, ties go to the higher R² on its inliers;
* the trial budget shrinks to ⌈log(1 − 0.99) / log(1 − w²)⌉ (w = best inlier ratio so far);
* the result is the least-squares line through the winning inliers.

Then metric = exp(a·r + b) − 1 if a > 0, else exp(r·mean(y)/mean(r)) − 1; clipped to
[1e-3, max d]; a failed fit uses a = 1, b = 0. Samples are drawn from ``rng`` (NumPy's global
generator when None, as the released code), so only exact-inlier data give identical results.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SAMPLES = 2            # points per line hypothesis
STOP_PROBABILITY = 0.99    # confidence of having drawn one all-inlier sample
MAX_TRIALS = 1000          # the released script's setting
MIN_DEPTH = 1e-3           # lower clip of the metric output


@dataclass(frozen=True)
class RansacLine:
    a: float
    b: float
    inliers: np.ndarray  # bool per sample
    n_trials: int


@dataclass(frozen=True)
class MetricRecovery:
    depth: np.ndarray    # metric depth (H, W) float32, metres
    a: float
    b: float
    branch: str          # 'affine' (a > 0), 'mean_ratio' (a <= 0) or 'failed' (no consensus: a=1, b=0)
    inliers: np.ndarray | None
    n_trials: int


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares line; constant x gives slope 0 through mean(y) (minimum-norm solution)."""
    xm, ym = x.mean(dtype=np.float64), y.mean(dtype=np.float64)
    var = np.square(x - xm, dtype=np.float64).sum()
    a = float(((x - xm) * (y - ym)).sum(dtype=np.float64) / var) if var > 0 else 0.0
    return a, float(ym - a * xm)


def _r2(x: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    residual = np.square(y - (a * x + b), dtype=np.float64).sum()
    total = np.square(y - y.mean(dtype=np.float64), dtype=np.float64).sum()
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1 - residual / total)


def trial_budget(n_inliers: int, n_samples: int, probability: float = STOP_PROBABILITY) -> float:
    """Trials needed to draw one all-inlier sample with the given probability."""
    eps = np.spacing(1)
    nom = max(eps, 1 - probability)
    denom = max(eps, 1 - (n_inliers / n_samples) ** MIN_SAMPLES)
    if nom == 1:
        return 0
    if denom == 1:
        return float('inf')
    return abs(float(np.ceil(np.log(nom) / np.log(denom))))


def fit_line_ransac(x, y, max_trials: int = MAX_TRIALS, rng=None) -> RansacLine:
    """y ≈ a·x + b by RANSAC (see the module docstring). Raises ValueError without consensus."""
    x = np.asarray(x).ravel()
    y = np.asarray(y).ravel()
    n = x.size
    if n < MIN_SAMPLES:
        raise ValueError(f'RANSAC needs at least {MIN_SAMPLES} samples, got {n}')
    rng = np.random.mtrand._rand if rng is None else rng
    threshold = np.median(np.abs(y - np.median(y)))
    best_count, best_score, best = 1, -np.inf, None
    budget, trials = max_trials, 0
    while trials < budget:
        trials += 1
        pick = rng.choice(n, MIN_SAMPLES, replace=False)
        a, b = _line(x[pick], y[pick])
        inliers = np.abs(y - (a * x + b)) <= threshold
        count = int(inliers.sum())
        if count < best_count:
            continue
        score = _r2(x[inliers], y[inliers], a, b)
        if count == best_count and score < best_score:
            continue
        best_count, best_score, best = count, score, inliers
        budget = min(budget, trial_budget(count, n))
    if best is None:
        raise ValueError('RANSAC found no consensus set')
    a, b = _line(x[best], y[best])
    return RansacLine(a, b, best, trials)


def recover_metric_depth(pred, gt, mask, rng=None, max_trials: int = MAX_TRIALS) -> MetricRecovery:
    """Relative depth ``pred`` (H, W) → metric depth with ``gt`` (H, W, metres) over ``mask``,
    as the released ``recover_metric_depth_ransac`` (float32 arithmetic as there)."""
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    r = pred[mask]
    d = gt[mask]
    y = np.log(d + np.float32(1))
    try:
        line = fit_line_ransac(r, y, max_trials, rng)
        a, b, inliers, trials, branch = line.a, line.b, line.inliers, line.n_trials, 'affine'
    except ValueError:
        a, b, inliers, trials, branch = 1.0, 0.0, None, 0, 'failed'
    if a > 0:
        log_depth = np.float32(a) * pred + np.float32(b)
    else:
        branch = 'mean_ratio'
        log_depth = pred * (np.mean(y) / np.mean(r))
    depth = np.clip(np.exp(log_depth) - np.float32(1), MIN_DEPTH, np.max(d)).astype(np.float32)
    return MetricRecovery(depth, a, b, branch, inliers, trials)


__all__ = ['RansacLine', 'MetricRecovery', 'fit_line_ransac', 'recover_metric_depth', 'trial_budget']
