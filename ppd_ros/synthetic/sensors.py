"""Simulated metric sensors for a rendered frame: spinning LiDAR, RGB-D depth image, range finder.

The LiDAR and the range finder ray-cast the frame's scene from their own origin (not the depth
image), so occlusion and parallax between sensor and camera are real. All noise is seeded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .render import Frame, cast_pixel_rays
from .scene import Scene, trace_rays

# LiDAR axes (x forward, y left, z up) in the camera optical frame (x right, y down, z forward).
R_CAM_LIDAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
DEFAULT_LIDAR_OFFSET = (0.03, -0.10, -0.05)  # LiDAR origin in the camera frame: 3 cm right, 10 cm up, 5 cm back


@dataclass
class LidarScan:
    points: np.ndarray       # (N, 3) float32, LiDAR frame (x forward, y left, z up), metres
    T_cam_lidar: np.ndarray  # 4×4: p_cam = T_cam_lidar @ p_lidar
    lines: int
    ring: np.ndarray         # (N,) int16 scan line of each point (0 = lowest)


def default_T_cam_lidar(offset=DEFAULT_LIDAR_OFFSET) -> np.ndarray:
    """LiDAR mounted level with the camera, axes aligned, origin at `offset` in the camera frame."""
    T = np.eye(4)
    T[:3, :3] = R_CAM_LIDAR
    T[:3, 3] = offset
    return T


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def simulate_lidar(frame: Frame | Scene, lines: int = 16, *, T_world_cam=None, T_cam_lidar=None,
                   elevation_deg=(-15.0, 15.0), azimuth_step_deg: float = 0.4, range_noise: float = 0.015,
                   dropout: float = 0.05, min_range: float = 0.3, max_range: float = 100.0, seed=0) -> LidarScan:
    """A full 360° sweep: `lines` beams evenly spread over `elevation_deg`, one shot per azimuth step.

    Ranges get Gaussian noise (σ = range_noise m); each return is dropped with probability `dropout`;
    no return from the sky or outside [min_range, max_range]. Pass a Frame, or a Scene with
    `T_world_cam`. `T_cam_lidar` defaults to `default_T_cam_lidar()`.
    """
    if isinstance(frame, Scene):
        if T_world_cam is None:
            raise ValueError('simulate_lidar(scene, ...) needs T_world_cam')
        scene, T_wc = frame, np.asarray(T_world_cam, dtype=np.float64)
    else:
        if frame.scene is None or frame.T_world_cam is None:
            raise ValueError('this frame carries no scene/pose; render it with render_frame or render_view')
        scene, T_wc = frame.scene, frame.T_world_cam
    if int(lines) < 1:
        raise ValueError(f'lines must be >= 1, got {lines}')
    if not 0.0 <= dropout < 1.0 or range_noise < 0 or azimuth_step_deg <= 0:
        raise ValueError('need 0 <= dropout < 1, range_noise >= 0, azimuth_step_deg > 0')
    T_cl = default_T_cam_lidar() if T_cam_lidar is None else np.asarray(T_cam_lidar, dtype=np.float64)
    if T_cl.shape != (4, 4):
        raise ValueError(f'T_cam_lidar must be 4x4, got {T_cl.shape}')
    rng = _rng(seed)
    elevation = np.radians(np.linspace(elevation_deg[0], elevation_deg[1], int(lines)))
    azimuth = np.radians(np.arange(0.0, 360.0, azimuth_step_deg))
    el, az = np.meshgrid(elevation, azimuth, indexing='ij')
    ring = np.broadcast_to(np.arange(int(lines))[:, None], el.shape).ravel()
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)
    T_wl = T_wc @ T_cl
    world_dirs = dirs @ T_wl[:3, :3].T
    t, _ = trace_rays(scene, T_wl[:3, 3], world_dirs[:, 0], world_dirs[:, 1], world_dirs[:, 2])
    noisy = t + rng.normal(0.0, range_noise, t.shape) if range_noise > 0 else t
    keep = np.isfinite(t) & (noisy >= min_range) & (noisy <= max_range) & (rng.random(t.shape) >= dropout)
    points = (dirs[keep] * noisy[keep, None]).astype(np.float32)
    return LidarScan(points=points, T_cam_lidar=T_cl, lines=int(lines), ring=ring[keep].astype(np.int16))


def _depth_edges(depth: np.ndarray, valid: np.ndarray, ratio: float = 1.05) -> np.ndarray:
    """Pixels next to a depth jump larger than `ratio` (structured-light / ToF shadows)."""
    d = np.where(valid, depth, np.inf).astype(np.float32)
    edge = np.zeros(d.shape, bool)
    with np.errstate(invalid='ignore'):
        for a, b_, sl_a, sl_b in ((d[:, 1:], d[:, :-1], (slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                                  (d[1:, :], d[:-1, :], (slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
            jump = (np.maximum(a, b_) > ratio * np.minimum(a, b_))
            edge[sl_a] |= jump
            edge[sl_b] |= jump
    return edge & valid


def _smooth_field(rng, height: int, width: int, cell_px: float) -> np.ndarray:
    """Random lattice values every `cell_px` pixels, smoothly interpolated (smoothstep weights)."""
    gh, gw = int(np.ceil(height / cell_px)) + 2, int(np.ceil(width / cell_px)) + 2
    lattice = rng.random((gh, gw), dtype=np.float32)
    y = np.arange(height, dtype=np.float32) / np.float32(cell_px)
    x = np.arange(width, dtype=np.float32) / np.float32(cell_px)
    y0, x0 = y.astype(np.int64), x.astype(np.int64)
    fy, fx = y - y0, x - x0
    fy, fx = (fy * fy * (3 - 2 * fy))[:, None], (fx * fx * (3 - 2 * fx))[None, :]
    a = lattice[y0[:, None], x0[None, :]]
    b = lattice[y0[:, None], x0[None, :] + 1]
    c = lattice[y0[:, None] + 1, x0[None, :]]
    d = lattice[y0[:, None] + 1, x0[None, :] + 1]
    return (a + fx * (b - a)) + fy * ((c + fx * (d - c)) - (a + fx * (b - a)))


def _dilate3(mask: np.ndarray) -> np.ndarray:
    """3×3 binary dilation."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


def simulate_rgbd(frame: Frame, hole_fraction: float = 0.5, noise_at_1m: float = 0.002, *,
                  hole_size_px: float = 24.0, speckle: float = 0.15, min_range: float = 0.2,
                  max_range: float | None = None, edge_holes: bool = True, seed=0) -> np.ndarray:
    """Registered metric depth image (float32 m, 0 = invalid) like an RGB-D sensor's.

    Noise: Gaussian with σ = noise_at_1m · d² (structured-light / stereo behaviour).
    Holes: exactly round(hole_fraction · #valid GT pixels) of the valid pixels read 0, counting
    those out of [min_range, max_range]: first pixels at depth jumps (sensor shadows, if
    `edge_holes`), then the lowest values of a smooth random field (blobs ~`hole_size_px` across)
    with a little per-pixel `speckle` mixed in, so holes are blobby with ragged borders.
    """
    if not 0.0 <= hole_fraction <= 1.0:
        raise ValueError(f'hole_fraction must be in [0, 1], got {hole_fraction}')
    if noise_at_1m < 0 or hole_size_px <= 0:
        raise ValueError('need noise_at_1m >= 0 and hole_size_px > 0')
    rng = _rng(seed)
    valid = frame.valid
    H, W = valid.shape
    depth = np.where(valid, frame.depth, 0.0).astype(np.float64)
    noisy = depth + rng.normal(0.0, 1.0, depth.shape) * noise_at_1m * depth * depth
    usable = valid & (noisy >= min_range)
    if max_range is not None:
        usable &= noisy <= max_range
    target = int(round(hole_fraction * int(valid.sum())))
    need = target - int((valid & ~usable).sum())
    if need > 0:
        field = _smooth_field(rng, H, W, hole_size_px)
        field += np.float32(speckle) * rng.random((H, W), dtype=np.float32)
        if edge_holes:
            field[_dilate3(_depth_edges(frame.depth, valid))] -= 10.0  # shadows go first
        candidates = np.flatnonzero(usable)
        if candidates.size:
            order = np.argpartition(field.reshape(-1)[candidates], min(need, candidates.size) - 1)[:need]
            usable.reshape(-1)[candidates[order]] = False
    return np.where(usable, noisy, 0.0).astype(np.float32)


def simulate_range(frame: Frame, pixel=None, noise: float = 0.005, *, max_range: float | None = None, seed=0) -> float:
    """Range (m) along the ray through `pixel` = (u, v) (default: the image centre), from a range finder
    at the camera centre aligned with that ray, with Gaussian noise σ = `noise` m; NaN for no return."""
    intr = frame.intrinsics
    u, v = ((intr.width - 1) / 2.0, (intr.height - 1) / 2.0) if pixel is None else map(float, pixel)
    if not (-0.5 <= u <= intr.width - 0.5 and -0.5 <= v <= intr.height - 0.5):
        raise ValueError(f'pixel ({u}, {v}) is outside the {intr.width}x{intr.height} image')
    rng, _ = cast_pixel_rays(frame, u, v)
    r = float(rng[0])
    if not np.isfinite(r) or (max_range is not None and r > max_range):
        return float('nan')
    return r + float(_rng(seed).normal(0.0, noise)) if noise > 0 else r


__all__ = ['LidarScan', 'R_CAM_LIDAR', 'default_T_cam_lidar', 'simulate_lidar', 'simulate_rgbd', 'simulate_range']
