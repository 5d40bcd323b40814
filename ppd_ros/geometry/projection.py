"""Rigid transforms from translation + quaternion, and 3-D points → camera pixels.

Camera optical frame as everywhere in the package: x right, y down, z forward. Pixel (u, v) covers
[u − 0.5, u + 0.5], so a projected coordinate belongs to the pixel floor(u + 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import Intrinsics


def quaternion_to_matrix(quaternion) -> np.ndarray:
    """3×3 rotation from [qx, qy, qz, qw] (ROS order); normalised, since parameters are typed by hand."""
    q = np.asarray(quaternion, dtype=np.float64).ravel()
    if q.size != 4 or not np.isfinite(q).all():
        raise ValueError(f'quaternion must be 4 finite numbers [qx, qy, qz, qw], got {q.tolist()}')
    norm = np.linalg.norm(q)
    if norm < 1e-9:
        raise ValueError('quaternion has zero length')
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(rotation) -> np.ndarray:
    """[qx, qy, qz, qw] with qw ≥ 0 from a 3×3 rotation (Shepperd's method, stable for all angles)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    candidates = [trace, m[0, 0], m[1, 1], m[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q)
    return q if q[3] >= 0 else -q


def transform_from_translation_quaternion(translation, quaternion) -> np.ndarray:
    """4×4 homogeneous transform T (p_target = T · p_source), as a tf2 TransformStamped gives it."""
    t = np.asarray(translation, dtype=np.float64).ravel()
    if t.size != 3 or not np.isfinite(t).all():
        raise ValueError(f'translation must be 3 finite numbers [x, y, z], got {t.tolist()}')
    transform = np.eye(4)
    transform[:3, :3] = quaternion_to_matrix(quaternion)
    transform[:3, 3] = t
    return transform


def transform_points(points, transform) -> np.ndarray:
    """(N, 3) points mapped by a 4×4 transform (float64 for the arithmetic, float32 out)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    t = np.asarray(transform, dtype=np.float64)
    if t.shape != (4, 4):
        raise ValueError(f'transform must be 4×4, got {t.shape}')
    return (p @ t[:3, :3].T + t[:3, 3]).astype(np.float32)


@dataclass(frozen=True)
class Projection:
    """Points that landed in the image: their pixel (u, v) and z-depth, plus what was dropped."""
    u: np.ndarray
    v: np.ndarray
    z: np.ndarray
    total: int
    non_finite: int
    behind: int
    outside: int
    occluded: int

    @property
    def count(self) -> int:
        return int(self.z.size)

    def summary(self) -> str:
        parts = [f'{n} {what}' for n, what in ((self.non_finite, 'non-finite'), (self.behind, 'behind the camera'),
                                               (self.outside, 'outside the image'),
                                               (self.occluded, 'sharing a pixel with a nearer point')) if n]
        return f'{self.count} of {self.total} points in the image' + (f' ({", ".join(parts)})' if parts else '')


def project_points(points_cam, intr: Intrinsics, min_depth: float = 0.0, nearest_per_pixel: bool = True) -> Projection:
    """Project camera-frame points to pixels; drop points with z ≤ min_depth or outside the image.

    With `nearest_per_pixel`, several points landing on one pixel keep only the nearest (the one the
    camera sees; the others are hidden behind it)."""
    p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    total = p.shape[0]
    finite = np.isfinite(p).all(axis=1)
    p = p[finite]
    front = p[:, 2] > max(min_depth, 1e-9)
    p = p[front]
    u = np.floor(intr.fx * p[:, 0] / p[:, 2] + intr.cx + 0.5)
    v = np.floor(intr.fy * p[:, 1] / p[:, 2] + intr.cy + 0.5)
    inside = (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
    u, v, z = u[inside].astype(np.int64), v[inside].astype(np.int64), p[inside, 2]
    occluded = 0
    if nearest_per_pixel and z.size:
        order = np.argsort(z, kind='stable')
        _, first = np.unique((v * intr.width + u)[order], return_index=True)
        keep = order[first]
        occluded = z.size - keep.size
        u, v, z = u[keep], v[keep], z[keep]
    return Projection(u, v, z, total, int((~finite).sum()), int((~front).sum()), int((~inside).sum()), occluded)


def ray_direction(intr: Intrinsics, u: float, v: float) -> np.ndarray:
    """Unit vector of the viewing ray through pixel coordinate (u, v) in the optical frame."""
    ray = np.array([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0])
    return ray / np.linalg.norm(ray)
