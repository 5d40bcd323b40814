"""PPDEstimator behaviour on a tiny random model (CPU): seeds, batching, warm start, precision,
single-file save/load, checkpoint loading and input checks."""
import warnings

import numpy as np
import pytest
import torch

from ppd_ros.model import estimator as estimator_module
from ppd_ros.model.checkpoint import CheckpointError
from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_ros.model.estimator import PPDEstimator, load_from_file, save_estimator

AREA = (96, 64)  # model runs at 64 x 96 for 4:3 input: fast on CPU


@pytest.fixture(scope='module')
def est():
    return PPDEstimator.from_config(device='cpu', seed=7, target_area=AREA)


def _frame(seed, h=120, w=160):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class CountCalls:
    def __init__(self, module):
        self.timesteps = []
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.timesteps.append(int(args[2].flatten()[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_predict_shape_and_seed_determinism(est):
    frame = _frame(0)
    depth = est.predict(frame)
    assert depth.shape == est.infer_size(120, 160) == (64, 96)
    assert depth.dtype == np.float32 and np.isfinite(depth).all()
    assert np.array_equal(depth, est.predict(frame))           # same seed → same depth
    other = PPDEstimator(est.dit, est.encoder, 'cpu', seed=8, target_area=AREA)
    assert not np.allclose(depth, other.predict(frame))         # another seed → other noise
    unseeded = PPDEstimator(est.dit, est.encoder, 'cpu', seed=None, target_area=AREA)
    assert not np.allclose(unseeded.predict(frame), unseeded.predict(frame))


def test_output_depends_on_image(est):
    assert not np.allclose(est.predict(_frame(0)), est.predict(_frame(1)))


def test_batch_equals_single(est):
    frames = [_frame(0), _frame(1, 90, 200), _frame(2)]  # two sizes: grouped into two batches
    singles = [est.predict(f) for f in frames]
    with CountCalls(est.dit) as calls:
        batch = est.predict_batch(frames)
    assert len(calls.timesteps) == 2 * est.steps                # one forward per step per size
    for a, b in zip(batch, singles):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert est.predict_batch([]) == []


def test_steps_are_settable(est):
    frame = _frame(3)
    try:
        est.steps = 2
        with CountCalls(est.dit) as calls:
            est.predict(frame)
        assert calls.timesteps == [1000, 500]
        for bad in (0, 1.5, '4', True):
            with pytest.raises(ValueError):
                est.steps = bad
    finally:
        est.steps = 4


def test_warm_start(est):
    frame = _frame(4)
    cold = est.predict(frame)
    init = np.full(cold.shape, 0.3, np.float32)
    with CountCalls(est.dit) as calls:
        warm = est.predict(frame, init_depth=init, init_strength=0.5)
    assert calls.timesteps == [500, 249]                        # only the remaining steps
    assert warm.shape == cold.shape and np.isfinite(warm).all()
    assert not np.allclose(warm, cold)
    # strength 1 re-runs the whole schedule: identical to a cold start (init weight 0 at t = T).
    np.testing.assert_allclose(est.predict(frame, init_depth=init, init_strength=1.0), cold, atol=1e-6)
    # default strength when only init_depth is given
    with CountCalls(est.dit) as calls:
        est.predict(frame, init_depth=init)
    assert len(calls.timesteps) == 2
    # The lower the strength, the closer the result stays to the init (less re-generated).
    d1 = np.abs(est.predict(frame, init_depth=init, init_strength=0.25) - init).mean()
    d4 = np.abs(cold - init).mean()
    assert d1 < d4
    with pytest.raises(ValueError, match='model resolution'):
        est.predict(frame, init_depth=np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match='non-finite'):
        est.predict(frame, init_depth=np.full(cold.shape, np.nan, np.float32))
    with pytest.raises(ValueError, match='without init_depth'):
        est.predict(frame, init_strength=0.5)
    with pytest.raises(ValueError, match='init_strength'):
        est.predict(frame, init_depth=init, init_strength=0.0)


def test_bf16_autocast_runs_on_cpu(est):
    frame = _frame(5)
    ref = est.predict(frame)
    bf16 = PPDEstimator(est.dit, est.encoder, 'cpu', precision='bf16', seed=7, target_area=AREA)
    out = bf16.predict(frame)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert bf16.describe()['precision'] == 'bf16'
    assert np.abs(out - ref).mean() < 0.1 * np.abs(ref).mean() + 0.05


def test_fp16_on_cpu_falls_back_with_warning(est):
    with pytest.warns(RuntimeWarning, match='fp32'):
        fp16 = PPDEstimator(est.dit, est.encoder, 'cpu', precision='fp16', target_area=AREA)
    assert fp16.precision == 'fp32'
    with pytest.raises(ValueError, match='precision'):
        PPDEstimator(est.dit, est.encoder, 'cpu', precision='int8')


def test_describe_and_device(est):
    info = est.describe()
    assert {'model', 'device', 'precision', 'steps', 'resolution'} <= set(info)
    assert info['device'] == 'cpu' and info['steps'] == 4 and info['resolution'] == '96x64'
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA'):
            PPDEstimator.from_config(device='cuda')
    assert PPDEstimator.from_config(device='auto', target_area=AREA).device.type in ('cpu', 'cuda', 'mps')


def test_input_checks(est):
    with pytest.raises(ValueError, match='uint8'):
        est.predict(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match='H x W x 3'):
        est.predict(np.zeros((48, 64, 4), np.uint8))
    with pytest.raises(ValueError, match='does not match'):
        PPDEstimator.from_config(DiTConfig.tiny(semantic_dim=32), EncoderConfig.tiny())


def test_image_scaling_matches_released_conversion():
    """Released image2tensor: (uint8 / 255.) in float64, then float32 — same as ours in float32."""
    values = np.arange(256, dtype=np.uint8)
    released = np.asarray(values / 255.).astype(np.float32)
    ours = (torch.from_numpy(values).float() / 255.0).numpy()
    assert np.array_equal(released, ours)


def test_save_load_round_trip_and_demo(est, tmp_path, monkeypatch):
    path = save_estimator(tmp_path / 'demo_tiny.safetensors', est, name='tiny')
    loaded = load_from_file(path, device='cpu', seed=7)
    assert loaded.target_area == AREA and loaded.steps == est.steps  # from the file's metadata
    frame = _frame(6)
    # Same weights; memory alignment may pick other SIMD paths: equal up to float rounding.
    np.testing.assert_allclose(loaded.predict(frame), est.predict(frame), atol=1e-5)
    assert loaded.describe()['model'].startswith('tiny')

    monkeypatch.setattr(estimator_module, 'WEIGHTS_DIR', tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='no bundled demo weights'):
        PPDEstimator.demo()
    monkeypatch.setattr(estimator_module, 'WEIGHTS_DIR', tmp_path)
    demo = PPDEstimator.demo('tiny', device='cpu', seed=7)
    np.testing.assert_allclose(demo.predict(frame), est.predict(frame), atol=1e-5)
    with pytest.raises(FileNotFoundError, match='demo_other'):
        PPDEstimator.demo('other')


def test_from_checkpoints_released_layouts(est, tmp_path):
    dit_path, enc_path = tmp_path / 'ppd.pth', tmp_path / 'depth_anything_v2_tiny.pth'
    torch.save({'dit.' + k: v for k, v in est.dit.state_dict().items()}, dit_path)
    encoder_state = dict(est.encoder.state_dict())
    encoder_state['depth_head.projects.0.weight'] = torch.zeros(4, 64, 1, 1)
    torch.save(encoder_state, enc_path)
    loaded = PPDEstimator.from_checkpoints(dit_path, enc_path, device='cpu', seed=7,
                                           target_area=AREA, encoder_heads=2)
    frame = _frame(7)
    np.testing.assert_allclose(loaded.predict(frame), est.predict(frame), atol=1e-5)
    # The two paths go together: the encoder never defaults to the DiT file ...
    with pytest.raises(ValueError, match='dit_path and encoder_path must be given together'):
        PPDEstimator.from_checkpoints(dit_path, device='cpu')
    # ... which is given twice when it holds both models; a DiT-only file cannot provide the encoder.
    with pytest.raises(CheckpointError, match='no DINOv2 encoder weights'):
        PPDEstimator.from_checkpoints(dit_path, dit_path, device='cpu')


def test_default_warm_strength_constant():
    assert 0 < estimator_module.DEFAULT_WARM_STRENGTH <= 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        PPDEstimator.from_config(device='cpu', target_area=AREA)  # no warnings on the happy path


def test_cached_constants_are_usable_for_training_after_inference():
    """Caches filled under inference_mode (predict) must not break a later autograd pass on the
    same modules (fine-tuning, or evaluation inside a training loop)."""
    est = PPDEstimator.from_config(device='cpu', seed=0, target_area=AREA)
    est.predict(_frame(8))
    dit, encoder = est.dit.train().requires_grad_(True), est.encoder
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        semantics = encoder(image)
    x = torch.cat((torch.randn(1, 1, 64, 96), image - 0.5), dim=1)
    loss = dit(x, semantics, torch.tensor([500])).square().mean()
    loss.backward()
    assert dit.x_embedder.proj.weight.grad is not None
