"""Metres for PPD's relative depth from a metric-depth model on the same frame (MoGe-2).

PPD gives sharp but relative depth; MoGe-2 gives metric depth, a validity mask and intrinsics. As
in the authors' point-cloud script, the relative depth r is fitted to the model's metric depth d
over its valid pixels in log(d + 1) = a·r + b — the model space the fusion node uses for sensors —
here with the same robust fit (``scale_fit.fit_scale``) and the same temporal ``FitTracker``, so the
scale does not jump from frame to frame. Pixels the model marks invalid (sky, out of range) become
NaN. The metric pass costs a second network per frame, so it can run every N frames: the smoothed
fit, the mask and the intrinsics are then held in between (``ModelScale.due``).

Scale sources, as ``DepthScale.source`` and /diagnostics name them: ``model`` (this),
``sensor`` (scale_fusion_node with a LiDAR/RGB-D/range sensor), ``assumed`` (output.near/far).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..camera import Intrinsics
from .depth_scale import relative_to_metric
from .fit import FitConfig, FitTracker, ScaleFit, TrackedScale, TrackerConfig, fit_scale

SOURCE_MODEL = 'model'
SOURCE_SENSOR = 'sensor'
SOURCE_ASSUMED = 'assumed'
SCALE_SOURCES = (SOURCE_MODEL, SOURCE_SENSOR, SOURCE_ASSUMED)


@dataclass(frozen=True)
class ModelGeometry:
    """A metric model's view of one frame at the relative depth's resolution (h, w)."""
    depth: np.ndarray          # (h, w) float32 metres, NaN or inf where invalid
    valid: np.ndarray          # (h, w) bool
    intrinsics: Intrinsics | None  # pixels of this (w, h) image, OpenCV/ROS pixel-centre convention;
    #                                None when the model's focal length is unusable (not positive)

    @staticmethod
    def from_normalized(depth, valid, fx: float, fy: float, cx: float = 0.5, cy: float = 0.5) -> 'ModelGeometry':
        """From MoGe's intrinsics in units of image width/height with pixel j's centre at (j + ½)/w:
        pixel coordinates are fx·w and cx·w − ½ (ROS puts pixel j's centre at j)."""
        depth = np.asarray(depth, dtype=np.float32)
        h, w = depth.shape
        try:
            intr = Intrinsics(fx=fx * w, fy=fy * h, cx=cx * w - 0.5, cy=cy * h - 0.5, width=w, height=h)
        except ValueError:
            intr = None
        return ModelGeometry(depth, np.asarray(valid, dtype=bool) & np.isfinite(depth), intr)


@dataclass(frozen=True)
class ModelScaleConfig:
    """every_n_frames: the metric pass runs on every N-th frame (1 = every frame); the fit, mask
    and intrinsics are held in between. The tracker smooths (weight of the previous fit) and holds
    a fit up to max_hold_age seconds when passes fail."""
    every_n_frames: int = 1
    fit: FitConfig = field(default_factory=lambda: FitConfig(min_points=100, min_depth=1e-3, max_depth=1e4,
                                                             max_iterations=200, min_inlier_ratio=0.3))
    tracker: TrackerConfig = field(default_factory=lambda: TrackerConfig(smoothing=0.5, max_hold_age=5.0))
    max_samples: int = 20000  # the fit uses at most this many valid pixels (a regular subsample)

    def __post_init__(self):
        if self.every_n_frames < 1:
            raise ValueError(f'every_n_frames must be >= 1, got {self.every_n_frames}')


class ModelScale:
    """Fits and holds the metric scale of relative depth against a metric model (see the module doc)."""

    def __init__(self, config: ModelScaleConfig = ModelScaleConfig()):
        self.config = config
        self.tracker = FitTracker(config.tracker)
        self.geometry: ModelGeometry | None = None
        self.passes = 0
        self._frames = 0
        self._rng = np.random.default_rng(config.fit.seed)

    def reset(self) -> None:
        self.tracker.reset()
        self.geometry = None
        self._frames = 0

    def due(self, size: tuple[int, int]) -> bool:
        """Whether this frame (h, w) needs a metric pass: every N-th frame, and whenever nothing
        usable is held for this size."""
        frame, self._frames = self._frames, self._frames + 1
        if self.geometry is None or self.geometry.depth.shape != tuple(size):
            return True
        return frame % self.config.every_n_frames == 0

    def update(self, stamp: float, relative: np.ndarray, geometry: ModelGeometry) -> TrackedScale:
        """Fold in a metric pass: robust fit of ``relative`` to ``geometry.depth`` over its mask."""
        relative = np.asarray(relative, dtype=np.float32)
        if relative.shape != geometry.depth.shape:
            raise ValueError(f'relative depth {relative.shape} and model depth {geometry.depth.shape} differ in size')
        self.geometry = geometry
        self.passes += 1
        valid = geometry.valid & np.isfinite(relative)
        r, d = relative[valid], geometry.depth[valid]
        if r.size > self.config.max_samples:
            step = int(np.ceil(r.size / self.config.max_samples))
            r, d = r[::step], d[::step]
        result = fit_scale(r, d, self.config.fit, self._rng)
        return self.tracker.update(stamp, result, r)

    def current(self, stamp: float, why: str = 'metric pass skipped (every_n_frames)') -> TrackedScale:
        return self.tracker.current(stamp, why)

    def metric(self, relative: np.ndarray, state: TrackedScale, valid: np.ndarray | None = None) -> np.ndarray:
        """Metres from relative depth with a usable ``state``; NaN where the model marked the
        pixel invalid (``valid`` defaults to the held mask, resized nearest to ``relative``)."""
        if not state.usable:
            raise ValueError(f'no usable model scale: {state.message}')
        depth = relative_to_metric(relative, state.a, state.b)
        if valid is None and self.geometry is not None:
            valid = resize_mask(self.geometry.valid, depth.shape)
        if valid is not None:
            depth[~valid] = np.nan
        return depth


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to (h, w) (no blending across the mask edge)."""
    if mask.shape == tuple(size):
        return mask
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def oracle_fit(relative, metric, valid) -> ScaleFit:
    """Least squares of log(d + 1) = a·r + b over all valid pixels (the oracle in tests/benchmarks)."""
    from .fit import least_squares
    valid = np.asarray(valid, bool) & np.isfinite(relative) & np.isfinite(metric)
    r = np.asarray(relative, np.float64)[valid]
    y = np.log1p(np.asarray(metric, np.float64)[valid])
    a, b = least_squares(r, y)
    return ScaleFit(a, b, 1.0, int(r.size), float(np.sqrt(np.mean(np.square(y - (a * r + b))))), 'full')


__all__ = ['ModelGeometry', 'ModelScale', 'ModelScaleConfig', 'resize_mask', 'oracle_fit',
           'SCALE_SOURCES', 'SOURCE_MODEL', 'SOURCE_SENSOR', 'SOURCE_ASSUMED']
