"""Resumable training state: model(s), optimiser, EMA and step in one file, written atomically.

Batches and noise are pure functions of (seed, step) (see data.FrameCache.batch), so restoring
these tensors and the step number reproduces an uninterrupted run exactly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: str | Path, *, step: int, modules: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer, extra: dict[str, Any] | None = None) -> Path:
    """Write the training state; a crash mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        'step': int(step),
        'modules': {name: module.state_dict() for name, module in modules.items()},
        'optimizer': optimizer.state_dict(),
        'extra': extra or {},
    }
    tmp = path.with_name(path.name + '.tmp')
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, *, modules: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Restore modules (and optimiser) in place; returns {'step': int, 'extra': dict}."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'no checkpoint at {path}')
    state = torch.load(path, map_location='cpu', weights_only=False)
    missing = set(modules) - set(state['modules'])
    if missing:
        raise KeyError(f'checkpoint {path} lacks modules {sorted(missing)}')
    for name, module in modules.items():
        module.load_state_dict(state['modules'][name])
    if optimizer is not None:
        optimizer.load_state_dict(state['optimizer'])
    return {'step': state['step'], 'extra': state['extra']}
