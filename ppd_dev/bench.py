"""ppd-bench: per-stage latency of Pixel-Perfect Depth, analytic FLOPs, achieved TFLOP/s.

Stages of one frame: preprocess (resize the camera frame to the model resolution, to a tensor on
the device), encoder (DINOv2 semantics), one line per DiT call of the Euler sampler, the sampler's
own work between DiT calls (noise, concatenation, Euler updates), postprocess (depth back to a
numpy array). The device is synchronised only at those boundaries, never inside a model.

With ``--variants eager,compiled,onnx`` the whole frame (``FrameGraph``: encoder + all steps, the
unit that is compiled and exported) runs as each variant, interleaved iteration by iteration:
eager PyTorch, ``torch.compile`` (inductor; + CUDA graphs on CUDA; ``--compile-backend`` to pick
another), and the ``ppd-export`` ONNX graph in onnxruntime (CPU or CUDA provider by ``--device``,
``--ort-provider tensorrt`` for TensorRT). Stages are then preprocess / model / postprocess only.
``--peak TFLOPS`` or ``--gpu NAME`` (``PEAK_TFLOPS``) adds the fraction of the roofline reached.

With ``--official PATH`` the released implementation (a checkout of gangweix/pixel-perfect-depth)
runs the same stages with the same weights (our state dicts loaded into their modules: the key
layouts are identical), the same input and the same noise, interleaved with ours iteration by
iteration; both tables, the per-stage speed ratio and the largest output difference are printed.

Exit status: 0 done; 2 usage error, checkpoint not found, or the released code is not importable.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ppd_ros.model.config import SIZES, DiTConfig, EncoderConfig
from ppd_ros.model.estimator import PPDEstimator
from ppd_ros.model.factory import EstimatorBuildError, add_model_arguments, build_estimator
from ppd_ros.model.preprocess import model_size, resize_for_model
from ppd_ros.model.frame_graph import FrameGraph
from ppd_ros.model.sampler import sample, sampling_timesteps
from ppd_dev.bench_pipelines import PIPELINES, run_metric, run_video

PROG = 'ppd-bench'
EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_AREA = (1024, 768)
_AUTOCAST = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
VARIANTS = ('eager', 'compiled', 'onnx')
#: Dense peak TFLOP/s from the vendors' datasheets (no sparsity): fp32 = plain FP32 (non-tensor
#: core; TF32 is not enabled by default in PyTorch matmuls), bf16/fp16 = tensor cores, fp32
#: accumulate. The roofline fraction is achieved matmul FLOPs / peak for the run's precision.
PEAK_TFLOPS = {
    'h100-sxm': {'fp32': 66.9, 'bf16': 989.4, 'fp16': 989.4},
    'h100-pcie': {'fp32': 51.2, 'bf16': 756.0, 'fp16': 756.0},
    'h200': {'fp32': 66.9, 'bf16': 989.4, 'fp16': 989.4},
    'a100': {'fp32': 19.5, 'bf16': 312.0, 'fp16': 312.0},
    'rtx4090': {'fp32': 82.6, 'bf16': 165.2, 'fp16': 165.2},
    'l4': {'fp32': 30.3, 'bf16': 121.0, 'fp16': 121.0},
}


# ----------------------------------------------------------------------------------- FLOPs

def encoder_flops(cfg: EncoderConfig, height: int, width: int) -> int:
    """Matmul FLOPs (2 per multiply-accumulate) of the semantic encoder for one height×width frame.

    The frame is resized to ((H//16)·p, (W//16)·p), p = patch size (14), so the ViT sees
    n = (H//16)·(W//16) patches and N = n + 1 tokens (class token). With C = embed_dim,
    M = mlp_ratio·C, L = depth:
        patch embed       n · 3p² · C
        per block         N · (3C² + C² + 2·C·M)      qkv, output projection, MLP
                        + 2 · N² · C                   QK^T and AV (all heads together)
        FLOPs = 2 · (patch embed + L · per block)
    LayerNorm, softmax, GELU, the bicubic resize and the position-embedding interpolation are not
    matmuls and not counted.
    """
    n = (height // 16) * (width // 16)
    tokens = n + 1
    c, m, p = cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio), cfg.patch_size
    patch = n * 3 * p * p * c
    block = tokens * (4 * c * c + 2 * c * m) + 2 * tokens * tokens * c
    return 2 * (patch + cfg.depth * block)


def dit_flops(cfg: DiTConfig, height: int, width: int) -> int:
    """Matmul FLOPs (2 per multiply-accumulate) of ONE SP-DiT call on a height×width input.

    D = hidden_size, M = mlp_ratio·D, S = semantic_dim, p = patch_size, L = depth,
    N1 = (H/2p)·(W/2p) coarse tokens (first L/2 blocks), N2 = 4·N1 fine tokens (last L/2 blocks):
        patch embed (2p×2p conv)   N1 · in_channels · (2p)² · D
        timestep MLP               256·D + D²                          (per sample)
        block on N tokens          N · (4·D² + 2·D·M) + 2·N²·D         qkv, proj, MLP, QK^T, AV
                                 + 6·D²                                adaLN modulation (per sample)
        fusion MLP                 N1 · ((D + S)·4D + 2·(4D)²)
        final layer                N2 · D · p²·out_channels + 2·D²    (linear + adaLN)
        FLOPs = 2 · (sum of the above, blocks: L/2 on N1 and L/2 on N2)
    """
    d, m, s, p = cfg.hidden_size, int(cfg.hidden_size * cfg.mlp_ratio), cfg.semantic_dim, cfg.patch_size
    n1 = (height // (2 * p)) * (width // (2 * p))
    n2 = 4 * n1

    def block(n):
        return n * (4 * d * d + 2 * d * m) + 2 * n * n * d + 6 * d * d

    half = cfg.depth // 2
    macs = (n1 * cfg.in_channels * (2 * p) ** 2 * d
            + 256 * d + d * d
            + half * block(n1) + half * block(n2)
            + n1 * ((d + s) * 4 * d + 2 * (4 * d) ** 2)
            + n2 * d * p * p * cfg.out_channels + 2 * d * d)
    return 2 * macs


@dataclass(frozen=True)
class FlopCount:
    encoder: int
    dit_step: int
    steps: int

    @property
    def total(self) -> int:
        return self.encoder + self.steps * self.dit_step


def pipeline_flops(dit_cfg: DiTConfig, enc_cfg: EncoderConfig, height: int, width: int, steps: int) -> FlopCount:
    return FlopCount(encoder_flops(enc_cfg, height, width), dit_flops(dit_cfg, height, width), steps)


# ----------------------------------------------------------------------------------- timing

class Clock:
    """perf_counter after waiting for the device, so a reading marks the end of queued work."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        elif self.device.type == 'mps':
            torch.mps.synchronize()

    def now(self) -> float:
        self.sync()
        return time.perf_counter()


class TimedCall:
    """Stands in for a module (or one of its methods): times every call, passes attributes through.

    This is how the bench sees each DiT step inside the sampler without changing the sampler.
    """

    def __init__(self, fn, clock: Clock, target=None):
        self._fn = fn
        self._target = target if target is not None else fn
        self._clock = clock
        self.times: list[float] = []

    def __call__(self, *args, **kwargs):
        start = self._clock.now()
        out = self._fn(*args, **kwargs)
        self.times.append(self._clock.now() - start)
        return out

    def __getattr__(self, name):
        return getattr(self._target, name)


@dataclass
class StageTimes:
    """Seconds per stage and iteration, stages in first-seen order."""
    stages: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float):
        self.stages.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.stages[name])

    def p90(self, name: str) -> float:
        values = sorted(self.stages[name])
        return values[min(len(values) - 1, int(np.ceil(0.9 * len(values))) - 1)]


def _record(times: StageTimes, pre, enc, dit_times, sampler_total, post, total, steps_t):
    times.add('preprocess', pre)
    times.add('encoder', enc)
    for i, (t, seconds) in enumerate(zip(steps_t, dit_times)):
        times.add(f'dit step {i + 1} (t={t})', seconds)
    times.add('sampler (excl. DiT)', sampler_total - sum(dit_times))
    times.add('postprocess', post)
    times.add('total', total)


def _autocast(device: torch.device, precision: str):
    dtype = _AUTOCAST[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


def _noise(seed: int, height: int, width: int) -> torch.Tensor:
    """CPU noise from a generator seeded with `seed`: the same numbers torch.randn gives after
    torch.manual_seed(seed), which is what the released code draws."""
    return torch.randn((1, 1, height, width), generator=torch.Generator().manual_seed(seed))


class OursRunner:
    """Our pipeline, split at stage boundaries from the estimator's public pieces."""

    name = 'ours (ppd_ros)'

    def __init__(self, estimator: PPDEstimator, target_area, clock: Clock, seed: int):
        self.estimator = estimator
        self.target_area = target_area
        self.clock = clock
        self.seed = seed
        self.dit = TimedCall(estimator.dit, clock)
        self.times = StageTimes()

    def run(self, frame_rgb: np.ndarray) -> np.ndarray:
        est, clock = self.estimator, self.clock
        t0 = clock.now()
        image = resize_for_model(frame_rgb, self.target_area).image
        images = torch.from_numpy(image[None]).to(est.device).permute(0, 3, 1, 2).float() / 255.0
        t1 = clock.now()
        with torch.inference_mode(), _autocast(est.device, est.precision):
            semantics = est.encoder(images)
            t2 = clock.now()
            first = len(self.dit.times)
            noise = _noise(self.seed, *images.shape[-2:]).to(est.device)
            depth = sample(self.dit, images, semantics, noise, est.steps)
            t3 = clock.now()
        out = depth.float()[0, 0].cpu().numpy()
        t4 = clock.now()
        _record(self.times, t1 - t0, t2 - t1, self.dit.times[first:], t3 - t2, t4 - t3, t4 - t0,
                sampling_timesteps(est.steps))
        return out


class FrameRunner:
    """The whole frame as one unit (the compiled / exported graph): preprocess, model, postprocess."""

    def __init__(self, variant: str, estimator: PPDEstimator, target_area, clock: Clock, seed: int,
                 frame_size: tuple[int, int], compile_backend: str | None = None, onnx_path=None,
                 ort_provider: str | None = None):
        self.name = variant
        self.estimator, self.target_area, self.clock, self.seed = estimator, target_area, clock, seed
        self.times = StageTimes()
        self.notes: list[str] = []
        h, w = model_size(frame_size[1], frame_size[0], target_area)
        dtype = _AUTOCAST[estimator.precision]
        graph = FrameGraph(estimator.dit, estimator.encoder, estimator.steps)
        if variant == 'eager':
            self.model = lambda image, noise: graph(image, noise)
            self.autocast = True
        elif variant == 'compiled':
            from ppd_ros.model.accelerate import CompiledFrame
            backend = compile_backend or 'inductor'
            frame = CompiledFrame(estimator.dit, estimator.encoder, estimator.device, dtype, backend)
            start = time.perf_counter()
            frame.warm_up(h, w, estimator.steps)
            if not frame.active:
                raise RuntimeError(f'compiled variant: {frame.fallback_reason}')
            self.notes.append(f'{frame.describe()}: compile + warm-up {time.perf_counter() - start:.1f} s')
            self.model = lambda image, noise: frame(image, noise, estimator.steps)
            self.autocast = False  # CompiledFrame applies autocast inside
        elif variant == 'onnx':
            from ppd_ros.model.export import OnnxFrame, export_onnx
            if onnx_path is None:
                import tempfile
                onnx_path = Path(tempfile.mkdtemp(prefix='ppd-bench-')) / 'frame.onnx'
                start = time.perf_counter()
                export_onnx(estimator.dit, estimator.encoder, estimator.steps, h, w, onnx_path)
                self.notes.append(f'exported in {time.perf_counter() - start:.1f} s')
            provider = ort_provider or ('onnxruntime-cuda' if estimator.device.type == 'cuda'
                                        else 'onnxruntime-cpu')
            if estimator.precision != 'fp32':
                self.notes.append('the ONNX graph is fp32 (reduced precision is the engine builder\'s choice)')
            frame = OnnxFrame(onnx_path, provider, threads=torch.get_num_threads())
            self.notes.append(f'{provider}, {torch.get_num_threads()} intra-op threads')
            self.model = frame
            self.autocast = False
        else:
            raise ValueError(f'unknown variant {variant!r}; choose from {", ".join(VARIANTS)}')

    def run(self, frame_rgb: np.ndarray) -> np.ndarray:
        est, clock = self.estimator, self.clock
        t0 = clock.now()
        image = resize_for_model(frame_rgb, self.target_area).image
        images = torch.from_numpy(image[None]).to(est.device).permute(0, 3, 1, 2).float() / 255.0
        noise = _noise(self.seed, *images.shape[-2:]).to(est.device)
        t1 = clock.now()
        autocast = _autocast(est.device, est.precision) if self.autocast else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            depth = self.model(images, noise)
        t2 = clock.now()
        out = depth.float()[0, 0].cpu().numpy()
        t3 = clock.now()
        for name, seconds in (('preprocess', t1 - t0), ('model', t2 - t1), ('postprocess', t3 - t2),
                              ('total', t3 - t0)):
            self.times.add(name, seconds)
        return out


# ----------------------------------------------------------------------------------- released code

class OfficialImportError(Exception):
    pass


#: module → pip package, for what the released modules we use import.
_OFFICIAL_DEPENDENCIES = {'timm': 'timm==0.9.1', 'torchvision': 'torchvision', 'omegaconf': 'omegaconf',
                          'PIL': 'pillow', 'cv2': 'opencv-python'}


def import_official(path: Path):
    """The released modules we need, imported from the checkout at `path` (added to sys.path)."""
    path = Path(path).resolve()
    if not (path / 'ppd' / 'models' / 'dit.py').is_file():
        raise OfficialImportError(f'{path}: not a pixel-perfect-depth checkout (no ppd/models/dit.py)')
    missing = [pkg for module, pkg in _OFFICIAL_DEPENDENCIES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise OfficialImportError(
            f'the released code needs packages that are not installed: {", ".join(missing)} '
            f'(e.g. pip install --target DIR {" ".join(missing)}, then run with PYTHONPATH=DIR)')
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    names = ('ppd.models.dit', 'ppd.models.ppd', 'ppd.models.depth_anything_v2.dpt',
             'ppd.models.depth_anything_v2.dinov2', 'ppd.models.depth_anything_v2.dinov2_layers',
             'ppd.utils.transform')
    modules = {}
    for name in names:
        try:
            modules[name] = importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise OfficialImportError(f'cannot import {name} from {path}: missing module {err.name!r} '
                                      f'(install it, e.g. with pip install --target DIR, PYTHONPATH=DIR)') from err
        except Exception as err:  # noqa: BLE001 — e.g. a torchvision built for another torch
            raise OfficialImportError(f'cannot import {name} from {path}: {type(err).__name__}: {err}') from err
    return modules


class OfficialRunner:
    """The released pipeline (PixelPerfectDepth.forward_test: their encoder call, noise, DiT and
    EulerSampler loop) on their modules holding our weights. The pieces are assembled without
    their constructors, which load checkpoint files; the encoder and DiT are wrapped for timing."""

    name = 'released (official)'

    def __init__(self, modules, estimator: PPDEstimator, target_area, clock: Clock, seed: int):
        dit_cfg, enc_cfg = estimator.dit.config, estimator.encoder.config
        device = estimator.device
        self.notes = []
        their_dit = modules['ppd.models.dit'].DiT(
            in_channels=dit_cfg.in_channels, out_channels=dit_cfg.out_channels, hidden_size=dit_cfg.hidden_size,
            depth=dit_cfg.depth, num_heads=dit_cfg.num_heads, patch_size=dit_cfg.patch_size,
            mlp_ratio=dit_cfg.mlp_ratio)
        if dit_cfg.semantic_dim != 1024:
            # Their fusion input width is hard-coded to hidden + 1024: widen only that layer's input.
            their_dit.proj_fusion[0] = torch.nn.Linear(dit_cfg.hidden_size + dit_cfg.semantic_dim,
                                                       4 * dit_cfg.hidden_size)
            self.notes.append(f'released DiT fusion input set to hidden + {dit_cfg.semantic_dim} '
                              '(hard-coded 1024 there)')
        if dit_cfg.rope_frequency != 100:
            raise OfficialImportError('the released DiT has RoPE frequency 100 only')
        their_dit.load_state_dict(estimator.dit.state_dict(), strict=True)

        dinov2 = modules['ppd.models.depth_anything_v2.dinov2']
        layers = modules['ppd.models.depth_anything_v2.dinov2_layers']
        vit = dinov2.DinoVisionTransformer(
            img_size=enc_cfg.img_size, patch_size=enc_cfg.patch_size, embed_dim=enc_cfg.embed_dim,
            depth=enc_cfg.depth, num_heads=enc_cfg.num_heads, mlp_ratio=enc_cfg.mlp_ratio,
            block_fn=partial(layers.NestedTensorBlock, attn_class=layers.MemEffAttention),
            init_values=enc_cfg.init_values, ffn_layer='mlp', block_chunks=0, num_register_tokens=0,
            interpolate_antialias=enc_cfg.interpolate_antialias, interpolate_offset=enc_cfg.interpolate_offset)
        dav2_cls = modules['ppd.models.depth_anything_v2.dpt'].DepthAnythingV2
        encoder = dav2_cls.__new__(dav2_cls)
        torch.nn.Module.__init__(encoder)
        encoder.pretrained = vit
        encoder.load_state_dict(estimator.encoder.state_dict(), strict=True)

        ppd_cls = modules['ppd.models.ppd'].PixelPerfectDepth
        model = ppd_cls.__new__(ppd_cls)
        torch.nn.Module.__init__(model)
        model.sampling_steps = estimator.steps
        model.device = device
        model.configure_diffusion()
        their_dit.to(device).eval().requires_grad_(False)
        encoder.to(device).eval().requires_grad_(False)
        self.dit = TimedCall(their_dit, clock)
        self.encoder_call = TimedCall(encoder.forward_semantics, clock, target=encoder)
        model.dit = self.dit
        model.sem_encoder = _ForwardSemantics(self.encoder_call)
        self.model = model
        self.transform = modules['ppd.utils.transform']
        self.device, self.precision, self.steps = device, estimator.precision, estimator.steps
        self.target_area = target_area
        self.clock = clock
        self.seed = seed
        self.times = StageTimes()

    def _resize(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Their resize_keep_aspect targets 1024×768 pixels; for other areas, our resize_for_model,
        which is the same rule (the authors' preprocessing, docs/development.md) at any area."""
        if tuple(self.target_area) == DEFAULT_AREA:
            return self.transform.resize_keep_aspect(frame_bgr)
        return resize_for_model(frame_bgr, self.target_area).image

    def run(self, frame_rgb: np.ndarray) -> np.ndarray:
        clock = self.clock
        frame_bgr = np.ascontiguousarray(frame_rgb[..., ::-1])  # their image2tensor takes BGR
        torch.manual_seed(self.seed)  # their forward_test draws the noise from the global RNG
        t0 = clock.now()
        image = self.transform.image2tensor(self._resize(frame_bgr)).to(self.device)
        t1 = clock.now()
        first = len(self.dit.times)
        with _autocast(self.device, self.precision):
            depth = self.model.forward_test(image)
        t3 = clock.now()
        out = depth.float().squeeze().cpu().numpy()
        t4 = clock.now()
        encoder = self.encoder_call.times[-1]
        dit_times = self.dit.times[first:]
        _record(self.times, t1 - t0, encoder, dit_times, t3 - t1 - encoder, t4 - t3, t4 - t0,
                [int(t) for t in self.model.sampling_timesteps.timesteps.tolist()])
        return out


class _ForwardSemantics:
    def __init__(self, call):
        self.forward_semantics = call


# ----------------------------------------------------------------------------------- reporting

def format_table(title: str, times: StageTimes, flops: FlopCount, peak: float | None = None) -> str:
    """Per-stage medians, the FLOP count and the achieved TFLOP/s; with ``peak`` (TFLOP/s) the
    fraction of the roofline (whole frame, and the model alone for whole-frame variants)."""
    lines = [title, f'  {"stage":<28}{"median ms":>12}{"p90 ms":>12}']
    for name in times.stages:
        lines.append(f'  {name:<28}{times.median(name) * 1e3:>12.3f}{times.p90(name) * 1e3:>12.3f}')
    total_s = times.median('total')
    lines.append(f'  FLOPs: encoder {flops.encoder / 1e9:.4f} GFLOP, DiT {flops.dit_step / 1e9:.4f} GFLOP/step '
                 f'x {flops.steps}, total {flops.total / 1e9:.4f} GFLOP (matmul FLOPs, 2 per MAC)')
    if 'encoder' in times.stages:
        enc_s = times.median('encoder')
        dit_s = statistics.median([times.median(n) for n in times.stages if n.startswith('dit step')])
        lines.append(f'  TFLOP/s: encoder {_rate(flops.encoder, enc_s)}, DiT step {_rate(flops.dit_step, dit_s)}, '
                     f'end to end {_rate(flops.total, total_s)}')
    else:
        lines.append(f'  TFLOP/s: model {_rate(flops.total, times.median("model"))}, '
                     f'end to end {_rate(flops.total, total_s)}')
    if peak:
        model_s = times.median('model') if 'model' in times.stages else \
            times.median('total') - times.median('preprocess') - times.median('postprocess')
        lines.append(f'  roofline ({peak:g} TFLOP/s peak): model {_fraction(flops.total, model_s, peak)}, '
                     f'end to end {_fraction(flops.total, total_s, peak)}')
    return '\n'.join(lines)


def _fraction(flop: int, seconds: float, peak: float) -> str:
    return f'{flop / seconds / 1e12 / peak:.1%}' if seconds > 0 else 'n/a'


def format_ratios(runners) -> str:
    """Median total and model time of each runner against the first (ratio > 1: faster than it)."""
    base = runners[0]
    lines = [f'interleaved, ratio = {base.name} / variant (> 1: the variant is faster)',
             f'  {"variant":<24}{"model ms":>12}{"total ms":>12}{"ratio model":>13}{"ratio total":>13}']
    for runner in runners:
        model = runner.times.median('model') if 'model' in runner.times.stages else float('nan')
        base_model = base.times.median('model') if 'model' in base.times.stages else float('nan')
        total, base_total = runner.times.median('total'), base.times.median('total')
        lines.append(f'  {runner.name:<24}{model * 1e3:>12.3f}{total * 1e3:>12.3f}'
                     f'{base_model / model:>13.2f}{base_total / total:>13.2f}')
    return '\n'.join(lines)


def _rate(flop: int, seconds: float) -> str:
    return f'{flop / seconds / 1e12:.4g}' if seconds > 0 else 'n/a'


def format_comparison(ours: StageTimes, official: StageTimes) -> str:
    lines = ['side by side (median ms; ratio = released / ours, > 1 means ours is faster)',
             f'  {"stage":<28}{"ours":>12}{"released":>12}{"ratio":>10}']
    for name in ours.stages:
        other = official.stages.get(name)
        if other is None:
            continue
        a, b = ours.median(name) * 1e3, official.median(name) * 1e3
        lines.append(f'  {name:<28}{a:>12.3f}{b:>12.3f}{(b / a if a > 0 else float("nan")):>10.2f}')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                epilog='Exit status: 0 done, 2 usage error / checkpoint not found / '
                                       'released code not importable.')
    p.add_argument('--size', choices=SIZES + ('demo',), default='large',
                   help='model size with random weights (default large = released ppd.pth + ViT-L '
                        'architecture; small/base are scaled-down variants, tiny the test model); '
                        'demo: the bundled demo model (its weights)')
    add_model_arguments(p, fast=False)
    p.add_argument('--pipeline', choices=PIPELINES, default='image',
                   help='image (default): one PPD frame, per stage; metric: the MoGe-2 frame and its '
                        'metric pass; video: one 16-frame PPVD window (metric/video: random weights, '
                        '--size tiny or large; see ppd_dev/bench_pipelines.py)')
    res = p.add_mutually_exclusive_group()
    res.add_argument('--area', metavar='WxH', help='target pixel area as the estimator uses it '
                     '(default 1024x768); the model resolution follows the input frame\'s aspect ratio')
    res.add_argument('--height', type=int, help='model resolution height (multiple of 16; with --width)')
    p.add_argument('--width', type=int, help='model resolution width (multiple of 16; with --height)')
    p.add_argument('--input', metavar='WxH', help='camera frame size fed to preprocess (default: twice the '
                   'model resolution with --height/--width, else 1280x960)')
    p.add_argument('--steps', type=int, default=4, help='Euler steps (default 4)')
    p.add_argument('--warmup', type=int, default=2, help='untimed iterations first (default 2)')
    p.add_argument('--iters', type=int, default=10, help='timed iterations (default 10)')
    p.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s choice)')
    p.add_argument('--seed', type=int, default=0, help='noise and input seed (default 0)')
    p.add_argument('--official', type=Path, metavar='PATH',
                   help='checkout of the released gangweix/pixel-perfect-depth to compare against')
    p.add_argument('--variants', help='comma list of ' + ', '.join(VARIANTS) + ': time the whole frame as '
                   'each (interleaved) instead of our per-stage table')
    p.add_argument('--compile-backend', help='torch.compile backend of the compiled variant (default inductor)')
    p.add_argument('--onnx', type=Path, metavar='PATH', help='ONNX file for the onnx variant (default: '
                   'exported now)')
    p.add_argument('--ort-provider', choices=('onnxruntime-cpu', 'onnxruntime-cuda', 'tensorrt'),
                   help='onnxruntime execution provider of the onnx variant (default by --device)')
    peak = p.add_mutually_exclusive_group()
    peak.add_argument('--peak', type=float, metavar='TFLOPS', help='peak TFLOP/s of the device for the roofline')
    peak.add_argument('--gpu', choices=sorted(PEAK_TFLOPS), help='peak from the datasheet table for --precision')
    return p


def _parse_wxh(parser, flag, text) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        parser.error(f'{flag} must look like 1024x768, got {text!r}')
    if w < 16 or h < 16:
        parser.error(f'{flag} must be at least 16x16, got {text}')
    return w, h


def resolve_resolution(parser, args) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(target area (W, H), input frame (W, H), model resolution (h, w)) from the options."""
    if (args.height is None) != (args.width is None):
        parser.error('--height and --width go together')
    if args.height is not None:
        if args.height % 16 or args.width % 16 or args.height < 16 or args.width < 16:
            parser.error(f'--height/--width must be positive multiples of 16, got {args.height}x{args.width}')
        area = (args.width, args.height)
        frame = _parse_wxh(parser, '--input', args.input) if args.input else (2 * args.width, 2 * args.height)
    else:
        area = _parse_wxh(parser, '--area', args.area) if args.area else DEFAULT_AREA
        frame = _parse_wxh(parser, '--input', args.input) if args.input else (1280, 960)
    size = model_size(frame[1], frame[0], area)
    if args.height is not None and size != (args.height, args.width):
        parser.error(f'a {frame[0]}x{frame[1]} frame resizes to {size[1]}x{size[0]}, not '
                     f'{args.width}x{args.height}: give --input with the same aspect ratio')
    return area, frame, size


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1 or args.iters < 1 or args.warmup < 0:
        parser.error('--steps and --iters must be >= 1, --warmup >= 0')
    if (args.dit is None) != (args.encoder is None):
        parser.error('--dit and --encoder go together')
    area, frame_size, (height, width) = resolve_resolution(parser, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pipeline != 'image':
        if args.size not in ('tiny', 'large') or args.dit or args.official or args.variants:
            parser.error(f'--pipeline {args.pipeline} runs random weights of --size tiny or large, without '
                         '--dit/--encoder, --official or --variants')
        peak = args.peak or (PEAK_TFLOPS[args.gpu][args.precision] if args.gpu else None)
        if args.pipeline == 'metric':
            return run_metric(args, area, frame_size, peak)
        return run_video(args, peak)
    try:
        model = 'demo' if args.size == 'demo' else f'random-{args.size}'
        estimator = build_estimator(model, args.dit, args.encoder, args.device, args.precision,
                                    args.steps, args.seed, area)
    except EstimatorBuildError as err:
        print(err.line(PROG), file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError, RuntimeError) as err:
        print(f'{PROG}: error: {err}', file=sys.stderr)
        return EXIT_USAGE

    clock = Clock(estimator.device)
    variants = [v.strip() for v in args.variants.split(',')] if args.variants else []
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f'unknown --variants {", ".join(unknown)}; choose from {", ".join(VARIANTS)}')
    peak = args.peak or (PEAK_TFLOPS[args.gpu][estimator.precision] if args.gpu else None)
    try:
        runners = [FrameRunner(v, estimator, area, clock, args.seed, frame_size, args.compile_backend,
                               args.onnx, args.ort_provider) for v in variants] \
            or [OursRunner(estimator, area, clock, args.seed)]
    except Exception as err:  # noqa: BLE001 — export/compile/provider failures: one line, exit 2
        print(f'{PROG}: error: {type(err).__name__}: {str(err).strip().splitlines()[0]}', file=sys.stderr)
        return EXIT_USAGE
    if args.official is not None:
        try:
            runners.append(OfficialRunner(import_official(args.official), estimator, area, clock, args.seed))
        except OfficialImportError as err:
            print(f'{PROG}: error: {err}', file=sys.stderr)
            return EXIT_USAGE

    rng = np.random.default_rng(args.seed)
    frame = rng.integers(0, 256, (frame_size[1], frame_size[0], 3), dtype=np.uint8)
    flops = pipeline_flops(estimator.dit.config, estimator.encoder.config, height, width, estimator.steps)
    describe = estimator.describe()
    print(f'{PROG}: {describe["model"]}')
    print(f'  input frame {frame_size[0]}x{frame_size[1]} -> model {width}x{height}, steps {estimator.steps}, '
          f'device {describe["device"]}, precision {describe["precision"]}, threads {torch.get_num_threads()}, '
          f'warmup {args.warmup}, iters {args.iters}, torch {torch.__version__}')

    outputs = {}
    for i in range(args.warmup + args.iters):
        order = runners if i % 2 == 0 else runners[::-1]  # alternate who goes first
        for runner in order:
            outputs[runner.name] = runner.run(frame)
        if i + 1 == args.warmup:
            for runner in runners:
                runner.times = StageTimes()

    for runner in runners:
        print()
        print(format_table(runner.name, runner.times, flops, peak))
        for note in getattr(runner, 'notes', []):
            print(f'  note: {note}')
    if variants and len(runners) > 1:
        print()
        print(format_ratios(runners))
        ref = outputs[runners[0].name]
        for runner in runners[1:]:
            print(f'  outputs: max |{runner.name} - {runners[0].name}| = '
                  f'{float(np.abs(outputs[runner.name] - ref).max()):.3g}')
    if not variants and len(runners) == 2:
        print()
        print(format_comparison(runners[0].times, runners[1].times))
        a, b = outputs[runners[0].name], outputs[runners[1].name]
        print(f'  outputs: max |ours - released| = {float(np.abs(a - b).max()):.3g} '
              f'(same weights, input and noise; depth range {float(a.min()):.3f}..{float(a.max()):.3f})')
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
