"""PPD with MoGe-2 semantics: parity with the official recording, the moge2.pt format, bad files."""
import json

import numpy as np
import pytest
import torch

from conftest import SHARED
from ppd_dev import parity as parity_tool
from ppd_dev import parity_moge
from ppd_ros.geometry.scale.ransac import fit_line_ransac, recover_metric_depth
from ppd_ros.model import checkpoint
from ppd_ros.model.config import EncoderConfig
from ppd_ros.model.moge import MoGe2, MoGeSemanticEncoder, backbone_config, token_grid

MOGE_FILE = SHARED / 'parity' / 'ppd_official_moge_tiny.pt'


@pytest.fixture(scope='module')
def moge_data():
    if not MOGE_FILE.exists():
        pytest.skip(f'parity vectors not found at {MOGE_FILE}')
    return parity_tool.load_parity_file(MOGE_FILE)


@pytest.fixture(scope='module')
def report(moge_data, tmp_path_factory):
    """One CLI run on the recording with the intrinsics moved by 1e-3: that part must fail and
    every other part pass. Returns (exit status, {check name: printed line})."""
    tampered = dict(moge_data)
    tampered['moge_infer'] = dict(moge_data['moge_infer'], intrinsics=moge_data['moge_infer']['intrinsics'] + 1e-3)
    path = tmp_path_factory.mktemp('parity') / 'tampered.pt'
    torch.save(tampered, path)
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = parity_tool.main([str(path)])
    return status, {line.split()[0]: line for line in out.getvalue().splitlines()}


def _error(line: str) -> float:
    return float(line.split('=')[1].split()[0])


def test_every_part_matches_the_official_recording(report):
    status, lines = report
    assert status == 1 and 'FAIL' in lines['moge_infer.intrinsics']
    failed = [line for name, line in lines.items() if 'FAIL' in line and name != 'moge_infer.intrinsics']
    assert not failed, failed
    for part in ('semantics_forward', 'moge_forward.points', 'moge_forward.normal', 'moge_infer.depth',
                 'moge_infer.mask', 'focal_shift.focal', 'focal_shift.shift', 'focal_shift_synthetic.focal',
                 'dit_forward', 'sampling', 'ransac.clean.metric_depth', 'ransac.clean_negative_slope.inliers'):
        assert lines[part].endswith(')') and ' OK ' in lines[part], lines.get(part)
    assert lines['moge_infer.mask'].endswith('(tol 0)') and lines['sampling'].endswith('(tol 1e-05)')


def test_focal_shift_stops_where_the_released_solver_stops(report):
    """The loose MINPACK stop is reproduced, and it is measurably short of the optimum."""
    _, lines = report
    assert _error(lines['focal_shift.focal']) <= 1e-6
    assert _error(lines['focal_shift.focal_vs_converged']) > 1e-3  # the official stop, not the minimum
    assert _error(lines['focal_shift.converged_solver_focal']) < 1e-5


def test_cli_rejects_an_incomplete_moge_file(moge_data, tmp_path, capsys):
    partial = {k: v for k, v in moge_data.items() if k != 'moge_backbone'}
    path = tmp_path / 'partial.pt'
    torch.save(partial, path)
    assert parity_tool.main([str(path)]) == 2
    assert 'moge_backbone' in capsys.readouterr().err


def tiny_moge(data, width=32, depth=3, heads=2, seed=0) -> MoGe2:
    """A randomly initialised MoGe-2 with the recorded layout and another backbone size."""
    config = json.loads(json.dumps(data['moge_config']))
    config['encoder']['intermediate_layers'] = list(range(depth))
    config['scale_head']['dims'][0] = width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MoGe2(config, EncoderConfig(embed_dim=width, depth=depth, num_heads=heads))
    return model.eval()


def test_moge2_file_round_trip_and_variant_detection(moge_data, tmp_path):
    model = tiny_moge(moge_data, width=64, depth=3, heads=1)  # 64 wide: head count read as 64 // 64
    path = checkpoint.save_moge_file(tmp_path / 'moge2.pt', model)
    encoder = checkpoint.load_encoder(path)
    assert isinstance(encoder, MoGeSemanticEncoder) and encoder.variant == 'moge2'
    assert encoder.config.embed_dim == 64 and encoder.config.depth == 3 and encoder.semantic_dim == 1024
    image = torch.rand(1, 3, 32, 48)
    with torch.inference_mode():
        assert torch.equal(encoder(image), model.semantics(image))
        ours, ref = encoder.moge(image, 24), model(image, 24)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_released_backbone_names_give_the_released_head_count(moge_data):
    state = {'encoder.backbone.cls_token': torch.zeros(1, 1, 1024),
             'encoder.backbone.pos_embed': torch.zeros(1, 1370, 1024),
             'encoder.backbone.patch_embed.proj.weight': torch.zeros(1024, 3, 14, 14),
             'encoder.backbone.blocks.0.mlp.fc1.weight': torch.zeros(4096, 1024),
             'encoder.backbone.blocks.23.mlp.fc1.weight': torch.zeros(4096, 1024)}
    cfg = backbone_config(state, 'dinov2_vitl14')
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.img_size) == (1024, 24, 16, 518)
    assert token_grid(3600, 768, 1024) == (51, 69)


def test_bad_moge_files_give_one_clear_error(moge_data, tmp_path):
    model = tiny_moge(moge_data)
    state = model.state_dict()
    broken = {k: v for k, v in state.items() if not k.startswith('mask_head.output_blocks')}
    path = tmp_path / 'missing.pt'
    torch.save({'model_config': model.config, 'model': broken}, path)
    with pytest.raises(checkpoint.CheckpointError, match=r'missing\.pt: does not match the MoGe-2 model.*missing keys'):
        checkpoint.load_encoder(path, num_heads=2)
    path = tmp_path / 'config.pt'
    torch.save({'model_config': dict(model.config, neck=dict(model.config['neck'], resamplers='pixel_unshuffle')),
                'model': state}, path)
    with pytest.raises(checkpoint.CheckpointError, match=r'config\.pt: unsupported MoGe model_config.*pixel_unshuffle'):
        checkpoint.load_encoder(path, num_heads=2)
    path = tmp_path / 'odd.pt'
    torch.save({'model_config': model.config, 'model': state}, path)
    with pytest.raises(checkpoint.CheckpointError, match=r'head count of a 32-wide'):
        checkpoint.load_encoder(path)


def test_ransac_recovers_an_exact_line_among_gross_outliers():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 2000)
    y = 1.7 * x + 0.2
    outliers = rng.random(2000) < 0.3
    y[outliers] += rng.uniform(1, 5, outliers.sum())
    line = fit_line_ransac(x, y, rng=np.random.RandomState(0))
    assert line.a == pytest.approx(1.7, abs=1e-9) and line.b == pytest.approx(0.2, abs=1e-9)
    assert np.array_equal(line.inliers, ~outliers)
    pred = x.reshape(40, 50).astype(np.float32)
    result = recover_metric_depth(pred, np.expm1(1.7 * pred + 0.2), np.ones_like(pred, bool),
                                  rng=np.random.RandomState(0))
    assert result.branch == 'affine' and np.allclose(result.depth, np.expm1(1.7 * pred + 0.2), rtol=1e-5)
