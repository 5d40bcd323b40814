"""ppd-export and the ONNX backends: the exported frame (encoder + N-step sampler, one graph) runs
in onnxruntime on the CPU within 1e-4 of PyTorch, and the estimator runs it as its backend."""
import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from ppd_ros.cli import export as export_cli  # noqa: E402
from ppd_ros.model.estimator import PPDEstimator  # noqa: E402
from ppd_ros.model.export import ExportError, OnnxFrame, export_onnx  # noqa: E402
from ppd_ros.model.factory import EstimatorBuildError, build_estimator  # noqa: E402

AREA = (96, 64)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    est = PPDEstimator.from_config(device='cpu', seed=11, steps=3, target_area=AREA)
    path = export_onnx(est.dit, est.encoder, est.steps, 64, 96, tmp_path_factory.mktemp('onnx') / 'tiny.onnx',
                       name='tiny')
    return est, path


def test_onnxruntime_matches_pytorch_within_1e_4(exported):
    est, path = exported
    error = export_cli.check_export(path, est, seed=4)
    assert error <= 1e-4
    frame = OnnxFrame(path)
    assert (frame.steps, frame.size, frame.model) == (3, (64, 96), 'tiny')


def test_estimator_runs_the_exported_model_as_its_backend(exported):
    est, path = exported
    fast = PPDEstimator.from_config(device='cpu', seed=11, steps=3, target_area=AREA,
                                    backend='onnxruntime', onnx_path=path)
    assert fast.describe()['acceleration'] == 'onnxruntime-cpu (tiny.onnx)'
    rgb = np.random.default_rng(2).integers(0, 256, (128, 192, 3), dtype=np.uint8)
    assert float(np.abs(fast.predict(rgb) - est.predict(rgb)).max()) <= 1e-4
    # warm starts run the PyTorch sampler (the graph holds the cold-start plan only)
    assert fast.predict(rgb, init_depth=est.predict(rgb), init_strength=0.5).shape == (64, 96)
    with pytest.raises(ValueError, match=r'runs at 96x64, this frame resizes to 80x80'):
        fast.predict(np.zeros((80, 80, 3), np.uint8))
    fast.steps = 4
    with pytest.raises(ValueError, match='runs 3 steps, model steps is 4: export with --steps 4'):
        fast.predict(rgb)


def test_missing_providers_and_files_are_one_clear_line(exported, tmp_path):
    _, path = exported
    with pytest.raises(ExportError, match="needs onnxruntime's TensorrtExecutionProvider"):
        OnnxFrame(path, 'tensorrt')
    with pytest.raises(EstimatorBuildError, match='ONNX model not found'):
        build_estimator('random-tiny', backend='onnxruntime', onnx_path=tmp_path / 'none.onnx')
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not onnx')
    with pytest.raises(ExportError, match='onnxruntime cannot load it'):
        OnnxFrame(bad)


def test_ppd_export_command_writes_and_checks(tmp_path, capsys):
    out = tmp_path / 'm.onnx'
    code = export_cli.main(['--model', 'random-tiny', '--area', '48x32', '--steps', '2',
                            '--out', str(out), '--check'])
    text = capsys.readouterr().out
    assert code == 0, text
    (line,) = text.splitlines()                                    # one summary line
    assert 'random, 48x32, 2 steps, encoder + sampler in one graph' in line
    assert 'check: max |onnxruntime - pytorch| = ' in line
    assert OnnxFrame(out).size == (32, 48)
    assert export_cli.main(['--model', 'random-tiny', '--area', '48x30', '--out', str(out)]) == 2
    assert 'multiples of 16' in capsys.readouterr().err


def test_ppd_export_old_height_width_still_work_with_a_note(tmp_path, capsys):
    out = tmp_path / 'old.onnx'
    assert export_cli.main(['--model', 'random-tiny', '--height', '32', '--width', '48', '--steps', '1',
                            '--out', str(out)]) == 0
    captured = capsys.readouterr()
    assert 'random, 48x32, 1 steps' in captured.out and OnnxFrame(out).size == (32, 48)
    assert captured.err.splitlines() == ['ppd-export: --height is deprecated, use --area WxH',
                                         'ppd-export: --width is deprecated, use --area WxH']
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main(['--model', 'random-tiny', '--height', '32', '--out', str(out)])
    assert exit_info.value.code == 2 and 'go together' in capsys.readouterr().err


def test_an_onnx_file_of_other_weights_is_refused_with_one_line(exported, tmp_path, capsys):
    """Issue 22 item 3: `ppd-depth --dit A --encoder A --backend onnxruntime --onnx B.onnx`, B
    exported from another model of the same size, is refused (it ran B silently); the check is
    in the estimator, so ppd-depth, ppd-bag and depth_node all get it."""
    from ppd_ros.cli import depth as depth_cli
    from ppd_ros.model.estimator import save_estimator
    _, path = exported
    other = save_estimator(tmp_path / 'other.safetensors',
                           PPDEstimator.from_config(device='cpu', steps=3, target_area=AREA, init_seed=1))
    with pytest.raises(EstimatorBuildError, match=r'tiny.onnx: exported from other weights \(ppd_model '
                                                  r"'tiny'\) than the DiT and encoder given \(random\)"):
        build_estimator(dit=other, encoder=other, device='cpu', steps=3, target_area=AREA,
                        backend='onnxruntime', onnx_path=path)
    image = tmp_path / 'in.png'
    cv2.imwrite(str(image), np.zeros((64, 96, 3), np.uint8))
    assert depth_cli.main([str(image), '--out', str(tmp_path / 'out'), '--dit', str(other), '--encoder',
                           str(other), '--steps', '3', '--area', '96x64', '--backend', 'onnxruntime',
                           '--onnx', str(path), '--device', 'cpu']) == depth_cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f'{path}: error: exported from other weights'), err
    # the weights it was exported from run it (the fixture's model is random-tiny's)
    assert build_estimator('random-tiny', device='cpu', steps=3, target_area=AREA, backend='onnxruntime',
                           onnx_path=path).acceleration == 'onnxruntime-cpu (tiny.onnx)'


def test_an_onnx_file_without_the_weights_entry_warns_once_and_runs(exported, tmp_path):
    """Files of an older ppd-export (no ppd_weights entry) still run, with one line saying so."""
    import onnx
    est, path = exported
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != 'ppd_weights']
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    old = tmp_path / 'old.onnx'
    onnx.save(model, str(old))
    lines = []
    fast = PPDEstimator.from_config(device='cpu', seed=11, steps=3, target_area=AREA, backend='onnxruntime',
                                    onnx_path=old, log=lines.append, init_seed=5)  # other weights: unknowable
    assert len(lines) == 1 and 'old.onnx was written by an older ppd-export' in lines[0]
    assert fast.predict(np.zeros((64, 96, 3), np.uint8)).shape == (64, 96)
