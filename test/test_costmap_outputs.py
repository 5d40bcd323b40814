"""Costmap outputs without ROS: the sampler's uncertainty, confidence, the output filters, the
scan (as depthimage_to_laserscan), sparsification/AUSE, and the unorganized cloud."""
import math

import numpy as np
import pytest
import torch

from ppd_ros.eval.sparsification import ause, sparsification_curve
from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.confidence import confidence_from_uncertainty
from ppd_ros.geometry.costmap_filters import filter_depth, flying_points
from ppd_ros.geometry.rectify import Calibration
from ppd_ros.geometry.scan import depth_to_scan
from ppd_ros.model.estimator import PPDEstimator
from ppd_ros.model.sampler import euler_schedule, integrate, integrate_with_uncertainty
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline, settings_problem

SETTINGS = DEFAULTS.replace(resolution='inference')


def calibration_of(intr: Intrinsics) -> Calibration:
    k = intr.K.ravel()
    p = np.hstack([intr.K, np.zeros((3, 1))]).ravel()
    return Calibration.of(intr.width, intr.height, 'plumb_bob', [0.0] * 5, k, np.eye(3).ravel(), p)


@pytest.fixture(scope='module')
def tiny():
    return PPDEstimator.from_config(device='cpu', seed=3, steps=3, target_area=(64, 48))


def test_the_sampler_signals_leave_the_depth_bit_identical(tiny):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        semantics = tiny.encoder(image)
        noise = torch.randn(1, 1, 48, 64)
        plan = euler_schedule(3)
        plain = integrate(tiny.dit, noise, image, semantics, plan)
        depth, signals = integrate_with_uncertainty(tiny.dit, noise, image, semantics, plan)
    assert torch.equal(plain, depth)
    assert set(signals) == {'x0_change', 'velocity_disagreement'}
    assert all(v.shape == depth.shape and (v >= 0).all() and v.abs().sum() > 0 for v in signals.values())
    with torch.inference_mode():
        _, one = integrate_with_uncertainty(tiny.dit, noise, image, semantics, euler_schedule(1))
    assert all((v == 0).all() for v in one.values())  # one step: nothing to compare


def test_predict_with_uncertainty_gives_predicts_depth_and_a_seed_spread(tiny):
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth, signals = tiny.predict_with_uncertainty(rgb, samples=2)
    np.testing.assert_array_equal(depth, tiny.predict(rgb))
    assert signals['seed_spread'].shape == depth.shape and signals['seed_spread'].max() > 0
    warm = tiny.predict(rgb, init_depth=depth, init_strength=0.5)
    np.testing.assert_array_equal(tiny.predict_with_uncertainty(rgb, init_depth=depth, init_strength=0.5)[0], warm)


def test_confidence_is_in_zero_one_and_keeps_nan():
    c = confidence_from_uncertainty(np.array([0.0, 0.05, 10.0, np.nan], np.float32))
    assert c[0] == 1.0 and math.isclose(c[1], math.exp(-1), rel_tol=1e-6) and 0 <= c[2] < 1e-6
    assert np.isnan(c[3]) and c.dtype == np.float32


def test_filters_off_return_the_metres_themselves():
    metric = np.ones((4, 4), np.float32)
    assert filter_depth(metric, SETTINGS) is metric


def test_range_filter_follows_rep_117_and_keeps_nan():
    metric = np.array([[0.2, 1.0, 5.0, np.nan]], np.float32)
    out = filter_depth(metric, SETTINGS.replace(min_range=0.5, max_range=4.0))
    assert out[0, 0] == -np.inf and out[0, 1] == 1.0 and out[0, 2] == np.inf and np.isnan(out[0, 3])


def test_confidence_filter_makes_unsure_pixels_nan():
    metric = np.full((1, 3), 2.0, np.float32)
    out = filter_depth(metric, SETTINGS.replace(confidence_min=0.5, max_range=1.0),
                       np.array([[0.9, 0.1, np.nan]], np.float32))
    assert out[0, 0] == np.inf and np.isnan(out[0, 1]) and np.isnan(out[0, 2])


def test_edge_filter_removes_flying_points_and_keeps_a_thin_pole():
    depth = np.full((5, 9), 4.0, np.float32)
    depth[:, 2] = 1.0           # a one-pixel pole in front of a wall
    depth[:, 3] = 2.5           # a flying pixel blended between pole and wall
    flying = flying_points(depth, 0.1)
    assert not flying[:, 2].any()            # the pole stays
    assert flying[:, 3].all()                # the blended pixel goes
    assert flying[:, 1].all() and flying[:, 4].all()   # the wall's pixels beside a nearer one
    assert not flying[:, 6:].any()
    assert not flying_points(np.linspace(1, 1.2, 9, dtype=np.float32)[None].repeat(3, 0), 0.1).any()


def wall_scan(depth_value, width=64, height=48, **kwargs):
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, width, height)
    depth = np.full((height, width), depth_value, np.float32)
    return depth_to_scan(depth, intr, **kwargs), intr


def test_scan_of_a_wall_is_its_distance_along_each_ray():
    scan, intr = wall_scan(2.0)
    assert math.isclose(scan.angle_max, math.atan2(31.5, 50.0))
    assert math.isclose(scan.angle_min, -math.atan2(63 - 31.5, 50.0))
    assert scan.ranges.shape == (64,) and np.isfinite(scan.ranges).all()  # no gap near the centre
    angles = scan.angle_min + np.arange(64) * scan.angle_increment
    np.testing.assert_allclose(scan.ranges, 2.0 / np.cos(angles), rtol=0.03)
    assert scan.ranges[0] > scan.ranges[32] < scan.ranges[-1]


def test_scan_says_what_no_return_means():
    assert np.isposinf(wall_scan(20.0)[0].ranges).all()          # beyond range_max
    assert np.isposinf(wall_scan(np.inf)[0].ranges).all()        # +Inf in depth/image
    assert np.isneginf(wall_scan(0.1)[0].ranges).all()           # nearer than range_min
    assert np.isnan(wall_scan(np.nan)[0].ranges).all()           # no depth


def test_scan_takes_the_nearest_range_in_its_band():
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    depth = np.full((48, 64), 3.0, np.float32)
    depth[24, 10] = 1.0
    assert np.nanmin(depth_to_scan(depth, intr, scan_height=1).ranges) > 2.9
    assert np.nanmin(depth_to_scan(depth, intr, scan_height=3).ranges) < 1.1


def test_sparsification_oracle_is_zero_and_random_is_not():
    rng = np.random.default_rng(0)
    error = rng.random(5000)
    assert ause(error, error) == 0.0
    assert ause(error, rng.random(5000)) > 0.2
    curve = sparsification_curve(error, error)
    assert curve[0] == pytest.approx(1.0) and np.all(np.diff(curve) <= 1e-12)


def test_pipeline_confidence_same_frame_and_filters(tiny):
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    calibration = calibration_of(Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48))
    pipeline = FramePipeline(tiny, SETTINGS.replace(resolution='camera'))
    plain = pipeline.process(FrameInput(rgb, 1, calibration))[0]
    with_confidence = pipeline.process(FrameInput(rgb, 2, calibration), want_confidence=True)[0]
    np.testing.assert_array_equal(plain.relative, with_confidence.relative)
    assert plain.confidence is None and with_confidence.confidence.shape == plain.relative.shape
    c = with_confidence.confidence
    assert c.dtype == np.float32 and np.nanmin(c) >= 0 and np.nanmax(c) <= 1
    # confidence_min computes the confidence for the metric outputs by itself
    pipeline.settings = SETTINGS.replace(resolution='camera', confidence_min=0.95)
    filtered = pipeline.process(FrameInput(rgb, 3, calibration))[0]
    assert filtered.confidence is not None
    np.testing.assert_array_equal(np.isnan(filtered.output_depth),
                                  ~(filtered.confidence >= 0.95) | np.isnan(filtered.metric))
    assert (filtered.confidence < 0.95).any() and (filtered.confidence >= 0.95).any()


def test_settings_problems_of_the_costmap_outputs(tiny):
    assert 'output.min_range' in settings_problem(SETTINGS.replace(min_range=5.0, max_range=2.0), tiny)
    assert 'scan.range_min' in settings_problem(SETTINGS.replace(scan_range_min=5.0, scan_range_max=2.0), tiny)

    class NoSampler:
        def predict(self, rgb):
            return np.zeros((4, 4), np.float32)
    assert 'confidence' in settings_problem(SETTINGS.replace(confidence_min=0.5), NoSampler())
    assert settings_problem(SETTINGS.replace(confidence_min=0.5), tiny) is None


@pytest.mark.parametrize('with_rgb', [False, True])
def test_unorganized_cloud_holds_only_the_valid_points(with_rgb):
    pytest.importorskip('sensor_msgs')
    from ppd_ros.nodes.cloud import cloud_msg_to_xyz, points_to_cloud_msg, unpack_rgb
    rng = np.random.default_rng(0)
    points = rng.random((6, 8, 3)).astype(np.float32)
    points[1, 2] = np.nan
    points[4, :] = np.nan
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) if with_rgb else None
    msg = points_to_cloud_msg(points, None, rgb, organized=False)
    keep = np.isfinite(points).all(axis=2)
    assert (msg.height, msg.width, msg.is_dense) == (1, keep.sum(), True)
    assert msg.row_step == msg.width * msg.point_step == len(msg.data)
    np.testing.assert_array_equal(cloud_msg_to_xyz(msg), points[keep])
    if with_rgb:
        raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(-1, 16)[:, 12:16].copy().view('<f4')[:, 0]
        np.testing.assert_array_equal(unpack_rgb(raw), rgb[keep])
    empty = points_to_cloud_msg(np.full((2, 2, 3), np.nan, np.float32), None, organized=False)
    assert (empty.height, empty.width, len(empty.data)) == (1, 0, 0)


# optical (x right, y down, z forward) → a base frame 1 m above the floor (x forward, y left, z up)
T_BASE_CAM = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 1.0], [0, 0, 0, 1.0]])


def test_scan_in_another_frame_sees_a_wall_at_its_distance():
    from ppd_ros.geometry.scan import depth_to_scan_in
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    scan = depth_to_scan_in(np.full((48, 64), 2.0, np.float32), intr, T_BASE_CAM)
    angles = scan.angle_min + np.arange(len(scan.ranges)) * scan.angle_increment
    assert math.isclose(scan.angle_min, -math.atan2(63 - 31.5, 50.0)) and len(scan.ranges) == 57  # 1/fx apart
    assert np.isfinite(scan.ranges).all()
    np.testing.assert_allclose(scan.ranges, 2.0 / np.cos(angles), rtol=0.03)
    # turned 90° to the left in the base frame: the same scan, its angles turned too
    yaw = np.array([[0.0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    turned = depth_to_scan_in(np.full((48, 64), 2.0, np.float32), intr, yaw @ T_BASE_CAM)
    assert math.isclose(turned.angle_min, scan.angle_min + math.pi / 2)
    np.testing.assert_allclose(turned.ranges, scan.ranges, rtol=1e-4)


def test_scan_in_another_frame_keeps_only_the_height_band_and_says_inf():
    from ppd_ros.geometry.scan import depth_to_scan_in
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    depth = np.full((48, 64), 3.0, np.float32)
    depth[:, 40:] = np.inf                      # nothing within range on the right
    # a camera 1 m up: every row of a 3 m wall is within 0.2..2 m only near the centre rows
    scan = depth_to_scan_in(depth, intr, T_BASE_CAM, min_height=0.2, max_height=2.0, range_max=8.0)
    angles = scan.angle_min + np.arange(len(scan.ranges)) * scan.angle_increment
    right = angles < -math.atan2(40 - 31.5, 50.0) - 0.02
    assert np.isposinf(scan.ranges[right]).all() and np.isfinite(scan.ranges[~right & (angles > -0.1)]).all()
    high = depth_to_scan_in(np.full((48, 64), 3.0, np.float32), intr, T_BASE_CAM, min_height=2.5, max_height=3.0)
    assert np.isnan(high.ranges).all()          # no point in that band: nothing said
