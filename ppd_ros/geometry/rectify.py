"""Rectification of raw (distorted) camera images, as image_proc's rectify does it.

A sensor_msgs/CameraInfo describes the raw image with K and the distortion D, and the rectified
image with P (REP 104): a raw pixel is undistorted with K and D, rotated by R and projected with
P's 3×3. After rectification the geometry of the image is P's (Intrinsics.from_calibration), so
back-projection must use P — never K, which belongs to the raw image.

The remap tables depend only on the calibration, so Rectifier builds them once per calibration
(cv2.initUndistortRectifyMap; cv2.fisheye for the equidistant model) and counts how often it did.
Pixels of the rectified image that see no raw pixel (black borders when P keeps the whole raw
field of view) are reported by `valid`, so callers can mark their depth invalid. A calibration
whose maps leave (nearly) no valid pixel (absurd D such as 1e9) is refused with the reason: it
would turn every frame into NaN depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .camera import Intrinsics

# distortion_model strings of sensor_msgs/distortion_models.hpp that OpenCV can undo
PLUMB_BOB = 'plumb_bob'                      # k1 k2 t1 t2 k3 (Brown-Conrady)
RATIONAL_POLYNOMIAL = 'rational_polynomial'  # k1 k2 t1 t2 k3 k4 k5 k6
EQUIDISTANT = 'equidistant'                  # k1 k2 k3 k4 (OpenCV fisheye)
DISTORTION_MODELS = (PLUMB_BOB, RATIONAL_POLYNOMIAL, EQUIDISTANT)
_PINHOLE_LENGTHS = (4, 5, 8, 12, 14)  # what cv2.initUndistortRectifyMap accepts
MIN_VALID_FRACTION = 0.02  # rectified pixels that must see the raw image, or the calibration is refused


@dataclass(frozen=True)
class Calibration:
    """The calibration part of a CameraInfo, hashable (it keys the remap tables)."""

    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]   # 3×3 row-major
    r: tuple[float, ...]   # 3×3 row-major; all zero is read as the identity
    p: tuple[float, ...]   # 3×4 row-major; all zero: rectify onto K

    @staticmethod
    def of(width, height, distortion_model, d, k, r, p) -> 'Calibration':
        return Calibration(int(width), int(height), str(distortion_model),
                           tuple(float(x) for x in d), tuple(float(x) for x in k),
                           tuple(float(x) for x in r), tuple(float(x) for x in p))

    @property
    def key(self) -> str:
        """What identifies this calibration and compares equal to itself even with NaN in it
        (NaN != NaN, so the dataclass itself never equals a copy of a NaN calibration)."""
        return repr(self)

    @property
    def distorted(self) -> bool:
        """True when D has a non-zero coefficient (the raw image differs from the rectified one)."""
        return any(x != 0.0 for x in self.d)

    def problem(self) -> str | None:
        """Why this calibration cannot be used to rectify, or None."""
        model, n = self.distortion_model, len(self.d)
        if model not in DISTORTION_MODELS:
            return (f"distortion model '{model}' is not supported (supported: "
                    f"{', '.join(DISTORTION_MODELS)})")
        if model == EQUIDISTANT and n < 4:
            return f'equidistant distortion needs 4 coefficients, got {n}'
        if model != EQUIDISTANT and n not in _PINHOLE_LENGTHS:
            return f'{model} distortion needs 4, 5, 8, 12 or 14 coefficients, got {n}'
        if not np.isfinite(self.d).all():
            return 'D has non-finite coefficients'
        try:
            Intrinsics.from_calibration(self.k, np.zeros(12), self.width, self.height)  # K itself
            self.rectified_intrinsics()
        except ValueError as exc:
            return str(exc)
        return None

    def rectified_intrinsics(self) -> Intrinsics:
        """The pinhole camera of the rectified image (P, or K when P is unset)."""
        return Intrinsics.from_calibration(self.k, self.p, self.width, self.height)

    def matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(K, D, R, new camera matrix) as OpenCV takes them."""
        k = np.asarray(self.k, dtype=np.float64).reshape(3, 3)
        r = np.asarray(self.r, dtype=np.float64).reshape(3, 3)
        if not r.any():
            r = np.eye(3)
        return k, np.asarray(self.d, dtype=np.float64), r, self.rectified_intrinsics().K


class Rectifier:
    """Rectifies images of one calibration at a time; the tables are rebuilt only when it changes."""

    def __init__(self):
        self.maps_built = 0  # how many times remap tables were computed (tests, diagnostics)
        self._key: str | None = None     # Calibration.key of the maps (or of the refusal) held
        self._maps = None
        self._refusal: str | None = None

    def maps(self, calibration: Calibration) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(map1, map2, valid) for cv2.remap; valid is (H, W) bool: the rectified pixel sees the raw image.
        ValueError('cannot rectify: …') for a calibration that cannot be used (kept: not retried per frame)."""
        if calibration.key != self._key:
            self._key, self._maps, self._refusal = calibration.key, None, calibration.problem()
            if self._refusal is None:
                maps = _build_maps(calibration)
                self.maps_built += 1
                self._refusal = _mostly_invalid(calibration, maps[2])
                self._maps = None if self._refusal else maps
        if self._refusal:
            raise ValueError(f'cannot rectify: {self._refusal}')
        return self._maps

    def rectify(self, image: np.ndarray, calibration: Calibration,
                interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """The rectified image (same size; pixels that see no raw pixel are 0)."""
        if image.shape[:2] != (calibration.height, calibration.width):
            raise ValueError(f'image is {image.shape[1]}x{image.shape[0]} but the calibration is '
                             f'{calibration.width}x{calibration.height}')
        map1, map2, _ = self.maps(calibration)
        return cv2.remap(image, map1, map2, interpolation, borderMode=cv2.BORDER_CONSTANT)

    def valid(self, calibration: Calibration) -> np.ndarray:
        return self.maps(calibration)[2]


def resize_valid(valid: np.ndarray, height: int, width: int) -> np.ndarray:
    """A valid mask at another resolution: an output pixel is valid only if all it covers is."""
    if valid.shape == (height, width):
        return valid
    covered = cv2.resize(valid.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return covered > 1.0 - 1e-3


def _mostly_invalid(calibration: Calibration, valid: np.ndarray) -> str | None:
    """Why maps that leave (nearly) no rectified pixel seeing the raw image are refused, or None."""
    fraction = float(valid.mean()) if valid.size else 0.0
    if fraction >= MIN_VALID_FRACTION:
        return None
    coefficients = ', '.join(f'{x:g}' for x in calibration.d)
    return (f'{calibration.distortion_model} D=[{coefficients}] leaves {fraction:.0%} of the rectified image '
            f'seeing the raw image (at least {MIN_VALID_FRACTION:.0%} needed): the coefficients are absurd '
            'or do not belong to K')


def _build_maps(calibration: Calibration):
    k, d, r, new_k = calibration.matrices()
    size = (calibration.width, calibration.height)
    if calibration.distortion_model == EQUIDISTANT:
        map_x, map_y = cv2.fisheye.initUndistortRectifyMap(k, d[:4], r, new_k, size, cv2.CV_32FC1)
    else:
        map_x, map_y = cv2.initUndistortRectifyMap(k, d, r, new_k, size, cv2.CV_32FC1)
    # valid: all raw pixels that bilinear interpolation reads are inside (no blend with the border)
    valid = (np.isfinite(map_x) & np.isfinite(map_y) & (map_x >= 0) & (map_y >= 0)
             & (map_x <= calibration.width - 1) & (map_y <= calibration.height - 1))
    map_x = np.where(valid, map_x, -1.0).astype(np.float32)  # outside: border colour, no NaN in remap
    map_y = np.where(valid, map_y, -1.0).astype(np.float32)
    map1, map2 = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)  # fixed point: the fast remap
    return map1, map2, valid
