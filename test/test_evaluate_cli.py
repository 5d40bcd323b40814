"""ppd-eval end to end on tiny synthetic scenes and a tiny RGB-D folder."""
import json

import cv2
import numpy as np
import pytest

from ppd_ros.synthetic import render_frame
from ppd_ros.cli import evaluate

TINY = ['--camera-size', '64x48', '--area', '128x96', '--quiet']


def test_oracle_on_two_tiny_scenes(tmp_path, capsys):
    out = tmp_path / 'oracle.json'
    assert evaluate.main(['--baseline', 'oracle', '--scenes', '2', '--scene-seed', '5', *TINY, '--json', str(out),
                          '--resolution', 'inference']) == 0  # scored at the model resolution
    captured = capsys.readouterr()
    text = captured.out
    assert 'AbsRel' in text and 'indoor' in text and 'outdoor' in text and '128x96' in text
    assert text.splitlines()[-1].startswith('ppd-eval: 2 scenes scored in ')   # one summary line last
    assert captured.err == ''                                                  # no notes, no bar
    result = json.loads(out.read_text())
    assert [f['name'] for f in result['frames']] == ['indoor-5', 'outdoor-6']
    s = result['summary']['all']
    assert s['frames'] == 2 and s['abs_rel'] < 1e-6 and s['delta1'] == 1.0
    assert s['edge_chamfer'] < 1e-5 and s['flying_pixel_rate'] == 0.0 and s['latency_ms'] >= 0
    assert all((f['pred_width'], f['pred_height']) == (128, 96) for f in result['frames'])


def test_bilinear_baseline_is_worse_than_the_oracle(tmp_path):
    out = tmp_path / 'bilinear.json'
    assert evaluate.main(['--baseline', 'gt-bilinear', '--scenes', '2', '--kind', 'indoor', *TINY,
                          '--json', str(out)]) == 0
    s = json.loads(out.read_text())['summary']['all']
    assert s['flying_pixel_rate'] > 0.05 and s['edge_chamfer'] > 0.01 and s['abs_rel'] > 0


def test_at_camera_resolution(tmp_path):
    out = tmp_path / 'camera.json'
    assert evaluate.main(['--baseline', 'oracle', '--scenes', '1', *TINY, '--resolution', 'camera',
                          '--upsample', 'edge_aware', '--json', str(out)]) == 0
    frame = json.loads(out.read_text())['frames'][0]
    assert (frame['eval_width'], frame['eval_height']) == (64, 48) and frame['abs_rel'] < 1e-3


def test_predict_only_estimator_gets_the_rgb(capsys):
    class Flat:
        steps = 1
        seen = []

        def predict(self, rgb):
            self.seen.append(rgb.shape)
            return np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)

        def describe(self):
            return {'model': 'flat test estimator'}

    est = Flat()
    assert evaluate.main(['--scenes', '1', *TINY], estimator=est) == 0
    assert est.seen == [(48, 64, 3)] and 'flat test estimator' in capsys.readouterr().out


def test_folder_of_rgbd_pairs(tmp_path, capsys):
    for i, suffix in enumerate(('.npy', '.png')):
        f = render_frame(i, 64, 48, kind='indoor')
        cv2.imwrite(str(tmp_path / f'pair{i}.png'), f.rgb[..., ::-1])
        if suffix == '.npy':
            np.save(tmp_path / f'pair{i}_depth.npy', f.depth)
        else:
            cv2.imwrite(str(tmp_path / f'pair{i}_depth.png'), np.round(f.depth * 1000).astype(np.uint16))
    (tmp_path / 'intrinsics.json').write_text(json.dumps({'fx': 52.5, 'fy': 52.5, 'cx': 31.5, 'cy': 23.5}))
    out = tmp_path / 'folder.json'
    assert evaluate.main(['--baseline', 'oracle', '--folder', str(tmp_path), '--area', '64x48', '-q',
                          '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    assert [f['name'] for f in result['frames']] == ['pair0', 'pair1']
    assert result['summary']['all']['abs_rel'] < 1e-6


@pytest.mark.parametrize('argv, message', [
    ([], 'exactly one estimator'),
    (['--baseline', 'oracle', '--dit', 'x.pth'], 'exactly one estimator'),
    (['--dit', '/nonexistent/ppd.pth', '--encoder', '/nonexistent/depth_anything_v2_vitl.pth'], 'file not found'),
    (['--dit', '/nonexistent/ppd.pth'], 'together'),
    (['--baseline', 'oracle', '--folder', '/nonexistent'], 'not a folder'),
])
def test_clear_errors(argv, message, capsys):
    assert evaluate.main([*argv, '--scenes', '1', *TINY]) == 2
    assert message in capsys.readouterr().err


def test_demo_model_without_weights_is_a_clear_error(monkeypatch, capsys):
    pytest.importorskip('torch')
    from ppd_ros.model import estimator as est_mod

    def missing(*args, **kwargs):
        raise FileNotFoundError('no bundled demo weights')
    monkeypatch.setattr(est_mod.PPDEstimator, 'demo', classmethod(lambda cls, *a, **k: missing()))
    assert evaluate.main(['--model', 'demo', '--scenes', '1', *TINY]) == 2
    assert 'demo weights' in capsys.readouterr().err


def test_real_estimator_interface_runs():
    """A tiny random PPDEstimator: predictions at its own model resolution, scored there."""
    estimator_mod = pytest.importorskip('ppd_ros.model.estimator')
    est = estimator_mod.PPDEstimator.from_config(device='cpu', seed=0, target_area=(128, 96))
    assert evaluate.main(['--scenes', '1', '--camera-size', '64x48', '-q'], estimator=est) == 0


def test_old_spellings_keep_their_meaning_with_one_note_each(tmp_path, capsys):
    """--width/--height, --seed (still the scene seed), --no-progress and --at work for one more
    release; each says once on stderr what replaces it."""
    out = tmp_path / 'old.json'
    assert evaluate.main(['--baseline', 'oracle', '--scenes', '2', '--seed', '5', '--seed', '5',
                          '--width', '64', '--height', '48', '--area', '128x96', '--no-progress',
                          '--at', 'camera', '--json', str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(':')[1].split()[0] for line in err] == ['--seed', '--width', '--height', '--no-progress',
                                                                '--at']
    assert 'use --scene-seed N' in err[0] and 'noise seed' in err[0]
    assert 'use --camera-size WxH' in err[1] and 'use --resolution inference|camera' in err[4]
    result = json.loads(out.read_text())
    assert [f['name'] for f in result['frames']] == ['indoor-5', 'outdoor-6']       # the scene seed
    assert result['resolution'] == 'camera' and result['frames'][0]['eval_width'] == 64


def test_noise_seed_reaches_the_model():
    """--noise-seed is the model's noise seed (default 0) while --seed is still the scene seed."""
    parser = evaluate.build_parser()
    assert parser.parse_args([]).seed == 0
    assert parser.parse_args(['--noise-seed', '7', '--scene-seed', '3']).seed == 7
    args = parser.parse_args(['--seed', '3'])
    assert (args.seed, args.scene_seed) == (0, 3)
