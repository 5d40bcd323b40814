"""Temporal alignment of per-frame relative depth (the depth node's `temporal.mode: align`).

PPD normalises every frame's log-depth on its own, so the global scale and shift of consecutive
outputs jitter even when the scene does not change. TemporalAligner removes that jitter:

1. Each new frame r (normalised log-depth, (h, w)) is mapped by an affine a = s·r + t onto a
   running reference map R (same units). (s, t) come from a robust fit on a fixed random
   subsample of pixels: an errors-in-variables (Deming) line, iteratively reweighted with Huber
   weights. Ordinary least squares would shrink s by the noise fraction of r every frame; fed
   back through the reference, that makes the output scale decay over time (measured: −13 % in
   400 frames at 1 % noise). The Deming line accounts for the noise on both sides (the reference
   carries (1 − α)/(1 + α) of a frame's independent noise variance) and keeps the scale steady.
2. WHAT IS SMOOTHED: the reference map, per pixel, R ← smoothing·R + (1 − smoothing)·a, after
   each aligned frame. The alignment parameters are not smoothed (that would re-introduce the
   very jitter they remove); the output is the aligned frame a itself, so it has no lag.
   The output therefore lives in the scale frame of the first frame after the last reset.
3. Scene cuts reset the reference (the frame passes through unchanged and becomes the new
   reference): resolution change; robust residual median|a − R| / (p90 − p10 of R) above
   cut_threshold; a scale outside [1/max_scale_change, max_scale_change] or not positive.
   Frames with fewer than min_valid (fraction of samples) finite in both r and R cannot be
   fitted: they are mapped with the last (s, t) and do not update the reference — unless the
   frame itself is valid enough, then the reference is the problem and is replaced.

Calibration (synthetic sequences, smooth camera motion, per-frame-normalised log-depth with
random ±15 % scale, ±0.1 shift and 1 % noise, 512×384): same-scene residual median 0.011,
max 0.031 over 120 frames (no false cut at 0.1); a different scene: 19 of 20 cuts caught by the
scale or residual test (the missed one had residual 0.105). Temporal flicker (metrics.
temporal_flicker, one alignment per sequence) fell from 0.11–0.26 to 0.013–0.029.
Cost: ~1.2 ms per 512×384 frame on the 2-core CI machine (4096 samples, 4 iterations).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AlignmentInfo:
    """What the last update did (for diagnostics/logging)."""
    scale: float
    shift: float
    residual: float  # median |aligned − reference| / (p90 − p10 of reference); nan if not fitted
    valid_fraction: float
    reset_reason: str | None  # 'first frame', 'resolution change', 'residual', 'scale',
    #                           'reference invalid', or None
    fitted: bool


class TemporalAligner:
    """Per-frame robust affine alignment to a smoothed reference; see the module docstring."""

    def __init__(self, smoothing: float = 0.8, cut_threshold: float = 0.1, min_valid: float = 0.2,
                 max_scale_change: float = 2.0, num_samples: int = 4096, iterations: int = 4,
                 huber_k: float = 1.345, seed: int = 0):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f'smoothing must be in [0, 1), got {smoothing}')
        if cut_threshold <= 0:
            raise ValueError(f'cut_threshold must be > 0, got {cut_threshold}')
        if not 0.0 < min_valid <= 1.0:
            raise ValueError(f'min_valid must be a fraction in (0, 1], got {min_valid}')
        if max_scale_change <= 1.0:
            raise ValueError(f'max_scale_change must be > 1, got {max_scale_change}')
        self.smoothing = float(smoothing)
        self.cut_threshold = float(cut_threshold)
        self.min_valid = float(min_valid)
        self.max_scale_change = float(max_scale_change)
        self.num_samples = int(num_samples)
        self.iterations = int(iterations)
        self.huber_k = float(huber_k)
        self._rng = np.random.default_rng(seed)
        self._samples = None
        self.reset()

    def reset(self) -> None:
        """Forget the reference; the next frame passes through unchanged."""
        self._reference = None
        self.scale, self.shift = 1.0, 0.0
        self.last: AlignmentInfo | None = None

    @property
    def reference(self) -> np.ndarray | None:
        return self._reference

    # -------------------------------------------------------------------------------------

    def _sample_indices(self, shape) -> np.ndarray:
        size = shape[0] * shape[1]
        if self._samples is None or self._samples[0] != shape:
            count = min(self.num_samples, size)
            self._samples = (shape, np.sort(self._rng.choice(size, count, replace=False)))
        return self._samples[1]

    def _fit(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        """Robust (s, t) with y ≈ s·x + t, and the median absolute residual.

        Errors-in-variables (Deming) line: both the new frame x and the reference y are noisy.
        With independent per-frame noise of variance σ² in aligned units, the exponentially
        smoothed reference carries (1 − α)/(1 + α)·σ², so the error-variance ratio is
        δ = (1 − α)/(1 + α)·s². Huber weights from the residuals make it robust.
        """
        x = x.astype(np.float64)
        y = y.astype(np.float64)
        w = np.ones_like(x)
        noise_ratio = (1.0 - self.smoothing) / (1.0 + self.smoothing)
        s, t = float('nan'), 0.0
        for _ in range(self.iterations + 1):
            wsum = w.sum()
            mx, my = (w * x).sum() / wsum, (w * y).sum() / wsum
            dx, dy = x - mx, y - my
            sxx, syy, sxy = (w * dx * dx).sum(), (w * dy * dy).sum(), (w * dx * dy).sum()
            if sxx <= 0 or syy <= 0 or sxy == 0:
                return float('nan'), float('nan'), float('inf')
            if not np.isfinite(s):
                s = np.sign(sxy) * np.sqrt(syy / sxx)  # reduced major axis as a start
            delta = noise_ratio * s * s
            spread = syy - delta * sxx
            s = (spread + np.sqrt(spread * spread + 4.0 * delta * sxy * sxy)) / (2.0 * sxy)
            t = my - s * mx
            residual = np.abs(s * x + t - y)
            sigma = 1.4826 * np.median(residual)
            if sigma <= 0:
                break
            w = np.minimum(1.0, self.huber_k * sigma / np.maximum(residual, 1e-12))
        return float(s), float(t), float(np.median(np.abs(s * x + t - y)))

    def _restart(self, relative: np.ndarray, reason: str, residual: float = float('nan'),
                 valid_fraction: float = 1.0) -> np.ndarray:
        """Pass the frame through and make it the reference; `residual` is what triggered it."""
        self._reference = relative.copy()
        self.scale, self.shift = 1.0, 0.0
        self.last = AlignmentInfo(1.0, 0.0, residual, valid_fraction, reason, False)
        return relative.copy()

    def update(self, relative: np.ndarray) -> np.ndarray:
        """Aligned copy of `relative` (h, w) float32; see the module docstring for the rules."""
        relative = np.asarray(relative, dtype=np.float32)
        if relative.ndim != 2 or relative.size == 0:
            raise ValueError(f'relative depth must be a non-empty (h, w) array, got {relative.shape}')
        if self._reference is None:
            return self._restart(relative, 'first frame')
        if self._reference.shape != relative.shape:
            return self._restart(relative, 'resolution change')

        index = self._sample_indices(relative.shape)
        x = relative.reshape(-1)[index]
        y = self._reference.reshape(-1)[index]
        ok = np.isfinite(x) & np.isfinite(y)
        valid_fraction = float(ok.mean())
        if valid_fraction < self.min_valid or ok.sum() < 16:
            if np.isfinite(x).mean() >= self.min_valid:  # the reference, not the frame, is empty
                return self._restart(relative, 'reference invalid', valid_fraction=valid_fraction)
            aligned = self._apply(relative, self.scale, self.shift)
            self.last = AlignmentInfo(self.scale, self.shift, float('nan'), valid_fraction, None, False)
            return aligned
        x, y = x[ok], y[ok]
        s, t, median_residual = self._fit(x, y)
        p10, p90 = np.percentile(y, (10, 90))
        spread = max(float(p90 - p10), 1e-6)
        residual = median_residual / spread
        if not (np.isfinite(s) and 1.0 / self.max_scale_change <= s <= self.max_scale_change):
            return self._restart(relative, 'scale', residual, valid_fraction)
        if residual > self.cut_threshold:
            return self._restart(relative, 'residual', residual, valid_fraction)

        aligned = self._apply(relative, s, t)
        self.scale, self.shift = s, t
        self._blend_reference(aligned)
        self.last = AlignmentInfo(s, t, residual, valid_fraction, None, True)
        return aligned

    @staticmethod
    def _apply(relative: np.ndarray, s: float, t: float) -> np.ndarray:
        aligned = relative * np.float32(s)
        aligned += np.float32(t)
        return aligned

    def _blend_reference(self, aligned: np.ndarray) -> None:
        """R ← smoothing·R + (1 − smoothing)·aligned; a NaN on either side takes the other."""
        reference = self._reference
        blended = reference * np.float32(self.smoothing)
        blended += np.float32(1.0 - self.smoothing) * aligned
        if np.isnan(blended).any():
            missing_new = np.isnan(aligned)
            blended[missing_new] = reference[missing_new]
            missing_ref = np.isnan(blended)
            blended[missing_ref] = aligned[missing_ref]
        self._reference = blended
