"""TemporalAligner: removes per-frame scale/shift jitter, does not drift, resets on scene cuts."""
import numpy as np
import pytest

from ppd_ros.geometry.temporal import TemporalAligner

H, W = 96, 128


def scene(seed):
    """A smooth relative-depth map with a box: a stand-in for one view's normalised log-depth."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] / np.float32(W)
    depth = 0.2 + 0.6 * yy + 0.1 * np.sin(rng.uniform(3, 9) * xx + rng.uniform(0, 6))
    top, left = rng.integers(10, 50), rng.integers(10, 70)
    depth[top:top + 30, left:left + 40] = rng.uniform(0.0, 0.15)
    return depth.astype(np.float32)


def affine_to(truth, values):
    """(scale, shift) of values ≈ scale·truth + shift (least squares; truth is noise-free)."""
    ok = np.isfinite(values)
    a = np.stack([truth[ok], np.ones(ok.sum())], axis=1)
    return np.linalg.lstsq(a, values[ok], rcond=None)[0]


def jittered(truth, rng, noise=0.01):
    scale, shift = rng.uniform(0.7, 1.3), rng.uniform(-0.2, 0.2)
    return (scale * truth + shift + rng.normal(0, noise, truth.shape)).astype(np.float32)


def test_random_scale_and_shift_jitter_is_removed():
    rng = np.random.default_rng(0)
    truth = scene(1)
    aligner = TemporalAligner()
    raw, aligned = [], []
    for _ in range(40):
        frame = jittered(truth, rng)
        raw.append(affine_to(truth, frame))
        aligned.append(affine_to(truth, aligner.update(frame)))
        assert aligner.last.reset_reason in (None, 'first frame')
    raw, aligned = np.array(raw), np.array(aligned)
    assert raw[:, 0].std() > 0.1
    assert aligned[:, 0].std() < 0.1 * raw[:, 0].std()
    assert aligned[:, 1].std() < 0.1 * raw[:, 1].std()


def test_first_frame_passes_through_and_sets_the_frame_of_reference():
    truth = scene(2)
    aligner = TemporalAligner()
    first = 0.9 * truth + 0.05
    out = aligner.update(first)
    np.testing.assert_array_equal(out, first)
    assert out is not first and aligner.last.reset_reason == 'first frame'
    out = aligner.update(2 * first - 0.3)
    np.testing.assert_allclose(out, first, atol=1e-4)
    assert aligner.last.fitted and aligner.last.scale == pytest.approx(0.5, abs=1e-4)


def test_scale_does_not_drift_over_many_noisy_frames():
    """A biased (ordinary least squares) fit fed back through the reference makes the scale decay."""
    rng = np.random.default_rng(3)
    truth = scene(4)
    aligner = TemporalAligner()
    scales = [affine_to(truth, aligner.update(jittered(truth, rng, noise=0.02)))[0] for _ in range(150)]
    assert abs(np.mean(scales[-20:]) / scales[0] - 1) < 0.03


def test_scene_cut_resets_the_reference():
    rng = np.random.default_rng(5)
    aligner = TemporalAligner()
    for _ in range(5):
        aligner.update(jittered(scene(6), rng))
    assert aligner.last.reset_reason is None
    cut = jittered(scene(7), rng)
    out = aligner.update(cut)
    assert aligner.last.reset_reason in ('residual', 'scale')
    np.testing.assert_array_equal(out, cut)  # passes through and becomes the new reference
    np.testing.assert_array_equal(aligner.reference, cut)
    aligner.update(jittered(scene(7), rng))
    assert aligner.last.reset_reason is None and aligner.last.fitted


def test_inverted_frame_is_a_cut():
    truth = scene(8)
    aligner = TemporalAligner()
    aligner.update(truth)
    aligner.update(1.0 - truth)
    assert aligner.last.reset_reason == 'scale'


def test_resolution_change_and_reset():
    aligner = TemporalAligner()
    aligner.update(scene(9))
    small = scene(9)[::2, ::2].copy()
    np.testing.assert_array_equal(aligner.update(small), small)
    assert aligner.last.reset_reason == 'resolution change'
    aligner.reset()
    assert aligner.reference is None and aligner.last is None
    aligner.update(small)
    assert aligner.last.reset_reason == 'first frame'


def test_nan_pixels_are_ignored_and_kept():
    truth = scene(10)
    aligner = TemporalAligner()
    aligner.update(truth)
    frame = 1.2 * truth + 0.1
    frame[:10] = np.nan
    out = aligner.update(frame)
    assert np.isnan(out[:10]).all()
    np.testing.assert_allclose(out[10:], truth[10:], atol=1e-4)
    assert np.isfinite(aligner.reference).all()  # the old reference fills in where the frame had NaN


def test_too_few_valid_pixels_reuse_the_last_fit_without_updating():
    truth = scene(11)
    aligner = TemporalAligner(min_valid=0.5)
    aligner.update(truth)
    aligner.update(2 * truth)
    reference = aligner.reference.copy()
    frame = 2 * truth
    frame[: int(H * 0.7)] = np.nan
    out = aligner.update(frame)
    assert not aligner.last.fitted and aligner.last.reset_reason is None
    np.testing.assert_allclose(out[int(H * 0.7):], truth[int(H * 0.7):], atol=1e-4)
    np.testing.assert_array_equal(aligner.reference, reference)


def test_an_empty_reference_is_replaced_by_the_next_valid_frame():
    aligner = TemporalAligner()
    aligner.update(np.full((H, W), np.nan, np.float32))
    frame = scene(12)
    np.testing.assert_array_equal(aligner.update(frame), frame)
    assert aligner.last.reset_reason == 'reference invalid'
    aligner.update(0.5 * frame)
    assert aligner.last.fitted


def test_bad_arguments():
    with pytest.raises(ValueError, match='smoothing'):
        TemporalAligner(smoothing=1.0)
    with pytest.raises(ValueError, match='min_valid'):
        TemporalAligner(min_valid=0)
    with pytest.raises(ValueError, match=r'\(h, w\)'):
        TemporalAligner().update(np.zeros((2, 2, 2), np.float32))
