"""Depth normalisation used as the diffusion target (paper eq. 8, as in the released training code).

log(d + 1) is mapped so that its 2 % / 98 % percentiles (over valid pixels closer than 80 m) land on
−0.5 / +0.5; values beyond are clamped to [−1, 0.5] (the released code's clamp). Larger = farther.
"""
from __future__ import annotations

import numpy as np

FAR_CLIP_M = 80.0
LOW_PERCENTILE = 2.0
HIGH_PERCENTILE = 98.0


def normalise_log_depth(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) metres + valid mask -> (H, W) float32 normalised log-depth (invalid pixels: 0)."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool) & np.isfinite(depth) & (depth > 0)
    if depth.shape != valid.shape:
        raise ValueError(f'depth {depth.shape} and valid {valid.shape} differ in shape')
    usable = valid & (depth < FAR_CLIP_M)
    if not usable.any():
        raise ValueError('depth map has no valid pixel closer than 80 m')
    log_depth = np.log(np.where(valid, depth, 1.0) + 1.0)
    low, high = np.percentile(log_depth[usable], [LOW_PERCENTILE, HIGH_PERCENTILE])
    span = max(float(high - low), 1e-6)
    normalised = np.clip((log_depth - low) / span, -0.5, 1.0) - 0.5
    return np.where(valid, normalised, 0.0).astype(np.float32)
