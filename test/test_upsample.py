"""Depth resampling: edge-aware methods never produce values between two surfaces."""
import cv2
import numpy as np
import pytest

from ppd_ros.geometry.upsample import DEFAULT_METHOD, FALLBACK_METHOD, METHODS, upsample_depth

NEAR, FAR = 1.0, 3.0


def step_scene(height=48, width=64):
    """A slanted far wall with a near box in front: two surfaces and a depth jump."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = FAR + 0.004 * xx + 0.002 * yy
    depth[height // 4: 3 * height // 4, width // 3: 2 * width // 3] = NEAR + 0.001 * xx[0, 0]
    return depth


def flying(depth):
    """Pixels strictly between the two surfaces (the near box is flat at 1.0, the wall ≥ 3)."""
    finite = depth[np.isfinite(depth)]
    return int(((finite > NEAR + 1e-3) & (finite < FAR - 1e-3)).sum())


@pytest.mark.parametrize('size', [(80, 60), (128, 96), (40, 30), (100, 41)])
def test_edge_aware_has_no_flying_pixels_where_bilinear_does(size):
    depth = step_scene()
    width, height = size
    assert flying(upsample_depth(depth, width, height, 'bilinear')) > 0
    out = upsample_depth(depth, width, height, 'edge_aware')
    assert out.shape == (height, width) and out.dtype == np.float32
    assert flying(out) == 0
    assert flying(upsample_depth(depth, width, height, 'nearest')) == 0


def test_edge_aware_is_bilinear_away_from_edges():
    depth = step_scene()
    out = upsample_depth(depth, 80, 60, 'edge_aware')
    bilinear = cv2.resize(depth, (80, 60), interpolation=cv2.INTER_LINEAR)
    differs = ~np.isclose(out, bilinear)
    assert differs.any()  # the box outline
    # every differing pixel lies next to the box outline, nowhere else
    box = (depth < 2).astype(np.uint8)
    outline = cv2.morphologyEx(box, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    near_outline = cv2.resize(outline, (80, 60), interpolation=cv2.INTER_NEAREST_EXACT)
    near_outline = cv2.dilate(near_outline, np.ones((5, 5), np.uint8)).astype(bool)
    assert not (differs & ~near_outline).any()


def test_slanted_surface_stays_smooth_up_to_the_edge():
    """In discontinuity quads the wall is interpolated from wall taps only: it stays on the wall
    plane to within one source pixel's depth change (0.004), exact away from the edge."""
    depth = step_scene()
    out = upsample_depth(depth, 128, 96, 'edge_aware')
    wall = out > 2
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    src_x, src_y = (xx + 0.5) / 2 - 0.5, (yy + 0.5) / 2 - 0.5
    plane = FAR + 0.004 * np.clip(src_x, 0, 63) + 0.002 * np.clip(src_y, 0, 47)
    error = np.abs(out - plane)[wall]
    assert error.max() <= 0.0041
    assert np.mean(error < 1e-5) > 0.95


def test_downsampling_is_edge_aware_too():
    big = cv2.resize(step_scene(), (128, 96), interpolation=cv2.INTER_NEAREST_EXACT)
    assert flying(upsample_depth(big, 80, 60, 'bilinear')) > 0
    assert flying(upsample_depth(big, 80, 60, 'area')) > 0
    assert flying(upsample_depth(big, 80, 60, 'edge_aware')) == 0


def test_nan_stays_local_and_creates_no_flying_pixels():
    depth = step_scene()
    depth[5:9, 5:9] = np.nan
    out = upsample_depth(depth, 128, 96, 'edge_aware')
    nearest = upsample_depth(depth, 128, 96, 'nearest')
    # invalid area as with nearest neighbour (pixels whose nearest source pixel is NaN)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(nearest))
    assert flying(out) == 0
    assert np.isnan(upsample_depth(depth, 128, 96, 'bilinear')).sum() > np.isnan(nearest).sum()


def test_absolute_threshold_for_relative_depth():
    """Log-depth-like values around 0: a relative threshold is meaningless, an absolute one works."""
    relative = np.zeros((24, 32), np.float32)
    relative[:, 16:] = 0.5
    out = upsample_depth(relative, 64, 48, 'edge_aware', absolute_threshold=0.05)
    assert set(np.unique(out)) <= {0.0, 0.5}
    ramp = np.tile(np.linspace(0, 0.3, 32, dtype=np.float32), (24, 1))  # smooth: 0.01 per pixel
    np.testing.assert_allclose(upsample_depth(ramp, 64, 48, absolute_threshold=0.05),
                               cv2.resize(ramp, (64, 48), interpolation=cv2.INTER_LINEAR), atol=1e-6)


def test_guided_puts_the_edge_where_the_image_edge_is():
    height, width, factor, edge_x = 96, 128, 4, 50  # true edge between source pixels
    truth = np.full((height, width), FAR, np.float32)
    truth[:, :edge_x] = NEAR
    guide = np.full((height, width, 3), 230, np.uint8)
    guide[:, :edge_x] = 20
    small = cv2.resize(truth, (width // factor, height // factor), interpolation=cv2.INTER_NEAREST_EXACT)
    errors = {}
    for method in ('edge_aware', 'guided'):
        out = upsample_depth(small, width, height, method, guide=guide)
        assert flying(out) == 0
        errors[method] = int((out != truth).sum())
    assert errors['guided'] == 0 < errors['edge_aware']


def test_guided_follows_the_image_at_the_border_of_invalid_depth():
    height, width, edge_x = 96, 128, 50
    truth = np.full((height, width), FAR, np.float32)
    truth[:, :edge_x] = np.nan  # e.g. sky
    guide = np.full((height, width, 3), 40, np.uint8)
    guide[:, :edge_x] = (120, 170, 250)
    small = cv2.resize(truth, (32, 24), interpolation=cv2.INTER_NEAREST_EXACT)
    guided = upsample_depth(small, width, height, 'guided', guide=guide)
    np.testing.assert_array_equal(np.isnan(guided), np.isnan(truth))
    assert not np.array_equal(np.isnan(upsample_depth(small, width, height, 'edge_aware')), np.isnan(truth))


def test_default_is_guided_with_an_image_and_edge_aware_without():
    height, width = 96, 128
    small = step_scene(24, 32)
    guide = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    np.testing.assert_array_equal(upsample_depth(small, width, height),
                                  upsample_depth(small, width, height, 'edge_aware'))
    np.testing.assert_array_equal(upsample_depth(small, width, height, guide=guide),
                                  upsample_depth(small, width, height, 'guided', guide=guide))


def test_same_size_is_a_copy_and_bad_arguments_raise():
    depth = step_scene()
    for method in METHODS:
        out = upsample_depth(depth, 64, 48, method, guide=np.zeros((48, 64, 3), np.uint8))
        np.testing.assert_array_equal(out, depth)
        assert out is not depth
    assert (DEFAULT_METHOD, FALLBACK_METHOD) == ('guided', 'edge_aware')
    with pytest.raises(ValueError, match="unknown upsampling method 'cubic'"):
        upsample_depth(depth, 10, 10, 'cubic')
    with pytest.raises(ValueError, match='needs guide'):
        upsample_depth(depth, 10, 10, 'guided')
    with pytest.raises(ValueError, match='guide is 5x5, output is 10x10'):
        upsample_depth(depth, 10, 10, 'guided', guide=np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ValueError, match='positive'):
        upsample_depth(depth, 0, 10)
    with pytest.raises(ValueError, match=r'\(h, w\)'):
        upsample_depth(np.zeros((4, 4, 3), np.float32), 10, 10)
