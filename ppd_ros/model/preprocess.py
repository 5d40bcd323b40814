"""Resize a camera image to the model's working resolution (numpy/OpenCV only, no torch).

As the released ``resize_keep_aspect``: keep the aspect ratio, scale to the pixel area of the
training resolution (1024×768), round each side to the nearest multiple of 16 (Python ``round``,
ties to even; at least one multiple), INTER_AREA when the area shrinks, INTER_CUBIC otherwise.
The released ``image2tensor`` takes OpenCV's BGR and converts to RGB; this API takes RGB.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_TARGET_AREA = (1024, 768)  # (width, height) whose product is the target pixel area


@dataclass(frozen=True)
class Resized:
    image: np.ndarray  # h × w × 3 uint8 RGB
    scale_x: float     # w / W
    scale_y: float     # h / H


def _check_args(target_area, multiple):
    if len(target_area) != 2 or min(target_area) <= 0:
        raise ValueError(f'target_area must be (width, height) > 0, got {target_area!r}')
    if int(multiple) != multiple or multiple < 1:
        raise ValueError(f'multiple must be a positive integer, got {multiple!r}')


def _area_scale(height: int, width: int, target_area) -> float:
    return (target_area[0] * target_area[1] / (height * width)) ** 0.5


def model_size(height: int, width: int, target_area=DEFAULT_TARGET_AREA, multiple: int = 16):
    """(h, w) the model runs at for a height × width input."""
    _check_args(target_area, multiple)
    if height < 1 or width < 1:
        raise ValueError(f'image size must be positive, got {height}x{width}')
    scale = _area_scale(height, width, target_area)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def resize_for_model(rgb: np.ndarray, target_area=DEFAULT_TARGET_AREA, multiple: int = 16) -> Resized:
    """Resize an H×W×3 uint8 RGB image to ``model_size``; returns the image and its scales."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, 'shape', None)
        raise ValueError(f'expected an H x W x 3 RGB numpy array, got {type(rgb).__name__} {shape}')
    if rgb.dtype != np.uint8:
        raise ValueError(f'expected a uint8 RGB image, got dtype {rgb.dtype}')
    height, width = rgb.shape[:2]
    h, w = model_size(height, width, target_area, multiple)
    shrink = _area_scale(height, width, target_area) < 1
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    image = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=interpolation)
    return Resized(image=image, scale_x=w / width, scale_y=h / height)


__all__ = ['DEFAULT_TARGET_AREA', 'Resized', 'model_size', 'resize_for_model']
