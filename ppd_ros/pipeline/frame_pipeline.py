"""FramePipeline: rectification → model → temporal step → scale → output geometry → products.

Every entry point (depth_node and its lifecycle twin, ppd-bag, ppd-depth, ppd-demo, the reports)
hands frames to one of these, so a frame gives the same depth everywhere. Nothing here imports ROS:
a CameraInfo arrives as a geometry.rectify.Calibration, and the caller's header (or file name)
travels through as an opaque ``context``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.rectify import Calibration, resize_valid
from ppd_ros.geometry.scale.model_scale import SOURCE_MODEL, resize_mask
from ppd_ros.geometry.upsample import upsample_depth

from .products import FrameDepth, FrameError
from .rectification import Rectification
from .scale import ScaleStep, has_metric_model
from .settings import DEFAULTS, PipelineSettings, near_far_problem
from .temporal import TemporalStep, is_video_estimator, supports_warm_start


@dataclass
class FrameInput:
    """One camera frame: RGB, its calibration (None: none, e.g. MoGe-2's intrinsics are used),
    its stamp, and whatever the caller wants back with its depth."""
    rgb: np.ndarray                        # H×W×3 uint8
    stamp_ns: int
    calibration: Calibration | None = None
    context: object = None                 # what the caller wants back with the depth
    input_rectified: bool = False          # the source names its images rectified (image_rect...)


@dataclass
class _Waiting:
    frame: FrameInput
    rgb: np.ndarray                        # after rectification
    rectified: bool
    valid: np.ndarray | None


def settings_problem(settings: PipelineSettings, estimator) -> str | None:
    """Why ``settings`` cannot run on ``estimator``, or None."""
    s = settings
    problem = near_far_problem(s.near, s.far)
    if problem:
        return problem
    video_model = is_video_estimator(estimator)
    if s.temporal_mode == 'video' and not video_model:
        return ("temporal.mode 'video' needs the video model: model.dit_path ppvd.pth and "
                'model.encoder_path pi3.safetensors')
    if video_model and s.temporal_mode != 'video':
        return ("the video model (PPVD) runs only with temporal.mode 'video' (it predicts windows of "
                'frames, not single frames)')
    if s.temporal_mode == 'warm_start' and not supports_warm_start(estimator):
        return "temporal.mode 'warm_start' needs an estimator whose predict accepts init_depth and init_strength"
    if not has_metric_model(estimator):
        if s.metric_source == 'model':
            return ("metric.source 'model' needs MoGe-2 weights (model.encoder_path moge2.pt, "
                    'model.dit_path ppd_moge.pth)')
        if s.intrinsics == 'model':
            return "camera.intrinsics 'model' needs MoGe-2 weights (model.encoder_path moge2.pt)"
    return None


def settings_for(estimator, settings: PipelineSettings = DEFAULTS, **changes) -> PipelineSettings:
    """``settings`` with ``changes``, and the video model's temporal mode when the estimator is
    one (it has no other): what the commands run, which pick the model from the files."""
    settings = settings.replace(**changes)
    if is_video_estimator(estimator) and settings.temporal_mode == 'off':
        settings = settings.replace(temporal_mode='video')
    return settings


class FramePipeline:
    """Frames in, ``FrameDepth`` out (for the video model when their window is done)."""

    def __init__(self, estimator, settings: PipelineSettings = DEFAULTS,
                 log: Callable[[str], None] | None = None):
        problem = settings_problem(settings, estimator)
        if problem:
            raise ValueError(problem)
        self.estimator = estimator
        self._settings = settings
        self._log = log or (lambda line: None)
        self.rectification = Rectification(settings.rectify, self._log)
        self.temporal = TemporalStep(estimator, settings, self._log)
        self.scale = ScaleStep(estimator, settings)

    @property
    def settings(self) -> PipelineSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: PipelineSettings) -> None:
        """New settings take effect from the next frame; a temporal change restarts its state."""
        problem = settings_problem(settings, self.estimator)
        if problem:
            raise ValueError(problem)
        old, self._settings = self._settings, settings
        self.rectification.mode = settings.rectify
        self.temporal.settings = settings
        if any(getattr(old, name) != getattr(settings, name) for name in
               ('temporal_mode', 'video_new_frames', 'warm_start_strength', 'align_smoothing')):
            self.temporal.reset(self.temporal.size)
        self.scale.configure(settings)

    def process(self, frame: FrameInput, want_metric: bool = True) -> list[FrameDepth]:
        """The depth of this frame, or for the video model of every frame whose window just ran.
        ``want_metric`` False skips the scale (and MoGe-2's pass) when only relative depth is
        used. Raises FrameError for input it cannot use."""
        rgb = frame.rgb
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise FrameError(f'expected an H×W×3 uint8 RGB image, got {rgb.dtype} {rgb.shape}')
        height, width = rgb.shape[:2]
        calibration = frame.calibration
        if calibration is not None and (calibration.width, calibration.height) != (width, height):
            raise FrameError(f'CameraInfo is {calibration.width}x{calibration.height} but the image is '
                             f'{width}x{height} (binning and ROI are not supported)')
        rectified, valid = False, None
        if calibration is not None:
            rgb, rectified, valid = self.rectification.apply(rgb, calibration, frame.input_rectified)
        waiting = _Waiting(frame, rgb, rectified, valid)
        done = self.temporal.push(rgb, frame.stamp_ns, waiting)
        return [self._finish(item, relative, want_metric) for item, relative in done]

    def flush(self, want_metric: bool = True) -> list[FrameDepth]:
        """The video model's frames still waiting for their window (end of a clip or bag)."""
        return [self._finish(item, relative, want_metric) for item, relative in self.temporal.flush()]

    def _finish(self, item: _Waiting, relative: np.ndarray, want_metric: bool) -> FrameDepth:
        s, frame, rgb = self._settings, item.frame, item.rgb
        need_geometry = frame.calibration is None and s.intrinsics == 'model'
        scale = self.scale.scale(rgb, relative, frame.stamp_ns, want_metric, need_geometry)
        geometry = self.scale.geometry
        height, width = rgb.shape[:2]
        if s.resolution == 'camera' and relative.shape != (height, width):
            relative = upsample_depth(relative, width, height, s.upsample,
                                      guide=rgb if s.upsample == 'guided' else None,
                                      absolute_threshold=s.upsample_edge_threshold)
        if item.valid is not None:  # rectified pixels that see no raw pixel have no depth
            relative = np.where(resize_valid(item.valid, *relative.shape), relative, np.float32(np.nan))
        if scale is not None and scale.source == SOURCE_MODEL and geometry is not None:
            # MoGe-2's invalid pixels (sky) have no depth, in every output (relative too, so that
            # scale_fusion_node, which reads depth/relative, never gives them one either)
            relative = np.where(resize_mask(geometry.valid, relative.shape), relative, np.float32(np.nan))
        intrinsics, problem = self._intrinsics(frame.calibration, geometry, relative.shape)
        return FrameDepth(frame.context, frame.stamp_ns, rgb, relative, scale, item.rectified,
                          intrinsics, problem, s)

    @staticmethod
    def _intrinsics(calibration: Calibration | None, geometry, shape) -> tuple[Intrinsics | None, str]:
        """The camera of the output pixels: the calibration's (P after rectification, or as
        given), else MoGe-2's estimate; resized with the pixel-centre rule."""
        height, width = shape
        if calibration is not None:
            try:
                return calibration.rectified_intrinsics().resized_to(width, height), ''
            except ValueError as exc:
                return None, f'CameraInfo {exc}'
        if geometry is not None and geometry.intrinsics is not None:
            return geometry.intrinsics.resized_to(width, height), ''
        if geometry is not None:
            return None, 'MoGe-2 gave no usable intrinsics for this frame (focal length not positive)'
        return None, 'no camera intrinsics (no CameraInfo, and no MoGe-2 estimate)'

    def reset(self) -> None:
        self.temporal.reset()
        if self.scale.model_scale is not None:
            self.scale.model_scale.reset()
