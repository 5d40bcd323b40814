"""The batch dimension through the backends: an ONNX file exported for batch N runs N cameras'
frames per run with the depth of batch 1, the compiled path warms up per batch size, and a
backend that cannot batch says so."""
import numpy as np
import pytest
import torch

from ppd_ros.model.estimator import PPDEstimator
from ppd_ros.pipeline.batch import batch_problem

AREA = (64, 48)


def test_compiled_frames_warm_up_and_run_per_batch_size():
    est = PPDEstimator.from_config(device='cpu', seed=3, steps=2, target_area=AREA, compile='on',
                                   compile_backend='eager', defer_warm_up=True)
    est.warm_up(batch=3)
    assert 'torch.compile' in est.acceleration and batch_problem(est) is None
    eager = PPDEstimator.from_config(device='cpu', seed=3, steps=2, target_area=AREA)
    rgbs = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(3)]
    for got, rgb in zip(est.predict_batch(rgbs), rgbs):
        np.testing.assert_allclose(got, eager.predict(rgb), atol=1e-5)


def test_onnx_file_of_batch_n_runs_the_cameras_together(tmp_path):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    from ppd_ros.cli import export as export_cli
    from ppd_ros.model.export import OnnxFrame, export_onnx
    est = PPDEstimator.from_config(device='cpu', seed=5, steps=2, target_area=AREA)
    one = export_onnx(est.dit, est.encoder, est.steps, 48, 64, tmp_path / 'one.onnx', name='tiny')
    assert export_cli.main(['--model', 'random-tiny', '--area', '64x48', '--steps', '2', '--batch', '2',
                            '--out', str(tmp_path / 'two.onnx'), '--check']) == 0
    two = tmp_path / 'two.onnx'  # random-tiny: the weights of est (init_seed 0)
    assert (OnnxFrame(one).batch, OnnxFrame(two).batch) == (1, 2)
    image, noise = torch.rand(3, 3, 48, 64), torch.randn(3, 1, 48, 64)  # 3 frames: one run of 2, one padded
    np.testing.assert_allclose(OnnxFrame(two)(image, noise).numpy(), OnnxFrame(one)(image, noise).numpy(), atol=1e-5)
    batched = PPDEstimator.from_config(device='cpu', seed=5, steps=2, target_area=AREA,
                                       backend='onnxruntime', onnx_path=two)
    single = PPDEstimator.from_config(device='cpu', seed=5, steps=2, target_area=AREA,
                                      backend='onnxruntime', onnx_path=one)
    assert batch_problem(batched) is None
    assert batch_problem(single) == 'onnxruntime-cpu (one.onnx) was exported for batch 1 (ppd-export --batch N)'
