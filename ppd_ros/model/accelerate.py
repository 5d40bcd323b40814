"""Compiled cold-start frames for ``PPDEstimator`` (``compile='on'``).

``CompiledFrame`` wraps ``FrameGraph`` (encoder once + the N Euler steps, no host syncs) in
``torch.compile(fullgraph=True)`` for fixed shapes; on CUDA with mode ``reduce-overhead``, i.e.
the whole frame is also captured as a CUDA graph and replayed as one launch. Autocast
(fp16/bf16) is applied inside the compiled region; attention is
``F.scaled_dot_product_attention`` throughout (flash / memory-efficient kernels on CUDA).

``warm_up(h, w)`` compiles (and on CUDA captures) at start-up so the first real frame is not the
slow one. Where compiling fails (no Triton or C++ compiler, an unsupported device) the frame runs
eager and ``fallback_reason`` says why, in one line, for the caller to log once.

On CPU, ``compile='on'`` runs eager unless a backend is named: inductor's CPU code took about
3 minutes to compile the tiny test model on the 2-core development machine, and CUDA graphs need a
GPU. Tests name the cheap ``eager``/``aot_eager`` backends, which still enforce ``fullgraph``.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from .frame_graph import FrameGraph


class CompiledFrame:
    """(image (B, 3, h, w), noise (B, 1, h, w)) → depth (B, 1, h, w) float32, compiled per step
    count; shapes are static (a new shape compiles again, once)."""

    def __init__(self, dit, encoder, device: torch.device, autocast_dtype: torch.dtype | None = None,
                 backend: str | None = None):
        self.dit, self.encoder, self.device = dit, encoder, device
        self.autocast_dtype = autocast_dtype
        self.fallback_reason: str | None = None
        if backend is None and device.type != 'cuda':
            self.fallback_reason = (f'model.compile on needs a CUDA device (on {device.type} inductor '
                                    'compiles for minutes and CUDA graphs do not exist); running eager')
        self.backend = backend or 'inductor'
        self.cuda_graphs = device.type == 'cuda' and self.backend == 'inductor'
        self._compiled: dict[int, object] = {}
        self._eager: dict[int, FrameGraph] = {}

    @property
    def active(self) -> bool:
        return self.fallback_reason is None

    def describe(self) -> str:
        if not self.active:
            return f'eager ({self.fallback_reason})'
        return f'torch.compile {self.backend}' + (' + CUDA graphs' if self.cuda_graphs else '')

    def _graph(self, steps: int) -> FrameGraph:
        if steps not in self._eager:
            self._eager[steps] = FrameGraph(self.dit, self.encoder, steps)
        return self._eager[steps]

    def _function(self, steps: int):
        if steps not in self._compiled:
            graph = self._graph(steps)
            mode = 'reduce-overhead' if self.cuda_graphs else None
            self._compiled[steps] = torch.compile(graph, fullgraph=True, dynamic=False,
                                                  backend=self.backend, mode=mode)
        return self._compiled[steps]

    def __call__(self, image: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
        if not self.active:
            with self._autocast():
                return self._graph(steps)(image, noise)
        try:
            with self._autocast():
                depth = self._function(steps)(image, noise)
        except Exception as exc:  # noqa: BLE001 — any compiler failure: say why once, go eager
            self.fallback_reason = f'torch.compile failed ({_first_line(exc)}); running eager'
            with self._autocast():
                return self._graph(steps)(image, noise)
        # CUDA-graph outputs live in the graph's memory pool and are overwritten by the next replay.
        return depth.clone() if self.cuda_graphs else depth

    def warm_up(self, height: int, width: int, steps: int, runs: int = 3, batch: int = 1) -> None:
        """Compile (and capture) for (batch, 3, height, width) before the first real frame (one
        capture per batch size and resolution: the cameras of a multi-camera depth_node)."""
        if not self.active:
            return
        image = torch.rand(batch, 3, height, width, device=self.device)
        noise = torch.randn(batch, 1, height, width, device=self.device)
        with torch.inference_mode():
            for _ in range(runs if self.cuda_graphs else 1):  # cudagraph trees record on a later run
                self(image, noise, steps)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


class PinnedUpload:
    """Pre-allocated pinned host buffer and device buffer for uint8 frames (CUDA only): the
    host→device copy is asynchronous on a side stream, and the compute stream waits for it on
    the device (an event), not on the host. Grows when a larger batch or frame arrives."""

    def __init__(self, device: torch.device):
        if device.type != 'cuda':
            raise ValueError('PinnedUpload is for CUDA devices')
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self.copied = torch.cuda.Event()
        self.host: torch.Tensor | None = None
        self.device_buffer: torch.Tensor | None = None

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        """frames (B, h, w, 3) uint8 → a device view of the same shape, ready on the current stream."""
        shape = tuple(frames.shape)
        if self.host is None or self.host.shape != shape:
            self.host = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            self.device_buffer = torch.empty(shape, dtype=torch.uint8, device=self.device)
        self.copied.synchronize()  # the previous upload has left the pinned buffer
        self.host.copy_(torch.from_numpy(frames))
        compute = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(compute)  # the previous frame has finished reading the device buffer
        with torch.cuda.stream(self.stream):
            self.device_buffer.copy_(self.host, non_blocking=True)
            self.copied.record(self.stream)
        compute.wait_event(self.copied)
        return self.device_buffer


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {lines[0] if lines else ""}'.strip()


__all__ = ['CompiledFrame', 'PinnedUpload']
