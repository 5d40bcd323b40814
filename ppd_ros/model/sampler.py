"""Flow-matching Euler sampler of Pixel-Perfect Depth (velocity prediction, linear schedule).

Forward process (released ``LinearSchedule``): x_t = (1 − t/T)·x0 + (t/T)·ε with T = 1000, so
t = T is pure noise and t = 0 the clean sample. The visited integer timesteps are
round(arange(T, −1, −(T+1)/steps)); from each t the model's velocity v gives
x0̂ = x_t − (t/T)·v and ε̂ = x_t + (1 − t/T)·v, and the next state is the schedule at the next
timestep s, or x0̂ after the last step. Model input = x_t ⊕ (image − 0.5); output = x0 + 0.5.

Everything that depends on the step index is precomputed as Python floats, so the loop never
reads a tensor back to the host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

T_MAX = 1000
DEPTH_OFFSET = 0.5  # model space = depth − 0.5 (and image − 0.5 for the conditioning)


@dataclass(frozen=True)
class EulerStep:
    t: int            # current timestep (model input)
    s: int            # next timestep, −1 after the last step (→ x0̂)
    b_t: float        # t/T, as the released float32 arithmetic gives it
    a_t: float        # 1 − t/T
    b_s: float        # s/T (0 when s < 0)
    a_s: float        # 1 − s/T


def sampling_timesteps(steps: int, T: int = T_MAX) -> list[int]:
    """The released integer timesteps, e.g. steps=4 → [1000, 750, 500, 249].

    For a few step counts (29, 49, 58, 59, 98, …) float rounding makes the released arange one
    element longer, ending in t = −1: an extra model call outside the trained range after x0 was
    already reached. That element is dropped here, so there are always exactly ``steps`` steps.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f'steps must be an integer >= 1, got {steps!r}')
    timesteps = torch.arange(T, -1, -(T + 1) / steps).round().int().tolist()
    return [t for t in timesteps if t >= 0]


def _fraction(t: int, T: int) -> tuple[float, float]:
    """(t/T, 1 − t/T) rounded exactly like the released float32 tensor arithmetic."""
    b = torch.tensor(t, dtype=torch.int32) / T
    return float(b), float(1 - b)


@lru_cache(maxsize=64)
def euler_schedule(steps: int, T: int = T_MAX) -> tuple[EulerStep, ...]:
    ts = sampling_timesteps(steps, T)
    plan = []
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        b_t, a_t = _fraction(t, T)
        b_s, a_s = _fraction(min(max(s, 0), T), T)
        plan.append(EulerStep(t, s, b_t, a_t, b_s, a_s))
    return tuple(plan)


def warm_start_index(steps: int, strength: float) -> int:
    """First step to run when re-running a fraction ``strength`` in (0, 1] of the schedule.

    k = ceil(strength · steps) steps are re-run (at least one): the last k of the ``steps``-step
    schedule. strength = 1 is the cold start (the init is then fully replaced by noise).
    """
    if not (isinstance(strength, (int, float)) and 0.0 < strength <= 1.0):
        raise ValueError(f'init_strength must be in (0, 1], got {strength!r}')
    n = len(euler_schedule(steps))
    k = min(n, max(1, math.ceil(strength * n - 1e-9)))
    return n - k


def euler_update(pred: torch.Tensor, x_t: torch.Tensor, step: EulerStep) -> torch.Tensor:
    """One released Euler step (same operation order, so float32 results match)."""
    pred = pred.to(x_t.dtype)
    x0_hat = x_t - step.b_t * pred
    if step.s < 0:
        return x0_hat
    xT_hat = x_t + step.a_t * pred
    return step.a_s * x0_hat + step.b_s * xT_hat


def noise_to(x0: torch.Tensor, noise: torch.Tensor, t: int, T: int = T_MAX) -> torch.Tensor:
    """Forward process x_t = (1 − t/T)·x0 + (t/T)·ε."""
    b, a = _fraction(t, T)
    return a * x0 + b * noise


@torch.no_grad()
def sample(dit, image: torch.Tensor, semantics: torch.Tensor, noise: torch.Tensor, steps: int,
           init_depth: torch.Tensor | None = None, start_index: int = 0) -> torch.Tensor:
    """Run the sampler; returns the depth (B, 1, H, W) = final x0 + 0.5 (float32).

    image (B, 3, H, W) RGB in [0, 1]; semantics (B, (H/16)(W/16), C) from the encoder (L2-normalised
    once here, not in every step); noise (B, 1, H, W) standard normal. Warm start: ``init_depth``
    (B, 1, H, W) in output space is noised to the timestep of ``start_index`` and only the steps
    from there on run.
    """
    plan = euler_schedule(steps)
    if not 0 <= start_index < len(plan):
        raise ValueError(f'start_index {start_index} outside 0..{len(plan) - 1}')
    if noise.shape != (image.shape[0], 1, *image.shape[-2:]):
        raise ValueError(f'noise shape {tuple(noise.shape)} does not match image {tuple(image.shape)}')
    x = noise.float()  # the schedule starts at t = T: pure noise (an init would get weight 0)
    if start_index > 0:
        if init_depth is None:
            raise ValueError('a warm start (start_index > 0) needs init_depth')
        if init_depth.shape != noise.shape:
            raise ValueError(f'init_depth shape {tuple(init_depth.shape)} != {tuple(noise.shape)}')
        x = noise_to(init_depth.float() - DEPTH_OFFSET, x, plan[start_index].t)

    return integrate(dit, x, image, semantics, plan[start_index:])


def integrate(dit, x: torch.Tensor, image: torch.Tensor, semantics: torch.Tensor,
              plan: Sequence[EulerStep], x0_hats: list | None = None) -> torch.Tensor:
    """The Euler loop over ``plan`` from the state x (model space, float32); returns x0 + 0.5.

    Only the plan's Python numbers and tensor shapes steer it, never tensor values, so
    ``torch.compile(fullgraph=True)`` and ONNX export trace encoder-free sampling as one graph
    (``frame_graph.FrameGraph`` holds a fixed plan). A list given as ``x0_hats`` receives every
    step's x0̂ (for ``uncertainty_from_trajectory``); the depth does not change.
    """
    cond = image - DEPTH_OFFSET
    semantics = F.normalize(semantics, dim=-1)
    batch = image.shape[0]
    for step in plan:
        t = torch.full((batch,), step.t, dtype=torch.int32, device=image.device)
        pred = dit(torch.cat((x, cond.to(x.dtype)), dim=1), semantics, t, semantics_normalized=True)
        if x0_hats is not None:
            x0_hats.append(x - step.b_t * pred.to(x.dtype))
        x = euler_update(pred, x, step)
    return x + DEPTH_OFFSET


#: The sampler's own uncertainty signals (``integrate_with_uncertainty``), no extra model call.
UNCERTAINTY_SIGNALS = ('x0_change', 'velocity_disagreement')


def uncertainty_from_trajectory(x0_hats: Sequence[torch.Tensor], plan: Sequence[EulerStep]) -> dict:
    """Per-pixel signals (B, 1, H, W) from the x0̂ of every step (the last one is the answer).

    x0_change: |x0̂_N − x0̂_{N−1}|, how much the last Euler step still moved the answer.
    velocity_disagreement: mean over the steps before the last of |v_i − v*_i|, where v*_i =
    (x_t − x0_final)/(t/T) is the velocity that would carry that state straight to the final
    answer; equal to |x0̂_i − x0_final|/(t_i/T). A single step gives zeros (nothing to compare).
    """
    final = x0_hats[-1]
    if len(x0_hats) < 2:
        zero = torch.zeros_like(final)
        return {'x0_change': zero, 'velocity_disagreement': zero}
    change = (final - x0_hats[-2]).abs()
    disagreement = torch.zeros_like(final)
    for x0_hat, step in zip(x0_hats[:-1], plan):
        disagreement += (x0_hat - final).abs() / max(step.b_t, 1e-3)
    return {'x0_change': change, 'velocity_disagreement': disagreement / (len(x0_hats) - 1)}


def integrate_with_uncertainty(dit, x: torch.Tensor, image: torch.Tensor, semantics: torch.Tensor,
                               plan: Sequence[EulerStep]) -> tuple[torch.Tensor, dict]:
    """``integrate`` that also returns ``uncertainty_from_trajectory``'s signals (model space),
    read from the x0̂ every Euler step computes anyway: the depth is bit-identical."""
    x0_hats = []
    depth = integrate(dit, x, image, semantics, plan, x0_hats)
    return depth, uncertainty_from_trajectory(x0_hats, plan)
