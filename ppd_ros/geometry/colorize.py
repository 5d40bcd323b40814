"""Depth → false-colour BGR image for viewing (RViz, rqt_image_view), via a 256-entry LUT.

Colormap: Turbo (perceptually smooth rainbow, Google 2019), taken once from OpenCV's built-in
table — no matplotlib. Convention: NEAR = WARM (red), FAR = COOL (blue), as in most depth
visualisations; invalid (NaN/inf) pixels get `invalid_color`.
Works for metric depth and for PPD's relative depth alike: both grow with distance.
"""
from __future__ import annotations

import cv2
import numpy as np

MODES = ('percentile', 'fixed')


def _turbo_lut() -> np.ndarray:
    """(256, 3) uint8 BGR: index 0 = near (dark red) … 255 = far (dark blue)."""
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    lut = cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO).reshape(256, 3)
    lut = np.ascontiguousarray(lut[::-1])  # Turbo runs blue → red; flip so near is warm
    lut.setflags(write=False)
    return lut


TURBO_NEAR_WARM_BGR = _turbo_lut()


def depth_range(depth: np.ndarray, percentiles=(2, 98), max_samples: int = 20000) -> tuple[float, float]:
    """Robust (lo, hi) of the finite values from a strided subsample (exact percentiles of all
    pixels cost ~10× more and differ by a fraction of a colour step)."""
    depth = np.asarray(depth)
    stride = max(1, int(np.sqrt(depth.size / max_samples)))
    sample = depth[::stride, ::stride].ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, percentiles)
    return float(lo), float(hi)


def colorize_depth(depth: np.ndarray, mode: str = 'percentile', lo: float | None = None,
                   hi: float | None = None, percentiles=(2, 98), invalid_color=(0, 0, 0)) -> np.ndarray:
    """(H, W, 3) uint8 BGR false colour of an (H, W) depth map; near = red, far = blue.

    mode 'percentile': the colour range spans the given percentiles of this frame's finite depth
    (lo/hi, if given, override either end). mode 'fixed': lo and hi are required (e.g. metres),
    so colours mean the same distance in every frame. Values outside the range saturate.
    invalid_color is BGR.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f'depth must be (H, W), got shape {depth.shape}')
    if mode == 'fixed':
        if lo is None or hi is None:
            raise ValueError("mode 'fixed' needs both lo and hi")
    elif mode == 'percentile':
        if lo is None or hi is None:
            p_lo, p_hi = depth_range(depth, percentiles)
            lo = p_lo if lo is None else lo
            hi = p_hi if hi is None else hi
    else:
        raise ValueError(f"unknown colorize mode '{mode}'; choose one of {', '.join(MODES)}")
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f'colour range must be finite, got lo={lo} hi={hi}')
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-6, 1e-6)
    scale = 255.0 / (hi - lo)
    # NaN → 0 after clipping in float, masked afterwards; rounding to the nearest LUT entry.
    index = cv2.convertScaleAbs(np.clip(depth, lo, hi), alpha=scale, beta=-lo * scale)
    bgr = cv2.applyColorMap(index, TURBO_NEAR_WARM_BGR.reshape(256, 1, 3))
    invalid = ~np.isfinite(depth)
    if invalid.any():
        bgr[invalid] = np.asarray(invalid_color, dtype=np.uint8)
    return bgr
