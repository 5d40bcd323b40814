"""Model-resolution resizing: released rounding, multiples of 16, area ≈ target, exact scales."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppd_ros.model.preprocess import (MAX_ASPECT_RATIO, ImageSizeError, check_image_size, model_size,
                                      resize_for_model)

TARGET = 1024 * 768


@pytest.mark.parametrize('height, width, expected', [
    (480, 640, (768, 1024)),     # same aspect as training: exact
    (768, 1024, (768, 1024)),
    (720, 1280, (672, 1184)),    # 16:9: 665.1 → 672, 1182.4 → 1184
    (1080, 1920, (672, 1184)),
    (640, 480, (1024, 768)),     # portrait
    (376, 1241, (496, 1616)),    # KITTI-like 3.3:1: 488.1 → 496, 1611.1 → 1616
])
def test_model_size_released_rounding(height, width, expected):
    assert model_size(height, width) == expected


@pytest.mark.parametrize('height, width', [(480, 640), (720, 1280), (1000, 1000), (300, 1800),
                                           (2000, 250), (37, 53), (4000, 3000), (1, 8), (8, 1)])
def test_model_size_properties(height, width):
    h, w = model_size(height, width)
    assert h % 16 == 0 and w % 16 == 0 and h >= 16 and w >= 16
    # Rounding each side to 16 changes the area by at most one 16-pixel strip per side.
    assert abs(h * w - TARGET) <= 16 * (h + w) + 256
    assert abs(np.log((w / h) / (width / height))) < 16 / min(h, w) + 1e-9


def test_model_size_degenerate_and_custom_target():
    assert model_size(1, 8) == (320, 2512)  # 8:1, the widest accepted: area kept
    assert model_size(480, 640, target_area=(128, 96)) == (96, 128)
    assert model_size(480, 640, target_area=(128, 96), multiple=32) == (96, 128)
    with pytest.raises(ValueError):
        model_size(0, 640)
    with pytest.raises(ValueError):
        model_size(480, 640, target_area=(0, 768))


def test_aspect_bomb_is_refused_with_the_numbers():
    """Issue 13: a 1×60000 line made the model area 35× the configured one (10 s busy, +300 MB)."""
    with pytest.raises(ImageSizeError, match=r'image 60000x1 has an aspect ratio of 60000.0:1, more than the 8:1'):
        model_size(1, 60000, target_area=(128, 96))
    with pytest.raises(ImageSizeError, match='aspect ratio'):
        resize_for_model(np.zeros((1, 60000, 3), np.uint8), target_area=(128, 96))
    assert issubclass(ImageSizeError, ValueError)  # nodes and ppd-depth report ValueErrors as bad input
    assert MAX_ASPECT_RATIO == 8


@pytest.mark.parametrize('target', [(1024, 768), (128, 96), (16, 16), (64, 16), (8192, 16)])
@pytest.mark.parametrize('height, width', [(1, 8), (8, 1), (100, 800), (3, 7), (480, 640), (1, 1), (5000, 625)])
def test_model_area_is_bounded_by_the_configured_area_whatever_the_aspect(target, height, width):
    h, w = model_size(height, width, target_area=target)
    assert h % 16 == 0 and w % 16 == 0 and min(h, w) >= 16
    area = target[0] * target[1]
    # at most the rounding of each side to a multiple of 16 above the configured area
    assert h * w <= max(area + 8 * (h + w) + 64, 256), (h, w)


def test_check_image_size_limits_pixels_and_aspect():
    check_image_size(4320, 7680)  # 8K UHD is the default limit
    with pytest.raises(ImageSizeError, match=r'16000x16000 has 256.0 MP, more than the limit of 33.2 MP'):
        check_image_size(16000, 16000)
    with pytest.raises(ImageSizeError, match=r'input.max_pixels = 1000'):
        check_image_size(40, 30, max_pixels=1000)
    check_image_size(16000, 16000, max_pixels=None)
    with pytest.raises(ImageSizeError, match='positive'):
        check_image_size(0, 10)
    with pytest.raises(ImageSizeError, match='aspect'):
        check_image_size(10, 81, max_pixels=None)


def test_resize_for_model_interpolation_and_scales():
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    out = resize_for_model(big)
    assert out.image.shape == (672, 1184, 3) and out.image.dtype == np.uint8
    assert out.scale_x == 1184 / 1920 and out.scale_y == 672 / 1080
    assert np.array_equal(out.image, cv2.resize(big, (1184, 672), interpolation=cv2.INTER_AREA))
    small = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = resize_for_model(small)
    assert out.image.shape == (768, 1024, 3)
    assert np.array_equal(out.image, cv2.resize(small, (1024, 768), interpolation=cv2.INTER_CUBIC))
    same = rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    out = resize_for_model(same)
    assert np.array_equal(out.image, same) and out.scale_x == 1.0 and out.scale_y == 1.0


def test_resize_for_model_rejects_bad_images():
    with pytest.raises(ValueError, match='uint8'):
        resize_for_model(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match='H x W x 3'):
        resize_for_model(np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match='H x W x 3'):
        resize_for_model([[1, 2, 3]])


def test_preprocess_does_not_import_torch():
    code = ('import sys, ppd_ros.model.preprocess, ppd_ros.model; '
            'assert "torch" not in sys.modules, "torch imported"')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=str(Path(__file__).parents[1]))
