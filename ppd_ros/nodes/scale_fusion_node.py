"""scale_fusion_node: metric depth from PPD's relative depth and one metric sensor.

Subscribes `depth/relative` + `depth/camera_info` (paired by stamp) and, chosen by the parameter
`source`, one of `metric_source/depth` (registered depth image), `metric_source/points` (a LiDAR
cloud in its own frame) or `metric_source/range` (a single range finder). Each relative frame is
paired with the source message closest in time within `source_tolerance`; the pairs
(relative, metric z-depth) are fitted robustly with log(d + 1) = a·r + b (scale_fit), the fit is
smoothed and held through short source outages by a FitTracker, and the node publishes
`metric/depth/image`, `metric/depth/camera_info`, `metric/points` (only when subscribed),
`metric/scale` (always) and `/diagnostics`. Bad input never stops the node: the frame is held or
dropped with the reason in DepthScale.message, the diagnostics and a throttled log.

The sensor wins whenever its fit is usable (DepthScale.source `sensor`). When it is not (no sensor
data yet, or stale beyond max_hold_age) and depth_node runs with MoGe-2 weights, the node falls back
to depth_node's model scale from `depth/scale` (source `model`, matched by stamp), not to an
assumed range (parameter `model_fallback`).

Subscriptions start with SensorData QoS; with `qos.subscription: auto` (the default) the depth
pair and the source are each subscribed again reliable once the middleware reports messages lost
on them and every publisher of that input offers reliable (qos.AutoReliable, as depth_node).
"""
from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass

import numpy as np
import rclpy
import rclpy.duration
import rclpy.executors
import rclpy.logging
import rclpy.time
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, Range

from ppd_ros.geometry.backproject import depth_to_points
from ppd_ros.geometry.scale.depth_scale import relative_to_metric
from ppd_ros.geometry.scale.model_scale import SOURCE_MODEL, SOURCE_SENSOR
from ppd_ros.geometry.projection import transform_from_translation_quaternion
from ppd_ros.geometry.scale.range_window import RangePrior, RangeWindow, RangeWindowConfig
from ppd_ros.geometry.scale.fit import (RANGE_MODES, FitConfig, FitFailure, FitStatus, FitTracker, ScaleFit,
                                        TrackerConfig, fit_scale, fit_single_range)
from ppd_ros.nodes.stamped_buffer import StampedBuffer
from ppd_ros.geometry.scale.source_samples import (SampleError, range_to_depth, samples_from_depth_image,
                                             samples_from_points, samples_from_range)
from ppd_ros.msg import DepthScale
from ppd_ros.nodes import image_codec
from ppd_ros.nodes.camera_info import camera_intrinsics, camera_topics, copy_camera_info
from ppd_ros.nodes.cloud import CloudDecodeError, cloud_msg_to_xyz, points_to_cloud_msg
from ppd_ros.nodes.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, LostMessages, RateMeter
from ppd_ros.nodes.image_codec import ImageDecodeError, depth_to_image_msg, image_msg_to_depth
from ppd_ros.nodes.pairing import stamp_ns, subscribe_pair
from ppd_ros.nodes.params import DIAGNOSTICS_SPECS, NodeParameters, ParamSpec, pairing_specs, qos_specs
from ppd_ros.nodes.qos import AutoReliable, configured_qos
from ppd_ros.nodes.runner import run_node


def import_tf2():
    """tf2_ros when this ROS install has it (not installable from PyPI), else None."""
    try:
        import tf2_ros
    except ImportError:
        return None
    return tf2_ros

SOURCES = ('depth_image', 'pointcloud', 'range')
SOURCE_TOPICS = {'depth_image': ('metric_source/depth', Image),
                 'pointcloud': ('metric_source/points', PointCloud2),
                 'range': ('metric_source/range', Range)}
LOG_THROTTLE_S = 5.0


def _quaternion_problem(q) -> str | None:
    return None if np.linalg.norm(np.asarray(q, dtype=float)) > 1e-6 else 'must not be the zero quaternion'


PARAMS = (
    ParamSpec('source', 'pointcloud', 'metric source: depth_image (metric_source/depth), pointcloud '
              '(metric_source/points) or range (metric_source/range)', choices=SOURCES),
    ParamSpec('source_tolerance', 0.1, 'max |stamp difference| in s between a relative depth frame and '
              'the source message paired with it (the closest one is used)', dynamic=True, low=0.0, high=60.0),
    ParamSpec('stale_after', 1.0, 'a source whose newest message is this many s older than the depth '
              'frame is stale (the fit is held)', dynamic=True, low=0.0, high=3600.0),
    ParamSpec('source_queue', 100, 'source messages kept for pairing by stamp, at most', low=1, high=10000),
    ParamSpec('source_window', 2.0, 'seconds of source messages kept for pairing (by stamp, back from the '
              'newest); also, messages older than the last paired depth frame minus source_tolerance are '
              'released', dynamic=True, low=0.01, high=3600.0),
    ParamSpec('source_budget_mb', 64.0, 'MB of source messages kept for pairing at most (oldest dropped '
              'first); a single larger message is refused with a warning', dynamic=True, low=0.001,
              high=65536.0),
    ParamSpec('source_frame', '', 'frame_id the extrinsic parameters describe; point clouds in another '
              'frame are refused (empty: not checked). Ignored when tf2 is used', dynamic=True),
    ParamSpec('use_tf', True, 'pointcloud: look up T_cam_source with tf2 (camera frame ← cloud frame at the '
              'cloud\'s stamp) when tf2_ros is importable; false, or tf2_ros missing: the extrinsic.* '
              'parameters'),
    ParamSpec('tf_timeout', 0.05, 'seconds a tf2 lookup may wait for the transform to arrive',
              dynamic=True, low=0.0, high=10.0),
    ParamSpec('extrinsic.translation', [0.0, 0.0, 0.0], 'T_cam_source translation [x, y, z] m: source '
              'frame origin in the camera optical frame', dynamic=True, length=3),
    ParamSpec('extrinsic.rotation', [0.0, 0.0, 0.0, 1.0], 'T_cam_source rotation quaternion '
              '[qx, qy, qz, qw] (normalised on use)', dynamic=True, length=4, check=_quaternion_problem),
    ParamSpec('depth_image.unit', 0.001, 'metres per count of a 16UC1 metric depth image',
              dynamic=True, low=1e-9),
    ParamSpec('range.pixel', [-1.0, -1.0], 'pixel [u, v] (depth/camera_info coordinates) whose ray the '
              'range finder measures along; negative: the principal point', dynamic=True, length=2),
    ParamSpec('range.mode', 'prior', 'one range reading cannot fix both a and b. prior: Gaussian prior on '
              'the depths at relative 0 and 1 (range.near/far ± sigmas), the reading moves the less '
              'certain end; offset: keep a from near/far, fit b; scale: log(d+1) = k·(a·r + b)',
              dynamic=True, choices=RANGE_MODES),
    ParamSpec('range.near', 0.8, 'prior: metres at relative 0 (the 2 % depth of the view; for a robot about '
              'the floor at the bottom of the image)', dynamic=True, low=0.0),
    ParamSpec('range.far', 8.0, 'prior: metres at relative 1 (the 98 % depth of the view)',
              dynamic=True, low=0.0),
    ParamSpec('range.near_sigma', 0.2, 'prior spread of log(near + 1) (mode prior)', dynamic=True, low=1e-3),
    ParamSpec('range.far_sigma', 0.5, 'prior spread of log(far + 1) (mode prior)', dynamic=True, low=1e-3),
    ParamSpec('range.sample_sigma', 0.05, 'spread of one reading against the relative depth, log(d+1) '
              'units (mode prior)', dynamic=True, low=1e-3),
    ParamSpec('range.window_frames', 1, 'fit the readings of the last N frames together (robust, with the '
              'prior): a moving robot\'s beam hits different relative depths, which fixes both a and b. '
              'Needs temporally consistent relative depth: run the depth node with temporal.mode: align. '
              '1 = per-frame fit (range.mode)', dynamic=True, low=1, high=10000),
    ParamSpec('range.min_spread', 0.0, 'window: relative-depth spread (p90 - p10) of the readings below which '
              'only the newest reading is fitted (mode prior)', dynamic=True, low=0.0),
    ParamSpec('range.reset_residual', 0.3, 'window: 3 readings in a row this far (log(d+1) units) from the '
              'window fit restart the window (the aligner reset or the scene changed)', dynamic=True, low=1e-3),
    ParamSpec('fit.min_points', 20, 'fewest samples (and inliers) for a full fit', dynamic=True, low=2),
    ParamSpec('fit.min_depth', 0.1, 'samples nearer than this (m) are ignored; also the near clip of '
              'projected points', dynamic=True, low=0.0),
    ParamSpec('fit.max_depth', 100.0, 'samples farther than this (m) are ignored', dynamic=True, low=0.0),
    ParamSpec('fit.inlier_threshold', 0.15, 'RANSAC inlier band in log(d+1) units (0.15 ≈ 16 % depth)',
              dynamic=True, low=1e-6),
    ParamSpec('fit.max_iterations', 200, 'RANSAC hypotheses at most (2-point samples)', dynamic=True,
              low=1, high=100000),
    ParamSpec('fit.min_inlier_ratio', 0.3, 'a fit with fewer inliers (fraction) fails', dynamic=True,
              low=0.0, high=1.0),
    ParamSpec('fit.seed', 0, 'seed of the RANSAC random generator (reproducible fits)', low=0),
    ParamSpec('tracker.smoothing', 0.0, 'weight of the previous fit in the temporal smoothing (0 = none: '
              'PPD normalises each frame itself, so a and b really change per frame)',
              dynamic=True, low=0.0, high=0.99),
    ParamSpec('tracker.max_jump', 0.2, 'reject a fit whose prediction moves more than this (median, '
              'log(d+1) units) from the smoothed one', dynamic=True, low=1e-6),
    ParamSpec('tracker.max_scale_change', 0.5, 'reject a fit whose a changes by more than this fraction',
              dynamic=True, low=1e-6),
    ParamSpec('tracker.max_rejections', 3, 'after this many rejections in a row the new fit is taken',
              dynamic=True, low=1),
    ParamSpec('max_hold_age', 2.0, 'seconds the last good fit is held when the source stalls or fits '
              'fail; after that no metric depth is published (status EXPIRED)', dynamic=True, low=0.0),
    ParamSpec('model_fallback', True, 'when the sensor fit is unusable, use depth_node\'s MoGe-2 scale '
              '(depth/scale, source model) for the same stamp instead of publishing no metric depth',
              dynamic=True),
    *pairing_specs('depth/relative', 'depth/camera_info', slop=0.01),
    *qos_specs(auto_subscription=True),
    *DIAGNOSTICS_SPECS,
)


def _cross_check(values: dict) -> str | None:
    if not values['fit.min_depth'] < values['fit.max_depth']:
        return f"fit.min_depth ({values['fit.min_depth']}) must be < fit.max_depth ({values['fit.max_depth']})"
    if not 0 < values['range.near'] < values['range.far']:
        return f"need 0 < range.near ({values['range.near']}) < range.far ({values['range.far']})"
    return None


def stamp_seconds(msg) -> float:
    return stamp_ns(msg) * 1e-9


class TransformUnavailable(SampleError):
    """tf2 has no transform from the cloud's frame to the camera's at the cloud's stamp (yet)."""


@dataclass
class FrameProblem:
    """Why a frame gave no fresh fit; `level` is the diagnostic level it deserves."""
    level: bytes
    text: str


def relative_from_msg(msg: Image) -> np.ndarray:
    """(H, W) float32 relative depth from a 32FC1 Image; non-finite → NaN, values ≤ 0 are kept
    (relative 0 is the scene's 2 % depth, not "no return" as in a metric image)."""
    if msg.encoding != '32FC1':
        raise ImageDecodeError(f"depth/relative must be 32FC1, got '{msg.encoding}'")
    return image_codec.float_image_to_array(msg)


class ScaleFusionNode(Node):
    """Fits and publishes the metric scale of `depth/relative`; see the module docstring."""

    def __init__(self, node_name: str = 'scale_fusion_node', **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.params = NodeParameters(self, PARAMS, _cross_check)
        for name in self.params.unknown_overrides():
            self.get_logger().warning(f"unknown parameter '{name}' (typo?) is ignored")
        self.source = self.params['source']
        self._rng = np.random.default_rng(self.params['fit.seed'])
        self._configure()
        self.tracker = FitTracker(self.tracker_config)
        self.params.on_change(lambda changed: self._configure())

        self._window_stamp: float | None = None
        self.last_scale: DepthScale | None = None
        self.last_problem: FrameProblem | None = None
        self.last_source_refusal = ''
        self.frames = 0
        self.frames_without_source = 0  # depth frames with no source message within source_tolerance
        self.model_scales: deque = deque(maxlen=50)  # (stamp, DepthScale) from depth_node's MoGe-2 pass
        self.model_fallbacks = 0  # frames published with the model scale because the sensor was unusable
        self.fresh_fits = 0
        self.depth_rate = RateMeter()
        self.source_rate = RateMeter()

        self._tf2 = self._tf_buffer = self._tf_listener = None
        if self.source == 'pointcloud' and self.params['use_tf']:
            self._tf2 = tf2_ros = import_tf2()
            if tf2_ros is None:
                self.get_logger().info('tf2_ros is not importable here: the point cloud extrinsic comes '
                                       'from the extrinsic.* parameters')
            else:
                self._tf_buffer = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)

        p = self.params
        qos_in = configured_qos(p, 'subscription')
        qos_out = configured_qos(p, 'publisher')
        self.pub_depth = self.create_publisher(Image, 'metric/depth/image', qos_out)
        self.pub_info = self.create_publisher(CameraInfo, 'metric/depth/camera_info', qos_out)
        self.pub_points = self.create_publisher(PointCloud2, 'metric/points', qos_out)
        self.pub_scale = self.create_publisher(DepthScale, 'metric/scale', qos_out)
        self.source_topic = self.resolve_topic_name(SOURCE_TOPICS[self.source][0])
        self.lost_messages = LostMessages()  # reported by the middleware: never reached a callback
        self._source_sub = self._pair_handle = None  # (re)made by _subscribe_source / _subscribe_depth
        self._subscribe_source(qos_in)
        relative_topic, info_topic, _ = camera_topics(self, 'depth/relative', 'depth/camera_info')
        self._model_scale_sub = self.create_subscription(  # beside depth/relative: depth_node's depth/scale
            DepthScale, relative_topic.rsplit('/', 1)[0] + '/scale', self._on_model_scale, qos_in)
        self.input_topics = (relative_topic, info_topic)
        self._subscribe_depth(qos_in)
        self._auto_qos = ()  # qos.subscription auto: the depth pair and the source switch on their own
        if p['qos.subscription'] == 'auto':
            depth = p['qos.subscription_depth']
            self._auto_qos = (AutoReliable(self, self.lost_messages, self.input_topics, self._subscribe_depth, depth),
                              AutoReliable(self, self.lost_messages, (self.source_topic,), self._subscribe_source,
                                           depth))
        self.diagnostics = DiagnosticsPublisher(self, self._collect_diagnostics, hardware_id=self.source,
                                                period=p['diagnostics.period'])
        self.get_logger().info(f"fusing {relative_topic} with {self.source} on '{self.source_topic}' "
                               f"(extrinsic from {self.extrinsic_origin})")

    def _subscribe_source(self, qos) -> None:
        if self._source_sub is not None:
            self.destroy_subscription(self._source_sub)
        topic, msg_type = SOURCE_TOPICS[self.source]
        self._source_sub = self.lost_messages.subscribe(self.create_subscription, self.source_topic, msg_type,
                                                        topic, self._on_source, qos)

    def _subscribe_depth(self, qos) -> None:
        if self._pair_handle is not None:
            self._pair_handle.close(self)
        p = self.params
        self._pair_handle, self.pairing = subscribe_pair(
            self, (Image, self.input_topics[0]), (CameraInfo, self.input_topics[1]), qos, self._on_depth,
            queue_size=p['input.sync_queue_size'], slop=p['input.sync_slop'],
            latest_secondary=p['input.latest_camera_info'], lost_messages=self.lost_messages)

    @property
    def input_reliability(self) -> str:
        """What the subscriptions use now (qos.subscription; auto: where each group stands)."""
        if not self._auto_qos:
            return self.params['qos.subscription']
        depth, source = self._auto_qos
        return f'depth/relative: {depth.state}; {self.source}: {source.state}'

    # ------------------------------------------------------------------ configuration

    def _configure(self):
        p = self.params
        self.fit_config = FitConfig(min_points=p['fit.min_points'], min_depth=p['fit.min_depth'],
                                    max_depth=p['fit.max_depth'], inlier_threshold=p['fit.inlier_threshold'],
                                    max_iterations=p['fit.max_iterations'],
                                    min_inlier_ratio=p['fit.min_inlier_ratio'], seed=p['fit.seed'])
        self.tracker_config = TrackerConfig(smoothing=p['tracker.smoothing'], max_jump=p['tracker.max_jump'],
                                            max_scale_change=p['tracker.max_scale_change'],
                                            max_rejections=p['tracker.max_rejections'],
                                            max_hold_age=p['max_hold_age'])
        if hasattr(self, 'tracker'):
            self.tracker.config = self.tracker_config
        window = RangeWindowConfig(frames=p['range.window_frames'], min_spread=p['range.min_spread'],
                                   reset_residual=p['range.reset_residual'])
        if getattr(self, 'range_window', None) is None or self.range_window.config.frames != window.frames:
            self.range_window = RangeWindow(window)  # a new length starts a new window
        else:
            self.range_window.config = window
        self.T_cam_source = transform_from_translation_quaternion(p['extrinsic.translation'],
                                                                  p['extrinsic.rotation'])
        limits = (p['source_window'], int(p['source_budget_mb'] * 2**20), p['source_queue'])
        if getattr(self, '_sources', None) is None:
            self._sources = StampedBuffer(*limits)  # (stamp, message) kept for pairing
        else:
            self._sources.configure(*limits)

    @property
    def extrinsic_origin(self) -> str:
        return 'tf2' if self._tf_buffer is not None else 'parameters'

    # ------------------------------------------------------------------ callbacks

    @property
    def held_source_bytes(self) -> int:
        return self._sources.held_bytes

    def _on_source(self, msg):
        self.source_rate.tick()
        size = len(getattr(msg, 'data', ())) + 256  # the payload, and about a header's worth
        refused = self._sources.add(stamp_seconds(msg), msg, size)
        if refused:
            self.last_source_refusal = f"{self.source} on '{self.source_topic}' not kept for pairing: {refused}"
            self.get_logger().warning(f'{self.last_source_refusal} (raise source_budget_mb, or decimate the '
                                      'source)', throttle_duration_sec=LOG_THROTTLE_S)

    def _on_model_scale(self, msg: DepthScale):
        if msg.source == SOURCE_MODEL and msg.status in (FitStatus.OK, FitStatus.HELD):
            self.model_scales.append((stamp_seconds(msg), msg))

    def _model_scale_for(self, stamp: float) -> DepthScale | None:
        """depth_node's model scale for this depth frame (closest stamp within source_tolerance)."""
        if not self.params['model_fallback'] or not self.model_scales:
            return None
        gap, msg = min(((abs(s - stamp), m) for s, m in self.model_scales), key=lambda item: item[0])
        return msg if gap <= self.params['source_tolerance'] else None

    def _scale_message(self, header, state, stamp: float) -> DepthScale:
        """The sensor's scale when usable; else depth_node's model scale when there is one."""
        fit = state.fit
        msg = DepthScale(header=header, a=float(state.a), b=float(state.b),
                         inlier_ratio=float(fit.inlier_ratio) if fit else 0.0,
                         num_points=int(fit.num_points) if fit else 0,
                         residual=float(fit.residual) if fit else 0.0,
                         age=float(state.age), source=SOURCE_SENSOR, status=int(state.status),
                         message=f'{self.source}: {state.message}')
        if state.usable:
            return msg
        model = self._model_scale_for(stamp)
        if model is None:
            return msg
        self.model_fallbacks += 1
        return DepthScale(header=header, a=model.a, b=model.b, inlier_ratio=model.inlier_ratio,
                          num_points=model.num_points, residual=model.residual, age=model.age, source=SOURCE_MODEL,
                          status=model.status, message=f'{self.source} unusable ({state.message}): '
                                                       'MoGe-2 scale from depth_node')

    def _on_depth(self, relative_msg: Image, info_msg: CameraInfo):
        self.depth_rate.tick()
        self.frames += 1
        stamp = stamp_seconds(relative_msg)
        try:
            state, relative, intr, problem = self._process(relative_msg, info_msg, stamp)
        except Exception as exc:  # never let one bad frame take the node down
            problem = FrameProblem(ERROR, f'unexpected error: {type(exc).__name__}: {exc}')
            state, relative, intr = self.tracker.current(stamp, problem.text), None, None
        self.last_problem = problem
        if problem is not None:
            self._log_problem(problem.level, f'{FitStatus.NAMES[state.status]}: {state.message}')
        try:
            scale = self._scale_message(relative_msg.header, state, stamp)
            self.last_scale = scale
            self.pub_scale.publish(scale)
            if scale.status in (FitStatus.OK, FitStatus.HELD) and relative is not None and intr is not None:
                self._publish_metric(relative_msg.header, info_msg, relative, intr, scale.a, scale.b)
        except Exception as exc:  # e.g. a publisher torn down during shutdown
            self.last_problem = FrameProblem(ERROR, f'publishing failed: {type(exc).__name__}: {exc}')
            self._log_problem(ERROR, self.last_problem.text)

    def _log_problem(self, level, text: str):
        # rclpy keys throttling by call site and refuses two severities at one site: one line each
        if level == ERROR:
            self.get_logger().error(text, throttle_duration_sec=LOG_THROTTLE_S)
        else:
            self.get_logger().warning(text, throttle_duration_sec=LOG_THROTTLE_S)

    # ------------------------------------------------------------------ per-frame work

    def _process(self, relative_msg, info_msg, stamp):
        """→ (TrackedScale, relative or None, Intrinsics or None, FrameProblem or None)."""
        def hold(level, text, relative=None, intr=None):
            return self.tracker.update(stamp, None, why=text), relative, intr, FrameProblem(level, text)

        try:
            relative = relative_from_msg(relative_msg)
        except ImageDecodeError as exc:
            return hold(ERROR, f'bad depth/relative: {exc}')
        h, w = relative.shape
        if (info_msg.width, info_msg.height) != (w, h):
            return hold(ERROR, f'mismatched sizes: depth/relative is {w}x{h} but depth/camera_info says '
                               f'{info_msg.width}x{info_msg.height}')
        try:
            intr = camera_intrinsics(info_msg)
        except ValueError as exc:
            return hold(ERROR, f'bad depth/camera_info: {exc}')
        if not np.isfinite(relative).any():
            return hold(ERROR, 'depth/relative has no finite value', None, intr)

        source_msg, why = self._pick_source(stamp)
        self._sources.release_before(stamp - self.params['source_tolerance'])  # pairing moves on
        if source_msg is None:
            self.frames_without_source += 1
            return hold(WARN, why, relative, intr)
        try:
            samples = self._samples(relative, intr, source_msg, relative_msg.header.frame_id)
        except TransformUnavailable as exc:
            return hold(WARN, str(exc), relative, intr)
        except (SampleError, ImageDecodeError, CloudDecodeError, ValueError) as exc:
            return hold(ERROR, str(exc), relative, intr)
        if samples.count == 0:
            return hold(ERROR, f'no overlap between {self.source} and the image: {samples.note}', relative, intr)
        if self._window_stamp is not None and stamp < self._window_stamp:
            self.range_window.reset('time went backwards')
        self._window_stamp = stamp
        result = self._fit(samples, (w, h))
        state = self.tracker.update(stamp, result, samples.relative)
        problem = None
        if isinstance(result, FitFailure):
            problem = FrameProblem(WARN, f'{result.reason}; {samples.note}')
        elif state.status != FitStatus.OK:
            problem = FrameProblem(WARN, state.message)
        else:
            self.fresh_fits += 1
        return state, relative, intr, problem

    def _pick_source(self, stamp: float):
        """The source message closest to `stamp` within source_tolerance, or (None, why)."""
        tolerance = self.params['source_tolerance']
        if self._sources.newest_stamp is None:
            if self.last_source_refusal:
                return None, self.last_source_refusal
            return None, (f"no {self.source} message received yet on '{self.source_topic}' — check that the "
                          'sensor publishes there (remap the metric_source topic)')
        lag = stamp - self._sources.newest_stamp
        if lag > self.params['stale_after']:
            return None, (f'source stale: newest {self.source} is {lag:.2f} s older than the depth frame '
                          f"(stale_after {self.params['stale_after']:g} s)")
        kept = list(self._sources)
        if not kept:
            return None, f'no {self.source} within ±{tolerance:g} s of the depth stamp (none kept)'
        stamps = np.array([s for s, _ in kept])
        offsets = np.abs(stamps - stamp)
        best = int(np.argmin(offsets[::-1]))  # on ties the most recent message wins
        best = len(stamps) - 1 - best
        if offsets[best] <= tolerance:
            return kept[best][1], ''
        fix = ': the source is stamped late or on another clock — fix its stamps or raise source_tolerance'
        evicted = self._sources.newest_evicted
        if evicted is not None and stamp < stamps[0] - tolerance and stamp <= evicted + tolerance:
            fix = (f"; the message it needed was no longer kept (source_window "
                   f"{self.params['source_window']:g} s, source_budget_mb {self.params['source_budget_mb']:g}): "
                   'raise them if depth arrives this late')
        return None, (f'no {self.source} within ±{tolerance:g} s of the depth stamp '
                      f'(closest is {stamps[best] - stamp:+.3f} s away){fix}')

    def _samples(self, relative, intr, msg, camera_frame: str):
        if self.source == 'range':
            distance = range_to_depth(msg.range, msg.min_range, msg.max_range)
            pixel = self.params['range.pixel']
            pixel = None if min(pixel) < 0 else pixel
            return samples_from_range(relative, intr, distance, pixel)
        if self.source == 'depth_image':
            depth = image_msg_to_depth(msg, depth_unit=self.params['depth_image.unit'])
            return samples_from_depth_image(relative, depth)
        transform = self._transform(msg, camera_frame)
        points = cloud_msg_to_xyz(msg)
        if points.shape[0] == 0:
            raise SampleError('point cloud has no finite point')
        return samples_from_points(relative, intr, points, transform, min_depth=self.params['fit.min_depth'])

    def _check_frame(self, frame_id: str):
        expected = self.params['source_frame']
        if expected and frame_id != expected and self._tf_buffer is None:
            raise SampleError(f"point cloud frame_id '{frame_id}' is not source_frame '{expected}' that the "
                              'extrinsic parameters describe (set source_frame, or publish the transform '
                              'and use tf2)')

    def _transform(self, msg, camera_frame: str) -> np.ndarray:
        """T_cam_source: tf2 at the cloud's stamp (waiting up to tf_timeout), else the parameters."""
        if self._tf_buffer is None:
            self._check_frame(msg.header.frame_id)
            return self.T_cam_source
        source_frame = msg.header.frame_id
        try:
            t = self._tf_buffer.lookup_transform(
                camera_frame, source_frame, rclpy.time.Time.from_msg(msg.header.stamp),
                timeout=rclpy.duration.Duration(seconds=self.params['tf_timeout']))
        except self._tf2.TransformException as exc:  # Lookup-, Connectivity-, ExtrapolationException
            stamp = f'{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}'
            raise TransformUnavailable(
                f"no tf2 transform '{source_frame}' → '{camera_frame}' at the cloud's stamp {stamp} "
                f'({type(exc).__name__}: {exc}); is the transform published (robot_state_publisher, '
                'static_transform_publisher)? Or set use_tf: false and the extrinsic.* parameters') from None
        tr, rot = t.transform.translation, t.transform.rotation
        return transform_from_translation_quaternion([tr.x, tr.y, tr.z], [rot.x, rot.y, rot.z, rot.w])

    def _fit(self, samples, size) -> ScaleFit | FitFailure:
        if self.source != 'range':
            return fit_scale(samples.relative, samples.metric, self.fit_config, self._rng)
        p = self.params
        if p['range.window_frames'] > 1:
            reset = self.range_window.add(samples.relative[0], samples.metric[0], key=size)
            if reset:
                self._log_problem(WARN, f'range window restarted: {reset}')
            prior = RangePrior(p['range.near'], p['range.far'], p['range.near_sigma'], p['range.far_sigma'],
                               p['range.sample_sigma'])
            return self.range_window.fit(prior, self.fit_config)
        return fit_single_range(samples.relative, samples.metric, p['range.mode'], p['range.near'], p['range.far'],
                                p['range.near_sigma'], p['range.far_sigma'], p['range.sample_sigma'],
                                self.fit_config)

    # ------------------------------------------------------------------ outputs

    def _publish_metric(self, header, info_msg, relative, intr, a, b):
        want_depth = self.pub_depth.get_subscription_count() > 0 or self.pub_info.get_subscription_count() > 0
        want_points = self.pub_points.get_subscription_count() > 0
        if not (want_depth or want_points):
            return
        depth = relative_to_metric(relative, a, b)
        if want_depth:
            self.pub_depth.publish(depth_to_image_msg(depth, header))
            self.pub_info.publish(copy_camera_info(info_msg, header))
        if want_points:
            self.pub_points.publish(points_to_cloud_msg(depth_to_points(depth, intr), header))

    # ------------------------------------------------------------------ diagnostics

    def _collect_diagnostics(self):
        scale, problem = self.last_scale, self.last_problem
        values = {'source': self.source, 'source_topic': self.source_topic, 'extrinsic': self.extrinsic_origin,
                  'input_topics': ' + '.join(self.input_topics),
                  'pairing': self.pairing, 'input reliability': self.input_reliability,
                  'frames': self.frames, 'fresh_fits': self.fresh_fits,
                  'frames_without_source': self.frames_without_source,
                  'scale source': self.last_scale.source if self.last_scale else '',
                  'model_fallbacks': self.model_fallbacks,
                  'depth_rate_hz': self.depth_rate.rate(), 'source_rate_hz': self.source_rate.rate()}
        counts = self._sources.counts
        values.update({'source messages kept': len(self._sources),
                       'source MB kept': self._sources.held_bytes / 2**20,
                       'source dropped (window)': counts.window, 'source dropped (budget)': counts.budget,
                       'source released (paired past)': counts.used,
                       'source refused (larger than budget)': counts.too_large})
        if self.last_source_refusal:
            values['source refusal'] = self.last_source_refusal
        values['messages lost in transport'] = self.lost_messages.total()
        new_lost = self.lost_messages.new_since_last_call()
        lost = ''
        if new_lost:
            lost = (f'; {new_lost} message(s) lost in transport before reaching the node (messages too large '
                    'for a best-effort subscription?)')
            self.get_logger().warning(lost[2:] + ": set qos.subscription 'reliable', or see the README, "
                                      "'Large messages over Fast DDS'", throttle_duration_sec=LOG_THROTTLE_S)
        values.update(self._pair_handle.monitor.values())
        unpaired = self._pair_handle.monitor.problem
        if scale is None:
            return WARN, (unpaired or 'waiting for depth/relative and depth/camera_info') + lost, values
        values.update(status=FitStatus.NAMES[scale.status], a=scale.a, b=scale.b, age_s=scale.age,
                      inlier_ratio=scale.inlier_ratio, num_points=scale.num_points, residual=scale.residual)
        if problem is not None:
            values['problem'] = problem.text
        level = {FitStatus.OK: OK, FitStatus.HELD: WARN, FitStatus.EXPIRED: ERROR}.get(scale.status, WARN)
        if problem is not None and problem.level == ERROR:
            level = ERROR
        message = f'{FitStatus.NAMES[scale.status]}: {scale.message}'
        if scale.source == SOURCE_MODEL and level == OK:  # metres, but not from the sensor
            level = WARN
        if unpaired and level == OK:  # the last fit looks fine, but no new frame pairs: say why
            level, message = WARN, unpaired
        if lost and level == OK:
            level = WARN
        message += lost
        return level, message, values


def main(args=None) -> int:
    return run_node(ScaleFusionNode, 'scale_fusion_node', args)


if __name__ == '__main__':
    sys.exit(main())
