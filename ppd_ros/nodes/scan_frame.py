"""depth/scan in another frame (scan.target_frame, e.g. base_link) through tf2, the way
scale_fusion_node's metric source looks up its cloud: a tf2 Buffer and TransformListener when
tf2_ros is importable, one lookup per frame at the image's stamp (waiting up to scan.tf_timeout).
Without a target frame the scan stays depthimage_to_laserscan's, in scan.frame_id."""
from __future__ import annotations

import rclpy.duration
import rclpy.time

from ppd_ros.geometry.projection import transform_from_translation_quaternion

from .metric_source import import_tf2


class ScanFrame:
    """Finds T_target_cam for a frame's depth/scan (``attach``); ``problem`` says why it cannot."""

    def __init__(self, node, params):
        self.params = params
        self.target = params['scan.target_frame']
        self.tf2 = self.buffer = self.listener = None
        self.problem = ''
        if not self.target:
            return
        self.tf2 = import_tf2()
        if self.tf2 is None:
            self.problem = (f"scan.target_frame '{self.target}' needs tf2_ros, which is not importable here: "
                            'depth/scan is not published (leave scan.target_frame empty for the scan in '
                            'scan.frame_id)')
            node.get_logger().warning(self.problem)
            return
        self.buffer = self.tf2.Buffer()
        self.listener = self.tf2.TransformListener(self.buffer, node)

    def attach(self, depth, header) -> None:
        """Give ``depth`` (a FrameDepth) the scan's target: (frame, T_target_cam or None, why not)."""
        if not self.target:
            return
        if self.buffer is None:
            depth.scan_target = (self.target, None, self.problem)
            return
        try:
            t = self.buffer.lookup_transform(
                self.target, header.frame_id, rclpy.time.Time.from_msg(header.stamp),
                timeout=rclpy.duration.Duration(seconds=self.params['scan.tf_timeout']))
        except self.tf2.TransformException as exc:
            stamp = f'{header.stamp.sec}.{header.stamp.nanosec:09d}'
            depth.scan_target = (self.target, None, (
                f"no tf2 transform '{header.frame_id}' → '{self.target}' at the image's stamp {stamp} "
                f'({type(exc).__name__}: {exc}); is it published (robot_state_publisher, '
                'static_transform_publisher)? Or leave scan.target_frame empty'))
            return
        tr, rot = t.transform.translation, t.transform.rotation
        depth.scan_target = (self.target, transform_from_translation_quaternion(
            [tr.x, tr.y, tr.z], [rot.x, rot.y, rot.z, rot.w]), '')
