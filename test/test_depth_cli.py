"""ppd-depth plumbing: discovery, per-file errors, output formats, video frames, PLY geometry, exit codes.

A fake estimator stands in for the model (deterministic, no torch work), so these tests check the
command line and the writers, not depth quality.
"""
import json

import cv2
import numpy as np
import pytest

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.geometry.scale.depth_scale import near_far_scale, relative_to_metric
from ppd_ros.cli import depth as depth_cli, io


class FakeEstimator:
    """Relative depth at half the input resolution: a left→right ramp from 0.1 to 0.9."""

    def __init__(self, value=None):
        self.steps = 4
        self.value = value
        self.calls = 0

    def infer_size(self, height, width):
        return height // 2, width // 2

    def predict(self, rgb):
        self.calls += 1
        h, w = self.infer_size(*rgb.shape[:2])
        if self.value is not None:
            return np.full((h, w), self.value, np.float32)
        return np.tile(np.linspace(0.1, 0.9, w, dtype=np.float32), (h, 1))

    def describe(self):
        return {'model': 'fake', 'device': 'cpu', 'precision': 'fp32', 'steps': self.steps, 'resolution': None}


def _png(path, width=64, height=48, seed=0):
    rgb = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(path), rgb)
    return rgb


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / 'src'
    (src / 'sub').mkdir(parents=True)
    _png(src / 'a.png', seed=1)
    _png(src / 'sub' / 'b.png', seed=2)
    (src / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\nthis is not really a png')
    (src / 'notes.txt').write_text('hello')
    return src


def test_folder_with_bad_files_writes_good_outputs_and_exits_1(folder, tmp_path, capsys):
    out = tmp_path / 'out'
    fake = FakeEstimator()
    code = depth_cli.main([str(folder), '--out', str(out), '--format', 'color', 'png16', 'npy', '-q'],
                          estimator=fake)
    assert code == depth_cli.EXIT_SOME_FAILED
    assert fake.calls == 2
    for stem in ('a', 'sub/b'):  # by default at the image's size (the model ran at half of it)
        color = cv2.imread(str(out / f'{stem}_depth_color.png'), cv2.IMREAD_UNCHANGED)
        assert color.shape == (48, 64, 3) and color.dtype == np.uint8
        assert color.std() > 0  # the ramp is visible
        npy = np.load(out / f'{stem}_depth.npy')
        assert npy.dtype == np.float32 and npy.shape == (48, 64)
        np.testing.assert_allclose(npy[0, [0, -1]], [0.1, 0.9], atol=1e-6)
        png16 = cv2.imread(str(out / f'{stem}_depth16.png'), cv2.IMREAD_UNCHANGED)
        assert png16.dtype == np.uint16 and png16.min() == 0 and png16.max() == 65535
        np.testing.assert_allclose(io.read_png16(out / f'{stem}_depth16.png'), npy, atol=0.8 / 65535)
        meta = json.loads(io.read_png_text(out / f'{stem}_depth16.png')['ppd_depth'])
        assert meta['min'] == pytest.approx(0.1) and meta['max'] == pytest.approx(0.9)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 2, errors
    assert any(line.startswith(str(folder / 'broken.png')) and 'decode' in line for line in errors)
    assert any(line.startswith(str(folder / 'notes.txt')) and 'unsupported' in line for line in errors)
    assert not (out / 'broken_depth_color.png').exists()


def test_decode_bomb_is_refused_from_its_header_and_the_rest_is_processed(tmp_path, capsys):
    """A 16000×16000 PNG of a few hundred kB: refused with its size before decoding, as the node
    refuses it; the good image beside it is still processed."""
    from ppd_dev.hardening_bench import bomb_png
    src = tmp_path / 'src'
    src.mkdir()
    _png(src / 'good.png')
    (src / 'bomb.png').write_bytes(bomb_png(16000))
    fake = FakeEstimator()
    code = depth_cli.main([str(src), '--out', str(tmp_path / 'out'), '-q'], estimator=fake)
    assert code == depth_cli.EXIT_SOME_FAILED and fake.calls == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(str(src / 'bomb.png'))
    assert 'png image 16000x16000 has 256.0 MP, more than the limit of 33.2 MP' in errors[0]


def test_all_good_exits_0_and_default_format_is_color(tmp_path):
    _png(tmp_path / 'one.jpg')
    out = tmp_path / 'out'
    assert depth_cli.main([str(tmp_path / 'one.jpg'), '--out', str(out)], estimator=FakeEstimator()) == 0
    assert sorted(p.name for p in out.iterdir()) == ['one_depth_color.png']


def test_size_input_resizes_to_the_image(tmp_path):
    _png(tmp_path / 'one.png', width=80, height=60)
    out = tmp_path / 'out'
    assert depth_cli.main([str(tmp_path / 'one.png'), '--out', str(out), '--format', 'npy', '--resolution', 'camera'],
                          estimator=FakeEstimator()) == 0
    depth = np.load(out / 'one_depth.npy')
    assert depth.shape == (60, 80)
    assert 0.09 < depth.min() < depth.max() < 0.91


def test_video_is_processed_frame_by_frame(tmp_path):
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 5, (64, 48))
    assert writer.isOpened()
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    out = tmp_path / 'out'
    fake = FakeEstimator()
    assert depth_cli.main([str(video), '--out', str(out), '--format', 'npy'], estimator=fake) == 0
    assert fake.calls == 3
    frames = sorted(p.name for p in (out / 'clip').iterdir())
    assert frames == [f'clip_{i:06d}_depth.npy' for i in range(3)]
    # the image model's video gets an mp4 preview too, at the video's rate and the camera's size
    capture = cv2.VideoCapture(str(out / 'clip_depth.mp4'))
    assert capture.isOpened() and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5)
    pictures = []
    while True:
        ok, picture = capture.read()
        if not ok:
            break
        pictures.append(picture)
    capture.release()
    assert len(pictures) == 3 and pictures[0].shape == (48, 64, 3) and pictures[0].std() > 0
    # unless asked for none
    quiet = tmp_path / 'quiet'
    assert depth_cli.main([str(video), '--out', str(quiet), '--format', 'npy', '--no-preview'],
                          estimator=FakeEstimator()) == 0
    assert sorted(p.name for p in quiet.iterdir()) == ['clip']


def test_ply_header_count_and_geometry(tmp_path):
    _png(tmp_path / 'cam.png', width=64, height=48)
    out = tmp_path / 'out'
    fx, fy, cx, cy = 50.0, 40.0, 31.5, 23.5
    code = depth_cli.main([str(tmp_path / 'cam.png'), '--out', str(out), '--format', 'npy', '--ply',
                           '--fx', str(fx), '--fy', str(fy), '--cx', str(cx), '--cy', str(cy),
                           '--near', '1', '--far', '9', '--resolution', 'inference'],
                          estimator=FakeEstimator(value=0.5))
    assert code == 0
    data = (out / 'cam_points.ply').read_bytes()
    header = data[:data.index(b'end_header\n')].decode().splitlines()
    assert header[:2] == ['ply', 'format binary_little_endian 1.0']
    assert 'element vertex 768' in header  # 32 × 24 depth pixels, all valid
    assert [line for line in header if line.startswith('property')] == [
        'property float x', 'property float y', 'property float z',
        'property uchar red', 'property uchar green', 'property uchar blue']
    vertices = io.read_ply(out / 'cam_points.ply')
    assert len(data) == data.index(b'end_header\n') + 11 + 768 * 15

    # r = 0.5 everywhere → one metric depth; intrinsics scaled by 1/2 with the pixel-centre rule.
    a, b = near_far_scale(1.0, 9.0)
    z = float(relative_to_metric(np.array([0.5]), a, b)[0])
    assert z == pytest.approx(np.expm1((np.log(2.0) + np.log(10.0)) / 2))  # geometric mean of 2 and 10, −1
    intr = Intrinsics(fx, fy, cx, cy, 64, 48).scaled(0.5, 0.5)
    u, v = np.meshgrid(np.arange(32), np.arange(24))
    np.testing.assert_allclose(vertices['z'], z, rtol=1e-6)
    np.testing.assert_allclose(vertices['x'], ((u - intr.cx) / intr.fx * z).ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vertices['y'], ((v - intr.cy) / intr.fy * z).ravel(), rtol=1e-5, atol=1e-6)
    assert vertices['x'][0] < 0 < vertices['x'][31]  # x right, y down
    assert vertices['y'][0] < 0 < vertices['y'][-1]


def test_ply_from_hfov_at_input_size(tmp_path):
    _png(tmp_path / 'cam.png', width=64, height=48)
    out = tmp_path / 'out'
    assert depth_cli.main([str(tmp_path / 'cam.png'), '--out', str(out), '--ply', '--hfov', '90',
                           '--resolution', 'camera', '--format', 'npy'], estimator=FakeEstimator(value=0.0)) == 0
    vertices = io.read_ply(out / 'cam_points.ply')
    assert len(vertices) == 64 * 48
    np.testing.assert_allclose(vertices['z'], 0.5, rtol=1e-6)  # r = 0 → --near default 0.5 m
    # 90° field of view: the outermost pixel edges are at x = ±z.
    assert vertices['x'].max() == pytest.approx(0.5 * (63 - 31.5) / 32, rel=1e-5)


def test_missing_weights_is_one_line_and_exit_2(tmp_path, capsys):
    _png(tmp_path / 'one.png')
    code = depth_cli.main([str(tmp_path / 'one.png'), '--out', str(tmp_path / 'out'),
                           '--dit', str(tmp_path / 'nope.pth'), '--encoder', str(tmp_path / 'nope2.pth')])
    assert code == depth_cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'nope.pth' in err[0] and 'not found' in err[0]


@pytest.mark.parametrize('argv', [
    ['--dit', 'x.pth'],                       # encoder missing
    ['--ply'],                                 # no camera
    ['--ply', '--hfov', '60', '--fx', '500'],  # both
    ['--fx', '500'],                           # camera without --ply
    ['--format', 'jpeg'],
    ['--steps', '0'],
])
def test_usage_errors_exit_2(tmp_path, argv):
    _png(tmp_path / 'one.png')
    with pytest.raises(SystemExit) as exc:
        depth_cli.main([str(tmp_path / 'one.png'), '--out', str(tmp_path / 'out'), *argv], estimator=FakeEstimator())
    assert exc.value.code == 2


def test_nothing_to_process_exit_2(tmp_path):
    (tmp_path / 'empty').mkdir()
    assert depth_cli.main([str(tmp_path / 'empty'), '--out', str(tmp_path / 'out')],
                          estimator=FakeEstimator()) == depth_cli.EXIT_USAGE


def test_discovery_is_sorted_recursive_and_skips_output_folder(tmp_path):
    for name in ('b.png', 'a.jpg', 'z/c.png', 'out/old_depth_color.png', '.hidden.png'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    items = io.discover_inputs([tmp_path], exclude=tmp_path / 'out')
    assert [i.name for i in items] == ['a', 'b', 'z/c']
    twice = io.discover_inputs([tmp_path / 'b.png', tmp_path / 'z' / 'c.png', tmp_path / 'z' / 'c.png'])
    assert [i.name for i in twice] == ['b', 'c', 'c_2']
    missing = io.discover_inputs([tmp_path / 'nope.png'])
    assert missing[0].kind == 'unsupported' and 'no such file' in missing[0].problem


def test_png16_constant_map_and_roundtrip(tmp_path):
    io.write_png16(tmp_path / 'c.png', np.full((4, 5), 0.3, np.float32))
    np.testing.assert_allclose(io.read_png16(tmp_path / 'c.png'), 0.3, atol=1e-7)
    depth = np.random.default_rng(0).normal(size=(7, 9)).astype(np.float32)
    lo, hi = io.write_png16(tmp_path / 'r.png', depth)
    assert (lo, hi) == (float(depth.min()), float(depth.max()))
    np.testing.assert_allclose(io.read_png16(tmp_path / 'r.png'), depth, atol=(hi - lo) / 65535 / 2 + 1e-6)


def test_random_tiny_model_end_to_end(tmp_path):
    """The real estimator (tiny, random weights) through the real model-building path."""
    _png(tmp_path / 'one.png', width=80, height=60)
    out = tmp_path / 'out'
    code = depth_cli.main([str(tmp_path / 'one.png'), '--out', str(out), '--model', 'random-tiny',
                           '--area', '64x48', '--device', 'cpu', '--steps', '2', '--seed', '3',
                           '--format', 'npy', 'color', '--resolution', 'camera'])
    assert code == 0
    depth = np.load(out / 'one_depth.npy')
    assert depth.shape == (60, 80) and np.isfinite(depth).all() and depth.std() > 0
    again = tmp_path / 'again'
    depth_cli.main([str(tmp_path / 'one.png'), '--out', str(again), '--model', 'random-tiny', '--area', '64x48',
                    '--device', 'cpu', '--steps', '2', '--seed', '3', '--format', 'npy', '--resolution', 'camera'])
    np.testing.assert_array_equal(np.load(again / 'one_depth.npy'), depth)  # --seed makes it repeatable


def test_missing_demo_weights_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    estimator_module = pytest.importorskip('ppd_ros.model.estimator')
    monkeypatch.setattr(estimator_module, 'WEIGHTS_DIR', tmp_path / 'no_weights_here')
    _png(tmp_path / 'one.png')
    code = depth_cli.main([str(tmp_path / 'one.png'), '--out', str(tmp_path / 'out'), '--device', 'cpu'])
    assert code == depth_cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'no_weights_here' in err[0] and 'demo weights' in err[0] and '--dit' in err[0]
    assert not (tmp_path / 'out' / 'one_depth_color.png').exists()


def test_bad_device_is_exit_2(tmp_path, capsys):
    _png(tmp_path / 'one.png')
    code = depth_cli.main([str(tmp_path / 'one.png'), '--out', str(tmp_path / 'out'), '--model', 'random-tiny',
                           '--device', 'nonsense-device'])
    assert code == depth_cli.EXIT_USAGE
    assert 'nonsense-device' in capsys.readouterr().err
