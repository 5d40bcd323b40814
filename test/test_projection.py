"""Extrinsics, projection to pixels, and the three metric sources → sample pairs."""
import numpy as np
import pytest

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.projection import (matrix_to_quaternion, project_points, quaternion_to_matrix,
                                         transform_from_translation_quaternion, transform_points)
from ppd_ros.geometry.scale.source_samples import (SampleError, range_to_depth, resample_nearest, samples_from_depth_image,
                                             samples_from_points, samples_from_range)

INTR = Intrinsics(100.0, 100.0, 39.5, 29.5, 80, 60)


def test_quaternion_conventions():
    assert np.allclose(quaternion_to_matrix([0, 0, 0, 1]), np.eye(3))
    # 90° about z maps x to y
    rz = quaternion_to_matrix([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    assert np.allclose(rz @ [1, 0, 0], [0, 1, 0])
    # un-normalised input is normalised
    assert np.allclose(quaternion_to_matrix([0, 0, 2, 2]), rz)
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(20, 4)):
        q = q / np.linalg.norm(q) * np.sign(q[3])
        assert np.allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q)
    with pytest.raises(ValueError):
        quaternion_to_matrix([0, 0, 0, 0])
    with pytest.raises(ValueError):
        quaternion_to_matrix([0, 0, 1])


def test_lidar_to_optical_extrinsic():
    # LiDAR (x forward, y left, z up) → optical (x right, y down, z forward), LiDAR 0.1 m above the camera
    q_cam_lidar = matrix_to_quaternion(np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float))
    T = transform_from_translation_quaternion([0, -0.1, 0], q_cam_lidar)
    out = transform_points([[5.0, 1.0, 0.0]], T)  # 5 m ahead, 1 m to the left
    assert np.allclose(out, [[-1.0, -0.1, 5.0]], atol=1e-6)
    with pytest.raises(ValueError):
        transform_from_translation_quaternion([0, 0], [0, 0, 0, 1])


def test_projection_pixels_and_drops():
    pts = np.array([
        [0.0, 0.0, 2.0],      # principal point (39.5, 29.5) → pixel (40, 30)
        [0.0, 0.0, -1.0],     # behind
        [0.0, 0.0, 0.05],     # closer than min_depth
        [10.0, 0.0, 1.0],     # outside
        [0.0, 0.0, 3.0],      # same pixel as the first, farther: hidden
        [np.nan, 0, 1],
        [-0.395, -0.295, 1.0],  # exactly (0, 0)
    ])
    p = project_points(pts, INTR, min_depth=0.1)
    assert p.total == 7 and p.behind == 2 and p.outside == 1 and p.occluded == 1 and p.non_finite == 1
    got = sorted(zip(p.u.tolist(), p.v.tolist(), p.z.tolist()))
    assert got == [(0, 0, 1.0), (40, 30, 2.0)]
    assert '2 of 7 points' in p.summary() and 'behind the camera' in p.summary()


def test_resample_nearest_never_blends():
    img = np.zeros((4, 4), np.float32)
    img[:, 2:] = 10.0
    up = resample_nearest(img, 8, 8)
    assert set(np.unique(up)) == {0.0, 10.0} and (up[:, :4] == 0).all() and (up[:, 4:] == 10).all()
    down = resample_nearest(np.arange(16.0).reshape(4, 4), 2, 2)
    assert down.tolist() == [[5.0, 7.0], [13.0, 15.0]]  # pixel-centre aligned picks


def test_depth_image_samples_any_resolution():
    rel = np.linspace(0, 1, 60 * 80, dtype=np.float32).reshape(60, 80)
    depth = np.full((120, 160), 3.0, np.float32)
    depth[:60] = 0.0       # invalid top half
    depth[60:, :10] = np.nan
    s = samples_from_depth_image(rel, depth)
    assert s.count == 30 * 75
    assert (s.v >= 30).all() and (s.metric == 3.0).all()
    assert np.allclose(s.relative, rel[s.v, s.u])
    with pytest.raises(SampleError, match='aspect'):
        samples_from_depth_image(rel, np.ones((60, 60), np.float32))


def test_depth_image_samples_skip_invalid_relative():
    rel = np.full((60, 80), np.nan, np.float32)
    rel[0, 0] = 0.5
    s = samples_from_depth_image(rel, np.ones((60, 80), np.float32))
    assert s.count == 1 and 'no relative depth' in s.note


def test_point_samples_use_extrinsic_and_relative_at_nearest_pixel():
    rel = np.arange(60 * 80, dtype=np.float32).reshape(60, 80)
    T = transform_from_translation_quaternion([0, 0, 1.0], [0, 0, 0, 1])  # source 1 m behind the camera
    s = samples_from_points(rel, INTR, [[0, 0, 1.0], [0, 0, -5.0]], T, min_depth=0.1)
    assert s.count == 1 and s.metric[0] == pytest.approx(2.0) and s.relative[0] == rel[30, 40]
    assert 'behind the camera' in s.note
    with pytest.raises(SampleError, match='camera_info'):
        samples_from_points(rel[:10], INTR, [[0, 0, 1.0]], np.eye(4))
    empty = samples_from_points(rel, INTR, np.zeros((0, 3)), np.eye(4))
    assert empty.count == 0


def test_range_samples_convert_ray_distance_to_z():
    rel = np.full((60, 80), 0.25, np.float32)
    s = samples_from_range(rel, INTR, 2.0)
    assert s.count == 1 and (s.u[0], s.v[0]) == (40, 30)
    assert s.metric[0] == pytest.approx(2.0)
    s = samples_from_range(rel, INTR, 2.0, pixel=[39.5 + 100.0 * 0.3, 29.5])  # ray with x/z = 0.3
    assert s.metric[0] == pytest.approx(2.0 / np.sqrt(1.09))
    with pytest.raises(SampleError, match='outside'):
        samples_from_range(rel, INTR, 2.0, pixel=[500, 10])


@pytest.mark.parametrize('reading, lo, hi', [
    (float('nan'), 0, 10), (float('inf'), 0, 10), (-float('inf'), 0, 10), (-1.0, 0, 10),
    (0.0, 0, 10), (0.1, 0.2, 10), (12.0, 0.2, 10)])
def test_range_readings_that_are_invalid(reading, lo, hi):
    with pytest.raises(SampleError):
        range_to_depth(reading, lo, hi)


def test_range_limits_zero_mean_unset():
    assert range_to_depth(3.0, 0.0, 0.0) == 3.0


def test_range_on_a_depth_edge_pairs_with_the_surface_it_agrees_with():
    rel = np.full((60, 80), 0.9, np.float32)
    rel[:, :40] = 0.1                      # near object left of the principal point column 40
    s = samples_from_range(rel, INTR, 2.0, pixel=[39.6, 29.5])
    assert s.u[0] == 40 and s.relative[0] == pytest.approx(0.9)
    s = samples_from_range(rel, INTR, 2.0, pixel=[39.6, 29.5], window=1, expected_relative=0.15)
    assert s.u[0] == 39 and s.relative[0] == pytest.approx(0.1) and 'agrees with' in s.note
    flat = np.full((60, 80), 0.5, np.float32)  # no edge: the ray's own pixel
    assert samples_from_range(flat, INTR, 2.0, window=1, expected_relative=0.9).u[0] == 40
