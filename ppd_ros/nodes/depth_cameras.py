"""depth_node with the ``cameras`` parameter: several cameras, one model, batched inference.

For each camera name ``cam``: ``<cam>/image`` (with image_transport) and ``<cam>/camera_info`` in,
every output under ``<cam>/depth/...``, and a /diagnostics status named ``<node>: <cam>`` whose
errors, drops and ages are that camera's. Remapping works per camera (``front/image:=/x``).

One inference thread takes the latest frame of each camera (pipeline.scheduler: round robin
when the model cannot keep up, drops and waits counted per camera) and runs them through
pipeline.batch: frames that share a model resolution go through the model as one batch, each
camera keeping its own FramePipeline (temporal state, scale, rectification maps). A camera that
stops has no frame waiting; a bad frame fails only its camera.

Per-camera publishing, statistics and /diagnostics are depth_node's own code run on a
``CameraState`` (which has the attributes that code reads), so one camera here publishes and
reports exactly as a single-camera depth_node does.
"""
from __future__ import annotations

import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ppd_ros.pipeline import FrameInput, FramePipeline
from ppd_ros.pipeline.batch import CameraFrame, batch_problem, process_cameras
from ppd_ros.pipeline.scheduler import CameraSlots

from .camera_info import calibration_of, camera_topics, looks_rectified
from .depth_messages import METRIC_OUTPUTS
from .depth_node_diagnostics import DepthNodeStatus
from .depth_node_params import pipeline_settings
from .diagnostics import DiagnosticsPublisher, LostMessages, RateMeter, StatWindow
from .image_codec import rgb_from_any
from .pairing import stamp_ns, subscribe_pair
from .params import ParameterError
from .qos import AutoReliable, configured_qos

def camera_names(node) -> list[str]:
    """The names of the ``cameras`` parameter (depth_node_params checks them); ParameterError with
    one line when two cameras read one topic after remapping (before the model loads)."""
    names = list(node.params['cameras'])
    problem = shared_topic_problem(node, names, node.params['image_transport'])
    if problem:
        raise ParameterError(problem)
    return names


def shared_topic_problem(node, names, transport: str) -> str | None:
    """Two cameras whose image (or camera_info) topics are one topic after remapping, or None."""
    seen: dict[str, str] = {}
    for name in names:
        image, info, _ = camera_topics(node, f'{name}/image', f'{name}/camera_info', transport)
        for topic in (image, info):
            if topic in seen and seen[topic] != name:
                return f"cameras '{seen[topic]}' and '{name}' both read {topic}: give each camera its own topics"
            seen[topic] = name
    return None


class _SlotWorker:
    """What DepthNodeStatus reads of a worker, for one camera's slot."""

    def __init__(self, slots: CameraSlots, name: str):
        self.slots, self.name = slots, name

    def stats(self) -> dict:
        return self.slots.stats(self.name)


class CameraState:
    """One camera of a multi-camera depth_node: its pipeline, outputs, subscriptions and
    statistics, under the attribute names depth_node's publishing and diagnostics code reads;
    anything else (parameters, model description, clock) is the node's."""

    def __init__(self, node, name: str, estimator, outputs: dict):
        self.node, self.name = node, name
        self.pipeline = FramePipeline(estimator, pipeline_settings(node.params), log=self.get_logger().warning)
        self._outputs = outputs
        self.input_rate, self.output_rate = RateMeter(), RateMeter()
        self.latency, self.inference_time, self.age = StatWindow(), StatWindow(), StatWindow()
        self.idle_frames = self.published_frames = self.errors = self.all_nan_frames = 0
        self.last_all_nan = self.last_error = ''
        self.last_scale = None
        self._stats_lock = threading.Lock()
        self.lost_messages = LostMessages()
        self._subscriptions_handle = self._image_subscription = self._auto_qos = None
        self.input_topics = ()
        self.pairing = ''
        self.worker = None
        self.diagnostics = None

    def __getattr__(self, name):
        return getattr(self.node, name)

    def get_logger(self):
        return self.node.get_logger().get_child(self.name)

    # depth_node's own code, run for this camera
    def wanted_outputs(self) -> set:
        return type(self.node).wanted_outputs(self)

    def _publish(self, wanted, depth) -> None:
        type(self.node)._publish(self, wanted, depth)

    def _note_all_nan(self, depth) -> None:
        type(self.node)._note_all_nan(self, depth)

    def _count_error(self, exc) -> None:
        type(self.node)._count_error(self, exc)

    @property
    def input_reliability(self) -> str:
        if self._auto_qos is not None:
            return self._auto_qos.state
        return {'auto': 'auto: best effort'}.get(self.params['qos.subscription'], self.params['qos.subscription'])

    def report_error(self, exc: Exception) -> None:
        self._count_error(exc)
        what = 'frame dropped' if isinstance(exc, ValueError) else f'frame failed: {type(exc).__name__}'
        self.get_logger().error(f'{what}: {exc}', throttle_duration_sec=2.0)


class CameraSet:
    """The cameras of one depth_node (see the module docstring); the node's configure, activate,
    deactivate and cleanup phases call the methods of the same names."""

    def __init__(self, node, names: list[str]):
        self.node, self.names = node, list(names)
        qos = configured_qos(node.params, 'publisher')
        self.cameras: dict[str, CameraState] = {}
        for name in self.names:
            outputs = {}
            for key, publisher in node._outputs_for(f'{name}/', qos).items():
                outputs[key] = node._outputs[f'{name}/{key}'] = publisher
            self.cameras[name] = CameraState(node, name, node.estimator, outputs)
        self.batching_problem = batch_problem(node.estimator)
        self.batches = StatWindow()       # frames per model call
        self.slots = None
        self._thread = None

    # ---------------------------------------------------------------- activate / deactivate
    def activate(self) -> None:
        node = self.node
        self.slots = CameraSlots(self.names)
        self._thread = threading.Thread(target=self._run, name='ppd-inference', daemon=True)
        group = MutuallyExclusiveCallbackGroup()
        for camera in self.cameras.values():
            camera.worker = _SlotWorker(self.slots, camera.name)
            image, info, base = camera_topics(node, f'{camera.name}/image', f'{camera.name}/camera_info',
                                              node.image_transport)
            camera.input_topics, camera._input_rectified = (image, info), looks_rectified(base)
            self._subscribe(camera, configured_qos(node.params, 'subscription'), group)
            if node.params['qos.subscription'] == 'auto' and camera._subscriptions_handle is not None:
                camera._auto_qos = AutoReliable(node, camera.lost_messages, camera.input_topics,
                                                lambda qos, c=camera: self._resubscribe(c, qos, group),
                                                node.params['qos.subscription_depth'], callback_group=group)
            camera.diagnostics = DiagnosticsPublisher(
                node, self._status(camera), hardware_id=str(node._describe.get('device', '')),
                period=node.params['diagnostics.period'], name=f'{node.get_fully_qualified_name()}: {camera.name}',
                callback_group=MutuallyExclusiveCallbackGroup())
        self._thread.start()
        d = node._describe
        batching = (f'one after another: {self.batching_problem}' if self.batching_problem else
                    'frames of one model resolution batched')
        node.get_logger().info(
            f"depth_node {node.STARTED_AS}: {len(self.names)} cameras ({', '.join(self.names)}), one model "
            f"{d.get('model', '?')} on {d.get('device', '?')} ({d.get('precision', '?')}, "
            f"{node.estimator.steps} steps, {d.get('acceleration', 'eager')}); {batching}; input "
            + '; '.join(
                f"{' + '.join(c.input_topics)} paired {c.pairing}" for c in self.cameras.values()))

    def _status(self, camera: CameraState):
        """depth_node's /diagnostics report for this camera, with its wait for the model and the
        batches it ran in."""
        report = DepthNodeStatus(camera).report

        def status():
            level, message, values = report()
            age, batches, stats = camera.age.summary(), self.batches.summary(), self.slots.stats(camera.name)
            values.update({'camera': camera.name, 'frame age at the model mean (s)': age['mean'],
                           'frame age at the model max (s)': stats['max_wait'],
                           'frames per model call mean': batches['mean'],
                           'batching': self.batching_problem or 'batched by model resolution'})
            return level, message, values
        return status

    def _subscribe(self, camera: CameraState, qos, group) -> None:
        node = self.node
        image_type = CompressedImage if node.image_transport == 'compressed' else Image
        submit = lambda image, info, c=camera: self._submit(c, image, info)  # noqa: E731
        if node.params['camera.intrinsics'] == 'model':
            camera.input_topics = camera.input_topics[:1]
            camera._image_subscription = camera.lost_messages.subscribe(
                node.create_subscription, camera.input_topics[0], image_type, camera.input_topics[0],
                lambda msg: submit(msg, None), qos, callback_group=group)
            camera.pairing = 'image only (MoGe-2 intrinsics)'
            return
        camera._subscriptions_handle, camera.pairing = subscribe_pair(
            node, (image_type, camera.input_topics[0]), (CameraInfo, camera.input_topics[1]), qos, submit,
            queue_size=node.params['input.sync_queue_size'], slop=node.params['input.sync_slop'],
            latest_secondary=node.params['input.latest_camera_info'], callback_group=group,
            lost_messages=camera.lost_messages)

    def _resubscribe(self, camera: CameraState, qos, group) -> None:
        camera._subscriptions_handle.close(self.node)
        self._subscribe(camera, qos, group)

    def _submit(self, camera: CameraState, image, info) -> None:
        camera.input_rate.tick()
        self.slots.submit(camera.name, (image, info))

    def deactivate(self) -> None:
        self.stop()
        for camera in self.cameras.values():
            if camera._auto_qos is not None:
                camera._auto_qos.close()
                camera._auto_qos = None
            if camera._subscriptions_handle is not None:
                camera._subscriptions_handle.close(self.node)
                camera._subscriptions_handle = None
            if camera._image_subscription is not None:
                self.node.destroy_subscription(camera._image_subscription)
                camera._image_subscription = None
            if camera.diagnostics is not None:
                camera.diagnostics.close()
                camera.diagnostics = None

    def stop(self) -> None:
        """Stop the inference thread (the batch in progress finishes)."""
        if self.slots is not None:
            self.slots.stop()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def settings_changed(self) -> None:
        for camera in self.cameras.values():
            camera.pipeline.settings = pipeline_settings(self.node.params)

    def _warm_up_batches(self) -> None:
        """model.compile on: one capture per batch size 2..cameras at the model's own resolution,
        here on the inference thread (batch 1: depth_node's warm-up); other (batch, resolution)
        pairs compile once on their first frames."""
        estimator = self.node.estimator
        if self.batching_problem or 'torch.compile' not in str(getattr(estimator, 'acceleration', '')):
            return
        started = time.perf_counter()
        try:
            for batch in range(2, len(self.names) + 1):
                estimator.warm_up(batch=batch)
        except Exception as exc:  # noqa: BLE001 — those batches then compile on arrival; say so
            self.node.get_logger().error(f'batch warm-up failed ({type(exc).__name__}: {exc}); batches of '
                                         'several cameras compile on arrival')
            return
        self.node.get_logger().info(f'model warmed up for batches of 2..{len(self.names)} cameras in '
                                    f'{time.perf_counter() - started:.1f} s')

    def _count_batch(self, size: int, what) -> None:
        if what != 'metric':  # frames per DiT batch (MoGe-2's batches are not counted)
            self.batches.add(size)

    # ---------------------------------------------------------------- inference thread
    def _run(self) -> None:
        self.node._warm_up()
        self._warm_up_batches()
        slots = self.slots
        while True:
            taken = slots.take()
            if not taken:
                if not slots.running:
                    return
                continue
            try:
                self._step(taken)
            except Exception as exc:  # noqa: BLE001 — never end the thread; say what happened
                self.node.get_logger().error(f'inference step failed: {type(exc).__name__}: {exc}',
                                             throttle_duration_sec=2.0)

    def _step(self, taken: list) -> None:
        """Decode the frames taken, run them (batched), publish each camera's depth."""
        frames, wanted = {}, {}
        for name, (image, info), waited in taken:
            camera = self.cameras[name]
            camera.age.add(waited)
            outputs = camera.wanted_outputs()
            if not outputs:
                with camera._stats_lock:
                    camera.idle_frames += 1
                continue
            try:
                rgb = rgb_from_any(image, mono16=self.node.params['input.mono16'],
                                   max_pixels=self.node.params['input.max_pixels'])
                frame = FrameInput(rgb, stamp_ns(image), calibration_of(info) if info is not None else None,
                                   (image.header, info), camera._input_rectified)
            except Exception as exc:  # noqa: BLE001 — this camera's frame only
                camera.report_error(exc)
                continue
            frames[name] = CameraFrame(frame, bool(outputs & METRIC_OUTPUTS), 'confidence' in outputs)
            wanted[name] = outputs
        if not frames:
            return
        started = time.perf_counter()
        results = process_cameras({name: self.cameras[name].pipeline for name in frames}, frames,
                                  self.node.estimator, batching=self.batching_problem is None,
                                  on_batch=self._count_batch)
        seconds = time.perf_counter() - started
        for name, result in results.items():
            camera = self.cameras[name]
            if not self.slots.running:
                return  # stopping: the outputs may be gone
            if isinstance(result, Exception):
                camera.report_error(result)
                continue
            camera.inference_time.add(seconds)
            for depth in result:
                camera._publish(wanted[name], depth)
