"""Turn each kind of metric source into (relative value, metric z-depth) sample pairs.

All three take the relative depth at its own resolution (and, where geometry is needed, the
intrinsics that describe it exactly) and return `Samples`. Relative values are always looked up at
the nearest pixel, never interpolated: blending across a depth edge would invent a depth no
surface has. Inputs that cannot be paired at all raise `SampleError` with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics
from ..projection import project_points, ray_direction, transform_points

#: Width/height ratios that differ by more than this are not the same view.
ASPECT_TOLERANCE = 0.01


class SampleError(ValueError):
    """The metric source cannot be paired with this relative depth (sizes, pixel, reading)."""


@dataclass(frozen=True)
class Samples:
    """Pairs at pixels (u, v): relative value and metric z-depth in metres (both finite)."""
    relative: np.ndarray
    metric: np.ndarray
    u: np.ndarray
    v: np.ndarray
    note: str

    @property
    def count(self) -> int:
        return int(self.metric.size)


def _check_relative(relative) -> np.ndarray:
    r = np.asarray(relative, dtype=np.float32)
    if r.ndim != 2 or r.size == 0:
        raise SampleError(f'relative depth must be a non-empty 2-D image, got shape {r.shape}')
    return r


def _pair(relative: np.ndarray, u, v, metric, note: str) -> Samples:
    """Keep the pixels where both the relative value and the metric depth are finite and > 0."""
    r = relative[v, u]
    metric = np.asarray(metric, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(metric) & (metric > 0)
    if (bad := int((~np.isfinite(r)).sum())):
        note = f'{note}; {bad} with no relative depth'
    return Samples(r[ok].astype(np.float64), metric[ok], u[ok], v[ok], note)


def nearest_resample_indices(src_size: int, dst_size: int) -> np.ndarray:
    """Source index of each destination index, pixel-centre aligned nearest neighbour."""
    idx = np.floor((np.arange(dst_size) + 0.5) * (src_size / dst_size)).astype(np.int64)
    return np.clip(idx, 0, src_size - 1)


def resample_nearest(image, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize (pixel centres aligned); never blends neighbouring depths."""
    image = np.asarray(image)
    rows = nearest_resample_indices(image.shape[0], height)
    cols = nearest_resample_indices(image.shape[1], width)
    return image[rows[:, None], cols[None, :]]


def samples_from_depth_image(relative, metric_depth) -> Samples:
    """A registered metric depth image (metres; 0, NaN, inf invalid) of the same view, any resolution.

    It is resampled to the relative depth's size with nearest neighbour; a different aspect ratio
    means a different view (or an unregistered sensor) and is refused."""
    r = _check_relative(relative)
    d = np.asarray(metric_depth, dtype=np.float32)
    if d.ndim != 2 or d.size == 0:
        raise SampleError(f'metric depth must be a non-empty 2-D image, got shape {d.shape}')
    h, w = r.shape
    if abs((d.shape[1] / d.shape[0]) / (w / h) - 1.0) > ASPECT_TOLERANCE:
        raise SampleError(f'metric depth is {d.shape[1]}x{d.shape[0]} but relative depth is {w}x{h}: '
                          'different aspect ratio, not the same view (register the depth to the camera)')
    if d.shape != (h, w):
        d = resample_nearest(d, w, h)
    valid = np.isfinite(d) & (d > 0)
    v, u = np.nonzero(valid)
    note = f'{v.size} of {d.size} depth pixels valid'
    return _pair(r, u, v, d[v, u], note)


def samples_from_points(relative, intr: Intrinsics, points_source, T_cam_source, min_depth: float = 0.0) -> Samples:
    """Points in the source's frame (a LiDAR cloud) → camera frame → nearest pixels.

    Points with z ≤ min_depth (behind the camera) or outside the image are dropped; of several
    points on one pixel the nearest is kept."""
    r = _check_relative(relative)
    if r.shape != (intr.height, intr.width):
        raise SampleError(f'relative depth is {r.shape[1]}x{r.shape[0]} but its camera_info says '
                          f'{intr.width}x{intr.height}')
    points_cam = transform_points(points_source, T_cam_source)
    projection = project_points(points_cam, intr, min_depth=min_depth, nearest_per_pixel=True)
    return _pair(r, projection.u, projection.v, projection.z, projection.summary())


def range_to_depth(distance: float, min_range: float = 0.0, max_range: float = float('inf')) -> float:
    """Validate a sensor_msgs/Range reading: NaN, inf (−inf/+inf mean too close/too far), negative or
    outside [min_range, max_range] is invalid (SampleError)."""
    distance = float(distance)
    if not np.isfinite(distance):
        raise SampleError(f'range reading is {distance} (no valid measurement)')
    if distance <= 0:
        raise SampleError(f'range reading {distance:g} m is not positive')
    lo = float(min_range) if np.isfinite(min_range) and min_range > 0 else 0.0
    hi = float(max_range) if np.isfinite(max_range) and max_range > 0 else float('inf')
    if not lo <= distance <= hi:
        raise SampleError(f'range reading {distance:g} m is outside the sensor limits [{lo:g}, {hi:g}] m')
    return distance


def samples_from_range(relative, intr: Intrinsics, distance: float, pixel=None, window: int = 0,
                       expected_relative: float | None = None, edge_step: float = 0.1) -> Samples:
    """One range reading taken along the viewing ray of `pixel` (u, v) (default: principal point).

    The sensor is taken to sit at the camera centre looking along that ray, so its distance
    converts to z-depth by the ray's z component. A beam on a depth edge hits one of the two
    surfaces: with `window` > 0 and an `expected_relative` value (the reading converted with the
    current or prior scale), when the relative depth within ±window spans more than `edge_step`
    (a depth edge), the pixel whose relative depth is closest to the expected one is used, so the
    reading is paired with the surface it actually hit. Elsewhere the ray's own pixel is used."""
    r = _check_relative(relative)
    if r.shape != (intr.height, intr.width):
        raise SampleError(f'relative depth is {r.shape[1]}x{r.shape[0]} but its camera_info says '
                          f'{intr.width}x{intr.height}')
    u, v = (intr.cx, intr.cy) if pixel is None or len(pixel) == 0 else (float(pixel[0]), float(pixel[1]))
    ui, vi = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
    if not (0 <= ui < intr.width and 0 <= vi < intr.height):
        raise SampleError(f'range pixel ({u:g}, {v:g}) is outside the {intr.width}x{intr.height} image')
    note = f'range {float(distance):.3f} m at pixel ({u:g}, {v:g})'
    if window > 0 and expected_relative is not None and np.isfinite(expected_relative):
        v0, v1 = max(vi - window, 0), min(vi + window + 1, intr.height)
        u0, u1 = max(ui - window, 0), min(ui + window + 1, intr.width)
        patch = r[v0:v1, u0:u1]
        if np.isfinite(patch).any() and np.nanmax(patch) - np.nanmin(patch) > edge_step:
            k = int(np.nanargmin(np.abs(patch - expected_relative)))
            pv, pu = np.unravel_index(k, patch.shape)
            if (v0 + pv, u0 + pu) != (vi, ui):
                note += f', paired with pixel ({u0 + pu}, {v0 + pv}) on the surface it agrees with'
            ui, vi = u0 + pu, v0 + pv
    z = float(distance) * ray_direction(intr, u, v)[2]
    return _pair(r, np.array([ui]), np.array([vi]), np.array([z]), note)
