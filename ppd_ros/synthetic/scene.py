"""A scene (primitives + materials + light) and the two ray casters used by the camera and sensors.

World frame: x forward, y left, z up (ROS REP 103); metres.

- `trace_rays`: any bundle of rays from one origin; each bounded primitive is tested only against
  the rays inside the cone its bounding sphere subtends (LiDAR, range finder, supersamples).
- `trace_grid`: one ray per pixel centre of a pinhole camera; each bounded primitive is tested only
  inside the image rectangle its bounding cube projects to (slices of the ray grid are views).

Both return the nearest hit: ray parameter t (inf = no hit) and the primitive index (-1 = none).
Ties go to the primitive listed first, so results never depend on culling.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry.camera import Intrinsics
from .shading import HORIZON_COLOR, Material, ValueNoise, haze, lambert, point_light, sky_color, texture


@dataclass
class Scene:
    primitives: list
    materials: list
    light_dir: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.2, 0.93]))  # towards the light
    ambient: float = 0.35
    has_sky: bool = False         # outdoor: rays that hit nothing see the sky (invalid depth)
    max_depth: float = np.inf     # hits farther than this are invalid (z-depth)
    kind: str = 'custom'
    noise_seed: int = 0
    lamp: tuple | None = None     # (position (3,), strength): a point light with inverse-square falloff
    haze_distance: float = np.inf  # aerial perspective: contrast falls to 1/e at this range (m)
    noise: ValueNoise = field(init=False, repr=False)

    def __post_init__(self):
        if not self.materials:
            self.materials = [Material('noise', (0.6, 0.6, 0.6), (0.4, 0.4, 0.4))]
        self.light_dir = np.asarray(self.light_dir, dtype=np.float64)
        self.light_dir = self.light_dir / np.linalg.norm(self.light_dir)
        self.noise = ValueNoise(np.random.default_rng(self.noise_seed))
        for i, prim in enumerate(self.primitives):
            bad = [m for m in prim.materials if not 0 <= m < len(self.materials)]
            if bad:
                raise ValueError(f'primitive {i} ({type(prim).__name__}) uses unknown material(s) {bad}')


def trace_rays(scene: Scene, origin, dx, dy, dz):
    """Nearest hit of each ray (1-D direction arrays) from `origin`: (t, primitive index)."""
    origin = np.asarray(origin, dtype=np.float64)
    dx, dy, dz = (np.asarray(d, dtype=np.float64).ravel() for d in (dx, dy, dz))
    t_best = np.full(dx.shape, np.inf)
    id_best = np.full(dx.shape, -1, np.int32)
    norm = None
    for k, prim in enumerate(scene.primitives):
        bound = prim.bound
        idx = None
        if bound is not None:
            center, radius = bound
            to_center = center - origin
            dist = float(np.linalg.norm(to_center))
            if dist > radius * (1 + 1e-9) + 1e-9:
                if norm is None:
                    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
                cos_limit = np.sqrt(max(0.0, 1.0 - (radius / dist) ** 2)) * (1 - 1e-9) - 1e-12
                cos = (dx * to_center[0] + dy * to_center[1] + dz * to_center[2]) / (norm * dist)
                idx = np.flatnonzero(cos >= cos_limit)
                if idx.size == 0:
                    continue
        if idx is None:
            t = prim.intersect(origin, dx, dy, dz)
            closer = t < t_best
            t_best[closer] = t[closer]
            id_best[closer] = k
        else:
            t = prim.intersect(origin, dx[idx], dy[idx], dz[idx])
            closer = t < t_best[idx]
            t_best[idx[closer]] = t[closer]
            id_best[idx[closer]] = k
    return t_best, id_best


def camera_rays(intr: Intrinsics, rotation: np.ndarray, du: float = 0.0, dv: float = 0.0):
    """World directions (3 arrays H×W) of rays with camera coordinates ((u−cx)/fx, (v−cy)/fy, 1).

    The third camera coordinate is 1, so the ray parameter of a hit is its z-depth.
    """
    x = (np.arange(intr.width, dtype=np.float64) + du - intr.cx) / intr.fx
    y = (np.arange(intr.height, dtype=np.float64) + dv - intr.cy) / intr.fy
    R = np.asarray(rotation, dtype=np.float64)
    xs, ys = x[None, :], y[:, None]
    return tuple(R[i, 0] * xs + R[i, 1] * ys + R[i, 2] for i in range(3))


def _screen_rect(prim, origin, rotation, intr: Intrinsics):
    """Pixel rectangle (v0, v1, u0, u1) containing the primitive's projection (via its hull corners),
    None if it is entirely behind the camera or off screen, the whole image if it straddles the
    camera plane. Conservative: the projection of a convex hull is the hull of the projections."""
    full = (0, intr.height, 0, intr.width)
    hull = prim.hull()
    if hull is None:
        return full
    c = (hull - origin) @ rotation  # camera coordinates
    if (c[:, 2] <= 0).all():
        return None
    if (c[:, 2] <= 1e-6).any():
        return full
    u = intr.fx * c[:, 0] / c[:, 2] + intr.cx
    v = intr.fy * c[:, 1] / c[:, 2] + intr.cy
    u0, u1 = max(0, int(np.floor(u.min())) - 1), min(intr.width, int(np.ceil(u.max())) + 2)
    v0, v1 = max(0, int(np.floor(v.min())) - 1), min(intr.height, int(np.ceil(v.max())) + 2)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _slender_mask(prim, origin, rotation, intr: Intrinsics, rect):
    """Pixels of `rect` whose centre ray can hit a slender cylinder, or None if the test does not apply.

    Every point P of the cylinder is within r of the plane Π through the camera centre and the
    axis, so a ray d = (x, y, 1) that hits it at depth z_P has |m·d| ≤ |d|·r/|P| = r/z_P ≤ r/z_min
    (m = unit normal of Π, z_min = smallest depth of the cylinder). Exact, not an estimate.
    """
    a, b = [(np.asarray(e) - origin) @ rotation for e in prim.endpoints()]
    z_min = min(a[2], b[2]) - prim.radius
    normal = np.cross(a, b)
    size = float(np.linalg.norm(normal))
    if z_min <= 1e-6 or size <= 1e-12 * float(np.linalg.norm(a) * np.linalg.norm(b)):
        return None
    m = normal / size
    r0, r1, c0, c1 = rect
    xs = (np.arange(c0, c1, dtype=np.float64) - intr.cx) / intr.fx
    ys = (np.arange(r0, r1, dtype=np.float64) - intr.cy) / intr.fy
    reach = prim.radius / z_min * (1 + 1e-9) + 1e-12
    return np.abs(m[1] * ys[:, None] + (m[0] * xs + m[2])[None, :]) <= reach


def trace_grid(scene: Scene, origin, rotation, intr: Intrinsics):
    """Nearest hit through every pixel centre: (rays (3 arrays H×W), t H×W = z-depth, index H×W)."""
    origin = np.asarray(origin, dtype=np.float64)
    rotation = np.asarray(rotation, dtype=np.float64)
    rays = camera_rays(intr, rotation)
    t_best = np.full((intr.height, intr.width), np.inf)
    id_best = np.full((intr.height, intr.width), -1, np.int32)
    for k, prim in enumerate(scene.primitives):
        rect = _screen_rect(prim, origin, rotation, intr)
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        tb, ib = t_best[v0:v1, u0:u1], id_best[v0:v1, u0:u1]
        mask = _slender_mask(prim, origin, rotation, intr, rect) if prim.slender else None
        if mask is None:
            t = prim.intersect(origin, *(r[v0:v1, u0:u1] for r in rays))
            closer = t < tb
            tb[closer] = t[closer]
            ib[closer] = k
        else:
            rows, cols = np.nonzero(mask)
            rows += v0
            cols += u0
            t = prim.intersect(origin, *(r[rows, cols] for r in rays))
            closer = t < t_best[rows, cols]
            t_best[rows[closer], cols[closer]] = t[closer]
            id_best[rows[closer], cols[closer]] = k
    return rays, t_best, id_best


def shade(scene: Scene, origin, dx, dy, dz, t, prim_id, pixel_angle: float):
    """Linear RGB (N, 3) float32 and surface ids (primitive·8 + face, −1 = sky) for traced rays."""
    origin = np.asarray(origin, dtype=np.float64)
    n = t.shape[0]
    rgb = np.zeros((n, 3), np.float32)
    surface_id = np.full(n, -1, np.int32)
    prim_id = np.asarray(prim_id, dtype=np.int16)  # radix sort
    order = np.argsort(prim_id, kind='stable')
    ids, starts = np.unique(prim_id[order], return_index=True)
    bounds = list(starts[1:]) + [n]
    for k, s, e in zip(ids, starts, bounds):
        idx = order[s:e]
        if k < 0:
            if scene.has_sky:
                rgb[idx] = sky_color(dx[idx], dy[idx], dz[idx], scene.noise)
            continue
        prim = scene.primitives[int(k)]
        tk = t[idx]
        d = (dx[idx], dy[idx], dz[idx])
        p = tuple(origin[i] + tk * d[i] for i in range(3))
        normal, face = prim.surface(*p)
        # Shading needs no float64: textures and light in float32 (positions stay float64 above).
        d = tuple(c.astype(np.float32) for c in d)
        normal = tuple(np.asarray(c, np.float32) for c in normal)
        dnorm = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        cos_in = (normal[0] * d[0] + normal[1] * d[1] + normal[2] * d[2]) / dnorm
        flip = np.where(cos_in > 0, np.float32(-1), np.float32(1))  # make normals face the viewer
        normal = tuple(c * flip for c in normal)
        footprint = tk.astype(np.float32) * dnorm * np.float32(pixel_angle) / np.maximum(np.abs(cos_in), np.float32(0.1))
        if len(set(prim.materials)) == 1:
            albedo = texture(scene.materials[prim.materials[0]], scene.noise, p, normal, footprint)
        else:
            mat_ids = prim.material_for_face(face)
            albedo = np.empty((idx.size, 3), np.float32)
            for m in np.unique(mat_ids):
                sel = mat_ids == m
                albedo[sel] = texture(scene.materials[m], scene.noise, tuple(c[sel] for c in p),
                                      tuple(c[sel] for c in normal), footprint[sel])
        shaded = lambert(albedo, normal, scene.light_dir, scene.ambient)
        if scene.lamp is not None:
            shaded += point_light(albedo, normal, p, *scene.lamp)
        if np.isfinite(scene.haze_distance):
            shaded = haze(shaded, tk.astype(np.float32) * dnorm, scene.haze_distance, HORIZON_COLOR)
        rgb[idx] = shaded
        surface_id[idx] = int(k) * 8 + face
    return rgb, surface_id


__all__ = ['Scene', 'trace_rays', 'trace_grid', 'camera_rays', 'shade']
