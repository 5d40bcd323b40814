"""Multi-frame single-range fit (range_window, `range.window_frames`): a window of readings at
different relative depths recovers both a and b; window 1 is the per-frame prior fit unchanged."""
import math

import numpy as np
import pytest

from ppd_ros.geometry.scale.range_window import RangePrior, RangeWindow, RangeWindowConfig
from ppd_ros.geometry.scale.fit import fit_with_prior

A, B = 2.2, 0.5
PRIOR = RangePrior(0.8, 8.0)  # deliberately off the truth (expm1(B) = 0.65, expm1(A + B) = 13.9)


def readings(n, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.1, 0.9, n)
    return r, np.expm1(A * r + B + rng.normal(0.0, noise, n))


def test_a_window_of_readings_recovers_a_and_b():
    window = RangeWindow(RangeWindowConfig(frames=20))
    for r, d in zip(*readings(20)):
        window.add(r, d)
    fit = window.fit(PRIOR)
    assert fit.ok and fit.kind == 'window' and fit.num_points == 20
    assert fit.a == pytest.approx(A, rel=0.05) and fit.b == pytest.approx(B, abs=0.03)


def test_outlier_readings_are_ignored_and_old_ones_leave_the_window():
    window = RangeWindow(RangeWindowConfig(frames=10))
    r, d = readings(30, seed=1)
    d[25] *= 3.0  # a beam past a depth edge
    for ri, di in zip(r, d):
        window.add(ri, di)
    fit = window.fit(PRIOR)
    assert window.count == 10 and fit.kind == 'window' and fit.inlier_ratio == pytest.approx(0.9)
    assert fit.a == pytest.approx(A, rel=0.05) and fit.b == pytest.approx(B, abs=0.03)


def test_small_spread_falls_back_to_the_single_frame_prior_fit():
    window = RangeWindow(RangeWindowConfig(frames=10, min_spread=0.2))
    for k in range(5):
        window.add(0.5 + 0.001 * k, math.expm1(A * 0.5 + B))
    fit = window.fit(PRIOR)
    single = fit_with_prior([0.504], [math.expm1(A * 0.5 + B)], PRIOR.near, PRIOR.far)
    assert fit.kind == 'prior' and (fit.a, fit.b) == (single.a, single.b)


def test_window_restarts_on_size_change_and_on_persistent_inconsistency():
    window = RangeWindow(RangeWindowConfig(frames=30, reset_residual=0.3, max_inconsistent=3))
    r, d = readings(10, seed=2)
    for ri, di in zip(r, d):
        window.add(ri, di, key=(64, 48))
        window.fit(PRIOR)
    assert window.add(0.5, math.expm1(A * 0.5 + B), key=(32, 24)) is not None and window.count == 1
    for ri, di in zip(r, d):
        window.add(ri, di, key=(32, 24))
        window.fit(PRIOR)
    reasons = []
    for ri in (0.2, 0.5, 0.8):  # the relative depth's scale frame changed (an aligner reset): y = 1.5·r + 1.5
        reasons.append(window.add(ri, math.expm1(1.5 * ri + 1.5), key=(32, 24)))
        window.fit(PRIOR)
    assert reasons[:2] == [None, None] and 'in a row' in reasons[2] and window.count == 3


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='frames'):
        RangeWindowConfig(frames=0)
    with pytest.raises(ValueError, match='positive depth'):
        RangeWindow().add(0.5, float('nan'))
    assert not RangeWindow().fit(PRIOR).ok


# ---------------------------------------------------------------------------------------- node

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, Range  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.geometry.scale.fit import fit_single_range  # noqa: E402
from ppd_ros.nodes.image_codec import depth_to_image_msg  # noqa: E402
from ppd_ros.nodes.scale_fusion_node import ScaleFusionNode  # noqa: E402

W, H = 32, 24
INTR = Intrinsics(30.0, 30.0, 15.5, 11.5, W, H)


def _header(t):
    return Header(frame_id='camera_optical_frame', stamp=rclpy.time.Time(nanoseconds=int(t * 1e9)).to_msg())


def _feed(node, k):
    """Frame k: a vertical gradient shifted per frame, so the principal point sees another r each
    time (a moving robot); the range reads the true depth there. → the relative value seen."""
    t = 1.0 + 0.1 * k
    rel = (np.linspace(0.0, 1.0, H)[:, None] * np.ones((1, W)) + 0.07 * k - 0.5 * (k // 8)).astype(np.float32)
    r0 = float(rel[int(INTR.cy + 0.5), int(INTR.cx + 0.5)])
    node._on_source(Range(header=_header(t), min_range=0.05, max_range=50.0, range=math.expm1(A * r0 + B)))
    info = CameraInfo(header=_header(t), width=W, height=H, k=INTR.K.ravel().tolist())
    node._on_depth(depth_to_image_msg(rel, _header(t)), info)
    return r0


def _node(ros_context, **params):
    overrides = {'source': 'range', 'range.near': PRIOR.near, 'range.far': PRIOR.far, 'tracker.max_rejections': 1,
                 **params}
    return ScaleFusionNode(context=ros_context, parameter_overrides=[Parameter(k, value=v)
                                                                     for k, v in overrides.items()])


def test_node_with_a_window_publishes_the_true_a_and_b(ros_context):
    node = _node(ros_context, **{'range.window_frames': 10})
    try:
        for k in range(8):
            _feed(node, k)
        scale = node.last_scale
        assert scale.status == scale.STATUS_OK and scale.num_points == 8
        assert scale.a == pytest.approx(A, rel=0.02) and scale.b == pytest.approx(B, abs=0.02)
    finally:
        node.destroy_node()


def test_node_default_is_the_per_frame_prior_fit(ros_context):
    node = _node(ros_context)
    try:
        assert node.params['range.window_frames'] == 1
        for k in range(4):
            r0 = _feed(node, k)
        expected = fit_single_range([r0], [math.expm1(A * r0 + B)], 'prior', PRIOR.near, PRIOR.far)
        scale = node.last_scale
        assert scale.num_points == 1
        assert scale.a == pytest.approx(expected.a, rel=1e-6) and scale.b == pytest.approx(expected.b, rel=1e-6)
        assert abs(scale.a - A) > 0.1  # one reading cannot find the slope: the prior's stays
    finally:
        node.destroy_node()
