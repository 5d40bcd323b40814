"""Depth metrics: alignment, AbsRel/δ1, edge Chamfer, flying pixels, flicker, exact nearest neighbours."""
import cv2
import numpy as np
import pytest

from ppd_ros.eval.baselines import GroundTruthResampled, Oracle, predict_for_eval
from ppd_ros.eval.metrics import (abs_rel, align_sequence, align_to_gt, delta1, depth_edges, edge_chamfer,
                                  flying_pixel_rate, temporal_flicker)
from ppd_ros.eval.nearest import nearest_distances
from ppd_ros.eval.protocol import evaluate_prediction, ground_truth_at
from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.synthetic import camera_sequence, render_frame


@pytest.fixture(scope='module')
def frame():
    return render_frame(11, 128, 96, kind='outdoor')


def blurred(frame, factor=8):
    depth = np.where(frame.valid, frame.depth, frame.depth[frame.valid].max())
    H, W = depth.shape
    small = cv2.resize(depth, (W // factor, H // factor), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)


def test_perfect_prediction_scores_perfectly(frame):
    gt, valid, intr = frame.depth, frame.valid, frame.intrinsics
    assert abs_rel(gt, gt, valid) == 0.0
    assert delta1(gt, gt, valid) == 1.0
    assert edge_chamfer(gt, gt, intr, valid) == 0.0
    assert flying_pixel_rate(gt, gt, intr, valid) == 0.0


def test_blurred_ground_truth_has_flying_pixels(frame):
    blur = blurred(frame)
    gt, valid, intr = frame.depth, frame.valid, frame.intrinsics
    assert flying_pixel_rate(blur, gt, intr, valid) > 0.1
    assert edge_chamfer(blur, gt, intr, valid) > 0.05
    assert abs_rel(blur, gt, valid) > 0.0
    # A sharp but slightly wrong prediction: no flying pixels, yet AbsRel sees the error.
    assert flying_pixel_rate(gt * 1.03, gt, intr, valid) == 0.0
    assert abs_rel(gt * 1.03, gt, valid) == pytest.approx(0.03, rel=1e-5)


def test_abs_rel_and_delta1_values():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = np.array([[1.1, 2.0], [2.0, 8.0]])
    assert abs_rel(pred, gt) == pytest.approx((0.1 + 0 + 0.5 + 0) / 4)
    assert delta1(pred, gt) == pytest.approx(0.75)
    mask = np.array([[True, True], [False, True]])
    assert delta1(pred, gt, mask) == 1.0


def test_missing_predictions_raise_or_count_as_misses():
    gt = np.array([[1.0, 2.0, 4.0, 8.0]])
    pred = np.array([[1.0, np.nan, -4.0, 8.0]])  # exact, missing, negative, exact
    with pytest.raises(ValueError, match='non-finite'):
        abs_rel(pred, gt)
    assert abs_rel(pred, gt, invalid='miss') == pytest.approx((0 + 1 + 2 + 0) / 4)
    assert delta1(pred, gt, invalid='miss') == 0.5  # the negative one is not "within 1.25"
    with pytest.raises(ValueError, match='invalid'):
        delta1(pred, gt, invalid='skip')


def test_alignment_is_affine_invariant(frame):
    gt, valid = frame.depth, frame.valid
    rel = np.log1p(np.where(valid, gt, 1.0).astype(np.float64))
    for scale, shift in ((1.0, 0.0), (2.5, -0.7), (0.1, 3.0)):
        metric, a, b = align_to_gt(scale * rel + shift, gt, valid)
        assert a == pytest.approx(1.0 / scale, rel=1e-9)
        assert b == pytest.approx(-shift / scale, abs=1e-9)
        assert abs_rel(metric, gt, valid) < 1e-6
    m1, _, _ = align_to_gt(rel, gt, valid)
    m2, _, _ = align_to_gt(-3.0 * rel + 1.0, gt, valid)  # even a flipped sign is an affine map
    np.testing.assert_allclose(m1[valid], m2[valid], rtol=1e-5)


def test_alignment_output_is_clipped_and_constant_prediction_is_handled(frame):
    gt, valid = frame.depth, frame.valid
    metric, a, b = align_to_gt(np.full(gt.shape, 0.3, np.float32), gt, valid)
    assert a == 0.0 and np.allclose(metric, np.expm1(np.log1p(gt[valid]).mean()))
    metric, _, _ = align_to_gt(np.log1p(np.where(valid, gt, 1e6)), gt, valid)
    assert np.isfinite(metric).all() and metric.max() <= gt[valid].max() and metric.min() >= 1e-3


def test_bad_input_raises(frame):
    gt, valid = frame.depth, frame.valid
    with pytest.raises(ValueError, match='resize'):
        abs_rel(gt[:-1], gt, valid)
    bad = gt.copy()
    bad[valid.nonzero()[0][0], valid.nonzero()[1][0]] = np.nan
    with pytest.raises(ValueError, match='non-finite'):
        delta1(bad, gt, valid)
    with pytest.raises(ValueError, match='non-finite'):
        align_to_gt(bad, gt, valid)
    with pytest.raises(ValueError, match='valid'):
        abs_rel(gt, gt, np.zeros_like(valid))
    with pytest.raises(ValueError, match='intrinsics'):
        edge_chamfer(gt, gt, Intrinsics(50, 50, 10, 10, 20, 20), valid)


def test_depth_edges_follow_depth_jumps_not_smooth_slopes():
    depth = np.full((40, 60), 2.0, np.float32)
    depth[:, 30:] = 4.0                                  # a step
    ramp = np.tile(np.linspace(2.0, 2.3, 60, dtype=np.float32), (40, 1))  # 0.2 % per pixel
    edges = depth_edges(depth)
    assert edges[5:35, 29:31].any(axis=1).all()  # every row has the step (Canny thins it to 1-2 px)
    assert edges.sum(axis=1).max() <= 2 and not edges[:, :28].any() and not edges[:, 32:].any()
    assert not depth_edges(ramp).any()
    small_step = depth.copy()
    small_step[:, 30:] = 2.04                            # 2 %: below the 5 % low threshold
    assert not depth_edges(small_step).any()


def test_flying_pixel_definition_on_a_step():
    gt = np.full((20, 20), 2.0, np.float32)
    gt[:, 10:] = 6.0
    pred = gt.copy()
    assert flying_pixel_rate(pred, gt) == 0.0
    pred[:, 9] = 4.0   # halfway between the surfaces: flying
    pred[:, 10] = 5.9  # within 5 % of its own surface: fine
    band = 20 * 4      # columns 8..11 are within 2 px of the step
    assert flying_pixel_rate(pred, gt) == pytest.approx(20 / band)
    pred[:, 9] = 9.0   # wrong, but not between the surfaces: not a flying pixel
    assert flying_pixel_rate(pred, gt) == 0.0
    assert np.isnan(flying_pixel_rate(np.ones((5, 5)), np.ones((5, 5))))


def test_edge_chamfer_of_a_known_offset():
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    gt = np.full((48, 64), 5.0, np.float32)
    gt[10:30, 20:40] = 2.0
    shifted = gt + 0.01  # every point moves 1 cm·|ray| along its ray
    c = edge_chamfer(shifted, gt, intr)
    assert 0.0 < c <= 0.01 * np.sqrt(1 + (32 / 50) ** 2 + (24 / 50) ** 2)


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(0)
    for n, m, spread in ((50, 80, 1.0), (3000, 4000, 5.0), (3000, 2500, 0.01)):
        surf = np.c_[rng.random((m, 2)) * spread, (rng.random(m) > 0.5) * spread]
        q = surf[rng.choice(m, n)] + rng.normal(0, spread * 1e-3, (n, 3))
        q[: n // 5, 2] = rng.random(n // 5) * spread  # far from the surfaces: later passes / block mode
        d = nearest_distances(q, surf, max_pairs=20000)
        brute = np.sqrt(((q[:, None, :] - surf[None, :, :]) ** 2).sum(-1).min(1)) if n * m < 5e6 else \
            np.concatenate([np.sqrt(((c[:, None, :] - surf[None]) ** 2).sum(-1).min(1)) for c in np.array_split(q, 20)])
        np.testing.assert_allclose(d, brute, rtol=1e-9, atol=1e-9)
    assert nearest_distances(np.zeros((3, 3)), np.zeros((0, 3))).tolist() == [np.inf] * 3
    with pytest.raises(ValueError, match='finite'):
        nearest_distances(np.full((2, 3), np.nan), np.zeros((2, 3)))


def test_temporal_flicker():
    frames = camera_sequence(2, 4, 48, 36, kind='indoor', motion='smooth')
    gts = [f.depth for f in frames]
    masks = [f.valid for f in frames]
    assert temporal_flicker(gts, gts, masks) == 0.0
    assert temporal_flicker([g * 1.1 for g in gts], gts, masks) == pytest.approx(0.0, abs=1e-6)  # steady bias
    rng = np.random.default_rng(0)
    jitter = [rng.normal(0, 0.02, g.shape) for g in gts]
    noisy = [g * np.exp(j) for g, j in zip(gts, jitter)]
    expected = np.mean([np.mean(np.abs(jitter[t] - jitter[t - 1])) for t in range(1, 4)])
    assert temporal_flicker(noisy, gts, masks) == pytest.approx(expected, rel=1e-3)
    static = [gts[0]] * 3
    scaled = [gts[0], gts[0] * 1.05, gts[0]]
    assert temporal_flicker(scaled, static) == pytest.approx(np.log(1.05), rel=1e-4)
    with pytest.raises(ValueError, match='2 frames'):
        temporal_flicker(gts[:1], gts[:1])


def test_align_sequence_keeps_scale_jitter():
    gt = render_frame(4, 48, 36, kind='indoor')
    rel = np.log1p(gt.depth)
    preds = [rel, rel * 1.02, rel]
    aligned, a, b = align_sequence(preds, [gt.depth] * 3, [gt.valid] * 3)
    assert len(aligned) == 3 and temporal_flicker(aligned, [gt.depth] * 3) > 0.005
    per_frame = [align_to_gt(p, gt.depth, gt.valid)[0] for p in preds]
    assert temporal_flicker(per_frame, [gt.depth] * 3) < 1e-5  # per-frame alignment hides it


def test_baselines_follow_the_protocol(frame):
    oracle = Oracle()
    with pytest.raises(RuntimeError, match='predict_frame'):
        oracle.predict(frame.rgb)
    rel = predict_for_eval(oracle, frame)
    assert rel.shape == frame.depth.shape and np.isfinite(rel).all()
    np.testing.assert_allclose(np.expm1(rel[frame.valid]), frame.depth[frame.valid], rtol=1e-5)
    at_model = Oracle(output_size=lambda h, w: (2 * h, 2 * w))
    assert predict_for_eval(at_model, frame).shape == (2 * frame.depth.shape[0], 2 * frame.depth.shape[1])
    coarse = GroundTruthResampled(0.125, output_size=lambda h, w: (h // 2, w // 2))
    assert predict_for_eval(coarse, frame).shape == (48, 64)
    with pytest.raises(ValueError, match='scale'):
        GroundTruthResampled(0.0)


def test_protocol_scores_at_model_and_camera_resolution(frame):
    oracle = Oracle(output_size=lambda h, w: (2 * h, 2 * w))
    scores = evaluate_prediction(predict_for_eval(oracle, frame), frame)
    assert (scores['eval_width'], scores['eval_height']) == (256, 192)
    assert scores['abs_rel'] < 1e-6 and scores['delta1'] == 1.0 and scores['edge_chamfer'] < 1e-5
    assert scores['flying_pixel_rate'] == 0.0 and scores['a'] == pytest.approx(1.0)
    gt, valid, intr = ground_truth_at(frame, 192, 256)
    assert set(np.unique(gt[valid])) <= set(np.unique(frame.depth[frame.valid]))  # nearest: exact values
    assert intr.fx == pytest.approx(2 * frame.intrinsics.fx)
    camera = evaluate_prediction(predict_for_eval(oracle, frame), frame, at='camera', upsample='edge_aware')
    assert (camera['eval_width'], camera['eval_height']) == (128, 96) and camera['abs_rel'] < 1e-3
    blur = GroundTruthResampled(0.125)
    bilinear = evaluate_prediction(predict_for_eval(blur, frame), frame, at='camera', upsample='bilinear')
    assert bilinear['flying_pixel_rate'] > 0.05
