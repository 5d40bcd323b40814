"""Robust metric-scale fitting and its temporal tracker (pure numpy)."""
import numpy as np
import pytest

from ppd_ros.geometry.scale.fit import (FitConfig, FitFailure, FitStatus, FitTracker, ScaleFit, TrackerConfig,
                                        fit_log_scale, fit_offset, fit_scale, fit_single_range, fit_with_prior,
                                        least_squares)

A, B = 2.5, 0.4


def samples(n=500, seed=0, noise=0.0, outliers=0.0, a=A, b=B):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0, 1, n)
    y = a * r + b + rng.normal(0, noise, n)
    bad = rng.random(n) < outliers
    y[bad] += rng.uniform(0.3, 2.0, bad.sum()) * rng.choice([-1, 1], bad.sum())
    return r, np.expm1(y)


def test_exact_samples_recover_the_model():
    r, d = samples()
    fit = fit_scale(r, d)
    assert isinstance(fit, ScaleFit) and fit.ok
    assert fit.a == pytest.approx(A, abs=1e-9) and fit.b == pytest.approx(B, abs=1e-9)
    assert fit.inlier_ratio == 1.0 and fit.num_points == 500 and fit.residual < 1e-9


def test_ransac_ignores_40_percent_gross_outliers_where_least_squares_fails():
    r, d = samples(noise=0.01, outliers=0.4, seed=3)
    fit = fit_scale(r, d, FitConfig(max_depth=1e6))
    assert fit.ok
    assert fit.a == pytest.approx(A, rel=0.02) and fit.b == pytest.approx(B, abs=0.02)
    assert 0.5 < fit.inlier_ratio < 0.7
    a_ls, _ = least_squares(r, np.log1p(d))
    assert abs(a_ls - A) > 5 * abs(fit.a - A)


def test_seeded_fit_is_reproducible():
    r, d = samples(noise=0.02, outliers=0.3, seed=5)
    f1, f2 = fit_scale(r, d, FitConfig(seed=7)), fit_scale(r, d, FitConfig(seed=7))
    assert (f1.a, f1.b) == (f2.a, f2.b)


def test_invalid_samples_are_dropped_before_fitting():
    r, d = samples(n=200)
    d[:50] = np.nan
    d[50:60] = 0.0
    d[60:70] = 500.0  # beyond max_depth
    r[70:80] = np.inf
    fit = fit_scale(r, d, FitConfig(max_depth=100.0))
    assert fit.ok and fit.num_points == 120 and fit.a == pytest.approx(A)


@pytest.mark.parametrize('make, reason', [
    (lambda r, d: (r[:5], d[:5]), 'too few samples'),
    (lambda r, d: (r, np.full_like(d, np.nan)), 'too few samples'),
    (lambda r, d: (np.full_like(r, 0.3), d), 'same at all'),
    (lambda r, d: (r, np.expm1(3.0 - 2.0 * r)), 'positive scale'),  # anti-correlated: not registered
])
def test_failures_say_why(make, reason):
    r, d = samples()
    result = fit_scale(*make(r, d))
    assert isinstance(result, FitFailure) and not result.ok
    assert reason in result.reason


def test_too_few_inliers_is_a_failure():
    rng = np.random.default_rng(0)
    r = rng.uniform(0, 1, 300)
    d = rng.uniform(0.5, 50, 300)  # no relation at all
    result = fit_scale(r, d, FitConfig(min_inlier_ratio=0.5))
    assert not result.ok and 'agree within' in result.reason


def test_iterations_are_bounded_and_config_is_checked():
    r, d = samples(noise=0.01, outliers=0.5, seed=2)
    assert fit_scale(r, d, FitConfig(max_iterations=1, max_depth=1e6, min_inlier_ratio=0.0)).ok
    with pytest.raises(ValueError):
        FitConfig(min_depth=5, max_depth=1)
    with pytest.raises(ValueError):
        FitConfig(inlier_threshold=0)


def test_offset_fit_from_a_single_sample_keeps_the_prior_scale():
    fit = fit_offset([0.4], [np.expm1(A * 0.4 + B)], a=A)
    assert fit.ok and fit.kind == 'offset' and fit.num_points == 1
    assert fit.a == A and fit.b == pytest.approx(B)
    # a wrong prior scale still makes the sampled pixel exact
    fit = fit_offset([0.4], [np.expm1(A * 0.4 + B)], a=2.0)
    assert fit.predict_log(0.4) == pytest.approx(A * 0.4 + B)


def test_log_scale_fit_keeps_the_prior_shape():
    fit = fit_log_scale([0.4], [np.expm1(1.5 * (A * 0.4 + B))], a=A, b=B)
    assert fit.ok and fit.kind == 'scale'
    assert fit.a == pytest.approx(1.5 * A) and fit.b == pytest.approx(1.5 * B)


def test_scale_only_fits_reject_bad_readings():
    assert not fit_offset([0.4], [np.nan], a=A).ok
    assert not fit_offset([0.4], [-1.0], a=A).ok
    assert not fit_offset([], [], a=A).ok
    with pytest.raises(ValueError):
        fit_offset([0.4], [2.0], a=-1.0)


def fit(a, b):
    return ScaleFit(a, b, 1.0, 100, 0.01)


def test_tracker_states_no_fit_ok_held_expired():
    tracker = FitTracker(TrackerConfig(smoothing=0.0, max_hold_age=1.0))
    state = tracker.update(0.0, None, why='no source yet')
    assert state.status == FitStatus.NO_FIT and not state.usable and 'no source yet' in state.message
    state = tracker.update(1.0, fit(A, B))
    assert state.status == FitStatus.OK and state.usable and state.age == 0.0 and state.a == A
    state = tracker.update(1.5, FitFailure('too few samples'))
    assert state.status == FitStatus.HELD and state.usable and state.age == pytest.approx(0.5)
    assert 'too few samples' in state.message and state.a == A
    state = tracker.update(2.2, None, why='source stale')
    assert state.status == FitStatus.EXPIRED and not state.usable and state.age == pytest.approx(1.2)
    assert 'max_hold_age' in state.message and 'source stale' in state.message
    state = tracker.update(2.3, fit(A + 0.5, B))  # after expiry a new fit is taken as it is
    assert state.status == FitStatus.OK and state.a == A + 0.5


def test_tracker_smooths_consistent_fits():
    tracker = FitTracker(TrackerConfig(smoothing=0.5))
    tracker.update(0.0, fit(2.0, 0.4))
    state = tracker.update(0.1, fit(2.2, 0.4))
    assert state.status == FitStatus.OK and state.a == pytest.approx(2.1)


def test_tracker_rejects_an_outlier_fit_then_accepts_a_persistent_change():
    tracker = FitTracker(TrackerConfig(smoothing=0.5, max_jump=0.2, max_rejections=3))
    tracker.update(0.0, fit(2.0, 0.4))
    state = tracker.update(0.1, fit(2.0, 1.4), relative_samples=[0.2, 0.5])
    assert state.status == FitStatus.HELD and 'rejected (1/3)' in state.message and state.b == 0.4
    state = tracker.update(0.2, fit(2.0, 0.45))  # back to normal: counter resets
    assert state.status == FitStatus.OK
    for k in range(2):
        state = tracker.update(0.3 + 0.1 * k, fit(2.0, 1.4))
        assert state.status == FitStatus.HELD
    state = tracker.update(0.5, fit(2.0, 1.4))  # the third in a row: the scene really changed
    assert state.status == FitStatus.OK and state.b == pytest.approx(1.4)


def test_tracker_rejects_large_relative_change_of_scale():
    tracker = FitTracker(TrackerConfig(max_scale_change=0.3, max_jump=10))
    tracker.update(0.0, fit(2.0, 0.4))
    assert tracker.update(0.1, fit(3.0, 0.4)).status == FitStatus.HELD


def test_tracker_resets_when_time_goes_backwards():
    tracker = FitTracker()
    tracker.update(10.0, fit(2.0, 0.4))
    state = tracker.update(5.0, None, why='source stale')
    assert state.status == FitStatus.NO_FIT and 'backwards' in state.message


def test_a_dense_cluster_of_samples_does_not_bias_the_fit():
    # 80 % of the samples on one "wall" at r ≈ 0.5 with model error; the rest spread over the scene
    rng = np.random.default_rng(4)
    r = np.concatenate([rng.normal(0.5, 0.01, 800), rng.uniform(0, 1, 200)])
    y = A * r + B + rng.normal(0, 0.06, r.size)
    fit = fit_scale(r, np.expm1(y), FitConfig(max_depth=1e6))
    assert fit.ok and fit.a == pytest.approx(A, rel=0.1)


def test_prior_fit_moves_the_uncertain_end():
    near, far = 1.0, 10.0
    y0, y1 = np.log1p(near), np.log1p(far)
    # the reading says the far end is 20 m: with a sure near end only the far end moves
    d = np.expm1(y0 + 0.8 * (np.log1p(20.0) - y0))
    fit = fit_with_prior([0.8], [d], near, far, near_sigma=1e-3, far_sigma=1.0, sample_sigma=1e-3)
    assert fit.ok and fit.kind == 'prior'
    assert fit.b == pytest.approx(y0, abs=1e-3) and fit.a + fit.b == pytest.approx(np.log1p(20.0), abs=1e-2)
    # a reading that agrees with the prior changes nothing
    agree = fit_with_prior([0.3], [np.expm1(y0 + 0.3 * (y1 - y0))], near, far)
    assert agree.b == pytest.approx(y0) and agree.a == pytest.approx(y1 - y0)
    # several readings are used together
    many = fit_with_prior([0.0, 1.0], [2.0, 30.0], near, far, sample_sigma=1e-4)
    assert many.b == pytest.approx(np.log1p(2.0), abs=1e-3) and many.num_points == 2
    with pytest.raises(ValueError):
        fit_with_prior([0.5], [3.0], 10.0, 1.0)


@pytest.mark.parametrize('mode, kind', [('prior', 'prior'), ('offset', 'offset'), ('scale', 'scale')])
def test_single_range_modes(mode, kind):
    near, far = np.expm1(B), np.expm1(A + B)  # a prior that happens to be exact
    fit = fit_single_range([0.4], [np.expm1(A * 0.4 + B)], mode, near, far)
    assert fit.ok and fit.kind == kind
    assert fit.a == pytest.approx(A, rel=1e-3) and fit.b == pytest.approx(B, abs=1e-3)
    with pytest.raises(ValueError):
        fit_single_range([0.4], [1.0], 'median', near, far)
