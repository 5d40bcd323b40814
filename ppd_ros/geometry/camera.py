"""Pinhole intrinsics, and how they change when an image is resized.

Pixel-centre convention (as OpenCV and ROS use): pixel (u, v) covers [u - 0.5, u + 0.5], so
resizing by s maps a coordinate x to (x + 0.5)·s − 0.5 — the principal point moves with it.
`resized_camera_matrix` is that rule, for Intrinsics and for CameraInfo's K and P alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def resized_camera_matrix(matrix, scale_x: float, scale_y: float) -> np.ndarray:
    """K (3×3) or P (3×4, row-major, flat or not) of the same camera after resizing its image by
    (scale_x, scale_y): each projected pixel x goes to (x + 0.5)·s − 0.5, i.e. in homogeneous rows
    row_x' = (row_x + 0.5·row_w)·s − 0.5·row_w (row_w, the third row, is unchanged)."""
    m = np.asarray(matrix, dtype=np.float64)
    m = m.reshape(3, 4) if m.size == 12 else m.reshape(3, 3)
    out = m.copy()
    out[0] = (m[0] + 0.5 * m[2]) * scale_x - 0.5 * m[2]
    out[1] = (m[1] + 0.5 * m[2]) * scale_y - 0.5 * m[2]
    return out


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        if not (np.isfinite([self.fx, self.fy, self.cx, self.cy]).all() and self.fx > 0 and self.fy > 0):
            raise ValueError(f'invalid intrinsics: fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}')
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'invalid image size {self.width}x{self.height}')

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, scale_x: float, scale_y: float) -> 'Intrinsics':
        """Intrinsics of the same camera after resizing the image by (scale_x, scale_y)."""
        k = resized_camera_matrix(self.K, scale_x, scale_y)
        return Intrinsics(fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]),
                          width=int(round(self.width * scale_x)), height=int(round(self.height * scale_y)))

    def resized_to(self, width: int, height: int) -> 'Intrinsics':
        """Intrinsics for the same view resampled to exactly width×height pixels."""
        scaled = self.scaled(width / self.width, height / self.height)
        return Intrinsics(scaled.fx, scaled.fy, scaled.cx, scaled.cy, width, height)

    @staticmethod
    def from_matrix(matrix, width: int, height: int) -> 'Intrinsics':
        """From a 3×3 K or a 3×4 P (row-major, flat or not); P is what depth_image_proc uses."""
        m = np.asarray(matrix, dtype=np.float64)
        m = m.reshape(3, 4) if m.size == 12 else m.reshape(3, 3)
        return Intrinsics(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), int(width), int(height))

    @staticmethod
    def from_calibration(k, p, width: int, height: int) -> 'Intrinsics':
        """The intrinsics of the image a CameraInfo describes (REP 104, sensor_msgs/CameraInfo):
        P's fx, fy, cx, cy, which describe the rectified image (as depth_image_proc and
        image_geometry use them); K only when P is entirely zero (drivers that leave P unset).

        A P that is set but not a pinhole matrix (fx or fy ≤ 0, non-finite, bottom row not
        [0 0 1 ·]) is an error, never a silent fall-back to K: K describes the raw image and
        would give wrong geometry without a word. Raises ValueError saying which matrix is bad.
        """
        p = np.asarray(p, dtype=np.float64).reshape(3, 4)
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        matrix, name = (p, 'P') if np.any(p) else (k, 'K')
        if not np.any(matrix):
            raise ValueError('K and P are all zero (uncalibrated camera)')
        if not np.isfinite(matrix).all():
            raise ValueError(f'{name} has non-finite values')
        if not np.allclose(matrix[2, :3], [0.0, 0.0, 1.0]):
            raise ValueError(f'{name} is not a pinhole matrix: its third row is {matrix[2].tolist()}, '
                             'expected [0, 0, 1(, 0)]')
        try:
            return Intrinsics.from_matrix(matrix, width, height)
        except ValueError as exc:
            raise ValueError(f'{name} is not a usable pinhole matrix: {exc}') from None

    @staticmethod
    def from_fov(horizontal_fov_deg: float, width: int, height: int) -> 'Intrinsics':
        """Square pixels, principal point at the image centre."""
        if not 0.0 < horizontal_fov_deg < 180.0:
            raise ValueError(f'horizontal field of view must be in (0, 180) degrees, got {horizontal_fov_deg}')
        return Intrinsics.from_focal(0.5 * width / np.tan(np.radians(horizontal_fov_deg) / 2.0), width, height)

    @staticmethod
    def from_focal(fx: float, width: int, height: int, fy: float | None = None, cx: float | None = None,
                   cy: float | None = None) -> 'Intrinsics':
        """What is not given follows the usual assumptions: square pixels (fy = fx) and the
        principal point at the image centre ((width − 1) / 2, (height − 1) / 2)."""
        return Intrinsics(float(fx), float(fx if fy is None else fy), (width - 1) / 2.0 if cx is None else float(cx),
                          (height - 1) / 2.0 if cy is None else float(cy), int(width), int(height))
