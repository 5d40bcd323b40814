"""depth_node: Pixel-Perfect Depth on a ROS 2 camera stream.

Subscribes `image` (sensor_msgs/Image) — or `<image>/compressed` with `image_transport:
compressed` — and the `camera_info` beside it, as image_transport derives them from the resolved
image topic (camera_info.camera_topics), paired by stamp (or with the latest CameraInfo).
Callbacks only hand the pair to one worker thread (latest frame wins, drops counted), which
runs the frame pipeline (ppd_ros.pipeline: rectification, model, temporal step, scale, output
geometry) and publishes, each with the input header:

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
  depth/confidence   32FC1 in [0, 1], same size and header as depth/image: the sampler's own
                     uncertainty (geometry.confidence; NaN where the depth is)
  depth/scan         sensor_msgs/LaserScan as depthimage_to_laserscan (geometry.scan), in
                     scan.frame_id; or in scan.target_frame through tf2 (nodes.scan_frame)
  (depth/image and depth/points after the costmap filters output.min_range, max_range,
  confidence_min, edge_filter and cloud.*: geometry.costmap_filters; all off by default)
  /diagnostics       1 Hz: rates, latencies, drops, model; WARN with the reason when no image has
                     come for diagnostics.no_input_timeout s, when frames come out all NaN, when
                     the calibration cannot rectify, and when messages are lost before the node
                     (the middleware's event, or gaps in the publisher's sequence numbers)

Parameters: ppd_ros.nodes.depth_node_params (`depth_node --help` lists them). With `cameras`
(e.g. ['front', 'left', 'right']) one node serves several cameras with one model, batched:
<cam>/image and <cam>/camera_info in, <cam>/depth/... out (ppd_ros.nodes.depth_cameras).

Lazy outputs: nothing is computed for an output without subscribers, and the model does not run
at all while none of depth/relative, depth/image, depth/points, depth/colorized, depth/scale has
one (depth/camera_info alone does not trigger inference: it only describes those images). The
MoGe-2 pass runs only for the metric outputs and depth/scale (scale_fusion_node's fallback).
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, LaserScan, PointCloud2

from ppd_ros.msg import DepthScale

from ppd_ros.model.runtime import release_device_memory
from ppd_ros.model.factory import EstimatorBuildError, build_estimator
from ppd_ros.pipeline import FrameDepth, FrameError, FrameInput, FramePipeline, settings_problem

from .camera_info import calibration_of, camera_topics, looks_rectified
from .depth_cameras import CameraSet, camera_names
from .depth_messages import DEPTH_OUTPUTS, METRIC_OUTPUTS, depth_message, output_camera_info
from .depth_node_diagnostics import DepthNodeStatus
from .depth_node_params import (DEPRECATED_PARAMETERS, PARAMETERS, check_parameters, model_options,
                                pipeline_settings)
from .diagnostics import DiagnosticsPublisher, LostMessages, RateMeter, StatWindow
from .image_codec import rgb_from_any
from .pairing import stamp_ns, subscribe_pair
from .params import NodeParameters, ParameterError
from .qos import AutoReliable, configured_qos
from .runner import run_node
from .scan_frame import ScanFrame
from .worker import LatestFrameWorker

@dataclass
class _Pair:
    image: Image | CompressedImage
    info: CameraInfo | None


class DepthNode(Node):
    """The depth node; `estimator` (anything with predict/steps/describe) replaces the model."""

    STARTED_AS = 'ready'  # the word of the line logged once input flows

    def __init__(self, estimator=None, node_name: str = 'depth_node', **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.worker = None
        self.estimator = None
        self.pipeline = None
        self.diagnostics = None
        self._subscriptions_handle = None
        self._image_subscription = None
        self._auto_qos = None
        self._outputs = {}
        self.camera_set = None        # the cameras parameter: nodes.depth_cameras
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
        self.params = NodeParameters(self, self._parameter_specs(), self._check_parameters)
        self.camera_names = camera_names(self)
        for name in self.params.unknown_overrides():
            if name not in DEPRECATED_PARAMETERS:
                self.get_logger().warning(f"unknown parameter '{name}' ignored (typo?)")
        self.image_transport = self._image_transport()
        self.params.on_change(self._on_parameters_changed)

    def _parameter_specs(self):
        return PARAMETERS

    def _configure(self, estimator) -> None:
        """Load the model (or take `estimator`), build the frame pipeline and create the outputs."""
        self.estimator = estimator if estimator is not None else build_estimator(
            **model_options(self.params, log=self.get_logger().warning))
        reason = self._check_parameters(dict(self.params))  # again, now that the estimator is known
        if reason:
            raise ParameterError(reason)
        self.estimator.steps = self.params['model.steps']
        self._describe = dict(self.estimator.describe())
        if self.camera_names:  # several cameras, one model: their pipelines and outputs
            self.camera_set = CameraSet(self, self.camera_names)
            return
        self.pipeline = FramePipeline(self.estimator, pipeline_settings(self.params),
                                      log=self.get_logger().warning)

        # statistics (read by /diagnostics and by tests)
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.latency = StatWindow()
        self.inference_time = StatWindow()
        self.idle_frames = 0          # frames skipped because no depth output had a subscriber
        self.published_frames = 0
        self.last_scale: DepthScale | None = None  # what depth/image used last (source, a, b)
        self.errors = 0               # frames (or outputs) dropped because of bad input / failures
        self.all_nan_frames = 0       # frames published with no finite depth at all
        self.last_all_nan = ''        # why the last one was
        self.last_error = ''
        self._stats_lock = threading.Lock()
        self.lost_messages = LostMessages()  # reported by the middleware: never reached a callback

        self._outputs = self._outputs_for('', configured_qos(self.params, 'publisher'))
        self._scan_frame = ScanFrame(self, self.params)  # depth/scan in scan.target_frame (tf2)

    def _outputs_for(self, prefix: str, publisher_qos) -> dict:
        """The depth publishers, under ``prefix`` (a camera's name and '/', or nothing)."""
        return {
            'relative': self._create_output(Image, prefix + 'depth/relative', publisher_qos),
            'image': self._create_output(Image, prefix + 'depth/image', publisher_qos),
            'camera_info': self._create_output(CameraInfo, prefix + 'depth/camera_info', publisher_qos),
            'points': self._create_output(PointCloud2, prefix + 'depth/points', publisher_qos),
            'colorized': self._create_output(Image, prefix + 'depth/colorized', publisher_qos),
            'scale': self._create_output(DepthScale, prefix + 'depth/scale', publisher_qos),
            'confidence': self._create_output(Image, prefix + 'depth/confidence', publisher_qos),
            'scan': self._create_output(LaserScan, prefix + 'depth/scan', publisher_qos),
        }

    def _create_output(self, msg_type, topic: str, qos):
        return self.create_publisher(msg_type, topic, qos)

    def _activate(self) -> None:
        """Start the inference worker, the input subscriptions and /diagnostics."""
        if self.camera_set is not None:
            self.camera_set.activate()
            return
        self.worker = LatestFrameWorker(self._process, self.params['worker.queue_size'],
                                        on_error=self._on_frame_error, prepare=self._warm_up).start()
        image_topic, info_topic, base_topic = camera_topics(self, 'image', 'camera_info', self.image_transport)
        self.input_topics = (image_topic, info_topic)
        self._input_rectified = looks_rectified(base_topic)
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._subscribe_inputs(configured_qos(self.params, 'subscription'))
        if self.params['qos.subscription'] == 'auto' and self._subscriptions_handle is not None:
            self._auto_qos = AutoReliable(self, self.lost_messages, self.input_topics, self._resubscribe_inputs,
                                          self.params['qos.subscription_depth'], callback_group=self._input_group)
        self._diagnostics_status = DepthNodeStatus(self).report
        self.diagnostics = DiagnosticsPublisher(
            self, self._diagnostics_status, hardware_id=str(self._describe.get('device', '')),
            period=self.params['diagnostics.period'], callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"depth_node {self.STARTED_AS}: model {self._describe.get('model', '?')} on "
            f"{self._describe.get('device', '?')} "
            f"({self._describe.get('precision', '?')}, {self.estimator.steps} steps, "
            f"{self._describe.get('acceleration', 'eager')}); input "
            f"{image_topic} ({self.image_transport}) + {info_topic} paired {self.pairing}; "
            f"rectify {self.params['input.rectify']}")

    def _subscribe_inputs(self, qos) -> None:
        image_type = CompressedImage if self.image_transport == 'compressed' else Image
        if self.params['camera.intrinsics'] == 'model':  # no calibration: the image alone
            self.input_topics = self.input_topics[:1]
            self._image_subscription = self.lost_messages.subscribe(
                self.create_subscription, self.input_topics[0], image_type, self.input_topics[0],
                lambda msg: self._on_pair(msg, None), qos, callback_group=self._input_group)
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
        if self.camera_set is not None:
            self.camera_set.deactivate()
        if self.worker is not None:
            self.worker.stop()
        if self._auto_qos is not None:
            self._auto_qos.close()
            self._auto_qos = None
        if self._subscriptions_handle is not None:
            self._subscriptions_handle.close(self)
            self._subscriptions_handle = None
        if self._image_subscription is not None:
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
        self.pipeline = None
        self.camera_set = None
        release_device_memory()

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self, values: dict) -> str | None:
        reason = check_parameters(values)
        if reason is None and self.estimator is not None:
            reason = settings_problem(pipeline_settings(values), self.estimator)
        return reason

    def _on_parameters_changed(self, changed: dict) -> None:
        if 'model.steps' in changed and self.estimator is not None:
            self.estimator.steps = changed['model.steps']
        if self.pipeline is not None:
            self.pipeline.settings = pipeline_settings(self.params)
        if self.camera_set is not None:
            self.camera_set.settings_changed()
        self.get_logger().info(f'parameters changed: {changed}')

    # ------------------------------------------------------------------ input (never blocks)

    def _on_pair(self, image_msg, info_msg) -> None:
        self.input_rate.tick()
        self.worker.submit(_Pair(image_msg, info_msg))

    def _on_frame_error(self, exc: Exception, _item) -> None:
        if not self.worker.running:  # the frame in flight when the node stopped: not an error
            return
        self._count_error(exc)
        if isinstance(exc, ValueError):  # ImageDecodeError, FrameError: the input's fault
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
        info = pair.info
        frame = FrameInput(rgb, stamp_ns(pair.image), calibration_of(info) if info is not None else None,
                           (pair.image.header, info), self._input_rectified)
        started = time.perf_counter()
        done = self.pipeline.process(frame, want_metric=bool(wanted & METRIC_OUTPUTS),
                                     want_confidence='confidence' in wanted)
        self.inference_time.add(time.perf_counter() - started)
        for depth in done:
            self._publish(wanted, depth)

    def _publish(self, wanted: set, depth: FrameDepth) -> None:
        """Publish one frame's depth products, with its input header."""
        header, info = depth.context
        self._outputs['camera_info'].publish(output_camera_info(depth, header, info))
        if depth.scale is not None and wanted & METRIC_OUTPUTS:
            self.last_scale = depth_message('scale', depth, header)
        if 'scan' in wanted:
            self._scan_frame.attach(depth, header)
        for name in DEPTH_OUTPUTS:
            if name not in wanted or (name in METRIC_OUTPUTS and depth.scale is None):
                continue
            try:
                self._outputs[name].publish(depth_message(name, depth, header))
            except FrameError as exc:  # e.g. no cloud without intrinsics: the depth images still go out
                self._count_error(exc)
                self.get_logger().error(f'depth/{name} skipped: {exc}', throttle_duration_sec=2.0)

        if not np.isfinite(depth.relative).any():
            self._note_all_nan(depth)

        now = self.get_clock().now()
        self.latency.add((now - Time.from_msg(header.stamp, clock_type=now.clock_type)).nanoseconds * 1e-9)
        self.output_rate.tick()
        with self._stats_lock:
            self.published_frames += 1

    def _note_all_nan(self, depth: FrameDepth) -> None:
        """A frame went out with no valid pixel: count it and keep the likeliest reason (diagnostics
        says it, and logs it once)."""
        rectification = self.pipeline.rectification
        if rectification.failed:
            why = f'rectification {rectification.state}'
        elif depth.rectified:
            why = f'rectification {rectification.state}, but no rectified pixel sees the raw image'
        else:
            why = 'the model gave no finite depth for this image (blank, broken, or all masked)'
        with self._stats_lock:
            self.all_nan_frames += 1
            self.last_all_nan = why

    def destroy_node(self):
        if self.worker is not None:
            self.worker.stop()  # before the publishers and the context go
        if self.camera_set is not None:
            self.camera_set.stop()
        return super().destroy_node()


# ---------------------------------------------------------------------------------- main

def main(args=None) -> int:
    return run_node(DepthNode, 'depth_node', args, startup_errors=(EstimatorBuildError,), help=(__doc__, PARAMETERS))


if __name__ == '__main__':
    sys.exit(main())
