"""One frame's whole computation as a module of tensors only: image + noise → depth.

``FrameGraph`` runs the encoder once and then the fixed Euler plan of the SP-DiT (cold start). The
plan's timesteps and coefficients are Python numbers fixed at construction, and nothing reads a
tensor back to the host, so for a fixed input shape the module traces as ONE graph:
``torch.compile(fullgraph=True)`` (and CUDA-graph capture on top of it) and ONNX export
(``ppd_ros.model.export``) see the same code the eager estimator runs.
"""
from __future__ import annotations

import torch
from torch import nn

from .sampler import euler_schedule, integrate


class FrameGraph(nn.Module):
    """image (B, 3, H, W) RGB in [0, 1] + noise (B, 1, H, W) → depth (B, 1, H, W) float32."""

    def __init__(self, dit: nn.Module, encoder: nn.Module, steps: int):
        super().__init__()
        self.dit = dit
        self.encoder = encoder
        self.steps = steps
        self.plan = euler_schedule(steps)

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        semantics = self.encoder(image)
        return integrate(self.dit, noise.float(), image, semantics, self.plan).float()
