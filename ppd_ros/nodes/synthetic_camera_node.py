"""synthetic_camera_node: a camera (and 16-line LiDAR) driver for a rendered synthetic world.

For demos and tests without hardware: renders a seeded camera sequence once at start, then
publishes it in a loop (forwards then backwards, so the motion never jumps) at `rate` Hz, each
frame stamped with the current time:

  image_raw           sensor_msgs/Image rgb8, frame_id camera_optical_frame
  camera_info         the synthetic pinhole camera (K and P, no distortion)
  lidar/points        PointCloud2 in frame lidar_link (when lidar_lines > 0); the LiDAR→camera
                      extrinsic is `T_cam_lidar` (also logged) for the fusion node's parameters
  ground_truth/depth  32FC1 metres (exact; +inf where nothing was hit)
"""
from __future__ import annotations

import sys
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from ppd_ros import synthetic

from .cloud import points_to_cloud_msg
from .runner import run_node
from .image_codec import depth_to_image_msg, rgb_to_image_msg
from .params import NodeParameters
from .qos import configured_qos
from .synthetic_camera_params import PARAMETERS


def camera_info_msg(intrinsics, header) -> CameraInfo:
    k = intrinsics.K
    p = np.hstack([k, np.zeros((3, 1))])
    return CameraInfo(header=header, width=intrinsics.width, height=intrinsics.height,
                      distortion_model='plumb_bob', d=[0.0] * 5,
                      r=np.eye(3).ravel().tolist(), k=k.ravel().tolist(), p=p.ravel().tolist())


class SyntheticCameraNode(Node):
    """Publishes a pre-rendered synthetic sequence; `frames` (list of synthetic Frames) may be
    injected (tests) instead of rendering one from the parameters."""

    def __init__(self, frames=None, node_name: str = 'synthetic_camera', **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.params = p = NodeParameters(self, PARAMETERS)
        started = time.monotonic()
        if frames is None:
            frames = synthetic.camera_sequence(p['seed'], p['num_frames'], p['width'], p['height'],
                                               kind=p['kind'], motion=p['motion'])
        self.frames = list(frames)
        self.T_cam_lidar = None
        qos = configured_qos(p, 'publisher')
        self._image_pub = self.create_publisher(Image, 'image_raw', qos)
        self._info_pub = self.create_publisher(CameraInfo, 'camera_info', qos)
        self._gt_pub = self.create_publisher(Image, 'ground_truth/depth', qos)
        self._lidar_pub = self.create_publisher(PointCloud2, 'lidar/points', qos) if p['lidar_lines'] else None
        self._messages = [self._frame_messages(frame) for frame in self.frames]
        order = list(range(len(self.frames)))
        self._order = order + order[-2:0:-1]  # forwards, then backwards without repeating the ends
        self.published = 0
        self._timer = self.create_timer(1.0 / p['rate'], self.publish_next)
        extra = ''
        if self.T_cam_lidar is not None:
            extra = f'; T_cam_lidar =\n{np.array2string(self.T_cam_lidar, precision=4)}'
        self.get_logger().info(f"synthetic {p['kind']} camera: {len(self.frames)} frames "
                               f'{self.frames[0].intrinsics.width}x{self.frames[0].intrinsics.height} '
                               f"rendered in {time.monotonic() - started:.1f} s, {p['rate']:g} Hz{extra}")

    def _frame_messages(self, frame):
        """The frame's messages, built once; only their stamps change when published."""
        camera_frame = self.params['frame_id']
        image = rgb_to_image_msg(frame.rgb, Header(frame_id=camera_frame))
        depth = depth_to_image_msg(frame.depth, Header(frame_id=camera_frame))
        info = camera_info_msg(frame.intrinsics, Header(frame_id=camera_frame))
        cloud = None
        if self._lidar_pub is not None:
            scan = synthetic.simulate_lidar(frame, lines=self.params['lidar_lines'])
            self.T_cam_lidar = np.asarray(scan.T_cam_lidar, dtype=np.float64)
            points = np.asarray(scan.points, dtype=np.float32).reshape(1, -1, 3)
            cloud = points_to_cloud_msg(points, Header(frame_id=self.params['lidar_frame_id']))
        return image, info, depth, cloud

    def publish_next(self) -> None:
        """Publish the next frame of the loop, all topics with the same (current) stamp."""
        image, info, depth, cloud = self._messages[self._order[self.published % len(self._order)]]
        stamp = self.get_clock().now().to_msg()
        for msg in (image, info, depth, cloud):
            if msg is not None:
                msg.header.stamp = stamp
        self._info_pub.publish(info)
        self._image_pub.publish(image)
        self._gt_pub.publish(depth)
        if cloud is not None:
            self._lidar_pub.publish(cloud)
        self.published += 1


def main(args=None) -> int:
    return run_node(SyntheticCameraNode, 'synthetic_camera_node', args,
                    help=(__doc__, PARAMETERS))


if __name__ == '__main__':
    sys.exit(main())
