"""synthetic_camera_node's parameters: one table (defaults, docs, limits)."""
from __future__ import annotations

from .params import ParamSpec, qos_specs

PARAMETERS = (
    ParamSpec('rate', 10.0, 'Frames per second', low=0.1, high=1000.0),
    ParamSpec('width', 640, 'Image width in pixels', low=16, high=8192),
    ParamSpec('height', 480, 'Image height in pixels', low=16, high=8192),
    ParamSpec('kind', 'indoor', 'Synthetic world', choices=('indoor', 'outdoor')),
    ParamSpec('motion', 'smooth', 'Camera motion', choices=('smooth', 'static')),
    ParamSpec('seed', 0, 'Seed of the world and the trajectory', low=0),
    ParamSpec('num_frames', 30, 'Distinct frames rendered at start (played forwards and backwards)',
              low=1, high=10000),
    ParamSpec('lidar_lines', 16, 'LiDAR scan lines; 0 disables lidar/points', low=0, high=256),
    ParamSpec('frame_id', 'camera_optical_frame', 'frame_id of the camera topics'),
    ParamSpec('lidar_frame_id', 'lidar_link', 'frame_id of lidar/points'),
    *qos_specs(subscriptions=False),
)
