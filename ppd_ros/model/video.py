"""Pixel-Perfect Video Depth (PPVD) inference: overlapping windows, shared noise, alignment.

A clip is cut into windows of ``length`` (16) frames. The first window holds frames 0..15; every
later window inherits its first 3 slots from the previous window *as it was run* — its slots
0, 8, 15 (the keyframes; slot 0 is therefore always frame 0) — and takes the next 13 new frames.
Every window starts the sampler from the SAME initial noise, so windows agree where they overlap.
Each window's relative depth (resized back to the input size) gets one scale and shift from a
least-squares fit of its 3 keyframe slots to [window 0's frame 0, the previous aligned window's
slot 8, its slot 15]; its new slots 3..15 are then appended.

``VideoDepthStream`` runs this causally, one frame at a time: a window runs as soon as it is full
and its new frames come out aligned. The offline ``VideoDepthEstimator.infer_video`` is the same
stream fed with the whole clip and then flushed (padding with the last frame exactly as the
released code pads), so offline and streaming outputs agree by construction; with fewer new
frames per window (``new_frames`` < 13) the stream trades more compute per frame for less latency.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dit_video import VideoDiT, VideoDiTConfig
from .pi3 import Pi3Config, Pi3Semantics
from .runtime import autocast, resolve_device, resolve_precision
from .sampler import DEPTH_OFFSET, EulerStep, euler_schedule, euler_update, sampling_timesteps

INFER_LEN = 16            # frames per released window
KEYFRAMES = (0, 8, 15)    # slots a window hands on to the next one
OVERLAP = len(KEYFRAMES)
STRIDE = INFER_LEN - OVERLAP  # new frames per released window (13)


@dataclass(frozen=True)
class WindowPlan:
    """Window of ``OVERLAP`` inherited keyframes + ``new_frames`` new ones (the first window:
    ``length`` new frames). Keyframes: first, middle, last slot (0, 8, 15 for the release)."""
    new_frames: int = STRIDE

    def __post_init__(self):
        if not isinstance(self.new_frames, int) or not 1 <= self.new_frames <= STRIDE:
            raise ValueError(f'new frames per window must be an integer in 1..{STRIDE}, got {self.new_frames!r}')

    @property
    def length(self) -> int:
        return OVERLAP + self.new_frames

    @property
    def keyframes(self) -> tuple[int, int, int]:
        return (0, self.length // 2, self.length - 1)


def padded_length(num_frames: int, plan: WindowPlan = WindowPlan()) -> int:
    """Frames after padding with copies of the last one: length + k·stride >= num_frames (the
    released rule ``(T − 16) mod 13``; clips of 1..3 frames, which the released code cannot run,
    are padded to one window as well)."""
    if num_frames < 1:
        raise ValueError('a clip needs at least one frame')
    extra = max(0, num_frames - plan.length)
    return plan.length + -(-extra // plan.new_frames) * plan.new_frames


def window_slots(num_frames: int, plan: WindowPlan = WindowPlan()) -> list[list[int]]:
    """Frame index in every slot of every window (padding shown as the last frame)."""
    total = padded_length(num_frames, plan)
    frames = [min(i, num_frames - 1) for i in range(total)]
    windows = [frames[:plan.length]]
    for start in range(plan.new_frames, total - plan.length + 1, plan.new_frames):
        windows.append([windows[-1][k] for k in plan.keyframes] + frames[start + OVERLAP:start + plan.length])
    return windows


def fit_scale_shift(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares (scale, shift) with scale·prediction + shift ≈ target over all pixels
    (float32 sums, closed form); a singular system gives (1, 0). No host synchronisation."""
    p = prediction.float().reshape(-1)
    t = target.float().reshape(-1)
    a00, a01 = (p * p).sum(), p.sum()
    a11 = torch.tensor(float(p.numel()), device=p.device)
    b0, b1 = (p * t).sum(), t.sum()
    det = a00 * a11 - a01 * a01
    ok = det != 0
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.ones_like(det))
    shift = torch.where(ok, (-a01 * b0 + a00 * b1) / safe, torch.zeros_like(det))
    return scale, shift


class PPVD(nn.Module):
    """Pi3 semantics + video DiT: one window of frames → relative depth at S × S."""

    def __init__(self, semantics: Pi3Semantics, dit: VideoDiT):
        super().__init__()
        if semantics.config.semantic_dim != dit.config.semantic_dim:
            raise ValueError(f'Pi3 semantics width {semantics.config.semantic_dim} does not match the video '
                             f'DiT semantic width {dit.config.semantic_dim}')
        self.semantics = semantics
        self.dit = dit

    @property
    def size(self) -> int:
        """S: the square frame size the video DiT runs on."""
        return self.dit.config.video_size

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) → (N, 3, S, S), bilinear without antialias (as released)."""
        if frames.shape[-2:] == (self.size, self.size):
            return frames
        return F.interpolate(frames, size=(self.size, self.size), mode='bilinear', align_corners=False)

    def predict_window(self, clip: torch.Tensor, noise: torch.Tensor, steps: int | Sequence[EulerStep],
                       trace: dict | None = None) -> torch.Tensor:
        """clip (L, 3, S, S) RGB in [0, 1]; noise (L, 1, S, S) → depth (L, 1, S, S) = x0 + 0.5.
        ``steps``: a step count, or its ``euler_schedule`` computed beforehand (what a compiled
        window takes: the schedule is built with tensor ops that torch.compile must not trace)."""
        semantics = self.semantics(clip)
        if trace is not None:
            trace.setdefault('window_semantics', []).append(semantics.float())
        semantics = F.normalize(semantics, dim=-1)  # once per window, not per step
        cond = clip - DEPTH_OFFSET
        x = noise.float()
        for step in euler_schedule(steps) if isinstance(steps, int) else steps:
            t = torch.full((1,), step.t, dtype=torch.int32, device=clip.device)
            pred = self.dit(torch.cat((x, cond.to(x.dtype)), dim=1), semantics, t, semantics_normalized=True)
            x = euler_update(pred, x, step)
        return x + DEPTH_OFFSET


@dataclass
class _Slot:
    frame: torch.Tensor        # (3, S, S) RGB in [0, 1]
    key: Any                   # caller's tag (None for padding)
    is_pad: bool = False


@dataclass
class WindowRecord:
    """What one window did (for diagnostics and parity)."""
    index: int
    keys: list
    scale: torch.Tensor | None = None   # the alignment fit (None for the first window)
    shift: torch.Tensor | None = None


class VideoDepthStream:
    """Causal PPVD: ``push`` frames one by one; each returns the (key, depth (H, W)) pairs whose
    window just finished, aligned to the stream so far. ``flush`` pads the last window with
    copies of the last frame (as the released offline code) and returns the rest.

    Frames: (3, H, W) float RGB in [0, 1] tensors (or uint8 H×W×3 RGB arrays via ``push_rgb``),
    all of the same size; depths come back at that size (torch float32 on the model device).
    """

    def __init__(self, model: PPVD, noise: torch.Tensor, steps: int = 4, new_frames: int = STRIDE,
                 autocast=None, trace: dict | None = None):
        self.model = model
        self.plan = WindowPlan(new_frames)
        if noise.shape[0] < self.plan.length or noise.shape[-2:] != (model.size, model.size):
            raise ValueError(f'noise {tuple(noise.shape)} too small for windows of {self.plan.length} '
                             f'{model.size}x{model.size} frames')
        self.noise = noise[:self.plan.length]
        sampling_timesteps(steps)
        self.steps = steps
        self._autocast = autocast
        self.trace = trace
        self.device = noise.device
        self._slots: list[_Slot] = []
        self._inherited = 0          # slots at the front that came from the previous window
        self._refs: list[torch.Tensor] | None = None  # [window-0 frame 0, slot mid, slot last]
        self._out_size: tuple[int, int] | None = None
        self.windows_run = 0
        self.last_window: WindowRecord | None = None

    @property
    def pending(self) -> int:
        """New frames waiting for their window."""
        return len(self._slots) - self._inherited

    def push(self, frame: torch.Tensor, key: Hashable = None) -> list[tuple[Any, torch.Tensor]]:
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f'expected a frame (3, H, W), got shape {tuple(frame.shape)}')
        size = tuple(frame.shape[-2:])
        if self._out_size is None:
            self._out_size = size
        elif size != self._out_size:
            raise ValueError(f'frame size {size[0]}x{size[1]} differs from the stream\'s '
                             f'{self._out_size[0]}x{self._out_size[1]}; start a new stream')
        small = self.model.resize(frame.to(self.device, torch.float32)[None])[0]
        self._slots.append(_Slot(small, key))
        if len(self._slots) == self.plan.length:
            return self._run_window()
        return []

    def push_rgb(self, rgb: np.ndarray, key: Hashable = None) -> list[tuple[Any, np.ndarray]]:
        """``push`` for an H×W×3 uint8 RGB array; depths come back as float32 numpy arrays."""
        frame = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1).float() / 255.0
        return [(k, d.cpu().numpy()) for k, d in self.push(frame, key)]

    def flush(self) -> list[tuple[Any, torch.Tensor]]:
        """Finish the stream: run the last, padded window if any new frame is waiting."""
        if self.pending == 0:
            return []
        last = self._slots[-1].frame
        while len(self._slots) < self.plan.length:
            self._slots.append(_Slot(last, None, is_pad=True))
        return self._run_window()

    def _run_window(self) -> list[tuple[Any, torch.Tensor]]:
        clip = torch.stack([s.frame for s in self._slots])
        with torch.inference_mode(), self._autocast_context():
            depth = self.model.predict_window(clip, self.noise, self.steps, self.trace).float()
        resized = F.interpolate(depth, size=self._out_size, mode='bilinear', align_corners=False)[:, 0]
        record = WindowRecord(self.windows_run, [s.key for s in self._slots])
        if self._refs is None:
            aligned, first_new = resized, 0
        else:
            scale, shift = fit_scale_shift(resized[:OVERLAP], torch.stack(self._refs))
            aligned, first_new = resized * scale + shift, OVERLAP
            record.scale, record.shift = scale, shift
        keys = self.plan.keyframes
        if self._refs is None:
            self._refs = [aligned[k] for k in keys]
        else:
            self._refs = [self._refs[0]] + [aligned[k] for k in keys[1:]]
        if self.trace is not None:
            self.trace.setdefault('window_preds', []).append(depth)
            self.trace.setdefault('window_preds_resized', []).append(resized[:, None])
            if record.scale is not None:
                self.trace.setdefault('align_scale_shift', []).append(torch.stack((record.scale, record.shift)))
        out = [(s.key, aligned[i]) for i, s in enumerate(self._slots) if i >= first_new and not s.is_pad]
        self._slots = [self._slots[k] for k in keys]
        self._inherited = OVERLAP
        self.windows_run += 1
        self.last_window = record
        return out

    def _autocast_context(self):
        return self._autocast() if self._autocast is not None else contextlib.nullcontext()


def bgr_frames_to_tensor(frames) -> torch.Tensor:
    """(T, H, W, 3) uint8 BGR (array or tensor) → (T, 3, H, W) float32 RGB in [0, 1]."""
    frames = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f'expected frames (T, H, W, 3), got shape {tuple(frames.shape)}')
    if frames.dtype != torch.uint8:
        raise ValueError(f'expected uint8 frames, got {frames.dtype}')
    return frames.flip(-1).permute(0, 3, 1, 2).float() / 255.0


class VideoDepthEstimator:
    """PPVD on a device: offline ``infer_video`` and causal ``stream``.

    Noise: one (16, 1, S, S) tensor per clip/stream; with an integer ``seed`` it is
    ``torch.randn`` after ``torch.manual_seed(seed)`` on the CPU (the released recipe), so results
    are reproducible on any device; with ``seed=None`` it comes from the global RNG.
    """
    is_video = True  # callers pick the clip-wise path on this

    def __init__(self, model: PPVD, device='auto', precision: str = 'fp32', steps: int = 4,
                 seed: int | None = 666, name: str = 'ppvd'):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        sampling_timesteps(steps)
        self.steps = steps
        self.seed = seed
        self.name = name

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoints(cls, dit_path, encoder_path, **kwargs) -> 'VideoDepthEstimator':
        """Released ``ppvd.pth`` + ``pi3.safetensors``; sizes from the weights."""
        from . import checkpoint
        model = PPVD(checkpoint.load_pi3(encoder_path), checkpoint.load_video_dit(dit_path))
        kwargs.setdefault('name', Path(dit_path).stem)
        return cls(model, **kwargs)

    @classmethod
    def from_config(cls, dit_config: VideoDiTConfig | None = None, pi3_config: Pi3Config | None = None,
                    init_seed: int = 0, **kwargs) -> 'VideoDepthEstimator':
        """Randomly initialised (tiny by default) PPVD for tests; global RNG untouched."""
        pi3_config = pi3_config or Pi3Config.tiny()
        dit_config = dit_config or VideoDiTConfig.tiny(semantic_dim=pi3_config.semantic_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            dit = VideoDiT(dit_config)
            dit.reset_parameters(zero_output=False)
            semantics = Pi3Semantics(pi3_config)
        model = PPVD(semantics.eval().requires_grad_(False), dit.eval().requires_grad_(False))
        kwargs.setdefault('name', 'random-ppvd')
        return cls(model, **kwargs)

    # -------------------------------------------------------------------------- inference
    @property
    def size(self) -> int:
        return self.model.size

    def initial_noise(self) -> torch.Tensor:
        shape = (INFER_LEN, 1, self.size, self.size)
        if self.seed is None:
            return torch.randn(shape).to(self.device)
        return torch.randn(shape, generator=torch.Generator().manual_seed(self.seed)).to(self.device)

    def stream(self, new_frames: int = STRIDE, noise: torch.Tensor | None = None,
               trace: dict | None = None) -> VideoDepthStream:
        noise = self.initial_noise() if noise is None else noise.to(self.device)
        return VideoDepthStream(self.model, noise, self.steps, new_frames, self._autocast, trace)

    def infer_video(self, frames, noise: torch.Tensor | None = None, trace: dict | None = None) -> np.ndarray:
        """(T, H, W, 3) uint8 **BGR** frames (the released function's contract: OpenCV order)
        → (T, H, W) float32 relative depth, temporally aligned."""
        return self.infer_rgb(bgr_frames_to_tensor(frames), noise, trace).cpu().numpy()

    def infer_rgb(self, frames: torch.Tensor, noise: torch.Tensor | None = None,
                  trace: dict | None = None, new_frames: int = STRIDE) -> torch.Tensor:
        """(T, 3, H, W) float RGB in [0, 1] → (T, H, W) float32 depth tensor."""
        stream = self.stream(new_frames, noise, trace)
        depths: list = [None] * len(frames)
        for i, frame in enumerate(frames):
            for key, depth in stream.push(frame, i):
                depths[key] = depth
        for key, depth in stream.flush():
            depths[key] = depth
        return torch.stack(depths)

    def describe(self) -> dict:
        d, p = self.model.dit.config, self.model.semantics.config
        return {'model': (f'{self.name}: video DiT hidden {d.hidden_size} depth {d.depth} heads {d.num_heads} '
                          f'at {d.video_size}x{d.video_size} + Pi3 width {p.decoder_dim} '
                          f'(encoder depth {p.encoder.depth}, decoder depth {p.decoder_depth})'),
                'device': str(self.device), 'precision': self.precision, 'steps': self.steps,
                'resolution': f'{d.video_size}x{d.video_size}', 'seed': self.seed,
                'parameters': sum(t.numel() for t in self.model.parameters())}

    def _autocast(self):
        return autocast(self.precision, self.device)

