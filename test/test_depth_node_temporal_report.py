"""The temporal report tool (depth_node's temporal.mode measured offline) on a short sequence."""
import json

import numpy as np

from ppd_ros.synthetic import camera_sequence
from ppd_dev import temporal_report
from ppd_dev.temporal_report import STAND_IN_LABEL, StandInEstimator, report, run_mode


def test_modes_behave_as_in_the_node():
    frames = camera_sequence(1, 3, 48, 32, kind='indoor', motion='smooth')

    class Recorder:
        steps = 4

        def __init__(self):
            self.calls = []

        def predict(self, rgb, init_depth=None, init_strength=None):
            self.calls.append((init_depth is not None, init_strength))
            return np.full((32, 48), 0.1 * len(self.calls), np.float32) + np.linspace(0, 1, 48, dtype=np.float32)

    recorder = Recorder()
    run_mode(recorder, frames, 'warm_start', 0.3)
    assert recorder.calls == [(False, None), (True, 0.3), (True, 0.3)]
    recorder = Recorder()
    aligned, _ = run_mode(recorder, frames, 'align')
    np.testing.assert_allclose(aligned[2], aligned[0], atol=1e-4)  # the per-frame shift is removed


def test_align_reduces_sequence_flicker_of_a_jittering_estimator():
    frames = camera_sequence(0, 6, 64, 48, kind='indoor', motion='smooth')
    results = {r.mode: r for r in report(StandInEstimator(frames, seed=0), frames, [0.5])}
    assert set(results) == {'off', 'align', 'warm_start 0.5'}
    assert results['align'].flicker_sequence < results['off'].flicker_sequence
    for r in results.values():
        assert 0 < r.abs_rel_frame < 0.2 and np.isfinite(r.flicker_frame)


def test_command_line_labels_the_stand_in(tmp_path, capsys):
    out = tmp_path / 'report.json'
    assert temporal_report.main(['--estimator', 'stand-in', '--speed-estimator', 'random-tiny',
                                 '--frames', '3', '--width', '48', '--height', '32', '--strengths', '0.5',
                                 '--speed-frames', '1', '--json', str(out)]) == 0
    text = capsys.readouterr().out
    assert STAND_IN_LABEL in text and 'random-tiny' in text
    numbers = json.loads(out.read_text())
    assert numbers['accuracy_estimator'] == STAND_IN_LABEL
    assert {r['mode'] for r in numbers['results']} == {'off', 'align', 'warm_start 0.5'}
    assert set(numbers['speed_ms']) == {'cold', 'warm_start 0.5'}


def test_warm_start_never_starts_from_a_non_finite_frame():
    """As depth_node (its frame pipeline): a prediction with NaN is not used as the next start."""
    frames = camera_sequence(1, 4, 48, 32, kind='indoor', motion='smooth')

    class Recorder:
        def __init__(self):
            self.calls = []

        def predict(self, rgb, init_depth=None, init_strength=None):
            self.calls.append((init_depth is not None, init_strength))
            depth = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (32, 1))
            if len(self.calls) == 2:
                depth[0, 0] = np.nan
            return depth

    recorder = Recorder()
    run_mode(recorder, frames, 'warm_start', 0.3)
    assert recorder.calls == [(False, None), (True, 0.3), (False, None), (True, 0.3)]
