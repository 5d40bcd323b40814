"""Metric depth from the camera alone: the model-scale fit, both model variants through the real
loaders, ``PPDEstimator.metric_geometry`` and ``ppd-depth --metric`` (tiny random weights)."""
import cv2
import numpy as np
import pytest
import torch

from ppd_dev.bench_metric import sensible_random_heads
from ppd_ros import synthetic
from ppd_ros.cli import depth as depth_cli, io
from ppd_ros.geometry.scale.depth_scale import relative_to_metric
from ppd_ros.geometry.scale.model_scale import ModelGeometry, ModelScale, oracle_fit
from ppd_ros.geometry.scale.ransac import recover_metric_depth
from ppd_ros.model import checkpoint
from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_ros.model.dit import SPDiT
from ppd_ros.model.factory import EstimatorBuildError, build_estimator
from ppd_ros.model.moge import MoGe2, model_config
from ppd_ros.model.vit import SemanticEncoder

AREA = (64, 48)


def abs_rel(depth, gt, valid):
    ok = valid & np.isfinite(depth)
    assert ok.sum() > 0.9 * valid.sum()
    return float(np.mean(np.abs(depth[ok] - gt[ok]) / gt[ok]))


@pytest.mark.parametrize('kind, seed', [('indoor', 3), ('outdoor', 4)])
def test_model_scale_with_ground_truth_is_as_good_as_the_oracle(kind, seed):
    """MoGe-2's metric depth replaced by the ground truth: the robust, masked fit gives the scene's
    scale as well as least squares on all valid pixels (AbsRel within 1.1×)."""
    frame = synthetic.render_frame(seed, 128, 96, kind=kind)
    valid = frame.valid & np.isfinite(frame.depth)
    rng = np.random.default_rng(seed)
    # a PPD-like relative depth: affine in log(d + 1), smooth bias, pixel noise, 5 % gross errors
    relative = (np.log1p(np.where(valid, frame.depth, 50.0)) - 0.3) / 1.7
    yy, xx = np.mgrid[0:96, 0:128] / 96.0
    relative = relative + 0.02 * np.sin(3 * xx + 2 * yy) + rng.normal(0, 0.01, relative.shape)
    gross = rng.random(relative.shape) < 0.05
    relative[gross] += rng.uniform(-0.5, 0.5, gross.sum())
    relative = relative.astype(np.float32)

    geometry = ModelGeometry(np.where(valid, frame.depth, np.inf).astype(np.float32), valid, frame.intrinsics)
    scale = ModelScale()
    state = scale.update(0.0, relative, geometry)
    assert state.usable
    ours = scale.metric(relative, state)
    assert np.isnan(ours[~valid]).all()  # invalid (sky) pixels are NaN
    oracle = oracle_fit(relative, frame.depth, valid)
    oracle_rel = abs_rel(relative_to_metric(relative, oracle.a, oracle.b), frame.depth, valid)
    ours_rel = abs_rel(ours, frame.depth, valid)
    assert ours_rel <= 1.1 * oracle_rel, (ours_rel, oracle_rel)
    released = recover_metric_depth(relative, np.where(valid, frame.depth, 0), valid,
                                     rng=np.random.RandomState(0)).depth
    assert abs_rel(released, frame.depth, valid) < 2 * oracle_rel  # the authors' RANSAC: same ballpark


def _tiny_moge(dim_out: int = 64) -> MoGe2:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MoGe2(model_config(dim_out=dim_out, widths=(16, 16, 8, 8, 8), backbone_width=64,
                                   intermediate_layers=2, num_tokens_range=(24, 48)), EncoderConfig.tiny())
    return sensible_random_heads(model).eval()


def _tiny_dit(semantic_dim: int) -> SPDiT:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        dit = SPDiT(DiTConfig.tiny(semantic_dim=semantic_dim))
        dit.reset_parameters(zero_output=False)
    return dit.eval()


@pytest.fixture(scope='module')
def released_files(tmp_path_factory):
    """Tiny files in the released layouts: ppd_moge.pth + moge2.pt, ppd.pth + depth_anything_v2.pth."""
    root = tmp_path_factory.mktemp('weights')
    moge_dit, da2_dit = _tiny_dit(64), _tiny_dit(64)
    torch.save({'dit.' + k: v for k, v in moge_dit.state_dict().items()}, root / 'ppd_moge.pth')
    checkpoint.save_moge_file(root / 'moge2.pt', _tiny_moge())
    torch.save({'dit.' + k: v for k, v in da2_dit.state_dict().items()}, root / 'ppd.pth')
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        torch.save(SemanticEncoder(EncoderConfig.tiny()).state_dict(), root / 'depth_anything_v2_vits.pth')
    return root


def test_both_variants_load_from_two_paths_and_only_moge2_gives_metres(released_files):
    moge = build_estimator(dit=released_files / 'ppd_moge.pth', encoder=released_files / 'moge2.pt',
                           device='cpu', steps=2, seed=0, target_area=AREA)
    da2 = build_estimator(dit=released_files / 'ppd.pth', encoder=released_files / 'depth_anything_v2_vits.pth',
                          device='cpu', steps=2, seed=0, target_area=AREA)
    assert (moge.variant, moge.has_metric_model) == ('moge2', True)
    assert (da2.variant, da2.has_metric_model) == ('da2', False)
    assert 'moge2 semantics' in moge.describe()['model']
    rgb = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    for estimator in (moge, da2):
        depth = estimator.predict(rgb)
        assert depth.shape == estimator.infer_size(60, 80) and np.isfinite(depth).all()
    geometry = moge.metric_geometry(rgb)
    h, w = moge.infer_size(60, 80)
    assert geometry.depth.shape == (h, w) and geometry.valid.dtype == bool and geometry.valid.any()
    assert (geometry.intrinsics.width, geometry.intrinsics.height) == (w, h)
    assert geometry.intrinsics.cx == pytest.approx(w / 2 - 0.5)  # MoGe's centre (0.5) in ROS pixels
    assert np.all(geometry.depth[geometry.valid] > 0)
    with pytest.raises(ValueError, match='needs MoGe-2 weights'):
        da2.metric_geometry(rgb)


def test_a_moge2_file_given_as_the_dit_is_a_clear_error(released_files):
    with pytest.raises(EstimatorBuildError, match='moge2.pt: contains no SP-DiT weights'):
        build_estimator(dit=released_files / 'moge2.pt', encoder=released_files / 'moge2.pt', device='cpu')


def test_ppd_depth_metric_writes_metres_millimetres_and_a_metric_cloud(released_files, tmp_path):
    image = tmp_path / 'scene.png'
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    out = tmp_path / 'out'
    code = depth_cli.main([str(image), '--out', str(out), '--metric', '--dit', str(released_files / 'ppd_moge.pth'),
                           '--encoder', str(released_files / 'moge2.pt'), '--device', 'cpu', '--steps', '2',
                           '--seed', '0', '--area', '64x48', '-q'])
    assert code == 0
    metres = np.load(out / 'scene_depth.npy')
    assert metres.shape == (48, 64) and np.nanmin(metres) > 0
    mm = cv2.imread(str(out / 'scene_depth16.png'), cv2.IMREAD_UNCHANGED)
    finite = np.isfinite(metres)
    np.testing.assert_array_equal(mm[finite], np.clip(np.rint(metres[finite] * 1000), 0, 65535).astype(np.uint16))
    assert (mm[~finite] == 0).all()
    assert '"unit": "mm"' in io.read_png_text(out / 'scene_depth16.png')['ppd_depth']
    cloud = io.read_ply(out / 'scene_points.ply')
    assert len(cloud) == finite.sum()
    np.testing.assert_allclose(np.sort(cloud['z']), np.sort(metres[finite]), rtol=1e-6)


def test_ppd_depth_metric_needs_moge2_weights(released_files, tmp_path, capsys):
    image = tmp_path / 'scene.png'
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    code = depth_cli.main([str(image), '--out', str(tmp_path / 'o'), '--metric', '--dit',
                           str(released_files / 'ppd.pth'), '--encoder',
                           str(released_files / 'depth_anything_v2_vits.pth'), '--device', 'cpu', '-q'])
    assert code == 2 and '--metric needs MoGe-2 weights' in capsys.readouterr().err


def test_ppd_eval_runs_the_moge2_variant(released_files, tmp_path, capsys):
    from ppd_ros.cli import evaluate
    code = evaluate.main(['--dit', str(released_files / 'ppd_moge.pth'), '--encoder', str(released_files / 'moge2.pt'),
                          '--scenes', '1', '--width', '64', '--height', '48', '--area', '64x48', '--steps', '1',
                          '--device', 'cpu', '--no-progress', '--json', str(tmp_path / 'r.json')])
    assert code == 0
    assert 'moge2 semantics' in (tmp_path / 'r.json').read_text()


def test_ppd_depth_metric_with_a_non_moge_model_is_refused_before_the_model_loads(released_files, tmp_path,
                                                                                  capsys, monkeypatch):
    """Issue 22 item 13: the refusal came after the model loaded (9 s); it is now told from the
    options and the encoder file's header (factory.metric_model_problem)."""
    from ppd_ros.model.factory import metric_model_problem

    def no_model(*args, **kwargs):
        raise AssertionError('the model was loaded before --metric was checked')

    monkeypatch.setattr(depth_cli, 'build_estimator', no_model)
    image = tmp_path / 'scene.png'
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    da2 = ['--dit', str(released_files / 'ppd.pth'), '--encoder', str(released_files / 'depth_anything_v2_vits.pth')]
    for model, reason in (([], 'the demo model has no metric depth'),
                          (['--model', 'random-tiny'], 'the random-tiny model has no metric depth'),
                          (da2, 'depth_anything_v2_vits.pth is not a MoGe-2 encoder (moge2.pt is published at')):
        assert depth_cli.main([str(image), '--out', str(tmp_path / 'o'), '--metric', '-q'] + model) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('ppd-depth: error: --metric needs MoGe-2 weights '
                                                   '(--dit ppd_moge.pth --encoder moge2.pt); ' + reason), err
    assert metric_model_problem('demo', released_files / 'ppd_moge.pth', released_files / 'moge2.pt') is None
    assert metric_model_problem('demo', names='node', option="metric.source 'model'").startswith(
        "metric.source 'model' needs MoGe-2 weights (model.dit_path ppd_moge.pth model.encoder_path moge2.pt)")
