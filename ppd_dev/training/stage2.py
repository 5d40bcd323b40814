"""Stage 2: the SP-DiT trained with flow matching on top of the frozen stage-1 encoder.

x_t = (1 − t)·x0 + t·x1 with x0 the normalised log-depth and x1 ~ N(0, 1); the DiT predicts the
velocity x1 − x0 from [x_t, image − 0.5] and the encoder's semantics; loss = MSE on valid pixels
(paper eq. 1–3). The DiT sees t on the released 0..1000 scale.

`loss='l1'` (the demo's recipe option, not the paper's): the last Euler step returns
x0 = x_t − t·v̂, and given x_t the true velocity is (x_t − x0)/t, so an MSE-trained v̂ makes that
step output the posterior mean of x0, which at a depth edge the image leaves open is a blend of
the two surfaces (a flying pixel). L1 makes it the posterior median, which lies on one of them.
Measured: demo v7 → v9, flying pixels 0.259 → 0.247 (ppd_ros/weights/README.md, history item 11).

Timesteps: t ~ U(0, 1) for a fraction of the batch; the rest is drawn from the timesteps the
released 4-step Euler schedule visits (1000, 750, 500, 249), so that a model trained for minutes
on a CPU is accurate exactly where the demo samples (warm starts use the same timesteps; other
step counts rely on the uniform part).
"""
from __future__ import annotations

import torch
from torch import nn

TIMESTEP_SCALE = 1000.0


SCHEDULE_TIMESTEPS = (1000, 750, 500, 249)  # sampler.sampling_timesteps(4)
LOSSES = {'mse': 'MSE', 'l1': 'L1 (mean absolute error)'}  # recipe.stage2_loss: its name on the card


class FlowMatchingObjective(nn.Module):
    """Wraps a DiT and a frozen semantics encoder; ``forward`` returns the velocity loss
    (``loss`` = 'mse' or 'l1', mean over valid pixels)."""

    def __init__(self, dit: nn.Module, encoder: nn.Module, uniform_fraction: float = 0.5, loss: str = 'mse'):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"stage-2 loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.loss = loss
        self.dit = dit
        self.encoder = encoder.requires_grad_(False).eval()
        self.uniform_fraction = uniform_fraction

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: never in training mode
        return self

    def forward(self, image: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        b = image.shape[0]
        with torch.no_grad():
            semantics = self.encoder(image)
        x0 = target[:, None]
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        t = torch.rand(b, generator=generator, dtype=x0.dtype)
        pick = torch.randint(len(SCHEDULE_TIMESTEPS), (b,), generator=generator)
        on_schedule = torch.rand(b, generator=generator) >= self.uniform_fraction
        t = torch.where(on_schedule, torch.tensor(SCHEDULE_TIMESTEPS, dtype=x0.dtype)[pick] / TIMESTEP_SCALE, t)
        t = t.to(x0.device)
        x_t = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
        velocity = velocity_prediction(self.dit, x_t, image, semantics, t)
        diff = velocity - (noise - x0)
        err = (diff ** 2 if self.loss == 'mse' else diff.abs()) * valid[:, None].float()
        return err.sum() / valid.float().sum().clamp_min(1.0)


def velocity_prediction(dit: nn.Module, x_t: torch.Tensor, image: torch.Tensor,
                        semantics: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """One DiT call: input = [x_t, image − 0.5] (B, 4, H, W), timestep on the 0..1000 scale."""
    x = torch.cat([x_t, image - 0.5], dim=1)
    return dit(x, semantics, t * TIMESTEP_SCALE)
