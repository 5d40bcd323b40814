"""Multi-frame scale fit for a single range finder (`range.window_frames` > 1).

One reading per frame fixes only one degree of freedom of log(d + 1) = a·r + b. A moving robot's
beam hits surfaces at different relative depths, so the (r, d) pairs of the last N frames can fix
both a and b — but only when (a, b) are shared across the window, i.e. when the relative depth is
temporally consistent: the upstream depth node must run `temporal.mode: align` (TemporalAligner
maps every frame onto one running reference). Without it PPD normalises each frame on its own and
the window mixes incompatible frames; the residual check below then keeps resetting the window.

The fit is Bayesian: the range prior of `fit_with_prior` (Gaussian on the log depths at r = 0 and
r = 1) plus every window sample, with samples farther than the inlier band from the fit dropped
(a beam on a depth edge, a reading of a passing object) and the fit redone. While the inlier
samples span less than `min_spread` in r, the fit uses the newest reading alone — exactly the
single-frame prior mode (kind 'prior'). Otherwise kind 'window'. The default min_spread is 0: the
prior already keeps the slope where few, close readings leave it open, and on the synthetic
sequences (fusion_report --sequence) every min_spread > 0 tried was worse.

The fusion node cannot see the aligner's resets. A reset (or a scene change) shows as readings
that disagree with the window's fit: after `max_inconsistent` such readings in a row, the window
keeps only those and starts again. The node also resets it when the image size changes.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .fit import FitConfig, FitFailure, ScaleFit, fit_with_prior


@dataclass(frozen=True)
class RangeWindowConfig:
    """frames: readings kept (1 = the single-frame prior mode). min_spread: r spread (p90 − p10 of
    the inliers) needed before the window's readings fix the slope. reset_residual: a new reading
    this far (log(d + 1) units) from the window's fit is inconsistent; max_inconsistent in a row
    restart the window from them."""
    frames: int = 30
    min_spread: float = 0.0
    reset_residual: float = 0.3
    max_inconsistent: int = 3

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError(f'window frames must be ≥ 1, got {self.frames}')
        if not self.min_spread >= 0:
            raise ValueError(f'min_spread must be ≥ 0, got {self.min_spread}')
        if not self.reset_residual > 0:
            raise ValueError(f'reset_residual must be > 0, got {self.reset_residual}')
        if self.max_inconsistent < 1:
            raise ValueError(f'max_inconsistent must be ≥ 1, got {self.max_inconsistent}')


@dataclass(frozen=True)
class RangePrior:
    """The range finder's prior (see scale_fit.fit_with_prior): metres at r = 0 / 1 and spreads."""
    near: float
    far: float
    near_sigma: float = 0.2
    far_sigma: float = 0.5
    sample_sigma: float = 0.05


class RangeWindow:
    """The last `frames` range readings (relative value, metric z-depth) and their joint fit."""

    def __init__(self, config: RangeWindowConfig = RangeWindowConfig()):
        self.config = config
        self._r: deque = deque(maxlen=config.frames)
        self._d: deque = deque(maxlen=config.frames)
        self._key = None
        self._last_fit: ScaleFit | None = None
        self._inconsistent = 0
        self.last_reset = ''

    def reset(self, why: str = 'reset') -> None:
        self._r.clear()
        self._d.clear()
        self._last_fit = None
        self._inconsistent = 0
        self.last_reset = why

    @property
    def count(self) -> int:
        return len(self._r)

    @property
    def spread(self) -> float:
        """p90 − p10 of the readings' relative values (0 with fewer than 2)."""
        if len(self._r) < 2:
            return 0.0
        lo, hi = np.percentile(np.asarray(self._r), (10, 90))
        return float(hi - lo)

    def add(self, relative: float, depth: float, key=None) -> str | None:
        """Add one reading; `key` (e.g. the image size) resets the window when it changes.
        Returns why the window was reset before adding, or None."""
        relative, depth = float(relative), float(depth)
        if not (np.isfinite(relative) and np.isfinite(depth) and depth > 0):
            raise ValueError(f'range sample needs finite relative and positive depth, got r={relative} d={depth}')
        why = None
        if key != self._key:
            if self._key is not None:
                why = f'size changed from {self._key} to {key}'
                self.reset(why)
            self._key = key
        fit = self._last_fit
        if fit is not None and fit.kind == 'window':
            if abs(np.log1p(depth) - fit.predict_log(relative)) > self.config.reset_residual:
                self._inconsistent += 1
            else:
                self._inconsistent = 0
            if self._inconsistent >= self.config.max_inconsistent:
                keep = self._inconsistent - 1  # the earlier inconsistent readings start the new window
                r, d = list(self._r)[-keep:] if keep else [], list(self._d)[-keep:] if keep else []
                why = (f'{self._inconsistent} readings in a row off the window fit by > '
                       f'{self.config.reset_residual:g} log units (aligner reset or scene change?)')
                self.reset(why)
                self._r.extend(r)
                self._d.extend(d)
        self._r.append(relative)
        self._d.append(depth)
        return why

    def fit(self, prior: RangePrior, config: FitConfig = FitConfig()) -> ScaleFit | FitFailure:
        """Robust Bayesian fit of the window (see the module docstring)."""
        if not self._r:
            return FitFailure('no range reading in the window')
        r = np.asarray(self._r, dtype=np.float64)
        d = np.asarray(self._d, dtype=np.float64)
        args = (prior.near, prior.far, prior.near_sigma, prior.far_sigma, prior.sample_sigma, config)
        result = fit_with_prior(r, d, *args)
        if r.size >= 2 and result.ok:
            y = np.log1p(d)
            inliers = np.abs(y - result.predict_log(r)) < config.inlier_threshold
            for _ in range(2):
                if inliers.sum() < 2:
                    break
                refit = fit_with_prior(r[inliers], d[inliers], *args)
                if not refit.ok:
                    break
                result = refit
                inliers = np.abs(y - result.predict_log(r)) < config.inlier_threshold
            lo, hi = np.percentile(r[inliers], (10, 90)) if inliers.sum() >= 2 else (0.0, 0.0)
            if hi - lo >= self.config.min_spread and result.ok:
                res = y[inliers] - result.predict_log(r[inliers])
                result = ScaleFit(result.a, result.b, float(inliers.mean()), int(r.size),
                                  float(np.sqrt(np.mean(np.square(res)))), 'window')
                self._last_fit = result
                return result
        self._last_fit = None
        return fit_with_prior(r[-1:], d[-1:], *args)  # too little spread: the single-frame prior fit
