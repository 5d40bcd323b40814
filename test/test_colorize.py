"""False-colour depth: shape, near = warm, invalid colour, fixed vs percentile ranges."""
import numpy as np
import pytest

from ppd_ros.geometry.colorize import TURBO_NEAR_WARM_BGR, colorize_depth, depth_range


def ramp(height=30, width=40):
    return np.tile(np.linspace(0.5, 10.0, width, dtype=np.float32), (height, 1))


def test_shape_dtype_and_near_is_warm():
    bgr = colorize_depth(ramp())
    assert bgr.shape == (30, 40, 3) and bgr.dtype == np.uint8
    near, far = bgr[0, 0].astype(int), bgr[0, 35].astype(int)  # Turbo's very ends are dark
    assert near[2] > near[0] + 50  # red > blue near
    assert far[0] > far[2] + 50    # blue > red far


def test_lut_is_a_smooth_256_entry_table():
    lut = TURBO_NEAR_WARM_BGR
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    steps = np.abs(np.diff(lut.astype(int), axis=0)).max(axis=1)
    assert steps.max() <= 12  # no jumps between neighbouring entries
    assert not lut.flags.writeable


def test_nan_and_inf_get_the_invalid_colour():
    depth = ramp()
    depth[3, 4] = np.nan
    depth[5, 6] = np.inf
    bgr = colorize_depth(depth, invalid_color=(255, 0, 255))
    assert tuple(bgr[3, 4]) == (255, 0, 255) and tuple(bgr[5, 6]) == (255, 0, 255)
    assert tuple(colorize_depth(depth)[3, 4]) == (0, 0, 0)
    everywhere_invalid = colorize_depth(np.full((4, 5), np.nan, np.float32))
    assert everywhere_invalid.shape == (4, 5, 3) and not everywhere_invalid.any()


def test_fixed_range_maps_values_to_lut_entries_and_saturates():
    depth = np.array([[0.0, 1.0, 2.0, 3.0, 99.0]], dtype=np.float32)
    bgr = colorize_depth(depth, 'fixed', lo=1.0, hi=3.0)
    expected = TURBO_NEAR_WARM_BGR[[0, 0, 128, 255, 255]]  # 1.5 → 127.5 rounds to 128
    np.testing.assert_array_equal(bgr[0], expected)


def test_fixed_colours_do_not_depend_on_the_rest_of_the_frame():
    a = ramp()
    b = a.copy()
    b[:, :5] = 50.0
    fixed_a = colorize_depth(a, 'fixed', lo=0.5, hi=10.0)
    fixed_b = colorize_depth(b, 'fixed', lo=0.5, hi=10.0)
    np.testing.assert_array_equal(fixed_a[:, 5:], fixed_b[:, 5:])
    assert not np.array_equal(colorize_depth(a)[:, 5:], colorize_depth(b)[:, 5:])


def test_percentile_range_ignores_outliers():
    depth = ramp()
    depth[0, 0] = 1e6
    lo, hi = depth_range(depth, (2, 98))
    assert 0.5 <= lo < 1.0 and 9.0 < hi <= 10.0
    assert colorize_depth(depth).shape == depth.shape + (3,)


def test_constant_image_and_bad_arguments():
    assert colorize_depth(np.full((3, 3), 2.0, np.float32)).shape == (3, 3, 3)
    with pytest.raises(ValueError, match='needs both lo and hi'):
        colorize_depth(ramp(), 'fixed', lo=1.0)
    with pytest.raises(ValueError, match="unknown colorize mode 'log'"):
        colorize_depth(ramp(), 'log')
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        colorize_depth(np.zeros((2, 2, 3), np.float32))
