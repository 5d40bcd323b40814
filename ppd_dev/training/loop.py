"""The shared optimisation loop: AdamW, warm-up + cosine learning rate, EMA, periodic resumable
checkpoints and an optional wall-clock budget (the demo is trained on a shared 2-core machine)."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ppd_dev.training.checkpoint import load_checkpoint, save_checkpoint


@dataclass
class LoopConfig:
    steps: int
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.0          # 0 disables the EMA copy
    checkpoint_every: int = 100
    log_every: int = 10
    time_budget_s: float | None = None   # stop (with a checkpoint) after this much wall time


def learning_rate(step: int, cfg: LoopConfig, elapsed_s: float = 0.0) -> float:
    """Warm-up, then cosine decay over the steps — or over the time budget when that runs out
    first, so a run on a busy shared CPU still ends its schedule at the low learning rate."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    if cfg.time_budget_s:
        progress = max(progress, min(1.0, elapsed_s / cfg.time_budget_s))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class LoopResult:
    step: int
    finished: bool
    last_loss: float
    wall_s: float        # training wall time over all runs (resumed runs included)
    ema: torch.nn.Module | None


def run_loop(model: torch.nn.Module, loss_fn: Callable[[int], torch.Tensor], cfg: LoopConfig,
             checkpoint_path: str | Path, *, resume: bool = False,
             log: Callable[[str], None] = print, tag: str = 'train') -> LoopResult:
    """Optimise the trainable parameters of ``model`` with ``loss_fn(step)`` for ``cfg.steps`` steps.

    ``loss_fn`` must be a pure function of the step (data and noise seeded by it) so that a run
    resumed from the checkpoint continues exactly as an uninterrupted one would.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError('model has no trainable parameters')
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = None
    if cfg.ema_decay > 0:
        ema = copy.deepcopy(model).requires_grad_(False)
    modules = {'model': model} | ({'ema': ema} if ema is not None else {})
    step, earlier_s = 0, 0.0
    checkpoint_path = Path(checkpoint_path)
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, modules=modules, optimizer=optimizer)
        step, earlier_s = state['step'], state['extra'].get('wall_s', 0.0)
        log(f'[{tag}] resumed from {checkpoint_path} at step {step}')
    start = time.monotonic()
    last_loss, running, count = float('nan'), 0.0, 0
    model.train()
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(step, cfg, earlier_s + time.monotonic() - start)
        loss = loss_fn(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'[{tag}] loss is {loss.item()} at step {step}')
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        if ema is not None:
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p, 1 - decay)
        step += 1
        last_loss = loss.item()
        running += last_loss
        count += 1
        elapsed = time.monotonic() - start
        if step % cfg.log_every == 0 or step == cfg.steps:
            log(f'[{tag}] step {step}/{cfg.steps} loss {running / count:.4f} '
                f'lr {optimizer.param_groups[0]["lr"]:.2e} {elapsed:.0f}s')
            running, count = 0.0, 0
        out_of_time = cfg.time_budget_s is not None and earlier_s + elapsed > cfg.time_budget_s
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
            save_checkpoint(checkpoint_path, step=step, modules=modules, optimizer=optimizer,
                            extra={'wall_s': earlier_s + elapsed})
        if out_of_time and step < cfg.steps:
            log(f'[{tag}] time budget of {cfg.time_budget_s:.0f}s used up at step {step}')
            break
    model.eval()
    return LoopResult(step=step, finished=step >= cfg.steps, last_loss=last_loss,
                      wall_s=earlier_s + time.monotonic() - start, ema=ema)
