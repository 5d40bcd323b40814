"""Pre-rendered synthetic training frames (npz shards under runs/) and batch sampling.

Rendering the synthetic world is the slow part; it is done once, in shards, so an interrupted
run picks up where it stopped and every epoch afterwards is array indexing. Training seeds start
at 100000 so they never overlap the evaluation seeds (0..99).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ppd_dev.training.normalization import normalise_log_depth

TRAIN_SEED_BASE = 100_000
KINDS = ('indoor', 'outdoor')


def frame_seed_and_kind(index: int, seed_base: int = TRAIN_SEED_BASE) -> tuple[int, str]:
    """Frame i of the training set: its world seed and kind (indoor/outdoor alternate)."""
    return seed_base + index, KINDS[index % 2]


def _default_render(seed: int, width: int, height: int, kind: str):
    from ppd_ros.synthetic import render_frame
    return render_frame(seed, width=width, height=height, kind=kind)


def _render_shard(path: str, indices: Sequence[int], width: int, height: int, seed_base: int,
                  render_fn: Callable | None) -> str:
    render = render_fn or _default_render
    rgbs, depths, valids, seeds, kinds = [], [], [], [], []
    for i in indices:
        seed, kind = frame_seed_and_kind(i, seed_base)
        frame = render(seed, width, height, kind)
        if frame.rgb.shape != (height, width, 3):
            raise ValueError(f'renderer returned {frame.rgb.shape}, expected {(height, width, 3)}')
        rgbs.append(frame.rgb)
        depths.append(np.where(frame.valid, frame.depth, 0.0).astype(np.float32))
        valids.append(frame.valid)
        seeds.append(seed)
        kinds.append(kind)
    tmp = path + '.tmp.npz'
    np.savez(tmp, rgb=np.stack(rgbs), depth=np.stack(depths), valid=np.stack(valids),
             seed=np.asarray(seeds), kind=np.asarray(kinds))
    os.replace(tmp, path)
    return path


def render_cache(cache_dir: str | Path, num_frames: int, width: int, height: int, *,
                 shard_size: int = 200, workers: int = 2, seed_base: int = TRAIN_SEED_BASE,
                 render_fn: Callable | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Render frames 0..num_frames-1 into npz shards; shards already on disk are kept."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for start in range(0, num_frames, shard_size):
        indices = list(range(start, min(start + shard_size, num_frames)))
        path = cache_dir / f'{width}x{height}_s{seed_base + start}_n{len(indices)}.npz'
        if not path.exists():
            jobs.append((str(path), indices))
    if jobs:
        log(f'rendering {sum(len(j[1]) for j in jobs)} frames into {len(jobs)} shards ({workers} workers)')
        if workers <= 1:
            for path, indices in jobs:
                _render_shard(path, indices, width, height, seed_base, render_fn)
                log(f'  wrote {path}')
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_render_shard, p, ix, width, height, seed_base, render_fn)
                           for p, ix in jobs]
                for fut in futures:
                    log(f'  wrote {fut.result()}')
    return [cache_dir / f'{width}x{height}_s{seed_base + s}_n{min(shard_size, num_frames - s)}.npz'
            for s in range(0, num_frames, shard_size)]


@dataclass
class Batch:
    image: np.ndarray    # (B, H, W, 3) uint8 RGB
    target: np.ndarray   # (B, H, W) float32 normalised log-depth
    valid: np.ndarray    # (B, H, W) bool


class FrameCache:
    """All cached frames in memory, with their normalised log-depth targets precomputed."""

    def __init__(self, shards: Sequence[str | Path]):
        if not shards:
            raise ValueError('no cache shards given')
        rgb, target, valid, seeds = [], [], [], []
        for path in shards:
            with np.load(path) as data:
                rgb.append(data['rgb'])
                valid.append(data['valid'])
                seeds.append(data['seed'])
                target.append(np.stack([normalise_log_depth(d, v)
                                        for d, v in zip(data['depth'], data['valid'])]))
        self.rgb = np.concatenate(rgb)
        self.target = np.concatenate(target)
        self.valid = np.concatenate(valid)
        self.seeds = np.concatenate(seeds)

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        return self.rgb.shape[1], self.rgb.shape[2]

    def batch(self, batch_size: int, seed: int, step: int, flip: bool = True) -> Batch:
        """The batch for a given training step — a pure function of (seed, step), so resuming
        from a checkpoint replays exactly the same data."""
        rng = np.random.default_rng([seed, step])
        idx = rng.integers(0, len(self), size=batch_size)
        image, target, valid = self.rgb[idx], self.target[idx], self.valid[idx]
        if flip:
            flips = rng.random(batch_size) < 0.5
            image = np.where(flips[:, None, None, None], image[:, :, ::-1], image)
            target = np.where(flips[:, None, None], target[:, :, ::-1], target)
            valid = np.where(flips[:, None, None], valid[:, :, ::-1], valid)
        return Batch(np.ascontiguousarray(image), np.ascontiguousarray(target), np.ascontiguousarray(valid))


def batch_tensors(batch: Batch, device: str | torch.device = 'cpu'):
    """Batch → (image (B, 3, H, W) float in [0, 1], target (B, H, W), valid (B, H, W) bool)."""
    image = torch.from_numpy(batch.image).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return image, torch.from_numpy(batch.target).to(device), torch.from_numpy(batch.valid).to(device)
