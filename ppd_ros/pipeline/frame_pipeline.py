"""FramePipeline: rectification → model → temporal step → scale → output geometry → products.

Every entry point (depth_node and its lifecycle twin, ppd-bag, ppd-depth, ppd-demo, the reports)
hands frames to one of these, so a frame gives the same depth everywhere. Nothing here imports ROS:
a CameraInfo arrives as a geometry.rectify.Calibration, and the caller's header (or file name)
travels through as an opaque ``context``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.confidence import confidence_from_uncertainty, uncertainty_of
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
class PreparedFrame:
    """A frame after ``FramePipeline.prepare``: what the model step takes and ``finish`` needs."""
    frame: FrameInput
    rgb: np.ndarray                        # after rectification
    rectified: bool
    valid: np.ndarray | None
    init_depth: np.ndarray | None = None   # a single-frame mode's warm start (TemporalStep.request)
    uncertainty: np.ndarray | None = None  # the sampler's, when confidence was asked for


def confidence_problem(estimator) -> str | None:
    """Why ``estimator`` gives no depth/confidence, or None."""
    if is_video_estimator(estimator):
        return ('no confidence with the video model: PPVD samples windows of frames, and no per-frame '
                'sampler trajectory comes out of a window (depth/confidence stays silent in video mode)')
    if not callable(getattr(estimator, 'predict_with_uncertainty', None)):
        return 'this estimator gives no confidence (only the PPD sampler does)'
    if not getattr(estimator, 'has_uncertainty', True):
        return ('the sampler\'s confidence needs the eager path (model.compile off, model.backend torch); '
                f'this model runs {getattr(estimator, "acceleration", "another path")}')
    return None


class _ConfidenceTap:
    """The estimator as the temporal step sees it: while ``wanted``, ``predict`` runs the sampler
    with its uncertainty signals (the depth is bit-identical) and keeps them in ``uncertainty``."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.wanted = False
        self.samples = 1
        self.uncertainty = None

    def __getattr__(self, name):
        return getattr(self.estimator, name)

    def predict(self, rgb, init_depth=None, init_strength=None):
        warm = {} if init_depth is None else {'init_depth': init_depth, 'init_strength': init_strength}
        if not self.wanted:
            return self.estimator.predict(rgb, **warm)
        depth, signals = self.estimator.predict_with_uncertainty(rgb, samples=self.samples, **warm)
        self.uncertainty = uncertainty_of(signals)
        return depth


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
    if 0 < s.max_range <= s.min_range:
        return f'output.min_range ({s.min_range}) must be smaller than output.max_range ({s.max_range}) (0: off)'
    if not 0 <= s.scan_range_min < s.scan_range_max:
        return f'scan.range_min ({s.scan_range_min}) must be smaller than scan.range_max ({s.scan_range_max})'
    if not s.scan_min_height < s.scan_max_height:
        return f'scan.min_height ({s.scan_min_height}) must be smaller than scan.max_height ({s.scan_max_height})'
    if s.confidence_min > 0 and confidence_problem(estimator):
        return f'output.confidence_min: {confidence_problem(estimator)}'
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
        self._confidence_problem = confidence_problem(estimator)
        self._tap = None
        if self._confidence_problem is None:
            self._tap = self.temporal.estimator = _ConfidenceTap(estimator)
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

    def process(self, frame: FrameInput, want_metric: bool = True, want_confidence: bool = False) -> list[FrameDepth]:
        """The depth of this frame, or for the video model of every frame whose window just ran.
        ``want_metric`` False skips the scale (and MoGe-2's pass) when only relative depth is
        used; ``want_confidence`` adds ``FrameDepth.confidence`` (also computed when
        output.confidence_min needs it). Raises FrameError for input it cannot use."""
        item = self.prepare(frame, want_metric, want_confidence)
        if self._settings.temporal_mode == 'video':
            done = self.temporal.push(item.rgb, frame.stamp_ns, item)
        else:
            done = [(item, self.temporal.complete(self.temporal.predict(item.rgb, item.init_depth)))]
        if self.samples_confidence(want_metric, want_confidence):
            item.uncertainty = self._tap.uncertainty
        return [self.finish(item, relative, want_metric) for item, relative in done]

    def samples_confidence(self, want_metric: bool = True, want_confidence: bool = False) -> bool:
        """Whether this frame's model step runs the sampler with its uncertainty signals (one
        frame at a time: pipeline.batch runs such frames through ``process``)."""
        return self._tap is not None and (want_confidence or (want_metric and self._settings.confidence_min > 0))

    def prepare(self, frame: FrameInput, want_metric: bool = True, want_confidence: bool = False) -> PreparedFrame:
        """The steps before the model: input checks, rectification, the confidence request and,
        in a single-frame temporal mode, the model input (``PreparedFrame.init_depth``; the video
        model's windows are ``temporal.push``'s). Then the model, ``temporal.complete`` and
        ``finish`` (``process`` runs them all). Raises FrameError for input it cannot use."""
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
        if self._tap is not None:
            self._tap.wanted = self.samples_confidence(want_metric, want_confidence)
            self._tap.samples = self._settings.confidence_samples
            self._tap.uncertainty = None
        init_depth = None if self._settings.temporal_mode == 'video' else self.temporal.request(rgb, frame.stamp_ns)
        return PreparedFrame(frame, rgb, rectified, valid, init_depth)

    def flush(self, want_metric: bool = True) -> list[FrameDepth]:
        """The video model's frames still waiting for their window (end of a clip or bag)."""
        return [self.finish(item, relative, want_metric) for item, relative in self.temporal.flush()]

    def needs_model_geometry(self, frame: FrameInput) -> bool:
        """Whether the frame's intrinsics are MoGe-2's (no calibration, camera.intrinsics model)."""
        return frame.calibration is None and self._settings.intrinsics == 'model'

    def finish(self, item: PreparedFrame, relative: np.ndarray, want_metric: bool = True) -> FrameDepth:
        """The steps after the model and ``temporal.complete``: scale, output resolution, invalid
        pixels, intrinsics and confidence → the frame's FrameDepth."""
        s, frame, rgb = self._settings, item.frame, item.rgb
        scale = self.scale.scale(rgb, relative, frame.stamp_ns, want_metric, self.needs_model_geometry(frame))
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
        confidence = None
        if item.uncertainty is not None:
            confidence = confidence_from_uncertainty(item.uncertainty)
            if confidence.shape != relative.shape:  # nearest: never blended across an edge
                confidence = cv2.resize(confidence, relative.shape[::-1], interpolation=cv2.INTER_NEAREST)
            confidence[~np.isfinite(relative)] = np.nan
        return FrameDepth(frame.context, frame.stamp_ns, rgb, relative, scale, item.rectified,
                          intrinsics, problem, s, confidence,
                          self._confidence_problem or ('' if confidence is not None else
                                                       'no confidence was asked for this frame'))

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
