"""One frame (encoder once + N DiT steps) is ONE graph: torch.compile(fullgraph=True) traces it
with no graph break and no host sync, and the compiled frame matches eager within 1e-5 (fp32).

The cheap ``eager`` and ``aot_eager`` backends still enforce fullgraph (dynamo raises at the first
break or data-dependent Python branch) and ``aot_eager`` also runs the graph through AOT autograd's
functionalisation; inductor would add minutes of C++ compile on a 2-core CI machine. The CUDA
parts (inductor + CUDA graphs, pinned uploads) need a GPU and are not tested here.
"""
import numpy as np
import pytest
import torch

from ppd_ros.model.accelerate import CompiledFrame
from ppd_ros.model.estimator import PPDEstimator
from ppd_ros.model.frame_graph import FrameGraph

AREA = (96, 64)  # 64 x 96 model resolution for 3:2 frames


@pytest.fixture(scope='module')
def model():
    est = PPDEstimator.from_config(device='cpu', seed=3, target_area=AREA)
    return est.dit, est.encoder


def _inputs(seed=0, h=64, w=96):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g), torch.randn(1, 1, h, w, generator=g)


@pytest.mark.parametrize('backend', ['eager', 'aot_eager'])
def test_frame_compiles_as_one_graph_and_matches_eager(model, backend):
    torch._dynamo.reset()  # cold caches: the trace must not rely on state left by eager runs
    graph = FrameGraph(*model, steps=4)
    image, noise = _inputs()
    compiled = torch.compile(graph, fullgraph=True, dynamic=False, backend=backend)
    with torch.inference_mode():
        out = compiled(image, noise)
        ref = graph(image, noise)
    assert out.shape == (1, 1, 64, 96) and out.dtype == torch.float32
    assert float((out - ref).abs().max()) <= 1e-5
    assert float(ref.std()) > 1e-3  # a real, non-constant output


def test_dynamo_sees_no_graph_break(model):
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(FrameGraph(*model, steps=3))(*_inputs(1))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_estimator_compile_on_cpu_with_a_named_backend_matches_eager():
    rgb = np.random.default_rng(0).integers(0, 256, (96, 144, 3), dtype=np.uint8)
    eager = PPDEstimator.from_config(device='cpu', seed=5, target_area=AREA)
    torch._dynamo.reset()
    lines = []
    fast = PPDEstimator.from_config(device='cpu', seed=5, target_area=AREA, compile='on',
                                    compile_backend='aot_eager', log=lines.append)
    assert fast.acceleration == 'torch.compile aot_eager' and lines == []
    assert float(np.abs(fast.predict(rgb) - eager.predict(rgb)).max()) <= 1e-5
    # warm starts are not compiled: they run the eager sampler and still work
    warm = fast.predict(rgb, init_depth=eager.predict(rgb), init_strength=0.5)
    assert warm.shape == (64, 96) and np.isfinite(warm).all()


def test_deferred_warm_up_compiles_only_when_called():
    """The node builds the estimator on one thread and warms it up on the inference thread."""
    est = PPDEstimator.from_config(device='cpu', seed=5, target_area=AREA, compile='on',
                                   compile_backend='eager', defer_warm_up=True)
    assert est._frame._compiled == {}
    est.warm_up()
    assert list(est._frame._compiled) == [est.steps]


def test_compile_on_cpu_without_a_backend_runs_eager_and_says_so_once():
    lines = []
    est = PPDEstimator.from_config(device='cpu', seed=5, target_area=AREA, compile='on', log=lines.append)
    ref = PPDEstimator.from_config(device='cpu', seed=5, target_area=AREA)
    rgb = np.full((64, 96, 3), 128, np.uint8)
    for _ in range(2):
        np.testing.assert_allclose(est.predict(rgb), ref.predict(rgb), atol=1e-6)
    assert len(lines) == 1 and 'needs a CUDA device' in lines[0] and 'running eager' in lines[0]
    assert est.describe()['acceleration'].startswith('eager (')


def test_a_compiler_failure_falls_back_to_eager_with_one_line(monkeypatch):
    def broken_compile(*args, **kwargs):
        def run(*a, **k):
            raise RuntimeError('Cannot find a working triton installation\nmore detail')
        return run
    monkeypatch.setattr(torch, 'compile', broken_compile)
    lines = []
    est = PPDEstimator.from_config(device='cpu', seed=5, target_area=AREA, compile='on',
                                   compile_backend='inductor', log=lines.append)
    ref = PPDEstimator.from_config(device='cpu', seed=5, target_area=AREA)
    rgb = np.full((64, 96, 3), 90, np.uint8)
    for _ in range(2):
        np.testing.assert_allclose(est.predict(rgb), ref.predict(rgb), atol=1e-6)
    assert lines == ['model.compile on: torch.compile failed (RuntimeError: Cannot find a working '
                     'triton installation); running eager']


def test_compiled_frame_describes_cuda_graphs_only_on_cuda(model):
    frame = CompiledFrame(*model, device=torch.device('cpu'), backend='eager')
    assert frame.active and not frame.cuda_graphs


@pytest.mark.parametrize('options, message', [
    (dict(compile='fast'), 'compile must be one of off, on'),
    (dict(backend='tensorflow'), 'backend must be one of torch, onnxruntime, tensorrt'),
    (dict(backend='onnxruntime'), 'onnx_path is needed by backend onnxruntime'),
    (dict(onnx_path='x.onnx'),
     r'onnx_path is needed by backend onnxruntime/tensorrt and only by them \(backend is torch\)'),
    (dict(backend='onnxruntime', onnx_path='x.onnx', compile='on'), 'compile on is for backend torch'),
])
def test_bad_acceleration_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        PPDEstimator.from_config(device='cpu', target_area=AREA, **options)


class _PPVDWindow(torch.nn.Module):
    """One PPVD window (Pi3 semantics once + the video DiT's Euler steps) with a fixed schedule."""

    def __init__(self, model, steps):
        super().__init__()
        from ppd_ros.model.sampler import euler_schedule
        self.model, self.plan = model, euler_schedule(steps)

    def forward(self, clip, noise):
        return self.model.predict_window(clip, noise, self.plan)


def test_ppvd_window_compiles_as_one_graph_and_matches_eager():
    from ppd_ros.model.video import INFER_LEN, VideoDepthEstimator
    model = VideoDepthEstimator.from_config(device='cpu', seed=0).model
    window = _PPVDWindow(model, steps=2)
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(INFER_LEN, 3, model.size, model.size, generator=g)
    noise = torch.randn(INFER_LEN, 1, model.size, model.size, generator=g)
    torch._dynamo.reset()
    compiled = torch.compile(window, fullgraph=True, dynamic=False, backend='eager')
    with torch.inference_mode():
        out, ref = compiled(clip, noise), window(clip, noise)
    assert out.shape == (INFER_LEN, 1, model.size, model.size)
    assert float((out - ref).abs().max()) <= 1e-5 and float(ref.std()) > 1e-3


def test_moge2_semantics_frame_compiles_as_one_graph_and_matches_eager():
    """PPD with MoGe-2 semantics: encoder + steps are one graph too. (MoGe-2's metric pass,
    ``moge.infer``, solves focal and shift on the host by design and is not part of the frame.)"""
    from test_moge_metric import _tiny_dit, _tiny_moge

    from ppd_ros.model.moge import MoGeSemanticEncoder
    encoder = MoGeSemanticEncoder(_tiny_moge()).eval()
    graph = FrameGraph(_tiny_dit(encoder.semantic_dim), encoder, steps=2)
    image, noise = _inputs(2, 48, 64)
    torch._dynamo.reset()
    compiled = torch.compile(graph, fullgraph=True, dynamic=False, backend='eager')
    with torch.inference_mode():
        out, ref = compiled(image, noise), graph(image, noise)
    assert out.shape == (1, 1, 48, 64)
    assert float((out - ref).abs().max()) <= 1e-5 and float(ref.std()) > 1e-3
