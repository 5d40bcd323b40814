"""Pinhole rendering of a scene: RGB, exact depth, validity, and seeded frames / sequences.

Depth is the z-depth (along the optical axis, not the ray length) of the pixel-centre ray's
nearest hit, computed analytically — no value is ever blended across an object edge.
Colour is antialiased by 2×2 supersampling (offsets ±¼ px) on pixels whose surface differs from
a 4-neighbour's (object or face boundaries); elsewhere the pixel-centre sample is used and the
textures are band-limited by the pixel footprint instead.

Invalid depth: rays that hit nothing (the outdoor sky) and hits beyond the scene's `max_depth`
have `valid = False` and depth = +inf ("too far", as REP 118 encodes it in float depth images).
Indoor scenes are closed rooms, so every pixel is valid.

Camera pose `T_world_cam` (4×4) maps the optical frame (x right, y down, z forward) to the world
frame (x forward, y left, z up).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry.camera import Intrinsics
from .pose import OPTICAL_IN_WORLD, camera_pose
from .scene import Scene, shade, trace_grid, trace_rays
from .shading import to_srgb8

SUPERSAMPLE_OFFSETS = ((-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25))


@dataclass(eq=False)
class Frame:
    rgb: np.ndarray            # H×W×3 uint8 RGB
    depth: np.ndarray          # H×W float32 z-depth in metres; +inf where not valid
    valid: np.ndarray          # H×W bool
    intrinsics: Intrinsics
    T_world_cam: np.ndarray = field(default=None, repr=False)   # 4×4 camera pose
    scene: Scene = field(default=None, repr=False)               # for sensors that ray-cast the same world
    object_id: np.ndarray = field(default=None, repr=False)     # H×W int16 primitive index, −1 = nothing
    kind: str = 'custom'
    seed: int | None = None


def default_intrinsics(width: int = 640, height: int = 480) -> Intrinsics:
    """fx = fy = 525 at 640 px wide (Kinect-like, ~63° horizontal FOV), principal point centred."""
    return Intrinsics.from_focal(525.0 * width / 640.0, width, height)


def _check_pose(T):
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ValueError(f'camera pose must be a finite 4x4 matrix, got shape {T.shape}')
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError('camera pose rotation is not a proper rotation matrix')
    return T


def _boundary_pixels(surface_id: np.ndarray) -> np.ndarray:
    """Pixels whose surface differs from a 4-neighbour's (both sides marked)."""
    edge = np.zeros(surface_id.shape, bool)
    dh = surface_id[:, 1:] != surface_id[:, :-1]
    dv = surface_id[1:, :] != surface_id[:-1, :]
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    edge[1:, :] |= dv
    edge[:-1, :] |= dv
    return edge


def render_view(scene: Scene, T_world_cam, intrinsics: Intrinsics, supersample: bool = True) -> Frame:
    """Render one view of `scene`; see the module docstring for what each output means."""
    T = _check_pose(T_world_cam)
    R, origin = T[:3, :3], T[:3, 3]
    intr = intrinsics
    H, W = intr.height, intr.width
    pixel_angle = 1.0 / max(intr.fx, intr.fy)
    rays, t, prim = trace_grid(scene, origin, R, intr)
    flat_rays = tuple(r.reshape(-1) for r in rays)
    rgb, surface = shade(scene, origin, *flat_rays, t.reshape(-1), prim.reshape(-1), pixel_angle)
    surface = surface.reshape(H, W)
    if supersample:
        edge = np.flatnonzero(_boundary_pixels(surface))
        if edge.size:
            acc = np.zeros((edge.size, 3), np.float32)
            rows, cols = np.divmod(edge, W)
            for du, dv in SUPERSAMPLE_OFFSETS:
                x, y = (cols + du - intr.cx) / intr.fx, (rows + dv - intr.cy) / intr.fy
                sub = tuple(R[i, 0] * x + R[i, 1] * y + R[i, 2] for i in range(3))
                ts, ps = trace_rays(scene, origin, *sub)
                acc += shade(scene, origin, *sub, ts, ps, pixel_angle)[0]
            rgb[edge] = acc / len(SUPERSAMPLE_OFFSETS)
    valid = np.isfinite(t) & (t <= scene.max_depth)
    depth = np.where(valid, t, np.inf).astype(np.float32)
    return Frame(rgb=to_srgb8(rgb).reshape(H, W, 3), depth=depth, valid=valid, intrinsics=intr,
                 T_world_cam=T, scene=scene, object_id=np.where(valid, prim, -1).astype(np.int16),
                 kind=scene.kind)


def _resolve_intrinsics(intrinsics, width, height, hfov_deg, rng):
    if intrinsics is not None:
        if not isinstance(intrinsics, Intrinsics):
            raise TypeError(f'intrinsics must be an Intrinsics, got {type(intrinsics).__name__}')
        return intrinsics
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f'image size must be positive, got {width}x{height}')
    if hfov_deg is None:
        return default_intrinsics(int(width), int(height))
    fov = float(rng.uniform(*hfov_deg)) if np.ndim(hfov_deg) == 1 else float(hfov_deg)
    return Intrinsics.from_fov(fov, int(width), int(height))


def render_frame(seed: int, width: int = 640, height: int = 480, kind: str = 'indoor',
                 intrinsics: Intrinsics | None = None, hfov_deg=None) -> Frame:
    """One frame of a seeded random scene (same seed and arguments → identical frame).

    kind: 'indoor' (a furnished room, depths ~0.5–10 m) or 'outdoor' (street-like, ~1–80 m, sky).
    intrinsics: overrides width/height; otherwise `default_intrinsics`, or a pinhole with a
    horizontal FOV of `hfov_deg` degrees (a number, or a (low, high) range drawn from the seed).
    """
    from .worlds import build_world
    rng = np.random.default_rng(seed)
    # The FOV draw has its own stream, so asking for a random FOV does not change the scene.
    intr = _resolve_intrinsics(intrinsics, width, height, hfov_deg, np.random.default_rng([int(seed), 0xF07]))
    scene, T = build_world(rng, kind, clearance=0.0)
    frame = render_view(scene, T, intr)
    frame.seed = seed
    return frame


TRAJECTORY_REACH = 2.4  # the smooth path stays within TRAJECTORY_REACH · amplitude of its start


def smooth_trajectory(rng: np.random.Generator, base_pose: np.ndarray, num_frames: int, amplitude: float,
                      angle_amplitude_deg: float = 4.0) -> list:
    """Poses on a smooth bounded path starting at `base_pose`: each position axis and yaw/pitch/roll
    follows sin(2πi/period + φ) − sin(φ) (period 40–90 frames), so steps stay small (≲ amplitude·2π/40
    per frame) and the camera stays within TRAJECTORY_REACH·amplitude of the start."""
    periods = rng.uniform(40.0, 90.0, size=6)
    phases = rng.uniform(0.0, 2 * np.pi, size=6)
    axis_scale = np.array([1.0, 0.6, 0.25]) * amplitude
    angle_scale = np.radians(angle_amplitude_deg) * np.array([1.0, 0.35, 0.15])
    R0, p0 = base_pose[:3, :3], base_pose[:3, 3]
    poses = []
    for i in range(num_frames):
        w = np.sin(2 * np.pi * i / periods + phases) - np.sin(phases)  # starts at the base pose
        offset = w[:3] * axis_scale
        yaw, pitch, roll = w[3:] * angle_scale
        delta = camera_pose(np.zeros(3), yaw, pitch, roll)[:3, :3] @ OPTICAL_IN_WORLD.T  # world-frame rotation
        T = np.eye(4)
        T[:3, :3] = delta @ R0
        T[:3, 3] = p0 + offset
        poses.append(T)
    return poses


def camera_sequence(seed: int, num_frames: int, width: int = 640, height: int = 480, kind: str = 'indoor',
                    motion: str = 'smooth', intrinsics: Intrinsics | None = None) -> list:
    """Frames of one fixed seeded scene: a static camera, or a smooth small-step trajectory.

    The scene keeps its objects clear of the whole trajectory. Reach of the motion: indoor ≤ ~0.4 m,
    outdoor ≤ ~1.6 m, yaw ≤ ~8°; steps ≲ 3 cm (indoor) / 12 cm (outdoor) and ≲ 0.6° per frame.
    """
    from .worlds import build_world
    if motion not in ('smooth', 'static'):
        raise ValueError(f"motion must be 'smooth' or 'static', got {motion!r}")
    if int(num_frames) < 1:
        raise ValueError(f'num_frames must be >= 1, got {num_frames}')
    rng = np.random.default_rng(seed)
    intr = _resolve_intrinsics(intrinsics, width, height, None, rng)
    amplitude = 0.0 if motion == 'static' else (0.2 if kind == 'indoor' else 0.8)
    scene, base = build_world(rng, kind, clearance=TRAJECTORY_REACH * amplitude)
    if motion == 'static':
        first = render_view(scene, base, intr)
        first.seed = seed
        frames = [first]
        for _ in range(int(num_frames) - 1):
            frames.append(Frame(first.rgb.copy(), first.depth.copy(), first.valid.copy(), intr, base.copy(),
                                scene, first.object_id.copy(), first.kind, seed))
        return frames
    frames = []
    for T in smooth_trajectory(rng, base, int(num_frames), amplitude):
        frame = render_view(scene, T, intr)
        frame.seed = seed
        frames.append(frame)
    return frames


def cast_pixel_rays(frame: Frame, u, v):
    """Ray-cast the frame's scene through (sub)pixel positions: (range along the ray in m, z-depth)."""
    if frame.scene is None or frame.T_world_cam is None:
        raise ValueError('this frame carries no scene/pose; render it with render_frame or render_view')
    intr = frame.intrinsics
    u = np.atleast_1d(np.asarray(u, dtype=np.float64))
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    x, y = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    R, o = frame.T_world_cam[:3, :3], frame.T_world_cam[:3, 3]
    d = tuple(R[i, 0] * x + R[i, 1] * y + R[i, 2] for i in range(3))
    t, _ = trace_rays(frame.scene, o, *d)
    return t * np.sqrt(x * x + y * y + 1.0), t


__all__ = ['Frame', 'OPTICAL_IN_WORLD', 'default_intrinsics', 'camera_pose', 'render_view', 'render_frame',
           'camera_sequence', 'smooth_trajectory', 'cast_pixel_rays']
