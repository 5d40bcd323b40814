"""PPD's relative output r and metres d are related by log(d + 1) = a·r + b.

That is the affine-in-log(d+1) model of the released code's metric recovery; the fusion node fits
(a, b) against a metric sensor, the depth node uses an assumed near/far range until then.
"""
from __future__ import annotations

import numpy as np


def relative_to_metric(relative: np.ndarray, a: float, b: float) -> np.ndarray:
    """Metres from relative depth; non-finite input stays NaN, never 0 (REP 118)."""
    r = np.asarray(relative, dtype=np.float32)
    with np.errstate(over='ignore', invalid='ignore'):
        d = np.expm1(np.float32(a) * r + np.float32(b))
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d


def metric_to_relative(depth: np.ndarray, a: float, b: float) -> np.ndarray:
    if a == 0:
        raise ValueError('scale a must be non-zero')
    d = np.asarray(depth, dtype=np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        return ((np.log1p(d) - b) / a).astype(np.float32)


def near_far_scale(near: float, far: float) -> tuple[float, float]:
    """(a, b) that map r = 0 to `near` metres and r = 1 to `far` metres."""
    if not (0.0 < near < far and np.isfinite(far)):
        raise ValueError(f'need 0 < near < far, got near={near} far={far}')
    b = float(np.log1p(near))
    return float(np.log1p(far)) - b, b
