"""Sparsification curves and AUSE: does an uncertainty rank the pixels by their real error?

Remove the most uncertain pixels first, a fraction at a time, and follow the mean error of what is
left. The oracle removes by the true error (the best any ranking can do), a random order keeps the
mean flat. AUSE, the area between a signal's curve and the oracle's (both divided by the full
mean error, so frames and models compare), is 0 for a perfect ranking and about the random
order's for a useless one.
"""
from __future__ import annotations

import numpy as np

FRACTIONS = np.linspace(0.0, 0.98, 50)


def sparsification_curve(error: np.ndarray, uncertainty: np.ndarray, fractions=FRACTIONS) -> np.ndarray:
    """Mean error of the pixels kept after removing each fraction, most uncertain first, divided
    by the mean error of all pixels. Ties keep the pixels' order (a stable sort)."""
    error = np.asarray(error, np.float64).ravel()
    order = np.argsort(-np.asarray(uncertainty, np.float64).ravel(), kind='stable')
    ranked = error[order]
    total = ranked.size
    # mean of ranked[k:] for every k, from the suffix sums
    suffix = np.cumsum(ranked[::-1])[::-1]
    means = []
    for f in fractions:
        k = min(int(round(f * total)), total - 1)
        means.append(suffix[k] / (total - k))
    return np.asarray(means) / max(ranked.mean(), 1e-12)


def area(curve: np.ndarray, fractions=FRACTIONS) -> float:
    return float(np.trapezoid(curve, fractions))


def ause(error: np.ndarray, uncertainty: np.ndarray, fractions=FRACTIONS) -> float:
    """Area between the signal's sparsification curve and the oracle's (lower is better)."""
    return area(sparsification_curve(error, uncertainty, fractions) - sparsification_curve(error, error, fractions),
                fractions)
