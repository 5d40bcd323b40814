"""scale_fusion_node's metric sensor: the messages kept for pairing, the one picked for a depth
frame (or why none), and the (relative, metric) samples and the fit it gives.

* Messages are kept by stamp in a StampedBuffer (seconds; bounded by source_window,
  source_budget_mb and source_queue); a depth frame at t takes the closest one within
  source_tolerance (StampedBuffer.closest), and what is older than t − source_tolerance is
  released, since depth frames come in stamp order.
* A point cloud is brought into the camera frame with tf2 at the cloud's stamp (use_tf, when
  tf2_ros is importable) or with the extrinsic.* parameters; a depth image is sampled where it
  overlaps the relative depth; a range reading along the ray of range.pixel.
* Clouds and depth images are fitted robustly (fit_scale); a range reading alone with a prior
  (fit_single_range), or over the last range.window_frames readings together (RangeWindow).
"""
from __future__ import annotations

import numpy as np
import rclpy.duration
import rclpy.time
from sensor_msgs.msg import Image, PointCloud2, Range

from ppd_ros.geometry.projection import transform_from_translation_quaternion
from ppd_ros.geometry.scale.fit import FitConfig, FitFailure, ScaleFit, fit_scale, fit_single_range
from ppd_ros.geometry.scale.range_window import RangePrior, RangeWindow, RangeWindowConfig
from ppd_ros.geometry.scale.source_samples import (SampleError, range_to_depth, samples_from_depth_image,
                                                   samples_from_points, samples_from_range)

from .cloud import cloud_msg_to_xyz
from .diagnostics import WARN
from .image_codec import image_msg_to_depth
from .pairing import stamp_ns
from .stamped_buffer import StampedBuffer

SOURCE_TOPICS = {'depth_image': ('metric_source/depth', Image),
                 'pointcloud': ('metric_source/points', PointCloud2),
                 'range': ('metric_source/range', Range)}


def import_tf2():
    """tf2_ros when this ROS install has it (not installable from PyPI), else None."""
    try:
        import tf2_ros
    except ImportError:
        return None
    return tf2_ros


class TransformUnavailable(SampleError):
    """tf2 has no transform from the cloud's frame to the camera's at the cloud's stamp (yet)."""


class MetricSource:
    """The sensor named by the parameter `source` (see the module docstring). `params` is the
    node's NodeParameters; call configure() after a parameter change. `log_problem(level, text)`
    reports a range window restart."""

    def __init__(self, node, params, log_problem):
        self.params, self._log_problem = params, log_problem
        self.kind = params['source']
        self.topic = node.resolve_topic_name(SOURCE_TOPICS[self.kind][0])
        self.msg_type = SOURCE_TOPICS[self.kind][1]
        self.refusal = ''  # why the last message refused by the buffer was not kept
        self._refused_stamp: float | None = None  # its stamp (s)
        self._rng = np.random.default_rng(params['fit.seed'])
        self._window_stamp: float | None = None
        self.kept: StampedBuffer | None = None  # (stamp s, message) kept for pairing
        self.range_window: RangeWindow | None = None
        self.tf2 = self.tf_buffer = self.tf_listener = None
        if self.kind == 'pointcloud' and params['use_tf']:
            self.tf2 = import_tf2()
            if self.tf2 is None:
                node.get_logger().info('tf2_ros is not importable here: the point cloud extrinsic comes '
                                       'from the extrinsic.* parameters')
            else:
                self.tf_buffer = self.tf2.Buffer()
                self.tf_listener = self.tf2.TransformListener(self.tf_buffer, node)
        self.configure()

    @property
    def extrinsic_origin(self) -> str:
        return 'tf2' if self.tf_buffer is not None else 'parameters'

    def configure(self) -> None:
        p = self.params
        self.fit_config = FitConfig(min_points=p['fit.min_points'], min_depth=p['fit.min_depth'],
                                    max_depth=p['fit.max_depth'], inlier_threshold=p['fit.inlier_threshold'],
                                    max_iterations=p['fit.max_iterations'],
                                    min_inlier_ratio=p['fit.min_inlier_ratio'], seed=p['fit.seed'])
        window = RangeWindowConfig(frames=p['range.window_frames'], min_spread=p['range.min_spread'],
                                   reset_residual=p['range.reset_residual'])
        if self.range_window is None or self.range_window.config.frames != window.frames:
            self.range_window = RangeWindow(window)  # a new length starts a new window
        else:
            self.range_window.config = window
        self.T_cam_source = transform_from_translation_quaternion(p['extrinsic.translation'],
                                                                  p['extrinsic.rotation'])
        limits = (p['source_window'], int(p['source_budget_mb'] * 2**20), p['source_queue'])
        if self.kept is None:
            self.kept = StampedBuffer(*limits)
        else:
            self.kept.configure(*limits)

    # ------------------------------------------------------------------ pairing by stamp

    def add(self, msg) -> str | None:
        """Keep `msg` for pairing; returns why it was not kept, or None."""
        size = len(getattr(msg, 'data', ())) + 256  # the payload, and about a header's worth
        stamp = stamp_ns(msg) * 1e-9
        refused = self.kept.add(stamp, msg, size)
        if refused:
            self.refusal = f"{self.kind} on '{self.topic}' not kept for pairing: {refused}: raise " \
                           'source_budget_mb, or decimate the source'
            self._refused_stamp = stamp
            return self.refusal
        return None

    def pick(self, stamp: float):
        """(the message closest to `stamp` within source_tolerance, '') or (None, why); then
        releases what pairing will not use again (older than stamp − source_tolerance)."""
        try:
            return self._pick(stamp)
        finally:
            self.kept.release_before(stamp - self.params['source_tolerance'])

    def _pick(self, stamp: float):
        p, kept = self.params, self.kept
        tolerance = p['source_tolerance']
        if kept.newest_stamp is None:
            if self.refusal:
                return None, self.refusal
            return None, (f"no {self.kind} message received yet on '{self.topic}' — check that the "
                          'sensor publishes there (remap the metric_source topic)')
        if (self._refused_stamp is not None and self._refused_stamp > kept.newest_stamp
                and kept.closest(stamp, tolerance) is None):
            return None, self.refusal  # newer messages came, but the budget refused them: not "stale"
        lag = stamp - kept.newest_stamp
        if lag > p['stale_after']:
            return None, (f'source stale: newest {self.kind} is {lag:.2f} s older than the depth frame '
                          f"(stale_after {p['stale_after']:g} s)")
        if not len(kept):
            return None, f'no {self.kind} within ±{tolerance:g} s of the depth stamp (none kept)'
        within = kept.closest(stamp, tolerance)
        if within is not None:
            return within[1], ''
        nearest, _ = kept.closest(stamp)
        fix = ': the source is stamped late or on another clock — fix its stamps or raise source_tolerance'
        oldest, _ = next(iter(kept))
        evicted = kept.newest_evicted
        if evicted is not None and stamp < oldest - tolerance and stamp <= evicted + tolerance:
            fix = (f"; the message it needed was no longer kept (source_window {p['source_window']:g} s, "
                   f"source_budget_mb {p['source_budget_mb']:g}): raise them if depth arrives this late")
        return None, (f'no {self.kind} within ±{tolerance:g} s of the depth stamp '
                      f'(closest is {nearest - stamp:+.3f} s away){fix}')

    # ------------------------------------------------------------------ samples and fit

    def samples(self, relative, intr, msg, camera_frame: str):
        """(relative, metric) samples of `msg` on the relative depth `relative` (intrinsics `intr`)."""
        p = self.params
        if self.kind == 'range':
            distance = range_to_depth(msg.range, msg.min_range, msg.max_range)
            pixel = p['range.pixel']
            return samples_from_range(relative, intr, distance, None if min(pixel) < 0 else pixel)
        if self.kind == 'depth_image':
            return samples_from_depth_image(relative, image_msg_to_depth(msg, depth_unit=p['depth_image.unit']))
        transform = self._transform(msg, camera_frame)
        points = cloud_msg_to_xyz(msg)
        if points.shape[0] == 0:
            raise SampleError('point cloud has no finite point')
        return samples_from_points(relative, intr, points, transform, min_depth=p['fit.min_depth'])

    def _transform(self, msg, camera_frame: str) -> np.ndarray:
        """T_cam_source: tf2 at the cloud's stamp (waiting up to tf_timeout), else the parameters."""
        source_frame = msg.header.frame_id
        if self.tf_buffer is None:
            expected = self.params['source_frame']
            if expected and source_frame != expected:
                raise SampleError(f"point cloud frame_id '{source_frame}' is not source_frame '{expected}' that "
                                  'the extrinsic parameters describe (set source_frame, or publish the transform '
                                  'and use tf2)')
            return self.T_cam_source
        try:
            t = self.tf_buffer.lookup_transform(
                camera_frame, source_frame, rclpy.time.Time.from_msg(msg.header.stamp),
                timeout=rclpy.duration.Duration(seconds=self.params['tf_timeout']))
        except self.tf2.TransformException as exc:  # Lookup-, Connectivity-, ExtrapolationException
            stamp = f'{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}'
            raise TransformUnavailable(
                f"no tf2 transform '{source_frame}' → '{camera_frame}' at the cloud's stamp {stamp} "
                f'({type(exc).__name__}: {exc}); is the transform published (robot_state_publisher, '
                'static_transform_publisher)? Or set use_tf: false and the extrinsic.* parameters') from None
        tr, rot = t.transform.translation, t.transform.rotation
        return transform_from_translation_quaternion([tr.x, tr.y, tr.z], [rot.x, rot.y, rot.z, rot.w])

    def fit(self, samples, size, stamp: float) -> ScaleFit | FitFailure:
        """This frame's fit of `samples` (relative depth of `size` (w, h), stamped `stamp` s)."""
        if self._window_stamp is not None and stamp < self._window_stamp:
            self.range_window.reset('time went backwards')
        self._window_stamp = stamp
        if self.kind != 'range':
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

    # ------------------------------------------------------------------ diagnostics

    def diagnostic_values(self) -> dict:
        counts = self.kept.counts
        values = {'source': self.kind, 'source topic': self.topic, 'extrinsic': self.extrinsic_origin,
                  'source messages kept': len(self.kept), 'source MB kept': self.kept.held_bytes / 2**20,
                  'source dropped (window)': counts.window, 'source dropped (budget)': counts.budget,
                  'source released (paired past)': counts.used,
                  'source refused (larger than budget)': counts.too_large}
        if self.refusal:
            values['source refusal'] = self.refusal
        return values


__all__ = ['SOURCE_TOPICS', 'MetricSource', 'TransformUnavailable', 'import_tf2']
