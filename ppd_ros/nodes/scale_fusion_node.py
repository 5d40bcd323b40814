"""scale_fusion_node: metric depth from PPD's relative depth and one metric sensor.

Each relative depth frame is paired with the sensor message closest in stamp (within
source_tolerance); their (relative r, metric z-depth d) samples are fitted robustly with
log(d + 1) = a·r + b, the fit is smoothed and held through short sensor outages (FitTracker), and
the frame is published in metres. Bad input never stops the node: the fit is held or the frame is
dropped, with the reason in DepthScale.message, /diagnostics and a throttled log.

The sensor wins whenever its fit is usable (DepthScale.source `sensor`). When it is not (no sensor
data yet, or stale beyond max_hold_age) and depth_node runs with MoGe-2 weights, the node falls back
to depth_node's model scale from `depth/scale` for the same stamp (source `model`; model_fallback),
not to an assumed range.

Subscribed topics
  depth/relative         sensor_msgs/Image 32FC1   relative depth (depth_node)
  depth/camera_info      sensor_msgs/CameraInfo    its camera (default: the sibling of depth/relative),
                                                   paired by stamp (input.*)
  depth/scale            ppd_ros/DepthScale        depth_node's MoGe-2 scale, beside depth/relative
                                                   (model_fallback)
  and, chosen by `source`, one of
  metric_source/points   sensor_msgs/PointCloud2   pointcloud: a LiDAR cloud in its own frame
  metric_source/depth    sensor_msgs/Image         depth_image: registered metric depth (16UC1 × depth_image.unit,
                                                   or 32FC1 metres)
  metric_source/range    sensor_msgs/Range         range: one range finder, along the ray of range.pixel

Published topics
  metric/scale              ppd_ros/DepthScale        every frame: a, b, status, source and why
  metric/depth/image        sensor_msgs/Image 32FC1   metres, while the scale is usable
  metric/depth/camera_info  sensor_msgs/CameraInfo    with metric/depth/image
  metric/points             sensor_msgs/PointCloud2   only when subscribed
  /diagnostics              diagnostic_msgs/DiagnosticArray

Parameter groups (each parameter's default, range and description: `--help`, from
scale_fusion_params.PARAMETERS)
  source, source_tolerance, stale_after          which sensor; pairing by stamp; when it is stale
  source_queue, source_window, source_budget_mb  sensor messages kept for pairing (count, s, MB)
  use_tf, tf_timeout, source_frame, extrinsic.*  where a point cloud is: tf2, else the parameters
  depth_image.unit, range.*                      the depth image's unit; the range finder's pixel, prior, window
  fit.*, tracker.*, max_hold_age                 the robust fit; smoothing, rejection and holding
  model_fallback                                 depth_node's MoGe-2 scale when the sensor is unusable
  input.*, qos.*, diagnostics.period             CameraInfo pairing, QoS, /diagnostics

Subscriptions start with SensorData QoS; with `qos.subscription: auto` (the default) the depth
pair and the source are each subscribed again reliable once the middleware reports messages lost
on them and every publisher of that input offers reliable (qos.AutoReliable, as depth_node).
"""
from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ppd_ros.geometry.backproject import depth_to_points
from ppd_ros.geometry.scale.depth_scale import relative_to_metric
from ppd_ros.geometry.scale.fit import FitFailure, FitStatus, FitTracker, TrackerConfig
from ppd_ros.geometry.scale.model_scale import SOURCE_MODEL, SOURCE_SENSOR
from ppd_ros.geometry.scale.source_samples import SampleError
from ppd_ros.msg import DepthScale
from ppd_ros.nodes import image_codec
from ppd_ros.nodes.camera_info import camera_intrinsics, camera_topics, copy_camera_info
from ppd_ros.nodes.cloud import CloudDecodeError, points_to_cloud_msg
from ppd_ros.nodes.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher, LostMessages, RateMeter
from ppd_ros.nodes.image_codec import ImageDecodeError, depth_to_image_msg
from ppd_ros.nodes.metric_source import MetricSource, TransformUnavailable
from ppd_ros.nodes.pairing import stamp_ns, subscribe_pair
from ppd_ros.nodes.params import NodeParameters
from ppd_ros.nodes.qos import AutoReliable, configured_qos
from ppd_ros.nodes.runner import run_node
from ppd_ros.nodes.scale_fusion_params import PARAMETERS, check_parameters
from ppd_ros.nodes.scale_message import depth_scale_message, scale_problem
from ppd_ros.nodes.stamped_buffer import closest

LOG_THROTTLE_S = 5.0


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
        self.params = p = NodeParameters(self, PARAMETERS, check_parameters)
        for name in p.unknown_overrides():
            self.get_logger().warning(f"unknown parameter '{name}' (typo?) is ignored")
        self.sensor = MetricSource(self, p, self._log_problem)
        self._sources = self.sensor.kept  # (stamp s, message) kept for pairing
        self.tracker = FitTracker(self._tracker_config())
        p.on_change(lambda changed: self._configure())

        self.last_scale: DepthScale | None = None
        self.last_problem: FrameProblem | None = None
        self.frames = 0
        self.frames_without_source = 0  # depth frames with no source message within source_tolerance
        self.fresh_fits = 0
        self.model_scales: deque = deque(maxlen=50)  # (stamp s, DepthScale) from depth_node's MoGe-2 pass
        self.model_fallbacks = 0  # frames published with the model scale because the sensor was unusable
        self.model_scales_refused = 0  # model scales that were no scale at all (NaN, a <= 0, absurd)
        self.refused_model_scales: deque = deque(maxlen=50)  # (stamp s, why)
        self._refusals_reported = 0
        self.depth_rate = RateMeter()
        self.source_rate = RateMeter()

        qos_in, qos_out = configured_qos(p, 'subscription'), configured_qos(p, 'publisher')
        self.pub_depth = self.create_publisher(Image, 'metric/depth/image', qos_out)
        self.pub_info = self.create_publisher(CameraInfo, 'metric/depth/camera_info', qos_out)
        self.pub_points = self.create_publisher(PointCloud2, 'metric/points', qos_out)
        self.pub_scale = self.create_publisher(DepthScale, 'metric/scale', qos_out)
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
                              AutoReliable(self, self.lost_messages, (self.sensor.topic,), self._subscribe_source,
                                           depth))
        self.diagnostics = DiagnosticsPublisher(self, self._diagnostics_status, hardware_id=self.sensor.kind,
                                                period=p['diagnostics.period'])
        self.get_logger().info(f"fusing {relative_topic} with {self.sensor.kind} on '{self.sensor.topic}' "
                               f'(extrinsic from {self.sensor.extrinsic_origin})')

    def _subscribe_source(self, qos) -> None:
        if self._source_sub is not None:
            self.destroy_subscription(self._source_sub)
        sensor = self.sensor
        self._source_sub = self.lost_messages.subscribe(self.create_subscription, sensor.topic, sensor.msg_type,
                                                        sensor.topic, self._on_source, qos)

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
        return f'depth/relative: {depth.state}; {self.sensor.kind}: {source.state}'

    def _tracker_config(self) -> TrackerConfig:
        p = self.params
        return TrackerConfig(smoothing=p['tracker.smoothing'], max_jump=p['tracker.max_jump'],
                             max_scale_change=p['tracker.max_scale_change'],
                             max_rejections=p['tracker.max_rejections'], max_hold_age=p['max_hold_age'])

    def _configure(self):
        self.sensor.configure()
        self.tracker.config = self._tracker_config()

    # ------------------------------------------------------------------ callbacks

    def _on_source(self, msg):
        self.source_rate.tick()
        refused = self.sensor.add(msg)
        if refused:
            self.get_logger().warning(refused, throttle_duration_sec=LOG_THROTTLE_S)

    def _on_model_scale(self, msg: DepthScale):
        if msg.source == SOURCE_MODEL and msg.status in (FitStatus.OK, FitStatus.HELD):
            problem = scale_problem(msg.a, msg.b)  # checked where it enters: never republished as OK
            if problem:
                self.model_scales_refused += 1
                reason = f'MoGe-2 scale from depth_node refused: {problem}'
                self.refused_model_scales.append((stamp_ns(msg) * 1e-9, reason))
                self.get_logger().warning(reason, throttle_duration_sec=LOG_THROTTLE_S)
                return
            self.model_scales.append((stamp_ns(msg) * 1e-9, msg))

    def _closest_model(self, entries, stamp: float):
        entry = closest(sorted(entries, key=lambda item: item[0]), stamp, self.params['source_tolerance'])
        return None if entry is None else entry[1]

    def _model_scale_for(self, stamp: float) -> DepthScale | None:
        """depth_node's model scale for this depth frame (closest stamp within source_tolerance)."""
        if not self.params['model_fallback']:
            return None
        return self._closest_model(self.model_scales, stamp)

    def _scale_message(self, header, state, stamp: float) -> DepthScale:
        """The sensor's scale when usable; else depth_node's model scale when there is one."""
        kind = self.sensor.kind
        model = None if state.usable else self._model_scale_for(stamp)
        if model is not None:
            self.model_fallbacks += 1
        refused = None
        if not state.usable and model is None and self.params['model_fallback']:
            refused = self._closest_model(self.refused_model_scales, stamp)
        return depth_scale_message(header, state, SOURCE_SENSOR,
                                   f'{kind}: {state.message}' + (f'; {refused}' if refused else ''),
                                   fallback=model, fallback_source=SOURCE_MODEL,
                                   why=f'{kind} unusable ({state.message}): MoGe-2 scale from depth_node')

    def _on_depth(self, relative_msg: Image, info_msg: CameraInfo):
        self.depth_rate.tick()
        self.frames += 1
        stamp = stamp_ns(relative_msg) * 1e-9
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

        source_msg, why = self.sensor.pick(stamp)
        if source_msg is None:
            self.frames_without_source += 1
            return hold(WARN, why, relative, intr)
        try:
            samples = self.sensor.samples(relative, intr, source_msg, relative_msg.header.frame_id)
        except TransformUnavailable as exc:
            return hold(WARN, str(exc), relative, intr)
        except (SampleError, ImageDecodeError, CloudDecodeError, ValueError) as exc:
            return hold(ERROR, str(exc), relative, intr)
        if samples.count == 0:
            return hold(ERROR, f'no overlap between {self.sensor.kind} and the image: {samples.note}', relative, intr)
        result = self.sensor.fit(samples, (w, h), stamp)
        state = self.tracker.update(stamp, result, samples.relative)
        problem = None
        if isinstance(result, FitFailure):
            problem = FrameProblem(WARN, f'{result.reason}; {samples.note}')
        elif state.status != FitStatus.OK:
            problem = FrameProblem(WARN, state.message)
        else:
            self.fresh_fits += 1
        return state, relative, intr, problem

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

    def _diagnostics_status(self):
        scale, problem = self.last_scale, self.last_problem
        values = {'input topics': ' + '.join(self.input_topics), 'pairing': self.pairing,
                  'input reliability': self.input_reliability, **self.sensor.diagnostic_values(),
                  'input rate (Hz)': self.depth_rate.rate(), 'source rate (Hz)': self.source_rate.rate(),
                  'frames received': self.frames, 'fresh fits': self.fresh_fits,
                  'frames without source': self.frames_without_source,
                  'scale source': scale.source if scale else '', 'model fallbacks': self.model_fallbacks,
                  'model scales refused': self.model_scales_refused,
                  'messages lost in transport': self.lost_messages.total()}
        new_lost = self.lost_messages.new_since_last_call()
        lost = ''
        if new_lost:
            lost = (f'; {new_lost} message(s) lost in transport before reaching the node (messages too large '
                    'for a best-effort subscription, or a full subscription queue?)')
            self.get_logger().warning(lost[2:] + ": set qos.subscription 'reliable', or see the README, "
                                      "'Large messages over Fast DDS'", throttle_duration_sec=LOG_THROTTLE_S)
        values.update(self._pair_handle.monitor.values())
        unpaired = self._pair_handle.monitor.problem
        if scale is None:
            return WARN, (unpaired or 'waiting for depth/relative and depth/camera_info') + lost, values
        values.update({'scale status': FitStatus.NAMES[scale.status], 'scale': f'a={scale.a:.4g} b={scale.b:.4g}',
                       'scale age (s)': scale.age, 'fit inlier ratio': scale.inlier_ratio,
                       'fit points': scale.num_points, 'fit residual': scale.residual})
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
        refused = self.model_scales_refused - self._refusals_reported
        self._refusals_reported = self.model_scales_refused
        if self.refused_model_scales:
            values['model scale refusal'] = self.refused_model_scales[-1][1]
        if refused and self.refused_model_scales[-1][1] not in message:  # e.g. while the sensor is fine
            level = WARN if level == OK else level
            message += f'; {self.refused_model_scales[-1][1]} ({refused} since the last report)'
        return level, message, values


def main(args=None) -> int:
    return run_node(ScaleFusionNode, 'scale_fusion_node', args, help=(__doc__, PARAMETERS))


if __name__ == '__main__':
    sys.exit(main())
