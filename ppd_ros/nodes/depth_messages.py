"""A frame's depth (ppd_ros.pipeline.FrameDepth) as the messages depth_node publishes and ppd-bag
writes: the same function for both, so a frame's messages are the same in either."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.pipeline import FrameError

from .camera_info import rectified_camera_info, scaled_camera_info
from .cloud import points_to_cloud_msg
from .image_codec import bgr_to_image_msg, depth_to_image_msg
from .scale_message import depth_scale_message

#: depth_node's outputs (depth/<name>); the metric ones need a scale
DEPTH_OUTPUTS = ('relative', 'scale', 'image', 'colorized', 'points')  # in publishing order
METRIC_OUTPUTS = frozenset({'image', 'points', 'colorized', 'scale'})


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
    if name == 'image':
        return depth_to_image_msg(depth.metric, header)
    if name == 'points':
        return points_to_cloud_msg(depth.points, header, depth.point_colours)
    if name == 'colorized':
        return bgr_to_image_msg(depth.colorized, header)
    if name == 'scale':
        return depth_scale_message(header, depth.scale)
    raise ValueError(f'unknown depth output {name!r}')
