"""depth_node: Pixel-Perfect Depth on a ROS 2 camera stream.

Subscribes `image` (sensor_msgs/Image) — or `<image>/compressed` with `image_transport:
compressed` — and the `camera_info` beside it, as image_transport derives them from the resolved
image topic (camera_info.camera_topics), paired by stamp (or with the latest CameraInfo).
Callbacks only hand the pair to one worker thread (latest frame wins, drops counted), which
rectifies distorted raw images (input.rectify), runs the model and publishes, each with the
input header:

  depth/relative     32FC1 normalised log-depth (larger = farther), NaN invalid (with the
                     MoGe-2 scale in use, also where MoGe-2 sees no surface, e.g. sky)
  depth/image        32FC1 metres (REP 118: NaN invalid, never 0). With MoGe-2 weights
                     (moge2.pt as the encoder) the scale comes from the camera alone: PPD's
                     relative depth fitted to MoGe-2's metric depth over its valid mask
                     (geometry.scale.model_scale; pixels MoGe-2 marks invalid are NaN); otherwise
                     from the assumed range output.near..output.far
  depth/scale        ppd_ros/DepthScale: the (a, b) in use and its source (model | assumed)
  depth/camera_info  describes depth/relative and depth/image exactly (size, scaled K and P; after
                     rectification that of the rectified image: D = 0, K = P's, R = I)
  depth/points       organized PointCloud2 H×W (NaN invalid, is_dense false, optional rgb),
                     geometry from P (fx, fy, cx, cy) as depth_image_proc does, K when P is zero
  depth/colorized    bgr8 picture of depth/image (fixed or percentile range)
  /diagnostics       1 Hz: rates, latencies, drops, model

Lazy outputs: nothing is computed for an output without subscribers, and the model does not run
at all while none of depth/relative, depth/image, depth/points, depth/colorized, depth/scale has
one (depth/camera_info alone does not trigger inference: it only describes those images). The
MoGe-2 pass runs only for the metric outputs and depth/scale (scale_fusion_node's fallback).
"""
from __future__ import annotations

import inspect
import sys
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from ppd_ros.msg import DepthScale

from ppd_ros.geometry.backproject import depth_to_points
from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.colorize import colorize_depth
from ppd_ros.geometry.scale.depth_scale import near_far_scale, relative_to_metric
from ppd_ros.geometry.scale.model_scale import (SOURCE_ASSUMED, SOURCE_MODEL, ModelScale, ModelScaleConfig,
                                          resize_mask)
from ppd_ros.geometry.scale.fit import FitStatus, TrackerConfig
from ppd_ros.geometry.rectify import Rectifier, resize_valid
from ppd_ros.geometry.temporal import TemporalAligner
from ppd_ros.geometry.upsample import upsample_depth
from ppd_ros.model.estimator import release_device_memory
from ppd_ros.model.factory import BACKENDS, EstimatorBuildError, build_estimator
from ppd_ros.model.preprocess import DEFAULT_MAX_PIXELS

from .cloud import points_to_cloud_msg
from .camera_info import (CameraInfoError, calibration_of, camera_intrinsics, camera_topics,
                          looks_rectified, rectified_camera_info, scaled_camera_info)
from .diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, LostMessages, RateMeter, StatWindow
from .image_codec import MONO16_MODES, bgr_to_image_msg, depth_to_image_msg, rgb_from_any
from .pairing import stamp_ns, subscribe_pair
from .params import DIAGNOSTICS_SPECS, NodeParameters, ParameterError, ParamSpec, pairing_specs, qos_specs
from .qos import AutoReliable, configured_qos
from .runner import run_node
from .worker import LatestFrameWorker

METRIC_OUTPUTS = frozenset({'image', 'points', 'colorized', 'scale'})  # need the scale (a MoGe-2 pass)
DEPTH_OUTPUTS = ('relative', 'image', 'points', 'colorized', 'scale')
TEMPORAL_MODES = ('off', 'align', 'warm_start', 'video')
VIDEO_NEW_FRAMES_DEFAULT = 5  # 30 Hz: ~170 ms of buffering per window; see README 'Streaming video depth'
RESOLUTIONS = ('inference', 'camera')
UPSAMPLE_METHODS = ('edge_aware', 'guided', 'nearest')  # never bilinear across depth edges
COLORIZE_MODES = ('percentile', 'fixed')
METRIC_SOURCES = ('auto', 'model', 'assumed')
INTRINSICS_SOURCES = ('camera_info', 'model')
IMAGE_TRANSPORTS = ('raw', 'compressed')
RECTIFY_MODES = ('auto', 'on', 'off')


def _positive_pair(value) -> str | None:
    return None if value[0] < value[1] else f'needs low < high, got {list(value)}'


def _target_area_problem(value) -> str | None:
    if list(value) != [0, 0] and min(value) < 16:
        return 'use [0, 0] (the model\'s own) or both sides >= 16'
    return None


DEPTH_NODE_PARAMETERS = (
    # input
    ParamSpec('image_transport', 'raw', 'How the image arrives, as image_transport names it: raw '
              '(sensor_msgs/Image on image) or compressed (sensor_msgs/CompressedImage, jpeg or png, '
              'on <image>/compressed)', choices=IMAGE_TRANSPORTS),
    ParamSpec('input.rectify', 'auto', 'Raw images whose CameraInfo has distortion (D not zero): auto '
              'rectifies them unless the image topic is named as rectified (image_rect...: image_proc\'s '
              'convention); on always rectifies; off never does (a warning once). The outputs then '
              'have the rectified geometry (P)', choices=RECTIFY_MODES),
    ParamSpec('input.mono16', 'shift', 'How mono16 images become 8 bit: shift (value >> 8) or '
              'percentile (per-frame 1–99 % stretch, for 10/12-bit sensors)', choices=MONO16_MODES),
    *pairing_specs('image', 'CameraInfo', slop=0.05),
    ParamSpec('input.max_pixels', DEFAULT_MAX_PIXELS, 'Largest frame (width x height) accepted, raw or '
              'compressed; larger ones are refused with a message before they are decoded (PNG/JPEG '
              'size from the header). Default 7680x4320 (8K UHD)', low=256, high=2**30),
    *qos_specs(auto_subscription=True),
    # model
    ParamSpec('model.dit_path', '', 'Released DiT checkpoint: ppd.pth, ppd_moge.pth (with moge2.pt: metric '
              'depth from the camera alone), or ppvd.pth (the video model, with temporal.mode video); empty: '
              'bundled demo model'),
    ParamSpec('model.encoder_path', '', 'Released encoder checkpoint (Depth-Anything-v2 for ppd.pth, moge2.pt for '
              'ppd_moge.pth, pi3.safetensors for ppvd.pth); give it together with model.dit_path'),
    ParamSpec('model.device', 'auto', 'auto, cpu, cuda, cuda:N, ...'),
    ParamSpec('model.precision', 'fp32', 'Inference precision', choices=('fp32', 'fp16', 'bf16')),
    ParamSpec('model.steps', 4, 'Euler sampling steps (fewer: faster, coarser)', dynamic=True,
              low=1, high=64),
    ParamSpec('model.seed', -1, 'Noise seed for reproducible output; -1: random', low=-1),
    ParamSpec('model.target_area', [0, 0], 'Model resolution as [width, height] whose pixel '
              'area the input is resized to (aspect kept, multiples of 16); [0, 0]: the model\'s own '
              '(1024x768 for the released weights, the training resolution of the demo model)',
              length=2, low=0, high=8192, check=_target_area_problem),
    ParamSpec('model.compile', 'off', 'on: torch.compile + CUDA-graph capture of the whole frame for the '
              'model resolution, warmed up at start (CUDA; elsewhere eager, with one log line)',
              choices=('off', 'on')),
    ParamSpec('model.backend', 'torch', 'torch; onnxruntime (CPU or CUDA provider by model.device) or '
              'tensorrt (onnxruntime TensorRT provider) run model.onnx_path', choices=BACKENDS),
    ParamSpec('model.onnx_path', '', 'ONNX model written by ppd-export, for model.backend '
              'onnxruntime or tensorrt (fixed resolution and steps)'),
    ParamSpec('worker.queue_size', 1, 'Frames waiting for the model; older ones are dropped '
              '(latest frame wins)', low=1, high=16),
    # outputs
    ParamSpec('output.resolution', 'inference', 'inference: depth at the model resolution '
              '(camera_info scaled per axis); camera: enlarged to the camera resolution',
              dynamic=True, choices=RESOLUTIONS),
    ParamSpec('output.upsample', 'guided', 'How depth is enlarged for output.resolution camera '
              '(edge-preserving; guided follows the RGB edges)', dynamic=True, choices=UPSAMPLE_METHODS),
    ParamSpec('output.upsample_edge_threshold', 0.02, 'Relative-depth step treated as a depth edge '
              'when enlarging', dynamic=True, low=1e-6, high=1.0),
    ParamSpec('output.near', 0.5, 'Assumed metres at relative depth 0 (depth/image, depth/points)',
              dynamic=True, low=1e-3),
    ParamSpec('output.far', 10.0, 'Assumed metres at relative depth 1', dynamic=True, low=1e-3),
    ParamSpec('output.points_rgb', True, 'Add the packed rgb field to depth/points', dynamic=True),
    # metric scale
    ParamSpec('metric.source', 'auto', 'Scale of depth/image and depth/points: auto (MoGe-2\'s metric '
              'depth when the weights include it, else the assumed output.near/far), model (require '
              'MoGe-2), assumed (always output.near/far)', choices=METRIC_SOURCES),
    ParamSpec('metric.every_n_frames', 1, 'Run the MoGe-2 metric pass on every N-th frame; the smoothed '
              'fit, validity mask and intrinsics are held in between', dynamic=True, low=1, high=1000),
    ParamSpec('metric.resolution_level', 9, 'MoGe-2\'s token count, 0 (fewest, fastest) .. 9 (most, as '
              'released); the metric pass costs about the same at any image size', dynamic=True, low=0, high=9),
    ParamSpec('metric.smoothing', 0.5, 'Weight of the previous model-scale fit when a new one arrives '
              '(0 = each pass as is)', dynamic=True, low=0.0, high=0.99),
    ParamSpec('metric.max_hold_age', 5.0, 'Seconds a model-scale fit is held when passes fail; after that '
              'the assumed range is used', dynamic=True, low=0.0, high=3600.0),
    ParamSpec('camera.intrinsics', 'camera_info', 'Geometry source: camera_info (subscribe camera_info, '
              'the calibration), or model (MoGe-2\'s intrinsics for cameras without calibration: no '
              'camera_info subscription; depth/camera_info then carries the intrinsics used)',
              choices=INTRINSICS_SOURCES),
    # colorized
    ParamSpec('colorize.mode', 'percentile', 'percentile: range from the frame\'s percentiles; '
              'fixed: colorize.range metres', dynamic=True, choices=COLORIZE_MODES),
    ParamSpec('colorize.percentiles', [2.0, 98.0], 'Low and high percentile for mode percentile',
              dynamic=True, length=2, low=0.0, high=100.0, check=_positive_pair),
    ParamSpec('colorize.range', [0.5, 10.0], 'Metres shown at the two ends of the colour map for '
              'mode fixed', dynamic=True, length=2, low=0.0, check=_positive_pair),
    # temporal
    ParamSpec('temporal.mode', 'off', 'Temporal smoothing: off; align (fit each frame to the '
              'previous one); warm_start (start sampling from the previous depth, fewer steps); video '
              '(the video model PPVD, causal windows: needs model.dit_path ppvd.pth and '
              'model.encoder_path pi3.safetensors; frames are published when their window is done)',
              dynamic=True, choices=TEMPORAL_MODES),
    ParamSpec('temporal.video_new_frames', VIDEO_NEW_FRAMES_DEFAULT, 'video: new frames per window (1..13); '
              'each window re-runs the 3 keyframes it inherits, so fewer new frames = lower latency, more '
              'compute per frame (13 = the offline windows of 16)', dynamic=True, low=1, high=13),
    ParamSpec('temporal.warm_start_strength', 0.5, 'warm_start: fraction of the sampling steps run '
              'again from the noised previous depth (1 = all steps, a cold start)', dynamic=True,
              low=0.05, high=1.0),
    ParamSpec('temporal.align_smoothing', 0.8, 'align: weight of the running reference when it is '
              'updated with a new aligned frame (0 = follow each frame)', dynamic=True, low=0.0, high=0.99),
    *DIAGNOSTICS_SPECS,
)
DEPRECATED_PARAMETERS = {'input.compressed': "use 'image_transport: compressed' (or raw)"}


def check_depth_node_parameters(values: dict) -> str | None:
    """Relations between parameters that no single spec can check."""
    if not values['output.near'] < values['output.far']:
        return f"output.near ({values['output.near']}) must be smaller than output.far ({values['output.far']})"
    if (values['model.backend'] == 'torch') == bool(values['model.onnx_path']):
        return ('model.onnx_path is needed by model.backend onnxruntime/tensorrt and only by them '
                f"(backend {values['model.backend']}, onnx_path '{values['model.onnx_path']}')")
    if values['model.compile'] == 'on' and values['model.backend'] != 'torch':
        return 'model.compile on is for model.backend torch (an ONNX backend compiles itself)'
    if bool(values['model.dit_path']) != bool(values['model.encoder_path']):
        return 'model.dit_path and model.encoder_path must be given together (or both empty for the demo model)'
    return None


def camera_info_from_intrinsics(intrinsics: Intrinsics, header) -> CameraInfo:
    """A CameraInfo (no distortion, identity R, P = [K | 0]) describing estimated intrinsics."""
    k = intrinsics.K
    p = np.hstack((k, np.zeros((3, 1))))
    return CameraInfo(header=header, width=int(intrinsics.width), height=int(intrinsics.height),
                      distortion_model='plumb_bob', d=[0.0] * 5, k=k.ravel().tolist(),
                      r=np.eye(3).ravel().tolist(), p=p.ravel().tolist())


class InputError(ValueError):
    """An input message cannot be used; the text says why (logged throttled, frame dropped)."""


def model_options(params, log=None) -> dict:
    """``ppd_ros.model.factory.build_estimator`` keyword arguments from the model.* parameters:
    released checkpoints when model.dit_path is set, else the bundled demo model; seed -1: random.
    ``log(line)`` receives the estimator's one line when model.compile falls back to eager. The
    compiled path is warmed up later, on the inference thread (``DepthNode._warm_up``)."""
    seed = params['model.seed']
    return dict(dit=params['model.dit_path'] or None, encoder=params['model.encoder_path'] or None,
                device=params['model.device'], precision=params['model.precision'],
                steps=params['model.steps'], seed=None if seed < 0 else seed,
                target_area=tuple(params['model.target_area']) if any(params['model.target_area']) else None,
                compile=params['model.compile'], backend=params['model.backend'],
                onnx_path=params['model.onnx_path'] or None, log=log, defer_warm_up=True)


def is_video_estimator(estimator) -> bool:
    return getattr(estimator, 'is_video', False) and callable(getattr(estimator, 'stream', None))


def supports_warm_start(estimator) -> bool:
    try:
        parameters = inspect.signature(estimator.predict).parameters
    except (TypeError, ValueError):
        return False
    return 'init_depth' in parameters and 'init_strength' in parameters


# ---------------------------------------------------------------------------------- the node

@dataclass
class _Frame:
    """One frame as it goes to the model (rectified if needed) and comes back to be published."""
    header: object
    rgb: np.ndarray
    info: CameraInfo
    valid: np.ndarray | None  # rectified pixels that see a raw pixel (None: not rectified)
    scale: object = None      # TrackedScale from MoGe-2 for depth/image, or None: the assumed range


@dataclass
class _Pair:
    image: Image | CompressedImage
    info: CameraInfo


class _Rectification:
    """input.rectify applied to each frame: rectify distorted raw images (maps once per
    calibration), or pass them on, with a warning once per calibration where that is wrong."""

    def __init__(self, node, mode: str, input_rectified: bool):
        self._node = node
        self.mode = mode
        self.input_rectified = input_rectified
        self.rectifier = Rectifier()
        self.state = 'no frame yet'
        self._warned: set = set()

    def apply(self, rgb: np.ndarray, info: CameraInfo):
        """(image, its CameraInfo, valid mask or None) for the model and the outputs."""
        calibration = calibration_of(info)
        if not calibration.distorted:
            self.state = 'not needed (D is zero)'
            return rgb, info, None
        if self.mode == 'off' or (self.mode == 'auto' and self.input_rectified):
            self.state = 'off' if self.mode == 'off' else 'input topic is rectified (image_rect)'
            if not self.input_rectified:
                self._warn_once(calibration, f'CameraInfo has {calibration.distortion_model} distortion '
                                'but input.rectify is off: depth and points assume a rectified image and '
                                'are bent towards the edges (feed image_rect, or set input.rectify auto)')
            return rgb, info, None
        try:
            rectified = self.rectifier.rectify(rgb, calibration)
        except ValueError as exc:
            self.state = f'failed: {exc}'
            self._warn_once(calibration, f'{exc}; images are used unrectified, so depth and points are '
                            'bent towards the edges')
            return rgb, info, None
        self.state = f'rectified ({calibration.distortion_model}, maps built {self.rectifier.maps_built}x)'
        valid = self.rectifier.valid(calibration)
        return rectified, rectified_camera_info(info), None if valid.all() else valid

    def _warn_once(self, calibration, text: str) -> None:
        if calibration not in self._warned:
            if len(self._warned) >= 64:  # a driver whose calibration never repeats: stay bounded
                self._warned.clear()
            self._warned.add(calibration)
            self._node.get_logger().warning(text)


class _TemporalState:
    """What temporal smoothing carries from frame to frame; reset on any discontinuity."""

    def __init__(self, smoothing: float):
        self.reset(None, smoothing)

    def reset(self, size, smoothing: float) -> None:
        self.size = size
        self.previous: np.ndarray | None = None
        self.aligner = TemporalAligner(smoothing=smoothing)
        self.last_stamp = -1
        self.reset_requested = False
        self.stream = None            # temporal.mode video: the causal window stream
        self.waiting: dict = {}       # its frames waiting for their window: stamp → _Frame


class DepthNode(Node):
    """The depth node; `estimator` (anything with predict/steps/describe) replaces the model."""

    def __init__(self, estimator=None, node_name: str = 'depth_node', **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.worker = None
        self.estimator = None
        self.diagnostics = None
        self._subscriptions_handle = None
        self._auto_qos = None
        self._outputs = {}
        try:
            self._start(estimator)
        except BaseException:
            self.destroy_node()  # a node that cannot start must not linger in the context
            raise

    # The node's life in the phases of a managed node (depth_lifecycle_node runs them one by one
    # on its transitions; this node runs them all at once): declare → configure (model, outputs)
    # → activate (worker, inputs, diagnostics); deactivate and cleanup undo them.

    def _start(self, estimator) -> None:
        self._declare()
        self._configure(estimator)
        self._activate()

    def _declare(self) -> None:
        self.params = NodeParameters(self, DEPTH_NODE_PARAMETERS, self._check_parameters)
        for name in self.params.unknown_overrides():
            if name not in DEPRECATED_PARAMETERS:
                self.get_logger().warning(f"unknown parameter '{name}' ignored (typo?)")
        self.image_transport = self._image_transport()
        self.params.on_change(self._on_parameters_changed)

    def _configure(self, estimator) -> None:
        """Load the model (or take `estimator`) and create the outputs."""
        self.estimator = estimator if estimator is not None else build_estimator(
            **model_options(self.params, log=self.get_logger().warning))
        reason = self._check_parameters(dict(self.params))  # again, now that the estimator is known
        if reason:
            raise ParameterError(reason)
        self.estimator.steps = self.params['model.steps']
        self._describe = dict(self.estimator.describe())
        self._scale = near_far_scale(self.params['output.near'], self.params['output.far'])
        self._temporal = _TemporalState(self.params['temporal.align_smoothing'])
        self._configure_metric()

        # statistics (read by /diagnostics and by tests)
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.latency = StatWindow()
        self.inference_time = StatWindow()
        self.idle_frames = 0          # frames skipped because no depth output had a subscriber
        self.published_frames = 0
        self.last_scale: DepthScale | None = None  # what depth/image used last (source, a, b)
        self.errors = 0               # frames (or outputs) dropped because of bad input / failures
        self.last_error = ''
        self._stats_lock = threading.Lock()
        self._last_dropped = 0
        self._last_errors = 0
        self.lost_messages = LostMessages()  # reported by the middleware: never reached a callback

        publisher_qos = configured_qos(self.params, 'publisher')
        self._outputs = {
            'relative': self._create_output(Image, 'depth/relative', publisher_qos),
            'image': self._create_output(Image, 'depth/image', publisher_qos),
            'camera_info': self._create_output(CameraInfo, 'depth/camera_info', publisher_qos),
            'points': self._create_output(PointCloud2, 'depth/points', publisher_qos),
            'colorized': self._create_output(Image, 'depth/colorized', publisher_qos),
            'scale': self._create_output(DepthScale, 'depth/scale', publisher_qos),
        }

    def _create_output(self, msg_type, topic: str, qos):
        return self.create_publisher(msg_type, topic, qos)

    def _activate(self) -> None:
        """Start the inference worker, the input subscriptions and /diagnostics."""
        self.worker = LatestFrameWorker(self._process, self.params['worker.queue_size'],
                                        on_error=self._on_frame_error, prepare=self._warm_up).start()
        image_topic, info_topic, base_topic = camera_topics(self, 'image', 'camera_info', self.image_transport)
        self.input_topics = (image_topic, info_topic)
        self._rectification = _Rectification(self, self.params['input.rectify'], looks_rectified(base_topic))
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._subscribe_inputs(configured_qos(self.params, 'subscription'))
        if self.params['qos.subscription'] == 'auto' and self._subscriptions_handle is not None:
            self._auto_qos = AutoReliable(self, self.lost_messages, self.input_topics, self._resubscribe_inputs,
                                          self.params['qos.subscription_depth'], callback_group=self._input_group)
        self.diagnostics = DiagnosticsPublisher(
            self, self._diagnostics_status, hardware_id=str(self._describe.get('device', '')),
            period=self.params['diagnostics.period'], callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"depth_node ready: model {self._describe.get('model', '?')} on {self._describe.get('device', '?')} "
            f"({self._describe.get('precision', '?')}, {self.estimator.steps} steps, "
            f"{self._describe.get('acceleration', 'eager')}); input "
            f"{image_topic} ({self.image_transport}) + {info_topic} paired {self.pairing}; "
            f"rectify {self.params['input.rectify']}")

    def _subscribe_inputs(self, qos) -> None:
        image_type = CompressedImage if self.image_transport == 'compressed' else Image
        if self.params['camera.intrinsics'] == 'model':  # no calibration: the image alone
            self.input_topics = self.input_topics[:1]
            self._image_subscription = self.create_subscription(
                image_type, self.input_topics[0], lambda msg: self._on_pair(msg, None), qos,
                callback_group=self._input_group)
            self.pairing = 'image only (MoGe-2 intrinsics)'
            return
        self._subscriptions_handle, self.pairing = subscribe_pair(
            self, (image_type, self.input_topics[0]), (CameraInfo, self.input_topics[1]), qos,
            self._on_pair, queue_size=self.params['input.sync_queue_size'],
            slop=self.params['input.sync_slop'],
            latest_secondary=self.params['input.latest_camera_info'],
            callback_group=self._input_group, lost_messages=self.lost_messages)

    def _resubscribe_inputs(self, qos) -> None:
        self._subscriptions_handle.close(self)
        self._subscribe_inputs(qos)

    @property
    def input_reliability(self) -> str:
        """What the input subscriptions use now (qos.subscription; auto: where it stands)."""
        if self._auto_qos is not None:
            return self._auto_qos.state
        return {'auto': 'auto: best effort'}.get(self.params['qos.subscription'], self.params['qos.subscription'])

    def _image_transport(self) -> str:
        """image_transport, or the deprecated input.compressed when only that one is given."""
        legacy = self.params.override('input.compressed')
        if legacy is None:
            return self.params['image_transport']
        self.get_logger().warning("parameter 'input.compressed' is deprecated: "
                                  + DEPRECATED_PARAMETERS['input.compressed'])
        if self.params.override('image_transport') is not None or not isinstance(legacy, bool):
            return self.params['image_transport']
        return 'compressed' if legacy else 'raw'

    def _deactivate(self) -> None:
        """Stop taking input (the frame in progress finishes) and stop /diagnostics."""
        if self.worker is not None:
            self.worker.stop()
        if self._auto_qos is not None:
            self._auto_qos.close()
            self._auto_qos = None
        if self._subscriptions_handle is not None:
            self._subscriptions_handle.close(self)
            self._subscriptions_handle = None
        if getattr(self, '_image_subscription', None) is not None:
            self.destroy_subscription(self._image_subscription)
            self._image_subscription = None
        if self.diagnostics is not None:
            self.diagnostics.close()
            self.diagnostics = None

    def _cleanup(self) -> None:
        """Destroy the outputs and drop the model, giving its (GPU) memory back."""
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self.estimator = None
        self._temporal = None
        release_device_memory()

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self, values: dict) -> str | None:
        reason = check_depth_node_parameters(values)
        video_model = self.estimator is not None and is_video_estimator(self.estimator)
        if reason is None and values['temporal.mode'] == 'video' and self.estimator is not None \
                and not video_model:
            reason = ("temporal.mode 'video' needs the video model: model.dit_path ppvd.pth and "
                      'model.encoder_path pi3.safetensors')
        if reason is None and video_model and values['temporal.mode'] != 'video':
            reason = ("the video model (PPVD) runs only with temporal.mode 'video' (it predicts windows of "
                      'frames, not single frames)')
        if reason is None and values['temporal.mode'] == 'warm_start' \
                and self.estimator is not None and not supports_warm_start(self.estimator):
            reason = ("temporal.mode 'warm_start' needs an estimator whose predict accepts "
                      'init_depth and init_strength')
        if reason is None and self.estimator is not None and not self._has_metric_model():
            if values['metric.source'] == 'model':
                reason = ("metric.source 'model' needs MoGe-2 weights (model.encoder_path moge2.pt, "
                          'model.dit_path ppd_moge.pth)')
            elif values['camera.intrinsics'] == 'model':
                reason = "camera.intrinsics 'model' needs MoGe-2 weights (model.encoder_path moge2.pt)"
        return reason

    def _has_metric_model(self) -> bool:
        return bool(getattr(self.estimator, 'has_metric_model', False))

    def _configure_metric(self) -> None:
        """The model scale (MoGe-2 weights, metric.source auto/model) and/or model intrinsics."""
        p = self.params
        self._scale_from_model = self._has_metric_model() and p['metric.source'] != 'assumed'
        config = ModelScaleConfig(every_n_frames=p['metric.every_n_frames'],
                                  tracker=TrackerConfig(smoothing=p['metric.smoothing'],
                                                        max_hold_age=p['metric.max_hold_age']))
        if not (self._scale_from_model or p['camera.intrinsics'] == 'model'):
            self._model_scale = None
        elif getattr(self, '_model_scale', None) is None:
            self._model_scale = ModelScale(config)
        else:
            self._model_scale.config = config
            self._model_scale.tracker.config = config.tracker



    def _on_parameters_changed(self, changed: dict) -> None:
        if 'model.steps' in changed and self.estimator is not None:
            self.estimator.steps = changed['model.steps']
        if 'output.near' in changed or 'output.far' in changed:
            self._scale = near_far_scale(self.params['output.near'], self.params['output.far'])
        if any(name.startswith('temporal.') for name in changed) and getattr(self, '_temporal', None):
            self._temporal.reset_requested = True
        if any(name.startswith('metric.') for name in changed) and self.estimator is not None:
            self._configure_metric()
        self.get_logger().info(f'parameters changed: {changed}')

    # ------------------------------------------------------------------ input (never blocks)

    def _on_pair(self, image_msg, info_msg) -> None:
        self.input_rate.tick()
        self.worker.submit(_Pair(image_msg, info_msg))

    def _on_frame_error(self, exc: Exception, _item) -> None:
        if not self.worker.running:  # the frame in flight when the node stopped: not an error
            return
        self._count_error(exc)
        if isinstance(exc, ValueError):  # ImageDecodeError, InputError: the input's fault
            self.get_logger().error(f'frame dropped: {exc}', throttle_duration_sec=2.0)
        else:
            self.get_logger().error(f'frame failed: {type(exc).__name__}: {exc}', throttle_duration_sec=2.0)

    def _count_error(self, exc: Exception) -> None:
        with self._stats_lock:
            self.errors += 1
            self.last_error = str(exc)

    # ------------------------------------------------------------------ worker thread

    def _warm_up(self) -> None:
        """model.compile on: compile and capture for the model resolution here, on the inference
        thread, before the first frame. CUDA-graph trees are per thread: a capture made on the
        thread that built the estimator would be recorded again by the first frames here."""
        warm_up = getattr(self.estimator, 'warm_up', None)
        if warm_up is None:
            return
        started = time.perf_counter()
        try:
            warm_up()
        except Exception as exc:  # noqa: BLE001 — frames then compile on arrival; say so
            self._count_error(exc)
            self.get_logger().error(f'model warm-up failed ({type(exc).__name__}: {exc}); the first frames '
                                    'compile on arrival')
            return
        seconds = time.perf_counter() - started
        if seconds >= 1.0:
            self.get_logger().info(f'model warmed up on the inference thread in {seconds:.1f} s '
                                   f'({self._describe.get("acceleration", "compiled")})')

    def wanted_outputs(self) -> set[str]:
        """Depth outputs somebody listens to right now."""
        return {name for name in DEPTH_OUTPUTS if self._outputs[name].get_subscription_count() > 0}

    def _process(self, pair: _Pair) -> None:
        wanted = self.wanted_outputs()
        if not wanted:
            with self._stats_lock:
                self.idle_frames += 1
            return
        rgb = rgb_from_any(pair.image, mono16=self.params['input.mono16'],
                           max_pixels=self.params['input.max_pixels'])
        height, width = rgb.shape[:2]
        info = pair.info
        if info is not None and (info.width, info.height) != (width, height):
            raise InputError(f'CameraInfo is {info.width}x{info.height} but the image is {width}x{height} '
                             '(binning and ROI are not supported)')
        valid = None
        if info is not None:  # with MoGe-2's intrinsics (no CameraInfo) there is nothing to rectify with
            rgb, info, valid = self._rectification.apply(rgb, info)
        frame = _Frame(pair.image.header, rgb, info, valid)

        started = time.perf_counter()
        if self.params['temporal.mode'] == 'video':
            done = self._estimate_video(frame)
        else:
            relative = self._estimate(rgb, stamp_ns(pair.image))
            frame.scale = self._metric_scale(rgb, relative, stamp_ns(pair.image) * 1e-9, wanted, info is None)
            if info is None:  # camera.intrinsics model: MoGe-2's intrinsics, published as depth/camera_info
                intrinsics = self._model_scale.geometry.intrinsics
                if intrinsics is None:
                    raise InputError('MoGe-2 gave no usable intrinsics for this frame (focal length not positive)')
                frame.info = camera_info_from_intrinsics(intrinsics.resized_to(width, height), frame.header)
            done = [(frame, relative)]
        self.inference_time.add(time.perf_counter() - started)
        for finished, relative in done:
            self._finish(wanted, finished, relative)

    def _finish(self, wanted: set, frame: '_Frame', relative: np.ndarray) -> None:
        """Resize (output.resolution camera), mask, describe and publish one frame's depth."""
        header, rgb, valid = frame.header, frame.rgb, frame.valid
        height, width = rgb.shape[:2]
        if self.params['output.resolution'] == 'camera' and relative.shape != (height, width):
            method = self.params['output.upsample']
            relative = upsample_depth(relative, width, height, method,
                                      guide=rgb if method == 'guided' else None,
                                      absolute_threshold=self.params['output.upsample_edge_threshold'])
        if valid is not None:  # rectified pixels that see no raw pixel have no depth
            relative = np.where(resize_valid(valid, *relative.shape), relative, np.float32(np.nan))
        out_height, out_width = relative.shape
        info_out = scaled_camera_info(frame.info, out_width, out_height, header)
        self._publish(wanted, header, relative, rgb, info_out, frame.scale)

        now = self.get_clock().now()
        self.latency.add((now - Time.from_msg(header.stamp, clock_type=now.clock_type)).nanoseconds * 1e-9)
        self.output_rate.tick()
        with self._stats_lock:
            self.published_frames += 1

    def _estimate_video(self, frame: '_Frame') -> list:
        """Push the frame into the causal window stream; returns (frame, relative) of every frame
        whose window just ran (none while the window fills). Relative depth at the camera size."""
        state = self._temporal
        rgb = frame.rgb
        stamp = frame.header.stamp.sec * 1_000_000_000 + frame.header.stamp.nanosec
        if state.reset_requested or state.size != rgb.shape[:2] or stamp < state.last_stamp:
            if state.waiting:
                self.get_logger().warning(f'video stream restarted (size, time or parameter change): '
                                          f'{len(state.waiting)} frame(s) waiting for their window dropped')
            state.reset(rgb.shape[:2], self.params['temporal.align_smoothing'])
        state.last_stamp = stamp
        if state.stream is None:
            state.stream = self.estimator.stream(new_frames=self.params['temporal.video_new_frames'])
        state.waiting[stamp] = frame
        try:
            results = state.stream.push_rgb(rgb, stamp)
        except ValueError:
            state.waiting.pop(stamp, None)
            raise
        return [(state.waiting.pop(key), np.asarray(depth, dtype=np.float32)) for key, depth in results]

    def _estimate(self, rgb: np.ndarray, stamp: int) -> np.ndarray:
        """Relative depth at model resolution, with the temporal smoothing the parameters ask for."""
        mode = self.params['temporal.mode']
        state = self._temporal
        if state.reset_requested or state.size != rgb.shape[:2] or stamp < state.last_stamp:
            # parameter change, resolution change, or time went backwards (a bag restarted)
            state.reset(rgb.shape[:2], self.params['temporal.align_smoothing'])
        state.last_stamp = stamp
        if mode == 'warm_start' and state.previous is not None:
            relative = self.estimator.predict(rgb, init_depth=state.previous,
                                              init_strength=self.params['temporal.warm_start_strength'])
        else:
            relative = self.estimator.predict(rgb)
        relative = np.asarray(relative, dtype=np.float32)
        if relative.ndim != 2 or relative.size == 0:
            raise RuntimeError(f'the estimator returned an array of shape {relative.shape}, expected (h, w)')
        if mode == 'align':
            relative = state.aligner.update(relative)
        # a non-finite start would make every following warm start fail: start cold instead
        state.previous = relative if mode == 'warm_start' and np.isfinite(relative).all() else None
        return relative

    def _metric_scale(self, rgb: np.ndarray, relative: np.ndarray, stamp: float, wanted: set,
                      need_intrinsics: bool):
        """This frame's TrackedScale from MoGe-2 (running its pass when due), or None for the
        assumed range. Only computed when a metric output is wanted or the intrinsics are needed."""
        model_scale = self._model_scale
        if model_scale is None or not (need_intrinsics or wanted & METRIC_OUTPUTS):
            return None
        if stamp < getattr(self, '_metric_stamp', -np.inf):
            model_scale.reset()  # time went backwards (a bag restarted)
        self._metric_stamp = stamp
        if model_scale.due(relative.shape):
            geometry = self.estimator.metric_geometry(rgb, self.params['metric.resolution_level'])
            state = model_scale.update(stamp, relative, geometry)
        else:
            state = model_scale.current(stamp)
        return state if self._scale_from_model else None

    def _scale_message(self, header, state) -> DepthScale:
        if state is not None and state.usable:
            fit = state.fit
            return DepthScale(header=header, a=float(state.a), b=float(state.b), age=float(state.age),
                              inlier_ratio=float(fit.inlier_ratio) if fit else 0.0,
                              num_points=int(fit.num_points) if fit else 0,
                              residual=float(fit.residual) if fit else 0.0,
                              source=SOURCE_MODEL, status=int(state.status), message=state.message)
        why = 'assumed range output.near..output.far'
        if state is not None:
            why = f'MoGe-2 scale unusable ({state.message}): {why}'
        a, b = self._scale
        return DepthScale(header=header, a=a, b=b, source=SOURCE_ASSUMED, status=FitStatus.NO_FIT, message=why)

    def _publish(self, wanted: set, header, relative: np.ndarray, rgb: np.ndarray,
                 info_out: CameraInfo, scale=None) -> None:
        publishers = self._outputs
        publishers['camera_info'].publish(info_out)
        scale_msg = self._scale_message(header, scale) if wanted & METRIC_OUTPUTS else None
        if scale_msg is not None and scale_msg.source == SOURCE_MODEL and self._model_scale.geometry is not None:
            # MoGe-2's invalid pixels (sky) have no depth: NaN in every output, so that
            # scale_fusion_node, which reads depth/relative, never gives them one either
            relative = np.where(resize_mask(self._model_scale.geometry.valid, relative.shape), relative,
                                np.float32(np.nan))
        if 'relative' in wanted:
            publishers['relative'].publish(depth_to_image_msg(relative, header))
        if scale_msg is None:
            return
        self.last_scale = scale_msg
        publishers['scale'].publish(scale_msg)
        metric = relative_to_metric(relative, scale_msg.a, scale_msg.b)
        if 'image' in wanted:
            publishers['image'].publish(depth_to_image_msg(metric, header))
        if 'colorized' in wanted:
            publishers['colorized'].publish(bgr_to_image_msg(self._colorize(metric), header))
        if 'points' in wanted:
            try:
                intrinsics = camera_intrinsics(info_out)
            except CameraInfoError as exc:  # the depth images are still useful; only the cloud is not
                self._count_error(exc)
                self.get_logger().error(f'depth/points skipped: {exc}', throttle_duration_sec=2.0)
                return
            points = depth_to_points(metric, intrinsics)
            colour = None
            if self.params['output.points_rgb']:
                colour = rgb if rgb.shape[:2] == metric.shape else cv2.resize(
                    rgb, (metric.shape[1], metric.shape[0]), interpolation=cv2.INTER_AREA)
            publishers['points'].publish(points_to_cloud_msg(points, header, colour))

    def _colorize(self, metric: np.ndarray) -> np.ndarray:
        if self.params['colorize.mode'] == 'fixed':
            low, high = self.params['colorize.range']
            return colorize_depth(metric, 'fixed', low, high)
        return colorize_depth(metric, 'percentile', percentiles=self.params['colorize.percentiles'])

    # ------------------------------------------------------------------ diagnostics

    def _video_diagnostics(self) -> dict:
        if self.params['temporal.mode'] != 'video':
            return {}
        new = self.params['temporal.video_new_frames']
        stream = self._temporal.stream
        return {'video window': f'{new + 3} frames: 3 keyframes + {new} new',
                'video frames waiting for their window': stream.pending if stream is not None else 0,
                'video windows run': stream.windows_run if stream is not None else 0}

    def _diagnostics_status(self):
        stats = self.worker.stats()
        with self._stats_lock:
            errors, last_error, idle, published = self.errors, self.last_error, self.idle_frames, self.published_frames
        new_drops, self._last_dropped = stats['dropped'] - self._last_dropped, stats['dropped']
        new_errors, self._last_errors = errors - self._last_errors, errors
        input_rate, output_rate = self.input_rate.rate(), self.output_rate.rate()
        latency, inference = self.latency.summary(), self.inference_time.summary()
        level, message = OK, 'running'
        if not self.wanted_outputs():
            message = 'idle: no subscriber on any depth output'
        if new_drops > 0:
            level = WARN
            message = (f'model cannot keep up: input {input_rate:.1f} Hz, output {output_rate:.1f} Hz, '
                       f"inference {inference['mean'] * 1e3:.0f} ms; {new_drops} frame(s) dropped")
            self.get_logger().warning(message + ' (latest frame wins; reduce model.steps, '
                                      'model.target_area or the camera rate)', throttle_duration_sec=10.0)
        if new_errors > 0:
            level = ERROR if published == 0 else WARN
            message = f'{new_errors} bad frame(s): {last_error}'
        monitor = self._subscriptions_handle.monitor if self._subscriptions_handle is not None else None
        unpaired = monitor.problem if monitor is not None else None
        if unpaired and level == OK:  # images arrive, nothing pairs: say why, not "running"
            level, message = WARN, unpaired
        new_lost = self.lost_messages.new_since_last_call()
        if new_lost > 0:
            lost = (f'{new_lost} message(s) lost in transport before reaching the node (frames too large '
                    'for a best-effort subscription?)')
            message = lost if level == OK else f'{message}; {lost}'
            level = ERROR if level == ERROR else WARN
            self.get_logger().warning(lost + ": set qos.subscription 'reliable', or see the README, "
                                      "'Large messages over Fast DDS'", throttle_duration_sec=10.0)
        values = {
            'input rate (Hz)': input_rate, 'output rate (Hz)': output_rate,
            'latency stamp to publish mean (s)': latency['mean'], 'latency stamp to publish max (s)': latency['max'],
            'inference time mean (s)': inference['mean'], 'inference time max (s)': inference['max'],
            'frames received': self.input_rate.total, 'frames published': published,
            'frames dropped (model busy)': stats['dropped'], 'frames failed': errors,
            'frames skipped (no subscribers)': idle, 'queue': stats['pending'],
            'messages lost in transport': self.lost_messages.total(),
            'input reliability': self.input_reliability,
            'model': self._describe.get('model', type(self.estimator).__name__),
            'device': self._describe.get('device', ''), 'precision': self._describe.get('precision', ''),
            'steps': self.estimator.steps, 'model resolution': self._describe.get('resolution', ''),
            'output resolution': self.params['output.resolution'],
            'temporal mode': self.params['temporal.mode'], 'pairing': self.pairing,
            'scale source': self.last_scale.source if self.last_scale else '',
            'scale': f'a={self.last_scale.a:.4g} b={self.last_scale.b:.4g}' if self.last_scale else '',
            'scale message': self.last_scale.message if self.last_scale else '',
            'metric passes': self._model_scale.passes if self._model_scale else 0,
            'input topics': ' + '.join(self.input_topics), 'rectification': self._rectification.state,
            **self._video_diagnostics(),
            'last error': last_error,
            **(monitor.values() if monitor is not None else {}),
        }
        return level, message, values

    def destroy_node(self):
        if self.worker is not None:
            self.worker.stop()  # before the publishers and the context go
        return super().destroy_node()


# ---------------------------------------------------------------------------------- main

def main(args=None) -> int:
    return run_node(DepthNode, 'depth_node', args, startup_errors=(EstimatorBuildError,))


if __name__ == '__main__':
    sys.exit(main())
