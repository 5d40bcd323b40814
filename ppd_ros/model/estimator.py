"""``PPDEstimator``: RGB frame in, relative depth (normalised log-depth, larger = farther) out.

One frame: resize to the model resolution (``preprocess``), encode semantics once, run the
flow-matching Euler sampler for ``steps`` steps on the SP-DiT, return depth (h, w) float32 at the
model resolution.

Noise: with ``seed=None`` the initial noise comes from torch's global RNG (as the released code).
With an integer ``seed`` every frame's noise is drawn on the CPU from a fresh
``torch.Generator`` seeded with ``seed`` — the same frame then gives the same depth on every call,
in any batch and on any device (the noise does not depend on the device's RNG).

Warm start: ``predict(rgb, init_depth, init_strength)`` noises ``init_depth`` (h, w, output
space) to the timestep where the last ceil(init_strength · steps) steps of the schedule begin and
runs only those (``sampler.warm_start_index``); strength 1 is a cold start.

Fast paths for cold-start frames (warm starts always run eager PyTorch):
``compile='on'`` — torch.compile(fullgraph) of the whole frame, CUDA-graph capture on CUDA, warmed
up at construction for the target area's own resolution, pinned asynchronous uploads
(``accelerate``); ``backend='onnxruntime' | 'tensorrt'`` with ``onnx_path`` — a file written by
``ppd-export``, run by onnxruntime (CPU or CUDA provider by ``device``; TensorRT provider).
Where compile is not available the estimator runs eager and logs why, once.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import checkpoint
from .accelerate import CompiledFrame, PinnedUpload
from .config import DiTConfig, EncoderConfig
from .dit import SPDiT
from .preprocess import DEFAULT_TARGET_AREA, model_size, resize_for_model
from .released import where_to_get
from .runtime import autocast, autocast_dtype, model_options_problem, resolve_device, resolve_precision
from .runtime import release_device_memory  # noqa: F401 (importable from here, as before)
from .sampler import (DEPTH_OFFSET, euler_schedule, integrate_with_uncertainty, noise_to, sample,
                      sampling_timesteps, warm_start_index)
from .vit import SemanticEncoder

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / 'weights'
DEFAULT_WARM_STRENGTH = 0.5
_LOG = logging.getLogger('ppd_ros.model')


class PPDEstimator:
    """Pixel-Perfect Depth inference (see the module docstring)."""

    def __init__(self, dit: SPDiT, encoder: SemanticEncoder, device='auto', precision: str = 'fp32',
                 steps: int = 4, seed: int | None = None, target_area=DEFAULT_TARGET_AREA,
                 name: str = 'ppd', *, compile: str = 'off', backend: str = 'torch', onnx_path=None,
                 compile_backend: str | None = None, log=None, defer_warm_up: bool = False):
        """compile: 'off' | 'on'; backend: 'torch' | 'onnxruntime' | 'tensorrt' (the last two run
        ``onnx_path``); compile_backend: torch.compile backend, None = inductor on CUDA (tests use
        'eager'/'aot_eager' on CPU); log(line): where the one fallback line goes (logging);
        defer_warm_up: compile on leaves ``warm_up()`` to the caller, to run on the thread that
        will infer (CUDA-graph trees are per thread: a capture on another thread is not reused)."""
        problem = model_options_problem(backend=backend, onnx_path=onnx_path, compile=compile)
        if problem is not None:
            raise ValueError(problem)
        if encoder.semantic_dim != dit.config.semantic_dim:
            raise ValueError(f'encoder width {encoder.semantic_dim} does not match the DiT '
                             f'semantic width {dit.config.semantic_dim}')
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f'seed must be an int or None, got {seed!r}')
        model_size(480, 640, target_area)  # validates target_area
        self.device = resolve_device(device)
        self.precision = precision
        # Inference runs under inference_mode; training flags of shared modules are left alone.
        self.dit = dit.to(self.device)
        self.encoder = encoder.to(self.device)
        self.steps = steps
        self.seed = seed
        self.target_area = tuple(target_area)
        self.name = name
        self._log = log or _LOG.warning
        self._frame = None       # CompiledFrame or OnnxFrame: runs cold-start frames
        self._upload = None      # PinnedUpload on CUDA with compile on
        if compile == 'on':
            self._frame = CompiledFrame(self.dit, self.encoder, self.device,
                                        autocast_dtype(self.precision), compile_backend)
            if not defer_warm_up:
                self.warm_up()
            if self.device.type == 'cuda':
                self._upload = PinnedUpload(self.device)
        elif backend != 'torch':
            from .export import OnnxFrame
            provider = 'tensorrt' if backend == 'tensorrt' else \
                f'onnxruntime-{"cuda" if self.device.type == "cuda" else "cpu"}'
            self._frame = OnnxFrame(onnx_path, provider)
            note = self._frame.check_model(self.dit, self.encoder, name)  # ExportError: other weights
            if note:
                self._log(note)

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoints(cls, dit_path, encoder_path=None, device='auto', precision: str = 'fp32',
                         steps: int = 4, seed: int | None = None, target_area=DEFAULT_TARGET_AREA,
                         encoder_heads: int | None = None, **fast) -> 'PPDEstimator':
        """Released ``ppd.pth`` + ``depth_anything_v2_vitl.pth`` (or ``ppd_moge.pth`` + ``moge2.pt``).
        Both paths are needed (``runtime.model_options_problem``): a file holding both models is
        given as both. ``fast``: the keyword-only options of the constructor (compile, backend,
        onnx_path, …)."""
        problem = model_options_problem(dit_path, encoder_path,
                                        names={'dit': 'dit_path', 'encoder': 'encoder_path'})
        if problem is not None:
            raise ValueError(problem)
        dit = checkpoint.load_dit(dit_path)
        encoder = checkpoint.load_encoder(encoder_path, num_heads=encoder_heads)
        return cls(dit, encoder, device, precision, steps, seed, target_area, name=Path(dit_path).stem,
                   **fast)

    @classmethod
    def from_config(cls, dit_config: DiTConfig | None = None, encoder_config: EncoderConfig | None = None,
                    device='auto', precision: str = 'fp32', steps: int = 4, seed: int | None = None,
                    target_area=DEFAULT_TARGET_AREA, init_seed: int = 0, **fast) -> 'PPDEstimator':
        """Randomly initialised model (tiny by default) for tests and pipelines without weights.
        Weights are reproducible from ``init_seed``; the global RNG is left untouched."""
        encoder_config = encoder_config or EncoderConfig.tiny()
        dit_config = dit_config or DiTConfig.tiny(semantic_dim=encoder_config.embed_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            dit = SPDiT(dit_config)
            dit.reset_parameters(zero_output=False)
            encoder = SemanticEncoder(encoder_config)
        dit.eval().requires_grad_(False)
        encoder.eval().requires_grad_(False)
        return cls(dit, encoder, device, precision, steps, seed, target_area, name='random', **fast)

    @classmethod
    def from_file(cls, path, device='auto', precision: str = 'fp32', steps: int | None = None,
                  seed: int | None = None, target_area=None, **fast) -> 'PPDEstimator':
        """Estimator from the single-file format written by ``save_estimator``. ``steps`` and
        ``target_area`` default to the file's metadata entries of those names (the values the
        model was trained/exported for), else to 4 and 1024×768."""
        dit, encoder, metadata = checkpoint.load_model_file(path)
        try:
            if steps is None:
                steps = int(metadata.get('steps', 4))
            if target_area is None:
                target_area = tuple(json.loads(metadata['target_area'])) if 'target_area' in metadata \
                    else DEFAULT_TARGET_AREA
        except (ValueError, TypeError) as exc:
            raise checkpoint.CheckpointError(f'{path}: invalid steps/target_area metadata: {exc}') from exc
        return cls(dit, encoder, device, precision, steps, seed, target_area,
                   name=metadata.get('name', Path(path).stem), **fast)

    @classmethod
    def demo(cls, name: str | None = None, **kwargs) -> 'PPDEstimator':
        """Bundled demo weights ``ppd_ros/weights/demo_<name>.safetensors`` (first one if no name)."""
        found = sorted(WEIGHTS_DIR.glob('demo_*.safetensors'))
        if name is not None:
            found = [p for p in found if p.stem == f'demo_{name}']
        if not found:
            wanted = f'demo_{name}.safetensors' if name else 'demo_*.safetensors'
            raise FileNotFoundError(f'no bundled demo weights: {WEIGHTS_DIR / wanted} not found (use '
                                    f'from_checkpoints() with the released weights, or from_config(); '
                                    f'{where_to_get()})')
        return cls.from_file(found[0], **kwargs)

    # -------------------------------------------------------------------------- settings
    @property
    def variant(self) -> str:
        """'da2' (Depth-Anything-v2 semantics) or 'moge2' (MoGe-2 semantics, metric depth available)."""
        return self.encoder.variant

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str):
        self._precision = resolve_precision(value, self.device)

    @property
    def steps(self) -> int:
        return self._steps

    @steps.setter
    def steps(self, value: int):
        sampling_timesteps(value)  # raises ValueError unless an integer >= 1
        self._steps = value

    @property
    def acceleration(self) -> str:
        """How cold-start frames run: 'eager', the compiled path, or the ONNX backend."""
        if self._frame is None:
            return 'eager'
        if isinstance(self._frame, CompiledFrame):
            return self._frame.describe()
        return f'{self._frame.backend} ({self._frame.path.name})'

    def warm_up(self, height: int | None = None, width: int | None = None, batch: int = 1) -> None:
        """Compile (and capture) the compiled path for one frame size, by default the target
        area's own (a camera of that aspect ratio), and ``batch`` frames per run (several
        cameras); other sizes and batch sizes compile on their first frame."""
        if not isinstance(self._frame, CompiledFrame):
            return
        if height is None or width is None:
            height, width = model_size(self.target_area[1], self.target_area[0], self.target_area)
        self._frame.warm_up(height, width, self.steps, batch=batch)
        self._report_fallback()

    def _report_fallback(self) -> None:
        frame = self._frame
        if isinstance(frame, CompiledFrame) and not frame.active and not getattr(self, '_reported', False):
            self._reported = True
            self._log(f'model.compile on: {frame.fallback_reason}')

    def infer_size(self, height: int, width: int) -> tuple[int, int]:
        """Model resolution (h, w) of the depth returned for a height × width frame."""
        return model_size(height, width, self.target_area)

    def describe(self) -> dict:
        d, e = self.dit.config, self.encoder.config
        return {
            'model': (f'{self.name}: SP-DiT hidden {d.hidden_size} depth {d.depth} heads {d.num_heads} '
                      f'patch {d.patch_size} + {self.variant} semantics (DINOv2 width {e.embed_dim} '
                      f'depth {e.depth})'),
            'device': str(self.device),
            'precision': self.precision,
            'steps': self.steps,
            'resolution': f'{self.target_area[0]}x{self.target_area[1]}',
            'seed': self.seed,
            'acceleration': self.acceleration,
            'parameters': sum(p.numel() for p in self.dit.parameters())
                          + sum(p.numel() for p in self.encoder.parameters()),
        }

    # ------------------------------------------------------------------------- inference
    def predict(self, rgb: np.ndarray, init_depth: np.ndarray | None = None,
                init_strength: float | None = None) -> np.ndarray:
        """H×W×3 uint8 RGB → (h, w) float32 relative depth at the model resolution."""
        return self.predict_batch([rgb], None if init_depth is None else [init_depth], init_strength)[0]

    def predict_batch(self, rgbs: Sequence[np.ndarray], init_depths: Sequence[np.ndarray] | None = None,
                      init_strength: float | None = None) -> list[np.ndarray]:
        """Several frames; frames with the same model size run as one batch. Order is kept."""
        if init_depths is not None and len(init_depths) != len(rgbs):
            raise ValueError(f'{len(init_depths)} init depths for {len(rgbs)} frames')
        if init_strength is not None and init_depths is None:
            raise ValueError('init_strength given without init_depth')
        images = [resize_for_model(rgb, self.target_area).image for rgb in rgbs]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape[:2], []).append(i)
        results: list[np.ndarray | None] = [None] * len(images)
        for (h, w), index in groups.items():
            frames = np.stack([images[i] for i in index])
            batch = self._upload(frames) if self._upload is not None and init_depths is None \
                else torch.from_numpy(frames).to(self.device)
            batch = batch.permute(0, 3, 1, 2).float() / 255.0
            init = None
            if init_depths is not None:
                init = torch.from_numpy(np.stack([_check_init(init_depths[i], (h, w)) for i in index]))
                init = init[:, None].to(self.device)
            depth = self.predict_tensor(batch, init, init_strength).cpu().numpy()
            for j, i in enumerate(index):
                results[i] = depth[j, 0]
        return results

    def predict_tensor(self, images: torch.Tensor, init_depth: torch.Tensor | None = None,
                       init_strength: float | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, 3, h, w) RGB in [0, 1] at a valid model size → depth (B, 1, h, w) float32."""
        b, _, h, w = images.shape
        self.dit.check_input_size(h, w)
        start = 0
        if init_strength is not None and init_depth is None:
            raise ValueError('init_strength given without init_depth')
        if init_depth is not None:
            start = warm_start_index(self.steps, DEFAULT_WARM_STRENGTH if init_strength is None
                                     else init_strength)
        if noise is None:
            noise = self._noise(b, h, w)
        images = images.to(self.device, torch.float32)
        if self._frame is not None and init_depth is None:
            if not isinstance(self._frame, CompiledFrame):
                self._frame.check(self.steps, h, w)  # the exported size and step count
            with torch.inference_mode():
                depth = self._frame(images, noise.to(self.device), self.steps) \
                    if isinstance(self._frame, CompiledFrame) else self._frame(images, noise)
            self._report_fallback()
            return depth.float()
        with torch.inference_mode(), self._autocast():
            semantics = self.encoder(images)
            depth = sample(self.dit, images, semantics, noise.to(self.device), self.steps,
                           init_depth=init_depth, start_index=start)
        return depth.float()

    # ------------------------------------------------------------------------ confidence
    @property
    def has_uncertainty(self) -> bool:
        """True when frames run eager PyTorch, where the sampler's own signals can be read
        (the compiled graph and the ONNX backends return the depth alone)."""
        return self._frame is None

    def predict_with_uncertainty(self, rgb: np.ndarray, init_depth: np.ndarray | None = None,
                                 init_strength: float | None = None, samples: int = 1):
        """``predict`` plus the sampler's uncertainty signals: (depth, {name: (h, w) float32}).

        The depth is bit-identical to ``predict``'s on the eager path (same operations, same
        noise). Signals (relative-depth units): ``sampler.UNCERTAINTY_SIGNALS`` from this one
        run, and with ``samples`` K > 1 also ``seed_spread``, the standard deviation over K noise
        seeds (seed, seed + 1, …; K − 1 extra samplings). ValueError on the compiled/ONNX path.
        """
        if not self.has_uncertainty:
            raise ValueError(f'the sampler\'s confidence needs the eager path (model.compile off, '
                             f'model.backend torch); this estimator runs {self.acceleration}')
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f'samples must be an integer >= 1, got {samples!r}')
        image = resize_for_model(rgb, self.target_area).image
        h, w = image.shape[:2]
        images = torch.from_numpy(image[None]).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        self.dit.check_input_size(h, w)
        plan = euler_schedule(self.steps)
        start = 0
        if init_strength is not None and init_depth is None:
            raise ValueError('init_strength given without init_depth')
        init = None
        if init_depth is not None:
            start = warm_start_index(self.steps, DEFAULT_WARM_STRENGTH if init_strength is None
                                     else init_strength)
            init = torch.from_numpy(_check_init(init_depth, (h, w)))[None, None].to(self.device)
        noise = self._noise(1, h, w).to(self.device)
        with torch.inference_mode(), self._autocast():
            semantics = self.encoder(images)
            runs = []
            for k in range(samples):
                if k == 0:
                    n = noise
                elif self.seed is None:
                    n = torch.randn_like(noise)
                else:
                    n = torch.randn((1, 1, h, w), generator=torch.Generator().manual_seed(self.seed + k)).to(self.device)
                x = n.float()
                if init is not None:
                    x = noise_to(init.float() - DEPTH_OFFSET, x, plan[start].t)
                runs.append(integrate_with_uncertainty(self.dit, x, images, semantics, plan[start:]))
        depth, signals = runs[0]
        out = {name: value[0, 0].float().cpu().numpy() for name, value in signals.items()}
        if samples > 1:
            stack = torch.stack([d.float() for d, _ in runs])
            out['seed_spread'] = stack.std(dim=0, unbiased=False)[0, 0].cpu().numpy()
        return depth.float()[0, 0].cpu().numpy(), out

    # ----------------------------------------------------------------------- metric pass
    @property
    def has_metric_model(self) -> bool:
        """True for PPD with MoGe-2 semantics: MoGe-2 also gives metric depth and intrinsics."""
        return getattr(self.encoder, 'moge', None) is not None

    def metric_geometry(self, rgb: np.ndarray, resolution_level: int = 9):
        """MoGe-2's metric view of an H×W×3 uint8 RGB frame at the model resolution (h, w) — the
        same resized image the DiT sees: ``geometry.scale.model_scale.ModelGeometry`` (metres, valid
        mask, intrinsics in pixels of the h×w image). Only with MoGe-2 weights. ``resolution_level``
        0..9 picks MoGe-2's token count in its ``num_tokens_range`` (9, the top, as released)."""
        return self.metric_geometry_batch([rgb], resolution_level)[0]

    def metric_geometry_batch(self, rgbs: Sequence[np.ndarray], resolution_level: int = 9) -> list:
        """``metric_geometry`` of frames that share a model resolution, as one MoGe-2 batch (the
        frames of several cameras: pipeline.batch)."""
        from ..geometry.scale.model_scale import ModelGeometry
        if not self.has_metric_model:
            raise ValueError('metric depth from the camera alone needs MoGe-2 weights (moge2.pt as the '
                             f'encoder); this model has {self.variant} semantics')
        images = np.stack([resize_for_model(rgb, self.target_area).image for rgb in rgbs])  # one size, or ValueError
        tensor = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode(), self._autocast():
            geometry = self.encoder.moge.infer(tensor, resolution_level=resolution_level)
        out = []
        for i in range(len(rgbs)):
            k = geometry.intrinsics[i].float().cpu().numpy()
            out.append(ModelGeometry.from_normalized(geometry.depth[i].float().cpu().numpy(), geometry.mask[i].cpu().numpy(),
                                                     float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])))
        return out

    def _noise(self, batch: int, height: int, width: int) -> torch.Tensor:
        if self.seed is None:
            return torch.randn((batch, 1, height, width), device=self.device)
        frames = [torch.randn((1, 1, height, width), generator=torch.Generator().manual_seed(self.seed))
                  for _ in range(batch)]
        return torch.cat(frames).to(self.device)

    def _autocast(self):
        return autocast(self.precision, self.device)


def _check_init(init: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    init = np.asarray(init, dtype=np.float32)
    if init.shape != size:
        raise ValueError(f'init_depth must have the model resolution {size}, got {init.shape}')
    if not np.isfinite(init).all():
        raise ValueError('init_depth contains non-finite values')
    return init


def save_estimator(path, estimator: PPDEstimator, dtype: torch.dtype = torch.float32,
                   name: str | None = None) -> Path:
    """Write an estimator as one safetensors file: ``dit.*`` + ``pretrained.*`` tensors; metadata
    ``config`` (JSON {"dit": DiTConfig fields, "encoder": EncoderConfig fields}), ``format``,
    ``name``, ``steps`` and ``target_area`` (JSON [width, height]). Read back with
    ``load_from_file`` / ``PPDEstimator.from_file`` / ``PPDEstimator.demo()``."""
    metadata = {'name': name or estimator.name, 'steps': str(estimator.steps),
                'target_area': json.dumps(list(estimator.target_area))}
    return checkpoint.save_model_file(path, estimator.dit, estimator.encoder, dtype, metadata)


def load_from_file(path, **kwargs) -> PPDEstimator:
    """Inverse of ``save_estimator``; kwargs as ``PPDEstimator.from_file`` (device, precision, …)."""
    return PPDEstimator.from_file(path, **kwargs)


__all__ = ['PPDEstimator', 'save_estimator', 'load_from_file', 'DEFAULT_WARM_STRENGTH']
