"""ppd_ros.model.factory: the one way command lines and nodes build an estimator from options."""
import argparse

import pytest

from ppd_ros.model import estimator as estimator_module
from ppd_ros.model.factory import EstimatorBuildError, add_model_arguments, build_estimator


def test_random_tiny_takes_the_options():
    est = build_estimator('random-tiny', device='cpu', steps=2, seed=3, target_area=(64, 48))
    assert (est.steps, est.seed, est.target_area, est.precision, est.device.type) == (2, 3, (64, 48), 'fp32', 'cpu')
    default = build_estimator('random-tiny', device='cpu')
    assert default.steps == 4 and default.seed is None  # None keeps the model's defaults


def test_random_models_of_every_size_share_one_table():
    from ppd_ros.model.config import SIZES, model_configs
    from ppd_ros.model.factory import MODELS
    assert MODELS == ('demo',) + tuple(f'random-{size}' for size in SIZES) + ('random-ppvd',)
    small = build_estimator('random-small', device='cpu')
    assert (small.dit.config, small.encoder.config) == model_configs('small')
    with pytest.raises(EstimatorBuildError, match='random-large'):
        build_estimator('random-huge', device='cpu')


def test_missing_checkpoint_names_the_file_before_loading_anything(tmp_path):
    dit = tmp_path / 'ppd.pth'
    dit.write_bytes(b'not read: the encoder is checked first')
    with pytest.raises(EstimatorBuildError) as error:
        build_estimator(dit=dit, encoder=tmp_path / 'vitl.pth', device='cpu')
    err = error.value
    assert err.path == tmp_path / 'vitl.pth' and 'checkpoint not found' in err.reason and 'encoder' in err.reason
    assert 'README, "Released weights"' in err.reason  # not a released file name: the README's table
    assert str(err) == f'{tmp_path / "vitl.pth"}: {err.reason}'
    assert err.line('prog') == f'{tmp_path / "vitl.pth"}: error: {err.reason}'


def test_corrupt_checkpoint_is_one_line_attributed_to_its_file(tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'')
    with pytest.raises(EstimatorBuildError) as error:
        build_estimator(dit=bad, encoder=bad, device='cpu')
    assert error.value.path == bad and error.value.reason.startswith('checkpoint file is empty; ')
    assert error.value.reason.endswith('README, "Released weights"') and '\n' not in str(error.value)


def test_missing_demo_weights_point_to_the_folder_and_the_released_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(estimator_module, 'WEIGHTS_DIR', tmp_path / 'no_weights_here')
    with pytest.raises(EstimatorBuildError) as error:
        build_estimator('demo', device='cpu')
    assert error.value.path == tmp_path / 'no_weights_here'
    assert 'demo weights' in error.value.reason and '--dit' in error.value.reason
    assert 'model.dit_path' in error.value.reason and 'README, "Released weights"' in error.value.reason


def test_a_missing_released_file_names_its_page(tmp_path):
    with pytest.raises(EstimatorBuildError) as error:
        build_estimator(dit=tmp_path / 'ppd.pth', encoder=tmp_path / 'depth_anything_v2_vitl.pth', device='cpu')
    assert error.value.path == tmp_path / 'ppd.pth'
    assert error.value.reason == ('checkpoint not found (DiT: file not found; ppd.pth is published at '
                                  'https://huggingface.co/gangweix/Pixel-Perfect-Depth)')


def test_messages_speak_the_callers_names(tmp_path):
    with pytest.raises(EstimatorBuildError, match='^--dit and --encoder must be given together'):
        build_estimator(dit=tmp_path / 'ppd.pth', names='flags')
    with pytest.raises(EstimatorBuildError, match=r'^model\.compile on is for model\.backend torch'):
        build_estimator('random-tiny', compile='on', backend='onnxruntime', onnx_path='m.onnx', names='node')


@pytest.mark.parametrize('kwargs, text', [
    (dict(model='large'), "unknown model 'large'"),
    (dict(encoder='vitl.pth'), 'dit and encoder must be given together, or neither'),
    (dict(dit='ppd.pth'), 'dit and encoder must be given together, or neither: ppd.pth needs its semantics '
                          'encoder depth_anything_v2_vitl.pth'),
    (dict(encoder='moge2.pt'), 'moge2.pt is the semantics encoder of ppd_moge.pth'),
    (dict(backend='tensorrt'), 'onnx_path is needed by backend tensorrt'),
    (dict(dit='a.pth', encoder='b.pth', backend='onnx'), "backend must be one of torch, onnxruntime, tensorrt"),
    (dict(model='random-tiny', device='nonsense-device'), 'nonsense-device'),
    (dict(model='random-tiny', device='cpu', precision='int8'), 'precision'),
    (dict(model='random-tiny', device='cpu', steps=0), 'steps'),
])
def test_bad_options_are_one_line_errors(kwargs, text):
    with pytest.raises(EstimatorBuildError) as error:
        build_estimator(**kwargs)
    assert text in str(error.value) and '\n' not in str(error.value) and error.value.path is None
    assert error.value.line('prog').startswith('prog: error: ')


def test_model_arguments_defaults_match_build_estimator():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args([])
    assert (args.dit, args.encoder, args.device, args.precision) == (None, None, 'auto', 'fp32')
    args = parser.parse_args(['--dit', 'a.pth', '--encoder', 'b.pth', '--device', 'cpu', '--precision', 'bf16'])
    assert (str(args.dit), str(args.encoder), args.device, args.precision) == ('a.pth', 'b.pth', 'cpu', 'bf16')


def test_depth_node_default_runs_each_model_at_its_own_resolution():
    """[0, 0] (the default) must not force 1024x768 onto the demo model trained at a small size."""
    from ppd_ros.nodes.depth_node_params import PARAMETERS as DEPTH_NODE_PARAMETERS, model_options
    params = {spec.name: spec.default for spec in DEPTH_NODE_PARAMETERS}
    assert model_options(params)['target_area'] is None
    params['model.target_area'] = [512, 384]
    assert model_options(params)['target_area'] == (512, 384)


def _demo_file():
    found = sorted(estimator_module.WEIGHTS_DIR.glob('demo_*.safetensors'))
    if not found:
        pytest.skip('no bundled demo weights')
    return found[0]


def test_demo_weights_given_as_dit_and_encoder_run_at_the_models_own_area():
    """Issue 22 item 14: the bundled demo weights passed as --dit/--encoder ran at 1024x768 (62 s
    instead of 5 s per image); a single model file brings its own area and steps, as --model demo."""
    demo = build_estimator('demo', device='cpu')
    given = build_estimator(dit=_demo_file(), encoder=_demo_file(), device='cpu')
    assert given.target_area == demo.target_area == (128, 96)
    assert (given.steps, given.name) == (demo.steps, demo.name)
    assert build_estimator(dit=_demo_file(), encoder=_demo_file(), device='cpu', target_area=(64, 48),
                           steps=2).target_area == (64, 48)  # given values still win


def test_the_demo_model_says_once_that_it_knows_only_the_synthetic_world():
    """Issue 22 item 15: on real images the demo model's depth is meaningless and nothing said so.
    Built for real frames (ppd-depth, ppd-bag, depth_node) it says so once, through the caller's
    log, with where the released weights are; not for the synthetic world (ppd-demo, ppd-eval)."""
    from ppd_ros.model.factory import SYNTHETIC_DEMO_NOTE
    from ppd_ros.model.released import RELEASED_WEIGHTS
    from ppd_ros.nodes.depth_node_params import PARAMETERS as DEPTH_NODE_PARAMETERS, model_options
    assert 'synthetic world only' in SYNTHETIC_DEMO_NOTE and RELEASED_WEIGHTS['ppd.pth'].page in SYNTHETIC_DEMO_NOTE
    assert RELEASED_WEIGHTS['depth_anything_v2_vitl.pth'].page in SYNTHETIC_DEMO_NOTE
    _demo_file()
    for kwargs in (dict(model='demo'), dict(dit=_demo_file(), encoder=_demo_file())):
        lines = []
        build_estimator(device='cpu', log=lines.append, **kwargs)
        assert lines == [SYNTHETIC_DEMO_NOTE]
    lines = []
    build_estimator('demo', device='cpu', log=lines.append, synthetic_input=True)
    build_estimator('random-tiny', device='cpu', log=lines.append)
    assert lines == []
    params = {spec.name: spec.default for spec in DEPTH_NODE_PARAMETERS}  # depth_node's own call
    options = model_options(params, log=lines.append)
    options['device'] = 'cpu'
    build_estimator(**options)
    assert lines == [SYNTHETIC_DEMO_NOTE]
