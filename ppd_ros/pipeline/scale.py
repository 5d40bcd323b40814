"""Step 4 of the frame pipeline: the (a, b) of log(d + 1) = a·r + b that turns relative depth
into metres, and where it comes from.

model: MoGe-2's metric depth on the same frame (PPD-MoGe2 weights; metric_source auto or model),
fitted robustly and smoothed over frames (geometry.scale.model_scale). assumed: the range near..far
(metres at relative depth 0 and 1). A MoGe-2 fit that is not usable falls back to the assumed
range and says why. (The fusion node adds a third source, a metric sensor.)
"""
from __future__ import annotations

from dataclasses import dataclass

from ppd_ros.geometry.scale.depth_scale import near_far_scale
from ppd_ros.geometry.scale.fit import FitStatus, TrackedScale, TrackerConfig
from ppd_ros.geometry.scale.model_scale import SOURCE_ASSUMED, SOURCE_MODEL, ModelScale, ModelScaleConfig


@dataclass(frozen=True)
class ScaleInUse:
    """The scale a frame's metric outputs use: the fields of ppd_ros/msg/DepthScale."""
    a: float
    b: float
    source: str
    status: int
    message: str
    age: float = 0.0
    inlier_ratio: float = 0.0
    num_points: int = 0
    residual: float = 0.0

    @staticmethod
    def from_tracked(tracked: TrackedScale, source: str) -> 'ScaleInUse':
        fit = tracked.fit
        return ScaleInUse(float(tracked.a), float(tracked.b), source, int(tracked.status), tracked.message,
                          float(tracked.age), float(fit.inlier_ratio) if fit else 0.0,
                          int(fit.num_points) if fit else 0, float(fit.residual) if fit else 0.0)

    @staticmethod
    def assumed(near: float, far: float, why: str = '') -> 'ScaleInUse':
        a, b = near_far_scale(near, far)
        text = 'assumed range output.near..output.far'
        return ScaleInUse(a, b, SOURCE_ASSUMED, int(FitStatus.NO_FIT), f'{why}: {text}' if why else text)


def has_metric_model(estimator) -> bool:
    return bool(getattr(estimator, 'has_metric_model', False))


class ScaleStep:
    """Runs the MoGe-2 metric pass when due and holds its smoothed fit, mask and intrinsics."""

    def __init__(self, estimator, settings):
        self.estimator = estimator
        self.model_scale: ModelScale | None = None
        self._last_stamp = float('-inf')
        self._due: bool | None = None   # metric_pass_due's decision for the coming scale() call
        self.ready_geometry = None      # MoGe-2's view of the coming frame, run by the caller (a batch)
        self.configure(settings)

    def configure(self, settings) -> None:
        self.settings = settings
        metric_model = has_metric_model(self.estimator)
        self.from_model = metric_model and settings.metric_source != 'assumed'
        config = ModelScaleConfig(every_n_frames=settings.metric_every_n_frames,
                                  tracker=TrackerConfig(smoothing=settings.metric_smoothing,
                                                        max_hold_age=settings.metric_max_hold_age))
        if not metric_model:
            self.model_scale = None
        elif self.model_scale is None:
            self.model_scale = ModelScale(config)
        else:
            self.model_scale.config = config
            self.model_scale.tracker.config = config.tracker

    @property
    def geometry(self):
        """MoGe-2's view of the last frame it ran on (depth, valid mask, intrinsics), or None."""
        return self.model_scale.geometry if self.model_scale is not None else None

    @property
    def passes(self) -> int:
        return self.model_scale.passes if self.model_scale is not None else 0

    def metric_pass_due(self, shape, stamp_ns: int, want_metric: bool, need_geometry: bool) -> bool:
        """Whether the coming ``scale`` call (same frame) runs MoGe-2's metric pass; decided once,
        so that pipeline.batch can run the passes of several cameras as one batch beforehand and
        hand each its result in ``ready_geometry``."""
        if self._due is None:
            self._due = False
            if (want_metric or need_geometry) and self.model_scale is not None and (self.from_model or need_geometry):
                stamp = stamp_ns * 1e-9
                if stamp < self._last_stamp:
                    self.model_scale.reset()  # time went backwards (a bag restarted)
                self._last_stamp = stamp
                self._due = self.model_scale.due(shape)
        return self._due

    def scale(self, rgb, relative, stamp_ns: int, want_metric: bool, need_geometry: bool) -> ScaleInUse | None:
        """This frame's scale (running the metric pass when due), or None when neither a metric
        output nor MoGe-2's geometry is wanted."""
        s = self.settings
        due = self.metric_pass_due(relative.shape, stamp_ns, want_metric, need_geometry)
        geometry, self._due, self.ready_geometry = self.ready_geometry, None, None
        if not (want_metric or need_geometry):
            return None
        if self.model_scale is None or not (self.from_model or need_geometry):
            return ScaleInUse.assumed(s.near, s.far)
        stamp = stamp_ns * 1e-9
        if due:
            if geometry is None:
                geometry = self.estimator.metric_geometry(rgb, s.metric_resolution_level)
            tracked = self.model_scale.update(stamp, relative, geometry)
        else:
            tracked = self.model_scale.current(stamp)
        if not self.from_model:
            return ScaleInUse.assumed(s.near, s.far)
        if tracked.usable:
            return ScaleInUse.from_tracked(tracked, SOURCE_MODEL)
        return ScaleInUse.assumed(s.near, s.far, f'MoGe-2 scale unusable ({tracked.message})')
