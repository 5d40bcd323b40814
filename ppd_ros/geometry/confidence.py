"""Per-pixel confidence in [0, 1] for depth/confidence, from an uncertainty in relative-depth units.

The signal that ships (picked by ppd_dev/confidence_report.py, numbers in docs/costmap.md) is the
sampler's velocity_disagreement (or, with confidence.samples K > 1, the spread over K seeds);
confidence = exp(−u / CONFIDENCE_SCALE), so 1 is certain, 0.37 at one scale unit. NaN where the
depth is NaN (no depth, no confidence).
"""
from __future__ import annotations

import numpy as np

#: uncertainty (relative-depth units) that maps to confidence 1/e
CONFIDENCE_SCALE = 0.05
SHIPPED_SIGNAL = 'velocity_disagreement'


def depth_gradient(depth: np.ndarray) -> np.ndarray:
    """Largest absolute difference to a 4-neighbour (a heuristic baseline: errors sit at edges)."""
    d = np.asarray(depth, np.float32)
    g = np.zeros_like(d)
    dy = np.abs(np.diff(d, axis=0))
    dx = np.abs(np.diff(d, axis=1))
    g[1:] = np.maximum(g[1:], dy)
    g[:-1] = np.maximum(g[:-1], dy)
    g[:, 1:] = np.maximum(g[:, 1:], dx)
    g[:, :-1] = np.maximum(g[:, :-1], dx)
    return g


def confidence_from_uncertainty(uncertainty: np.ndarray, scale: float = CONFIDENCE_SCALE) -> np.ndarray:
    """exp(−u / scale) as float32 in [0, 1]; NaN stays NaN."""
    u = np.asarray(uncertainty, np.float32)
    with np.errstate(invalid='ignore'):
        return np.exp(-np.maximum(u, 0) / np.float32(scale)).astype(np.float32)


def uncertainty_of(signals: dict) -> np.ndarray:
    """The shipped uncertainty from the estimator's signals: the K-seed spread when it was
    computed (confidence.samples > 1), else SHIPPED_SIGNAL."""
    return signals['seed_spread'] if 'seed_spread' in signals else signals[SHIPPED_SIGNAL]
