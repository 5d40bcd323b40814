"""Output filters for costmaps: what depth/image and depth/points say about each pixel.

Applied in this order to the metres (NaN invalid):
  confidence_min  pixels with a lower confidence get NaN (no depth: not a return, not free space);
  edge_filter     flying points: a pixel farther than a neighbour (8-neighbourhood) by more than
                  ``edge_filter`` × that neighbour's depth sits on the far side of a depth jump —
                  between a foreground edge and its background, where blending makes ghost
                  obstacles — and gets NaN. The nearest surface of every jump stays, so a thin
                  pole keeps its pixels;
  min_range       finite depth nearer: −Inf (REP 117: too close to measure);
  max_range       finite depth farther: +Inf (REP 117: nothing within range; what lets a voxel layer
                  clear along that ray).
The cloud (``cloud_points``) has a point only where the result is finite; ``cloud_stride`` keeps
every n-th row and column. Each filter is off at 0 (stride 1), the default.
"""
from __future__ import annotations

import cv2
import numpy as np


def any_filter(settings) -> bool:
    s = settings
    return s.confidence_min > 0 or s.edge_filter > 0 or s.min_range > 0 or s.max_range > 0


def flying_points(depth: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels farther than a finite 8-neighbour by more than ``threshold`` × its depth."""
    d = np.asarray(depth, np.float32)
    finite = np.isfinite(d)
    nearest = cv2.erode(np.where(finite, d, np.float32(np.inf)), np.ones((3, 3), np.uint8),
                        borderType=cv2.BORDER_REPLICATE)
    with np.errstate(invalid='ignore'):
        return finite & (d > nearest * np.float32(1.0 + threshold))


def filter_depth(metric: np.ndarray, settings, confidence: np.ndarray | None = None) -> np.ndarray:
    """depth/image's metres after the filters of ``settings`` (see the module docstring). Returns
    ``metric`` itself when every filter is off (bit-identical output)."""
    s = settings
    if not any_filter(s):
        return metric
    out = np.array(metric, dtype=np.float32, copy=True)
    if s.confidence_min > 0:
        if confidence is None:
            raise ValueError('output.confidence_min needs the confidence of the frame')
        with np.errstate(invalid='ignore'):
            out[~(confidence >= s.confidence_min)] = np.nan
    if s.edge_filter > 0:
        out[flying_points(metric, s.edge_filter)] = np.nan
    finite = np.isfinite(out)
    if s.min_range > 0:
        out[finite & (out < s.min_range)] = -np.inf
    if s.max_range > 0:
        out[finite & (out > s.max_range)] = np.inf
    return out


def cloud_points(points: np.ndarray, colours: np.ndarray | None, stride: int = 1):
    """(points, colours) for depth/points, every ``stride``-th row and column (the points are
    back-projected from the filtered depth: NaN wherever it is not finite)."""
    if stride > 1:
        points = points[::stride, ::stride]
        colours = None if colours is None else colours[::stride, ::stride]
    return points, colours
