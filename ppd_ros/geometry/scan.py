"""depth/scan: a LaserScan from a depth image, as depthimage_to_laserscan defines it.

Rows: ``scan_height`` rows centred on the principal point's row (cy − height/2 …). Angles from the
camera model: angle_max is the angle of column 0's ray to the centre ray, angle_min minus that of
the last column; angle_increment = (max − min)/(width − 1); ray i looks at angle_min + i·increment
(positive to the left, about the frame's z axis: the frame is the camera's non-optical twin, x
forward, as depthimage_to_laserscan's output_frame). A pixel's range is hypot(x, z) of its point.
Each column goes to the ray index depthimage_to_laserscan gives it, and a ray keeps the nearest
range within [range_min, range_max]. Two additions: rays no column falls on (near the image
centre the columns are farther apart than one increment) take their nearest column's value
instead of staying NaN, and REP 117 everywhere: a ray with no range in [min, max] gets −Inf when
a pixel was nearer than range_min, else +Inf when one was farther than range_max (or +Inf in
depth/image: beyond output.max_range), else NaN (no depth at all).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .camera import Intrinsics


@dataclass
class Scan:
    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray          # float32, angle_min first


def scan_rows(height: int, cy: float, scan_height: int) -> slice:
    top = int(cy) - scan_height // 2
    top = min(max(top, 0), max(height - scan_height, 0))
    return slice(top, min(top + scan_height, height))


def depth_to_scan(depth: np.ndarray, intrinsics: Intrinsics, scan_height: int = 1, range_min: float = 0.45,
                  range_max: float = 10.0) -> Scan:
    """``depth`` (h, w) metres (NaN invalid, ±Inf as REP 117) described by ``intrinsics``."""
    depth = np.asarray(depth, np.float32)
    height, width = depth.shape
    if width < 2:
        raise ValueError(f'a scan needs an image at least 2 pixels wide, got {width}')
    fx, cx, cy = float(intrinsics.fx), float(intrinsics.cx), float(intrinsics.cy)
    angle_max = math.atan2(cx, fx)                    # column 0 (left), positive
    angle_min = -math.atan2(width - 1 - cx, fx)       # last column (right)
    increment = (angle_max - angle_min) / (width - 1)
    band = depth[scan_rows(height, cy, scan_height)]
    u = np.arange(width, dtype=np.float64)
    x = (u - cx) / fx
    with np.errstate(invalid='ignore'):
        r = np.abs(band) * np.sqrt(1.0 + x * x)       # hypot(x·z, z); ±Inf stays Inf, NaN stays NaN
        r = np.where(np.isfinite(band), r, band)
        in_range = (r >= range_min) & (r <= range_max)
        column_range = np.where(in_range, r, np.inf).min(axis=0)
        too_close = ((r < range_min) | np.isneginf(band)).any(axis=0)
        too_far = ((r > range_max) & ~np.isneginf(band)).any(axis=0)
    column_value = np.where(np.isfinite(column_range), column_range,
                            np.where(too_close, -np.inf, np.where(too_far, np.inf, np.nan))).astype(np.float32)
    # depthimage_to_laserscan's column → ray index (truncation), nearest range wins per ray
    theta = -np.arctan2(u - cx, fx)
    index = np.clip(((theta - angle_min) / increment).astype(np.int64), 0, width - 1)
    ranges = np.full(width, np.nan, np.float32)
    finite = np.isfinite(column_value)
    # per ray the column with the highest key: finite (the nearest) > −Inf > +Inf > NaN
    rank = np.where(finite, 3, np.where(np.isneginf(column_value), 2, np.where(np.isposinf(column_value), 1, 0)))
    key = rank * 1e6 - np.where(finite, column_value, 0)
    order = np.argsort(-key, kind='stable')           # best first; np.unique keeps each ray's first
    rays, first = np.unique(index[order], return_index=True)
    ranges[rays] = column_value[order][first]
    hit = np.zeros(width, bool)
    hit[index] = True
    if not hit.all():  # rays no column fell on: their nearest column
        missing = np.flatnonzero(~hit)
        angles = angle_min + missing * increment
        columns = np.clip(np.rint(cx - fx * np.tan(angles)).astype(np.int64), 0, width - 1)
        ranges[missing] = column_value[columns]
    return Scan(angle_min, angle_max, increment, float(range_min), float(range_max), ranges)


def camera_angles(intrinsics: Intrinsics, width: int) -> tuple[float, float, float]:
    """(angle_min, angle_max, increment) of the camera model, as depth_to_scan uses them."""
    fx, cx = float(intrinsics.fx), float(intrinsics.cx)
    angle_max = math.atan2(cx, fx)
    angle_min = -math.atan2(width - 1 - cx, fx)
    return angle_min, angle_max, (angle_max - angle_min) / (width - 1)


def depth_to_scan_in(depth: np.ndarray, intrinsics: Intrinsics, T_target_cam: np.ndarray,
                     min_height: float = 0.2, max_height: float = 2.0, range_min: float = 0.45,
                     range_max: float = 10.0) -> Scan:
    """The scan in another frame (x forward, z up, e.g. base_link), as pointcloud_to_laserscan
    makes one from a cloud: the depth's points moved by ``T_target_cam`` (4×4, camera optical →
    target), those between min_height and max_height (target z), binned by atan2(y, x); a bin keeps
    its nearest hypot(x, y) in [range_min, range_max]. The bins span the camera's field of view
    (depth_to_scan's angles, in steps of one centre pixel's angle, the widest a pixel spans, so
    no bin in the view is empty) turned by the camera's heading in the target frame, so nothing outside the view claims
    free space: bins no point falls in stay NaN.
    REP 117 as depth_to_scan: −Inf for in-band points nearer than range_min (or −Inf depth),
    +Inf for in-band points beyond range_max, and for +Inf pixels whose ray stays inside the height
    band out to range_max (free space up to there)."""
    depth = np.asarray(depth, np.float32)
    height, width = depth.shape
    if width < 2:
        raise ValueError(f'a scan needs an image at least 2 pixels wide, got {width}')
    T = np.asarray(T_target_cam, np.float64)
    R, t = T[:3, :3], T[:3, 3]
    angle_min, angle_max, _ = camera_angles(intrinsics, width)
    heading = math.atan2(R[1, 2], R[0, 2])           # the optical axis in the target's x-y plane
    increment = math.atan2(1.0, float(intrinsics.fx))  # one centre pixel: no empty bin in the view
    bins = int(math.floor((angle_max - angle_min) / increment)) + 1
    angle_min = angle_min + heading
    angle_max = angle_min + (bins - 1) * increment
    v, u = np.mgrid[0:height, 0:width]
    rays = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy,
                     np.ones((height, width))], axis=-1).reshape(-1, 3) @ R.T   # directions in target
    d = depth.reshape(-1).astype(np.float64)
    value = np.full(d.size, np.nan)                  # per pixel: a range, −Inf, +Inf or NaN (no say)
    finite = np.isfinite(d)
    p = rays[finite] * d[finite, None] + t
    r = np.hypot(p[:, 0], p[:, 1])
    in_band = (p[:, 2] >= min_height) & (p[:, 2] <= max_height)
    fv = np.where(r < range_min, -np.inf, np.where(r > range_max, np.inf, r))
    value[np.flatnonzero(finite)[in_band]] = fv[in_band]
    angle = np.full(d.size, np.nan)
    angle[finite] = np.arctan2(p[:, 1], p[:, 0])
    # ±Inf pixels: their direction; +Inf counts where the ray stays in the band out to range_max
    infinite = np.isinf(d)
    ray = rays[infinite]
    horizontal = np.hypot(ray[:, 0], ray[:, 1])
    with np.errstate(divide='ignore', invalid='ignore'):
        z_far = t[2] + ray[:, 2] * range_max / horizontal
    band_far = (z_far >= min_height) & (z_far <= max_height) & (min_height <= t[2] <= max_height) & (horizontal > 0)
    negative = d[infinite] < 0
    keep = band_far | (negative & (horizontal > 0))
    value[np.flatnonzero(infinite)[keep]] = np.where(negative[keep], -np.inf, np.inf)
    angle[infinite] = np.arctan2(ray[:, 1], ray[:, 0])
    said = ~np.isnan(value)
    index = np.rint(np.angle(np.exp(1j * (angle[said] - angle_min))) / increment).astype(np.int64)
    vals = value[said]
    inside = (index >= 0) & (index < bins)
    index, vals = index[inside], vals[inside]
    ranges = np.full(bins, np.nan, np.float32)
    fin = np.isfinite(vals)
    rank = np.where(fin, 3, np.where(np.isneginf(vals), 2, 1))
    key = rank * 1e6 - np.where(fin, vals, 0)
    order = np.argsort(-key, kind='stable')
    rays_hit, first = np.unique(index[order], return_index=True)
    ranges[rays_hit] = vals[order][first]
    return Scan(angle_min, angle_max, increment, float(range_min), float(range_max), ranges)
