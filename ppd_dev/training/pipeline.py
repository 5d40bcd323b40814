"""Stage runners: each builds its model, resumes from runs/<dir>/stageN.pt when asked, trains
with the shared loop, and returns the trained modules. Data and noise are seeded by the step."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from ppd_ros.model.dit import SPDiT
from ppd_dev.training.checkpoint import load_checkpoint
from ppd_dev.training.data import FrameCache, batch_tensors
from ppd_dev.training.loop import LoopResult, run_loop
from ppd_dev.training.recipe import DemoRecipe
from ppd_dev.training.stage1 import DepthRegressor, ssi_loss
from ppd_dev.training.stage2 import FlowMatchingObjective

STAGE1_CHECKPOINT = 'stage1.pt'
STAGE2_CHECKPOINT = 'stage2.pt'


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _init_from(module: torch.nn.Module, checkpoint: str | Path | None, key: str, log):
    """Fine-tune instead of starting from scratch: weights only (fresh optimiser and step 0)."""
    if checkpoint is None:
        return
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['modules']
    module.load_state_dict(state[key if key in state else 'model'])
    log(f'initialised from {checkpoint} ({key if key in state else "model"} weights)')


def train_stage1(recipe: DemoRecipe, cache: FrameCache, run_dir: str | Path, *, resume: bool = False,
                 init_from: str | Path | None = None, device: str = 'cpu',
                 log: Callable[[str], None] = print) -> tuple[DepthRegressor, LoopResult]:
    torch.manual_seed(recipe.seed)
    model = DepthRegressor(recipe.encoder)
    if not (resume and (Path(run_dir) / STAGE1_CHECKPOINT).exists()):
        _init_from(model, init_from, 'model', log)
    model.to(device)

    def loss_fn(step: int) -> torch.Tensor:
        image, target, valid = batch_tensors(cache.batch(recipe.stage1_batch, recipe.seed, step), device)
        return ssi_loss(model(image), target, valid)

    result = run_loop(model, loss_fn, recipe.stage1, Path(run_dir) / STAGE1_CHECKPOINT,
                      resume=resume, log=log, tag='stage1')
    return model, result


def load_stage1(recipe: DemoRecipe, run_dir: str | Path) -> DepthRegressor:
    model = DepthRegressor(recipe.encoder)
    load_checkpoint(Path(run_dir) / STAGE1_CHECKPOINT, modules={'model': model})
    return model.eval()


def train_stage2(recipe: DemoRecipe, cache: FrameCache, encoder: torch.nn.Module, run_dir: str | Path,
                 *, resume: bool = False, init_from: str | Path | None = None,
                 before_step: Callable[[int], None] | None = None, device: str = 'cpu',
                 log: Callable[[str], None] = print) -> tuple[FlowMatchingObjective, LoopResult]:
    """Returns the objective (its ``.dit`` is the trained DiT; ``result.ema.dit`` the EMA copy).
    ``init_from``: a stage-2 checkpoint whose (EMA) DiT starts this run; the encoder given wins.
    ``before_step(step)``: called before each step (e.g. to reload an encoder still being trained)."""
    torch.manual_seed(recipe.seed + 1)
    dit = SPDiT(recipe.dit)
    if init_from is not None and not (resume and (Path(run_dir) / STAGE2_CHECKPOINT).exists()):
        state = torch.load(init_from, map_location='cpu', weights_only=False)['modules']
        source = state['ema'] if 'ema' in state else state['model']
        dit.load_state_dict({k[len('dit.'):]: v for k, v in source.items() if k.startswith('dit.')})
        log(f'initialised the DiT from {init_from}')
    objective = FlowMatchingObjective(dit, encoder, loss=recipe.stage2_loss).to(device)
    batch_seed = recipe.seed + 7919  # different batches from stage 1

    def loss_fn(step: int) -> torch.Tensor:
        if before_step is not None:
            before_step(step)
        image, target, valid = batch_tensors(cache.batch(recipe.stage2_batch, batch_seed, step), device)
        return objective(image, target, valid, _step_generator(recipe.seed, step))

    result = run_loop(objective, loss_fn, recipe.stage2, Path(run_dir) / STAGE2_CHECKPOINT,
                      resume=resume, log=log, tag='stage2')
    return objective, result


class Stage1Follower:
    """Keeps a stage-2 encoder equal to the latest stage-1 checkpoint of a run still training.

    On a shared CPU both stages can then run at once (two low-priority processes get two shares of
    the idle cycles); the DiT learns on a slowly changing encoder and finishes on the final one.
    """

    def __init__(self, recipe: DemoRecipe, run_dir: str | Path, check_every: int = 20,
                 log: Callable[[str], None] = print, wait_s: float = 3600.0, device: str = 'cpu'):
        self.path = Path(run_dir) / STAGE1_CHECKPOINT
        deadline = time.monotonic() + wait_s
        while not self.path.exists():  # stage 1 writes its first checkpoint after checkpoint_every steps
            if time.monotonic() > deadline:
                raise FileNotFoundError(f'no stage-1 checkpoint appeared at {self.path} in {wait_s:.0f}s')
            time.sleep(5.0)
        self.regressor = DepthRegressor(recipe.encoder).to(device)
        self.check_every, self.log, self.mtime, self.first = check_every, log, None, True
        self.reload()

    def reload(self, force: bool = False) -> bool:
        mtime = self.path.stat().st_mtime
        if mtime == self.mtime and not force:
            return False
        state = load_checkpoint(self.path, modules={'model': self.regressor})
        self.mtime = mtime
        self.log(f'[stage2] encoder from {self.path} (stage-1 step {state["step"]})')
        return True

    def __call__(self, step: int):
        if self.first or step % self.check_every == 0:
            force, self.first = self.first, False  # a resumed stage-2 checkpoint restored an older encoder
            try:
                self.reload(force)
            except (OSError, RuntimeError, KeyError, EOFError) as err:  # mid-write: next time
                self.log(f'[stage2] stage-1 checkpoint not readable yet ({err}); keeping the encoder')
