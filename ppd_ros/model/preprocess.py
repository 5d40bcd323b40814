"""Resize a camera image to the model's working resolution (numpy/OpenCV only, no torch).

As the released ``resize_keep_aspect``: keep the aspect ratio, scale to the pixel area of the
training resolution (1024×768), round each side to the nearest multiple of 16 (Python ``round``,
ties to even; at least one multiple), INTER_AREA when the area shrinks, INTER_CUBIC otherwise.
The released ``image2tensor`` takes OpenCV's BGR and converts to RGB; this API takes RGB.

Limits, so that the work per frame is bounded whatever the input (issue 13):

* the aspect ratio (long side / short side) is at most ``MAX_ASPECT_RATIO`` = 8. The widest
  real cameras are far below it (KITTI 3.3:1, three 16:9 cameras side by side 5.3:1,
  equirectangular panoramas 2:1), while at 8:1 the 1024×768 area still leaves the short side
  320 px, 22 encoder patches; beyond it a frame is a line, not a scene, and before this limit a
  1×60000 image made the model area 35× the configured one;
* the model area never exceeds the configured area by more than the rounding to multiples of 16
  (one 16-px strip per side): where the short side has to be raised to one multiple, the long
  side is shortened to keep the area;
* ``check_image_size`` also caps the input pixels (``DEFAULT_MAX_PIXELS``: 7680×4320, 8K UHD),
  for callers that must refuse frames before decoding or converting them (the depth node's
  ``input.max_pixels``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_TARGET_AREA = (1024, 768)  # (width, height) whose product is the target pixel area
MAX_ASPECT_RATIO = 8.0             # long side / short side, see the module docstring
DEFAULT_MAX_PIXELS = 7680 * 4320   # 8K UHD: 100 MB as rgb8


class ImageSizeError(ValueError):
    """An image whose size or shape the model refuses; the text gives the numbers and the limit."""


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


def _pixels(count: int) -> str:
    return f'{count / 1e6:.1f} MP' if count >= 100_000 else f'{count} pixels'


def check_image_size(height: int, width: int, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                     what: str = 'image') -> None:
    """Raise ImageSizeError unless height × width is positive, at most max_pixels (None: no cap)
    and within MAX_ASPECT_RATIO; cheap, for use before an image is decoded."""
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ImageSizeError(f'{what} size must be positive, got {width}x{height} (width x height)')
    if max_pixels is not None and height * width > max_pixels:
        raise ImageSizeError(f'{what} {width}x{height} has {_pixels(height * width)}, more than the '
                             f'limit of {_pixels(max_pixels)} (input.max_pixels = {max_pixels})')
    aspect = max(height, width) / min(height, width)
    if aspect > MAX_ASPECT_RATIO:
        raise ImageSizeError(f'{what} {width}x{height} has an aspect ratio of {aspect:.1f}:1, more than '
                             f'the {MAX_ASPECT_RATIO:g}:1 the model accepts (crop or split it)')


def model_size(height: int, width: int, target_area=DEFAULT_TARGET_AREA, multiple: int = 16):
    """(h, w) the model runs at for a height × width input; ImageSizeError beyond MAX_ASPECT_RATIO."""
    _check_args(target_area, multiple)
    check_image_size(height, width, max_pixels=None)
    scale = _area_scale(height, width, target_area)
    h = int(round(height * scale / multiple)) * multiple
    w = int(round(width * scale / multiple)) * multiple
    if min(h, w) < multiple:  # a tiny target area: one multiple across, the rest of the area along
        long_side = max(multiple, int(round(target_area[0] * target_area[1] / multiple / multiple)) * multiple)
        h, w = (multiple, long_side) if h < w or (h == w and height < width) else (long_side, multiple)
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


__all__ = ['DEFAULT_MAX_PIXELS', 'DEFAULT_TARGET_AREA', 'ImageSizeError', 'MAX_ASPECT_RATIO', 'Resized',
           'check_image_size', 'model_size', 'resize_for_model']
