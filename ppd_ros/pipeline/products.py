"""Step 6 of the frame pipeline: what one frame's depth gives, each computed on first use.

Relative depth (normalised log-depth, NaN invalid), metres, points in the optical frame with their
colours, and a colourised preview; all at the output resolution and described by ``intrinsics``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from ppd_ros.geometry.backproject import depth_to_points
from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.colorize import colorize_depth
from ppd_ros.geometry.costmap_filters import any_filter, cloud_points, filter_depth
from ppd_ros.geometry.scan import Scan, depth_to_scan, depth_to_scan_in
from ppd_ros.geometry.scale.depth_scale import relative_to_metric

from .scale import ScaleInUse


class FrameError(ValueError):
    """A frame (or one of its products) cannot be made from this input; the text says why."""


@dataclass(eq=False)
class FrameDepth:
    """One frame's depth and everything made from it."""
    context: object                 # what the caller gave with the frame (header, bag time, file name)
    stamp_ns: int
    rgb: np.ndarray                 # the image the model saw (rectified when ``rectified``), H×W×3
    relative: np.ndarray            # (h, w) float32 at the output resolution, NaN invalid
    scale: ScaleInUse | None        # None: no metric product was asked for
    rectified: bool                 # the image was rectified: its geometry is the calibration's P
    intrinsics: Intrinsics | None   # of ``relative``'s pixels; None: unknown (see intrinsics_problem)
    intrinsics_problem: str = ''
    settings: object = field(default=None, repr=False)
    confidence: np.ndarray | None = field(default=None, repr=False)  # (h, w) float32 in [0, 1], NaN invalid
    confidence_problem: str = ''    # why ``confidence`` is None when it was asked for
    scan_target: tuple | None = None  # depth/scan in another frame: (frame, T_target_cam or None, why not)

    @cached_property
    def metric(self) -> np.ndarray:
        """Metres (REP 118: NaN invalid, never 0)."""
        if self.scale is None:
            raise FrameError('no scale was computed for this frame (no metric output was asked for)')
        return relative_to_metric(self.relative, self.scale.a, self.scale.b)

    @cached_property
    def points(self) -> np.ndarray:
        """(h, w, 3) float32 points in metres, optical frame; NaN where depth is invalid."""
        if self.intrinsics is None:
            raise FrameError(self.intrinsics_problem or 'no camera intrinsics for this frame')
        return depth_to_points(self.metric, self.intrinsics)

    @cached_property
    def point_colours(self) -> np.ndarray | None:
        """(h, w, 3) uint8 RGB of the points, or None when ``points_rgb`` is off."""
        if not self.settings.points_rgb:
            return None
        height, width = self.relative.shape
        if self.rgb.shape[:2] == (height, width):
            return self.rgb
        return cv2.resize(self.rgb, (width, height), interpolation=cv2.INTER_AREA)

    @cached_property
    def output_depth(self) -> np.ndarray:
        """depth/image: the metres after the costmap filters (geometry.costmap_filters: NaN
        filtered out, −Inf nearer than min_range, +Inf beyond max_range); ``metric`` itself when
        every filter is off."""
        if self.settings.confidence_min > 0 and self.confidence is None:
            raise FrameError(f'output.confidence_min: {self.confidence_problem or "no confidence for this frame"}')
        return filter_depth(self.metric, self.settings, self.confidence)

    @cached_property
    def cloud(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(points, colours) of depth/points: a point only where ``output_depth`` is finite, every
        ``cloud_stride``-th row and column."""
        points = self.points if not any_filter(self.settings) else self._points_of(self.output_depth)
        return cloud_points(points, self.point_colours, self.settings.cloud_stride)

    def _points_of(self, depth: np.ndarray) -> np.ndarray:
        if self.intrinsics is None:
            raise FrameError(self.intrinsics_problem or 'no camera intrinsics for this frame')
        return depth_to_points(depth, self.intrinsics)

    @cached_property
    def scan(self) -> Scan:
        """depth/scan from ``output_depth`` (geometry.scan, as depthimage_to_laserscan), or with
        ``scan_target`` in that frame (as pointcloud_to_laserscan)."""
        if self.intrinsics is None:
            raise FrameError(self.intrinsics_problem or 'no camera intrinsics for this frame')
        s = self.settings
        if self.scan_target is not None:
            _, T, problem = self.scan_target
            if T is None:
                raise FrameError(problem)
            return depth_to_scan_in(self.output_depth, self.intrinsics, T, s.scan_min_height, s.scan_max_height,
                                    s.scan_range_min, s.scan_range_max)
        return depth_to_scan(self.output_depth, self.intrinsics, s.scan_height, s.scan_range_min, s.scan_range_max)

    @cached_property
    def confidence_image(self) -> np.ndarray:
        """depth/confidence: (h, w) float32 in [0, 1], NaN where the depth is."""
        if self.confidence is None:
            raise FrameError(self.confidence_problem or 'no confidence for this frame')
        return self.confidence

    @cached_property
    def colorized(self) -> np.ndarray:
        """BGR picture of the metres (fixed or percentile range)."""
        s = self.settings
        if s.colorize_mode == 'fixed':
            return colorize_depth(self.metric, 'fixed', *s.colorize_range)
        return colorize_depth(self.metric, 'percentile', percentiles=s.colorize_percentiles)
