"""Depth image → 3-D points in the optical frame (x right, y down, z forward), as depth_image_proc."""
from __future__ import annotations

import functools

import numpy as np

from .camera import Intrinsics


@functools.lru_cache(maxsize=8)
def pixel_rays(intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (x/z, y/z) for this camera, read-only. Cached per Intrinsics: a stream's camera
    rarely changes, so depth_to_points computes them once per camera, not per frame."""
    u = (np.arange(intr.width, dtype=np.float32) - np.float32(intr.cx)) / np.float32(intr.fx)
    v = (np.arange(intr.height, dtype=np.float32) - np.float32(intr.cy)) / np.float32(intr.fy)
    return np.broadcast_to(u[None, :], (intr.height, intr.width)), np.broadcast_to(v[:, None], (intr.height, intr.width))


def depth_to_points(depth: np.ndarray, intr: Intrinsics, rays=None) -> np.ndarray:
    """(H, W, 3) float32 points; NaN where depth is NaN, inf or ≤ 0."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape != (intr.height, intr.width):
        raise ValueError(f'depth is {depth.shape[1]}x{depth.shape[0]} but the camera is {intr.width}x{intr.height}')
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
    rx, ry = rays if rays is not None else pixel_rays(intr)
    points = np.empty(depth.shape + (3,), dtype=np.float32)
    np.multiply(rx, z, out=points[..., 0])
    np.multiply(ry, z, out=points[..., 1])
    points[..., 2] = z
    return points
