"""Procedural synthetic world with exact ground truth (numpy only).

Seeded scenes of analytic primitives (planes, boxes, spheres, cylinders, thin poles and wires),
ray-cast per pixel: RGB (textured, Lambertian, edge-supersampled), exact z-depth, validity,
intrinsics; camera sequences; and simulated metric sensors (LiDAR, RGB-D, single-beam range)
that ray-cast the same world. See render.py for the depth / invalid-pixel conventions.
"""
from .primitives import Box, Cylinder, Plane, Sphere
from .render import Frame, camera_pose, camera_sequence, default_intrinsics, render_frame, render_view
from .scene import Scene, trace_rays
from .sensors import LidarScan, simulate_lidar, simulate_range, simulate_rgbd
from .shading import Material
from .worlds import build_world

__all__ = ['Box', 'Cylinder', 'Plane', 'Sphere', 'Frame', 'camera_pose', 'camera_sequence', 'default_intrinsics',
           'render_frame', 'render_view', 'Scene', 'trace_rays', 'LidarScan', 'simulate_lidar', 'simulate_range',
           'simulate_rgbd', 'Material', 'build_world']
