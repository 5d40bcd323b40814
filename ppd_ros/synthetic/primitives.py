"""Analytic primitives and their exact ray intersections, vectorised over rays.

Every intersection takes one ray origin `o` (3,) and the ray directions as three arrays
`(dx, dy, dz)` of any (equal) shape — "structure of arrays", so slices of an image-shaped ray grid
are views — and returns the ray parameter `t` of the nearest hit with t > `T_EPS` (inf where the ray
misses). Directions need not be unit: with camera rays (x/z, y/z, 1) t is the z-depth, with unit
rays it is the range. Everything is elementwise float64, so the same ray always gives the same t
bit for bit, whatever subset of rays it is traced with (the tests rely on that).

`surface(px, py, pz)` gives the outward normal and a face index for hit points on the primitive.
`bound` is a bounding sphere (centre, radius), or None for unbounded primitives (planes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

T_EPS = 1e-7


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0.0:
        raise ValueError(f'cannot normalise vector {v!r}')
    return v / n


_SIGNS = np.array([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)])


def _box_corners(center, axes, half) -> np.ndarray:
    """(8, 3) corners of the box centre ± Σ half_k·axis_k (axes as columns)."""
    return np.asarray(center) + (_SIGNS * np.asarray(half)) @ np.asarray(axes).T


def _hit_or_inf(t, ok):
    return np.where(ok & (t > T_EPS), t, np.inf)


@dataclass
class Primitive:
    """Base: a material index per face (`materials[face % len(materials)]`)."""
    materials: tuple = field(default=(0,), kw_only=True)

    def material_for_face(self, face: np.ndarray) -> np.ndarray:
        table = np.asarray(self.materials, dtype=np.int32)
        return table[np.asarray(face) % len(table)]

    bound = None  # bounding sphere (centre, radius); None = unbounded
    slender = False

    def hull(self):
        """(8, 3) corners of a box enclosing the primitive; None when unbounded."""
        return None


@dataclass
class Plane(Primitive):
    """Infinite plane n·p = offset (both sides are hit)."""
    normal: np.ndarray
    offset: float

    def __post_init__(self):
        self.normal = _unit(self.normal)
        self.offset = float(self.offset)

    def intersect(self, o, dx, dy, dz):
        n = self.normal
        with np.errstate(divide='ignore', invalid='ignore'):
            t = (self.offset - float(n @ o)) / (dx * n[0] + dy * n[1] + dz * n[2])
        return _hit_or_inf(t, np.isfinite(t))

    def distance(self, point) -> float:
        return abs(float(self.normal @ np.asarray(point, dtype=np.float64)) - self.offset)

    def surface(self, px, py, pz):
        n = self.normal
        return (np.full(px.shape, n[0]), np.full(px.shape, n[1]), np.full(px.shape, n[2])), np.zeros(px.shape, np.int32)


@dataclass
class Sphere(Primitive):
    center: np.ndarray
    radius: float

    def __post_init__(self):
        self.center = np.asarray(self.center, dtype=np.float64)
        if not self.radius > 0:
            raise ValueError(f'sphere radius must be > 0, got {self.radius}')
        self.radius = float(self.radius)

    @property
    def bound(self):
        return self.center, self.radius

    def hull(self) -> np.ndarray:
        return _box_corners(self.center, np.eye(3), (self.radius,) * 3)

    def intersect(self, o, dx, dy, dz):
        ox, oy, oz = np.asarray(o, dtype=np.float64) - self.center
        a = dx * dx + dy * dy + dz * dz
        b = dx * ox + dy * oy + dz * oz
        c = ox * ox + oy * oy + oz * oz - self.radius * self.radius
        disc = b * b - a * c
        with np.errstate(invalid='ignore'):
            root = np.sqrt(disc)
        near = (-b - root) / a
        far = (-b + root) / a
        t = np.where(near > T_EPS, near, far)
        return _hit_or_inf(t, disc >= 0)

    def distance(self, point) -> float:
        return float(np.linalg.norm(np.asarray(point, dtype=np.float64) - self.center)) - self.radius

    def surface(self, px, py, pz):
        r = self.radius
        c = self.center
        return ((px - c[0]) / r, (py - c[1]) / r, (pz - c[2]) / r), np.zeros(px.shape, np.int32)


@dataclass
class Box(Primitive):
    """Oriented box: centre, half sizes along its local axes, rotation (columns = local axes in world).

    Seen from inside (the camera in a room) the exit face is hit: the same slab test covers both.
    Faces: 2·axis + (1 on the positive side), e.g. 4 = floor (−z), 5 = ceiling (+z) of a room.
    """
    center: np.ndarray
    half: np.ndarray
    rotation: np.ndarray = None

    def __post_init__(self):
        self.center = np.asarray(self.center, dtype=np.float64)
        self.half = np.asarray(self.half, dtype=np.float64)
        if self.half.shape != (3,) or not (self.half > 0).all():
            raise ValueError(f'box half sizes must be 3 positive numbers, got {self.half}')
        self.rotation = np.eye(3) if self.rotation is None else np.asarray(self.rotation, dtype=np.float64)
        self._aligned = bool((self.rotation == np.eye(3)).all())

    @property
    def bound(self):
        return self.center, float(np.linalg.norm(self.half))

    def hull(self) -> np.ndarray:
        return _box_corners(self.center, self.rotation, self.half)

    def _local_dirs(self, dx, dy, dz):
        if self._aligned:
            return dx, dy, dz
        R = self.rotation
        return tuple(dx * R[0, k] + dy * R[1, k] + dz * R[2, k] for k in range(3))

    def intersect(self, o, dx, dy, dz):
        ol = (np.asarray(o, dtype=np.float64) - self.center) @ self.rotation
        t_enter = t_exit = None
        with np.errstate(divide='ignore', invalid='ignore'):
            for k, d in enumerate(self._local_dirs(dx, dy, dz)):
                inv = 1.0 / d
                t1 = (-self.half[k] - ol[k]) * inv
                t2 = (self.half[k] - ol[k]) * inv
                lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
                t_enter = lo if t_enter is None else np.maximum(t_enter, lo)
                t_exit = hi if t_exit is None else np.minimum(t_exit, hi)
        t = np.where(t_enter > T_EPS, t_enter, t_exit)
        return _hit_or_inf(t, t_exit >= t_enter)

    def distance(self, point) -> float:
        """Distance from a point to the box's surface (positive outside and inside)."""
        local = np.abs((np.asarray(point, dtype=np.float64) - self.center) @ self.rotation)
        outside = np.maximum(local - self.half, 0.0)
        if outside.any():
            return float(np.linalg.norm(outside))
        return float(np.min(self.half - local))

    def surface(self, px, py, pz):
        R = self.rotation
        rel = (px - self.center[0], py - self.center[1], pz - self.center[2])
        local = rel if self._aligned else tuple(rel[0] * R[0, k] + rel[1] * R[1, k] + rel[2] * R[2, k] for k in range(3))
        q = [np.abs(local[k]) * (1.0 / self.half[k]) for k in range(3)]
        axis = np.where(q[0] >= q[1], np.where(q[0] >= q[2], 0, 2), np.where(q[1] >= q[2], 1, 2))
        coord = np.where(axis == 0, local[0], np.where(axis == 1, local[1], local[2]))
        positive = coord > 0
        sign = np.where(positive, 1.0, -1.0)
        if self._aligned:
            normal = tuple(np.where(axis == i, sign, 0.0) for i in range(3))
        else:
            normal = tuple(R[i, axis] * sign for i in range(3))
        return normal, (2 * axis + positive).astype(np.int32)


@dataclass
class Cylinder(Primitive):
    """Finite cylinder: centre (mid-axis), unit axis, half length, radius; capped unless `caps=False`.

    Faces: 0 side, 1 cap at −axis, 2 cap at +axis. Poles, legs and wires are thin cylinders; an
    uncapped one seen from inside is the outdoor horizon wall.
    """
    center: np.ndarray
    axis: np.ndarray
    half_length: float
    radius: float
    caps: bool = True

    def __post_init__(self):
        self.center = np.asarray(self.center, dtype=np.float64)
        self.axis = _unit(self.axis)
        if not (self.radius > 0 and self.half_length > 0):
            raise ValueError(f'cylinder needs radius > 0 and length > 0, got {self.radius}, {self.half_length}')
        self.radius, self.half_length = float(self.radius), float(self.half_length)
        a = self.axis
        self._vertical = bool(a[0] == 0.0 and a[1] == 0.0 and a[2] == 1.0)
        if self._vertical:
            e1, e2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
        else:
            helper = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
            e1 = np.cross(a, helper)
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(a, e1)
        self._basis = (e1, e2, a)

    @property
    def bound(self):
        return self.center, float(np.hypot(self.half_length, self.radius))

    def hull(self) -> np.ndarray:
        e1, e2, a = self._basis
        return _box_corners(self.center, np.stack([e1, e2, a], axis=1), (self.radius, self.radius, self.half_length))

    @property
    def slender(self) -> bool:
        """Long and thin (wires, rails, poles): worth a screen-space line test before intersecting."""
        return self.half_length > 8 * self.radius

    def endpoints(self):
        return self.center - self.half_length * self.axis, self.center + self.half_length * self.axis

    def _local(self, dx, dy, dz):
        """Ray directions in the cylinder's frame (e1, e2 across the axis, then along it)."""
        if self._vertical:
            return dx, dy, dz
        e1, e2, a = self._basis
        return (dx * e1[0] + dy * e1[1] + dz * e1[2], dx * e2[0] + dy * e2[1] + dz * e2[2],
                dx * a[0] + dy * a[1] + dz * a[2])

    def intersect(self, o, dx, dy, dz):
        w = np.asarray(o, dtype=np.float64) - self.center
        w1, w2, wa = (float(w @ e) for e in self._basis)
        d1, d2, da = self._local(dx, dy, dz)
        A = d1 * d1 + d2 * d2
        B = d1 * w1 + d2 * w2
        C = w1 * w1 + w2 * w2 - self.radius * self.radius
        disc = B * B - A * C
        t_out = np.full(np.shape(dx), np.inf)
        inside = C < 0  # origin inside the infinite cylinder: every ray has disc >= 0, near root <= 0
        if not inside:
            # Every hit (side or cap) has disc >= 0: the projected ray passes within r of the axis.
            idx = np.flatnonzero(disc >= 0)
            if idx.size == 0:
                return t_out
            A, B, disc = A.ravel()[idx], B.ravel()[idx], disc.ravel()[idx]
            d1, d2, da = d1.ravel()[idx], d2.ravel()[idx], da.ravel()[idx]
        with np.errstate(divide='ignore', invalid='ignore'):
            root = np.sqrt(disc)
            t1 = (-B + root) / A
            ok1 = (t1 > T_EPS) & (np.abs(wa + t1 * da) <= self.half_length)
            if inside:
                t = np.where(ok1, t1, np.inf)
            else:
                t0 = (-B - root) / A
                ok0 = (t0 > T_EPS) & (np.abs(wa + t0 * da) <= self.half_length)
                t = np.where(ok0, t0, np.where(ok1, t1, np.inf))
            if self.caps:
                r2 = self.radius * self.radius
                for s in (-self.half_length, self.half_length):
                    tc = (s - wa) / da
                    q1, q2 = w1 + tc * d1, w2 + tc * d2
                    ok = (tc > T_EPS) & (q1 * q1 + q2 * q2 <= r2)
                    t = np.where(ok & (tc < t), tc, t)
        t = np.where(np.isfinite(t), t, np.inf)
        if inside:
            return t
        t_out.reshape(-1)[idx] = t
        return t_out

    def distance(self, point) -> float:
        """Distance from a point to the cylinder (to its wall only when uncapped and inside)."""
        rel = np.asarray(point, dtype=np.float64) - self.center
        s = float(rel @ self.axis)
        rho = float(np.linalg.norm(rel - s * self.axis))
        ds = abs(s) - self.half_length
        dr = rho - self.radius
        if ds <= 0 and dr <= 0:
            return -dr if not self.caps else min(-dr, -ds)
        return float(np.hypot(max(ds, 0.0), max(dr, 0.0))) if self.caps or ds > 0 else max(dr, 0.0)

    def surface(self, px, py, pz):
        a = self.axis
        rel = (px - self.center[0], py - self.center[1], pz - self.center[2])
        s = rel[0] * a[0] + rel[1] * a[1] + rel[2] * a[2]
        radial = [rel[k] - s * a[k] for k in range(3)]
        rho = np.sqrt(radial[0] ** 2 + radial[1] ** 2 + radial[2] ** 2)
        on_cap = self.caps & (np.abs(np.abs(s) - self.half_length) < np.abs(rho - self.radius))
        sign = np.where(s > 0, 1.0, -1.0)
        safe = np.where(rho > 0, rho, 1.0)
        normal = [np.where(on_cap, sign * a[k], radial[k] / safe) for k in range(3)]
        face = np.where(on_cap, np.where(s > 0, 2, 1), 0).astype(np.int32)
        return tuple(normal), face


def rotation_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


__all__ = ['T_EPS', 'Primitive', 'Plane', 'Sphere', 'Box', 'Cylinder', 'rotation_z']
