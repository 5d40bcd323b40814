"""Camera poses of the synthetic worlds: ``camera_pose`` builds ``T_world_cam`` (4×4), which maps
the optical frame (x right, y down, z forward) to the world frame (x forward, y left, z up).

Its own module so that ``worlds`` (which places cameras) and ``render`` (which renders worlds)
both use it without importing each other."""
from __future__ import annotations

import numpy as np

# Optical axes expressed in the world frame when yaw = pitch = roll = 0 (looking along world +x).
OPTICAL_IN_WORLD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_pose(position, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """T_world_cam for a camera at `position` (world, m); angles in radians.

    yaw turns left about world z, pitch > 0 looks up, roll turns about the optical axis.
    With all angles 0 the camera looks along world +x with image x = world −y, image y = world −z.
    """
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    Rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    Ry = np.array([[cp, 0.0, -sp], [0.0, 1.0, 0.0], [sp, 0.0, cp]])  # pitch up about world y (left)
    Rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])  # roll about world x (forward)
    T = np.eye(4)
    T[:3, :3] = Rz @ Ry @ Rx @ OPTICAL_IN_WORLD
    T[:3, 3] = np.asarray(position, dtype=np.float64)
    return T
