"""ppd-bag over many bags: in this process, on --workers 2, and on Ray actors (one local Ray with 2
CPUs for the module, started only if Ray is installed). Three small bags, one corrupt: the good
ones give outputs byte-identical to single-bag runs (mcap and sqlite3, the image and the video
model), the corrupt one is reported in the table and the JSON summary; a worker or actor killed
mid-bag is retried to an identical output; a rerun after an interruption skips the bags that were
done and starts the partial one over. Bags are tiny (3-4 frames of 64x48)."""
import json
import os
import signal
from pathlib import Path

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('rosbags')

from ppd_ros.nodes import bag  # noqa: E402
from ppd_ros.nodes.bag_convert import ModelSpec  # noqa: E402
from ppd_ros.synthetic import camera_sequence  # noqa: E402
from test_bag import read_bag, write_camera_bag  # noqa: E402

DEMO = ['--model', 'demo', '--area', '64x48', '-q']
PPVD = ['--model', 'random-ppvd', '--steps', '1', '-q']


def same_bytes(a: Path, b: Path) -> bool:
    """Two output bags are the same file for file, byte for byte."""
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes()
                                                              for n in names)


def make_bags(folder: Path, frames) -> Path:
    """a (3 frames, mcap), b (4 frames, sqlite3) and c (an mcap cut after 200 bytes)."""
    folder.mkdir(parents=True)
    write_camera_bag(folder / 'a', frames[:3])
    write_camera_bag(folder / 'b', frames[:4], storage='sqlite3')
    corrupt = folder / 'c'
    corrupt.mkdir()
    (corrupt / 'metadata.yaml').write_text((folder / 'a' / 'metadata.yaml').read_text())
    mcap = next((folder / 'a').glob('*.mcap'))
    (corrupt / mcap.name).write_bytes(mcap.read_bytes()[:200])
    return folder


def single_runs(bags: Path, out: Path, flags) -> Path:
    """Today's one-bag ppd-bag, in this process, on a and b."""
    for name in 'ab':
        assert bag.main([str(bags / name), str(out / name)] + flags) == 0
    return out


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    return make_bags(tmp_path_factory.mktemp('fleet') / 'bags', camera_sequence(5, 4, width=64, height=48))


@pytest.fixture(scope='module')
def refs(bags):
    return single_runs(bags, bags.parent / 'refs', DEMO)


def summary(out: Path) -> dict:
    return {Path(row['bag']).name: row for row in json.loads((out / 'ppd-bag-summary.json').read_text())['bags']}


@pytest.mark.parametrize('workers', ['1', '2'])
def test_three_bags_one_corrupt_match_single_runs(bags, refs, tmp_path, capsys, workers):
    out = tmp_path / 'out'
    assert bag.main([str(bags), str(out), '--workers', workers] + DEMO) == 2  # a bag failed
    assert same_bytes(refs / 'a', out / 'a') and same_bytes(refs / 'b', out / 'b')
    assert not (out / 'c').exists()
    err = capsys.readouterr().err
    assert 'summary: 3 bag(s): 2 ok, 1 failed' in err
    assert [line.split()[:3] for line in err.splitlines() if line.startswith('  ')] == [
        ['bag', 'frames', 'status'], ['a', '3/3', 'ok'], ['b', '4/4', 'ok'], ['c', '0', 'failed']]
    rows = summary(out)
    assert (rows['a']['status'], rows['a']['frames'], rows['b']['frames']) == ('ok', 3, 4)
    assert rows['c']['status'] == 'failed' and 'cannot open the bag' in rows['c']['error']
    if workers == '2':
        assert rows['a']['worker'] != rows['b']['worker'] or rows['a']['worker'].startswith('pid')


class KillOnce(ModelSpec):
    """The demo model, in a worker that kills itself (SIGKILL) at its second frame — once for the
    whole run (the marker file says it happened)."""

    def __init__(self, marker):
        super().__init__('demo', area=(64, 48))
        object.__setattr__(self, 'marker', str(marker))

    def build(self):
        estimator = super().build()
        predict, calls = estimator.predict, [0]

        def dying(rgb):
            calls[0] += 1
            if calls[0] == 2:
                try:
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
                    os.kill(os.getpid(), signal.SIGKILL)
                except FileExistsError:
                    pass
            return predict(rgb)
        estimator.predict = dying
        return estimator


def test_a_worker_killed_mid_bag_is_retried_to_an_identical_output(bags, refs, tmp_path, capsys):
    out = tmp_path / 'out'
    code = bag.main([str(bags / '[ab]'), str(out), '--workers', '2'] + DEMO, spec=KillOnce(tmp_path / 'killed'))
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / 'killed').exists() and 'the worker died (attempt 1 of 3); retrying the bag' in err
    assert same_bytes(refs / 'a', out / 'a') and same_bytes(refs / 'b', out / 'b')
    assert sorted(row['attempts'] for row in summary(out).values()) == [1, 2]


def test_rerun_after_an_interruption_skips_the_bags_that_were_done(bags, refs, tmp_path, capsys, monkeypatch):
    estimator = ModelSpec('demo', area=(64, 48)).build()
    predict, calls = estimator.predict, [0]

    def interrupted_in_b(rgb):  # a has 3 frames: Ctrl-C at b's second
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return predict(rgb)
    monkeypatch.setattr(estimator, 'predict', interrupted_in_b)
    out = tmp_path / 'out'
    assert bag.main([str(bags / 'a'), str(bags / 'b'), str(out)] + DEMO, estimator=estimator) == 130
    rows = summary(out)
    assert [rows['a']['status'], rows['b']['status']] == ['ok', 'interrupted']
    assert len(read_bag(out / 'b.partial' / 'b')['/depth/image']) == 1  # closed, readable
    capsys.readouterr()
    monkeypatch.undo()  # the same model, no more interruptions
    assert bag.main([str(bags / 'a'), str(bags / 'b'), str(out)] + DEMO, estimator=estimator) == 0
    err = capsys.readouterr().err
    assert '1 to do, 1 complete already (skipped)' in err and 'b: ' in err and 'starting over' in err
    assert [summary(out)[n]['status'] for n in 'ab'] == ['skipped', 'ok']
    assert same_bytes(refs / 'a', out / 'a') and same_bytes(refs / 'b', out / 'b')
    assert not (out / 'b.partial').exists()
    assert bag.main([str(bags / 'a'), str(bags / 'b'), str(out), '--overwrite'] + DEMO,
                    estimator=estimator) == 0  # redoes all
    assert [summary(out)[n]['status'] for n in 'ab'] == ['ok', 'ok']


def test_the_video_model_keeps_a_bag_on_one_worker(tmp_path):
    """PPVD (random weights): each bag is one clip on one worker, as in a single run."""
    bags = tmp_path / 'bags'
    bags.mkdir()
    frames = camera_sequence(7, 6, width=64, height=48)
    write_camera_bag(bags / 'v1', frames)
    write_camera_bag(bags / 'v2', frames[::-1][:5], storage='sqlite3')
    for name in ('v1', 'v2'):
        assert bag.main([str(bags / name), str(tmp_path / 'refs' / name)] + PPVD) == 0
    assert bag.main([str(bags), str(tmp_path / 'out'), '--workers', '2'] + PPVD) == 0
    assert same_bytes(tmp_path / 'refs' / 'v1', tmp_path / 'out' / 'v1')
    assert same_bytes(tmp_path / 'refs' / 'v2', tmp_path / 'out' / 'v2')


def test_inputs_and_outputs_are_checked_before_any_model_loads(bags, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ModelSpec, 'build', lambda self: pytest.fail('the model was loaded'))
    (tmp_path / 'file').write_text('x')
    assert bag.main([str(bags), str(tmp_path / 'file')] + DEMO) == 2
    assert 'is a file' in capsys.readouterr().err
    assert bag.main([str(bags / 'a'), str(bags / 'b'), str(bags)] + DEMO) == 2
    assert 'both an input and an output' in capsys.readouterr().err
    twin = tmp_path / 'twin' / 'a'
    twin.parent.mkdir()
    twin.symlink_to(bags / 'b')
    assert bag.main([str(bags / 'a'), str(twin), str(tmp_path / 'o')] + DEMO) == 2
    assert 'distinct names' in capsys.readouterr().err
    assert bag.main([str(tmp_path / 'nothing*'), str(tmp_path / 'o')] + DEMO) == 2
    assert 'no bags match' in capsys.readouterr().err
    # only the corrupt bag and a missing one: both reported, no model loaded
    assert bag.main([str(bags / 'c'), str(tmp_path / 'missing'), str(tmp_path / 'o')] + DEMO) == 2
    rows = summary(tmp_path / 'o')
    assert rows['c']['status'] == rows['missing']['status'] == 'failed'


def test_ray_without_ray_says_how_to_install_it(bags, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__('sys').modules, 'ray', None)
    assert bag.main([str(bags / 'a'), str(tmp_path / 'o'), '--ray', 'auto'] + DEMO) == 2
    assert "--ray needs Ray: pip install 'ppd_ros[fleet]'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- Ray

@pytest.fixture(scope='module')
def ray_session():
    """One local Ray (2 CPUs) for this module's Ray tests; ppd-bag --ray auto joins it."""
    ray = pytest.importorskip('ray')
    import ray.cloudpickle
    ray.cloudpickle.register_pickle_by_value(__import__(__name__))  # KillOnce, for the actors
    ray.init(num_cpus=2, include_dashboard=False, logging_level='WARNING')
    yield ray
    ray.shutdown()


def test_ray_three_bags_one_corrupt_match_single_runs_and_a_rerun_skips(ray_session, bags, refs, tmp_path, capsys):
    out = tmp_path / 'out'
    assert bag.main([str(bags), str(out), '--ray', 'auto', '--workers', '2'] + DEMO) == 2
    err = capsys.readouterr().err
    assert 'Ray: 2 actor(s), 1 CPU each' in err and 'summary: 3 bag(s): 2 ok, 1 failed' in err
    assert same_bytes(refs / 'a', out / 'a') and same_bytes(refs / 'b', out / 'b')
    rows = summary(out)
    assert rows['c']['status'] == 'failed' and 'cannot open the bag' in rows['c']['error']
    assert ray_session.is_initialized()  # joined, not shut down
    assert bag.main([str(bags), str(out), '--ray', 'auto', '--workers', '2'] + DEMO) == 2
    assert '0 to do, 2 complete already (skipped), 1 unusable' in capsys.readouterr().err


def test_ray_an_actor_killed_mid_bag_is_retried_to_an_identical_output(ray_session, bags, refs, tmp_path, capsys):
    out = tmp_path / 'out'
    code = bag.main([str(bags / 'a'), str(bags / 'b'), str(out), '--ray', 'auto', '--workers', '2'] + DEMO,
                    spec=KillOnce(tmp_path / 'killed'))
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / 'killed').exists() and 'the actor died; retrying the bag (attempt 2 of 3)' in err
    assert same_bytes(refs / 'a', out / 'a') and same_bytes(refs / 'b', out / 'b')
    assert sorted(row['attempts'] for row in summary(out).values()) == [1, 2]


def test_sigterm_to_a_run_on_workers_closes_readable_partial_bags(tmp_path):
    """`timeout`, `kill`, a cancelled job: the driver gets SIGTERM, each worker stops before its
    next frame and closes its partial bag; exit 143, and the summary says what was done."""
    import subprocess
    import sys
    import time
    frames = camera_sequence(5, 20, width=128, height=96)
    for name in 'xyz':
        write_camera_bag(tmp_path / 'bags' / name, frames)
    out = tmp_path / 'out'
    run = subprocess.Popen([sys.executable, '-m', 'ppd_ros.nodes.bag', str(tmp_path / 'bags'), str(out),
                            '--workers', '2', '-q'], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob('*.partial/*/*.mcap')) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    err = run.communicate(timeout=120)[1]
    assert run.returncode == 143, err
    rows = summary(out)
    assert {'interrupted', 'not started'} & {row['status'] for row in rows.values()}, err
    for name, row in rows.items():
        if row['status'] == 'interrupted':
            assert f'{name}: interrupted (SIGTERM)' in err
            partial = read_bag(out / f'{name}.partial' / name)  # closed, readable
            assert len(partial.get('/depth/image', [])) == row['frames']


def test_progress_counts_frames_per_bag_and_estimates_the_time_left():
    from ppd_ros.nodes.bag_jobs import OK, BagResult, Job
    from ppd_ros.nodes.bag_progress import FleetProgress
    now = [0.0]
    jobs = [Job(0, Path('run1'), Path('o/run1')), Job(1, Path('run2'), Path('o/run2'))]
    progress = FleetProgress(jobs, {0: 10, 1: 30}, quiet=True, clock=lambda: now[0])
    progress.handle(('start', 0, 'node-a'))
    progress.handle(('start', 1, 'node-b'))
    now[0] = 10.0
    progress.handle(('frames', 0, 10))
    progress.handle(('frames', 1, 10))
    progress.finished(BagResult('run1', 'o/run1', OK, 10, 10), 0)
    assert progress.line() == 'frames 20/40 (50 %), 2.00 frame/s, about 10 s left; running: run2 10/30'
    progress.handle(('start', 1, 'node-c'))  # run2 retried: its frames count again from 0
    assert progress.frames_done() == 10 and progress.attempts[1] == 2
