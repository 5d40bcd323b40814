"""A frame's depth (ppd_ros.pipeline.FrameDepth) as the messages depth_node publishes and ppd-bag
writes: the same function for both, so a frame's messages are the same in either."""
from __future__ import annotations

from array import array

import numpy as np
from sensor_msgs.msg import CameraInfo, LaserScan

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.pipeline import FrameError

from .camera_info import rectified_camera_info, scaled_camera_info
from .cloud import points_to_cloud_msg
from .image_codec import bgr_to_image_msg, depth_to_image_msg
from .scale_message import depth_scale_message

#: depth_node's outputs (depth/<name>); the metric ones need a scale
DEPTH_OUTPUTS = ('relative', 'scale', 'image', 'colorized', 'points', 'confidence', 'scan')  # in publishing order
METRIC_OUTPUTS = frozenset({'image', 'points', 'colorized', 'scale', 'scan'})


def camera_info_from_intrinsics(intrinsics: Intrinsics, header) -> CameraInfo:
    """A CameraInfo (no distortion, identity R, P = [K | 0]) describing estimated intrinsics."""
    k = intrinsics.K
    p = np.hstack((k, np.zeros((3, 1))))
    return CameraInfo(header=header, width=int(intrinsics.width), height=int(intrinsics.height),
                      distortion_model='plumb_bob', d=[0.0] * 5, k=k.ravel().tolist(),
                      r=np.eye(3).ravel().tolist(), p=p.ravel().tolist())


def output_camera_info(depth, header, info: CameraInfo | None) -> CameraInfo:
    """depth/camera_info: the input CameraInfo (rectified when the image was) at the output size,
    or without one MoGe-2's intrinsics. FrameError when there is neither."""
    height, width = depth.relative.shape
    if info is None:
        if depth.intrinsics is None:
            raise FrameError(depth.intrinsics_problem)
        return camera_info_from_intrinsics(depth.intrinsics, header)
    return scaled_camera_info(rectified_camera_info(info) if depth.rectified else info, width, height, header)


def depth_message(name: str, depth, header):
    """The message of output ``name`` (one of DEPTH_OUTPUTS); FrameError when it cannot be made."""
    if name == 'relative':
        return depth_to_image_msg(depth.relative, header)
    if name == 'image':  # the costmap filters applied (REP 117: ±Inf out of range)
        return depth_to_image_msg(depth.output_depth, header)
    if name == 'points':
        points, colours = depth.cloud
        return points_to_cloud_msg(points, header, colours, organized=depth.settings.cloud_organized)
    if name == 'confidence':
        return depth_to_image_msg(depth.confidence_image, header)
    if name == 'scan':
        frame_id = depth.scan_target[0] if depth.scan_target is not None else depth.settings.scan_frame_id
        return scan_message(depth.scan, header, frame_id)
    if name == 'colorized':
        return bgr_to_image_msg(depth.colorized, header)
    if name == 'scale':
        return depth_scale_message(header, depth.scale)
    raise ValueError(f'unknown depth output {name!r}')


def scan_message(scan, header, frame_id: str) -> LaserScan:
    """A geometry.scan.Scan as sensor_msgs/LaserScan with the input's stamp, in ``frame_id`` (the
    camera's non-optical frame, as depthimage_to_laserscan's output_frame)."""
    msg = LaserScan(angle_min=float(scan.angle_min), angle_max=float(scan.angle_max),
                    angle_increment=float(scan.angle_increment), time_increment=0.0, scan_time=0.0,
                    range_min=float(scan.range_min), range_max=float(scan.range_max))
    msg.header.stamp = header.stamp
    msg.header.frame_id = frame_id or header.frame_id
    ranges = array('f')
    ranges.frombytes(np.ascontiguousarray(scan.ranges, dtype=np.float32).tobytes())
    msg.ranges = ranges
    return msg
