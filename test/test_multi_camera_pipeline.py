"""Several cameras through one model (pipeline.batch, pipeline.scheduler): each camera's depth
equals a single-camera pipeline's, frames of one model resolution run as one batch, a bad frame
fails only its camera, and the scheduler serves every camera."""
from __future__ import annotations

import numpy as np
import pytest

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.rectify import Calibration
from ppd_ros.model.estimator import PPDEstimator
from ppd_ros.pipeline import DEFAULTS, FrameError, FrameInput, FramePipeline
from ppd_ros.pipeline.batch import CameraFrame, batch_problem, process_cameras
from ppd_ros.pipeline.scheduler import CameraSlots


@pytest.fixture(scope='module')
def estimator():
    return PPDEstimator.demo(device='cpu', seed=0, target_area=(64, 48))


def frames(height, width, n, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


def calibration(height, width, distorted=False):
    k = Intrinsics(0.8 * width, 0.8 * width, width / 2, height / 2, width, height).K
    d = [0.1, -0.05, 0.0, 0.0, 0.0] if distorted else [0.0] * 5
    p = np.hstack([k, np.zeros((3, 1))])
    return Calibration.of(width, height, 'plumb_bob', d, k.ravel(), np.eye(3).ravel(), p.ravel())


CAMERAS = {  # name: (height, width, temporal mode, distorted)
    'front': (48, 64, 'warm_start', True),
    'left': (48, 64, 'align', False),
    'right': (80, 48, 'off', False),   # portrait: a model size of its own
    'rear': (48, 64, 'off', False),
}


def test_each_camera_equals_its_single_camera_pipeline(estimator):
    settings = {cam: DEFAULTS.replace(temporal_mode=mode) for cam, (_, _, mode, _) in CAMERAS.items()}
    batched = {cam: FramePipeline(estimator, settings[cam]) for cam in CAMERAS}
    single = {cam: FramePipeline(estimator, settings[cam]) for cam in CAMERAS}
    clips = {cam: frames(h, w, 3, i) for i, (cam, (h, w, _, _)) in enumerate(CAMERAS.items())}
    batches = []
    for i in range(3):
        inputs = {cam: CameraFrame(FrameInput(clips[cam][i], 1000 + i, calibration(h, w, dist), context=(cam, i)))
                  for cam, (h, w, _, dist) in CAMERAS.items()}
        out = process_cameras(batched, inputs, on_batch=lambda n, size: batches.append((n, size)))
        for cam, item in inputs.items():
            expected = single[cam].process(item.frame)[0]
            got, = out[cam]
            assert got.context == (cam, i)
            np.testing.assert_allclose(got.relative, expected.relative, atol=1e-5, equal_nan=True)
            np.testing.assert_allclose(got.metric, expected.metric, rtol=1e-5, atol=1e-5, equal_nan=True)
            assert got.scale == expected.scale and got.rectified == expected.rectified
    # the 48x64 cameras share a model size: the cold ones run as one batch, the warm start apart
    # once it has a previous depth; the portrait camera forms a group of its own
    assert batches[:2] == [(3, (48, 64)), (1, estimator.infer_size(80, 48))]
    assert sorted(batches[2:5]) == [(1, (48, 64)), (1, estimator.infer_size(80, 48)), (2, (48, 64))]


def test_a_bad_frame_fails_only_its_camera(estimator):
    pipelines = {cam: FramePipeline(estimator) for cam in ('a', 'b', 'c')}
    good = frames(48, 64, 1, 0)[0]
    inputs = {'a': CameraFrame(FrameInput(good, 1)),
              'b': CameraFrame(FrameInput(good, 1, calibration(40, 64))),     # CameraInfo of another size
              'c': CameraFrame(FrameInput(good[..., 0], 1))}                 # not RGB
    out = process_cameras(pipelines, inputs)
    assert isinstance(out['b'], FrameError) and 'CameraInfo is 64x40' in str(out['b'])
    assert isinstance(out['c'], FrameError)
    assert np.isfinite(out['a'][0].relative).any()


def test_a_failing_batch_is_run_again_frame_by_frame(estimator):
    class Picky:
        """predict_batch fails on a frame whose first pixel is 0, and on any batch holding one."""
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return getattr(estimator, name)

        def predict_batch(self, rgbs, inits=None, strength=None):
            self.calls.append(len(rgbs))
            if any(rgb[0, 0, 0] == 0 for rgb in rgbs):
                raise RuntimeError('bad frame')
            return estimator.predict_batch(rgbs, inits, strength)

    picky = Picky()
    pipelines = {cam: FramePipeline(estimator) for cam in 'abc'}
    good = frames(48, 64, 1, 0)[0].copy()
    good[0, 0, 0] = 1
    bad = good.copy()
    bad[0, 0, 0] = 0
    out = process_cameras(pipelines, {'a': CameraFrame(FrameInput(good, 1)), 'b': CameraFrame(FrameInput(bad, 1)),
                                      'c': CameraFrame(FrameInput(good, 1))}, estimator=picky)
    assert picky.calls == [3, 1, 1, 1]
    assert isinstance(out['b'], RuntimeError) and len(out['a']) == len(out['c']) == 1


def test_the_video_model_and_fakes_run_one_after_another():
    class Video:
        is_video = True
    assert 'video' in batch_problem(Video())
    assert 'predict_batch' in batch_problem(object())


def test_slots_keep_the_latest_frame_per_camera_and_count_drops():
    slots = CameraSlots(['a', 'b', 'c'], clock=iter(range(100)).__next__)
    assert slots.submit('a', 1) and slots.submit('b', 1)
    assert not slots.submit('a', 2)                        # frame 1 of a replaced: one drop
    taken = slots.take(timeout=0)
    assert [(cam, item) for cam, item, _ in taken] == [('a', 2), ('b', 1)]
    assert slots.stats('a')['dropped'] == 1 and slots.stats('b')['dropped'] == 0
    assert slots.take(timeout=0) == []
    with pytest.raises(KeyError):
        slots.submit('nobody', 1)


def test_round_robin_serves_every_camera_under_overload():
    slots = CameraSlots([f'cam{i}' for i in range(5)])
    served = {f'cam{i}': 0 for i in range(5)}
    for _ in range(10):  # every camera always has a frame; only 2 fit per model call
        for cam in served:
            slots.submit(cam, 'frame')
        for cam, _, _ in slots.take(max_batch=2, timeout=0):
            served[cam] += 1
    assert set(served.values()) == {4}
    assert all(slots.stats(cam)['max_wait'] >= 0 for cam in served)


def test_stop_wakes_a_waiting_take():
    import threading
    slots = CameraSlots(['a'])
    got = []
    thread = threading.Thread(target=lambda: got.append(slots.take(timeout=10)))
    thread.start()
    slots.stop()
    thread.join(2)
    assert got == [[]] and not slots.submit('a', 1)


def test_moge2_passes_of_several_cameras_run_as_one_batch_with_the_single_camera_result():
    from test_moge_metric import _tiny_dit, _tiny_moge
    from ppd_ros.model.moge import MoGeSemanticEncoder
    moge = PPDEstimator(_tiny_dit(64), MoGeSemanticEncoder(_tiny_moge()), 'cpu', steps=2, seed=0,
                        target_area=(64, 48))
    names = ('a', 'b', 'c')
    batched = {cam: FramePipeline(moge) for cam in names}
    single = {cam: FramePipeline(moge) for cam in names}
    calls = []
    for i in range(2):
        inputs = {cam: CameraFrame(FrameInput(frames(48, 64, 2, k)[i], 10 + i, calibration(48, 64)))
                  for k, cam in enumerate(names)}
        out = process_cameras(batched, inputs, on_batch=lambda n, what: calls.append((n, what)))
        for cam, item in inputs.items():
            expected, got = single[cam].process(item.frame)[0], out[cam][0]
            assert got.scale.source == expected.scale.source == 'model'
            np.testing.assert_allclose(got.relative, expected.relative, atol=1e-5, equal_nan=True)
            # random MoGe-2 weights see a far plane (~1000 m, fx ~ 90 000 px): its focal/shift
            # recovery is ill-conditioned there and turns the batch's float32 rounding (~1e-7) into
            # up to ~1e-4 relative in the metres (measured 7e-5); real weights see real geometry
            assert (got.scale.a, got.scale.b) == pytest.approx((expected.scale.a, expected.scale.b), rel=5e-4, abs=1e-6)
            np.testing.assert_allclose(got.metric, expected.metric, rtol=5e-4, equal_nan=True)
    assert calls.count((3, 'metric')) == 2 and calls.count((3, (48, 64))) == 2


def test_convert_cameras_runs_every_frame_of_a_bag_in_order(estimator):
    from ppd_ros.pipeline.batch import convert_cameras
    clips = {'a': frames(48, 64, 3, 1), 'b': frames(48, 64, 2, 2)}
    order = [('a', 0), ('b', 0), ('a', 1), ('a', 2), ('b', 1)]  # as the messages of a bag come
    settings = DEFAULTS.replace(temporal_mode='warm_start')
    batched = {cam: FramePipeline(estimator, settings) for cam in clips}
    single = {cam: FramePipeline(estimator, settings) for cam in clips}
    out = list(convert_cameras(batched, ((cam, CameraFrame(FrameInput(clips[cam][i], 10 + i, context=i), False))
                                         for cam, i in order)))
    assert [(cam, depth.context) for cam, depth in out] == order
    for cam, depth in out:
        expected = single[cam].process(FrameInput(clips[cam][depth.context], 10 + depth.context), want_metric=False)[0]
        np.testing.assert_allclose(depth.relative, expected.relative, atol=1e-5)


def test_a_camera_that_changes_size_regroups_and_the_others_go_on(estimator):
    settings = DEFAULTS.replace(temporal_mode='warm_start')
    pipelines = {cam: FramePipeline(estimator, settings) for cam in 'ab'}
    calls = []
    wide, tall = frames(48, 64, 3, 0), frames(80, 48, 1, 1)
    for i, a_frame in enumerate([wide[0], wide[1], tall[0]]):
        out = process_cameras(pipelines, {'a': CameraFrame(FrameInput(a_frame, i), False),
                                          'b': CameraFrame(FrameInput(wide[i], i), False)},
                              on_batch=lambda n, what: calls.append((n, what)))
        assert out['a'][0].relative.shape == a_frame.shape[:2] and out['b'][0].relative.shape == (48, 64)
    # frame 0: both cold, one batch; frame 1: both warm, one batch; frame 2: a restarts cold at its new size
    assert calls[:2] == [(2, (48, 64)), (2, (48, 64))]
    assert sorted(calls[2:]) == sorted([(1, (48, 64)), (1, estimator.infer_size(80, 48))])
    assert pipelines['b'].temporal.previous is not None and pipelines['a'].temporal.size == (80, 48)
