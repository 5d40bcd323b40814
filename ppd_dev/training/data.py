"""Pre-rendered synthetic training frames (npz shards under runs/) and batch sampling.

Rendering the synthetic world costs more than a training step; it is done once, in shards, so an interrupted
run picks up where it stopped and every epoch afterwards is array indexing. Training seeds start
at 100000 so they never overlap the evaluation seeds (0..99).

Streaming (`render_stream` in a background process + `FrameStream`): fresh frames keep arriving
in small shards while the trainer runs, instead of a fixed small set seen many times.
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


def _make_batch(rng: np.random.Generator, image, target, valid, flip: bool) -> Batch:
    """A batch of the selected frames, each mirrored left-right with probability ½ when `flip`."""
    if flip:
        flips = rng.random(len(image)) < 0.5
        image = np.where(flips[:, None, None, None], image[:, :, ::-1], image)
        target = np.where(flips[:, None, None], target[:, :, ::-1], target)
        valid = np.where(flips[:, None, None], valid[:, :, ::-1], valid)
    return Batch(np.ascontiguousarray(image), np.ascontiguousarray(target), np.ascontiguousarray(valid))


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
        return _make_batch(rng, self.rgb[idx], self.target[idx], self.valid[idx], flip)


def batch_tensors(batch: Batch, device: str | torch.device = 'cpu'):
    """Batch → (image (B, 3, H, W) float in [0, 1], target (B, H, W), valid (B, H, W) bool)."""
    image = torch.from_numpy(batch.image).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return image, torch.from_numpy(batch.target).to(device), torch.from_numpy(batch.valid).to(device)


# ------------------------------------------------------------------------------------ streaming

def shard_path(cache_dir: str | Path, width: int, height: int, start: int, count: int,
               seed_base: int = TRAIN_SEED_BASE) -> Path:
    return Path(cache_dir) / f'{width}x{height}_s{seed_base + start}_n{count}.npz'


def render_stream(cache_dir: str | Path, width: int, height: int, *, shard_size: int = 50,
                  max_frames: int = 1_000_000, seed_base: int = TRAIN_SEED_BASE, niceness: int = 0,
                  render_fn: Callable | None = None, stop=None) -> None:
    """Render training frames 0, 1, 2, … into shards until `max_frames` (or `stop.is_set()`).

    Meant for a background process beside the trainer: shards already on disk are skipped, so a
    resumed run continues with new frames. `niceness` is added to the process's nice value so the
    renderer only takes cycles the trainer (and everyone else) leaves idle.
    """
    if niceness:
        os.nice(niceness)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    for start in range(0, max_frames, shard_size):
        if stop is not None and stop.is_set():
            return
        path = shard_path(cache_dir, width, height, start, shard_size, seed_base)
        if not path.exists():
            _render_shard(str(path), range(start, start + shard_size), width, height, seed_base, render_fn)


class FrameStream:
    """Training frames that keep arriving: the shards a `render_stream` process writes.

    Each batch draws half of its frames from the newest `recent` frames (fresh data every step) and
    half from the whole pool in memory (at most `pool_frames`, oldest dropped), so every frame is
    seen a few times while the renderer, which is slower than training, keeps adding new ones.
    Batches are a function of (seed, step) and of the frames loaded so far: a resumed run sees the
    same kind of data, not bit-identical batches.
    """

    def __init__(self, cache_dir: str | Path, width: int, height: int, *, shard_size: int = 50,
                 pool_frames: int = 6000, recent: int = 200, seed_base: int = TRAIN_SEED_BASE,
                 refresh_every: int = 20, min_frames: int | None = None, wait_s: float = 600.0):
        self.cache_dir, self.width, self.height = Path(cache_dir), int(width), int(height)
        self.shard_size, self.seed_base = int(shard_size), int(seed_base)
        self.pool_frames, self.recent, self.refresh_every = int(pool_frames), int(recent), int(refresh_every)
        self.rgb = np.zeros((0, height, width, 3), np.uint8)
        self.target = np.zeros((0, height, width), np.float16)
        self.valid = np.zeros((0, height, width), bool)
        self.next_start = 0       # first frame index not loaded yet
        self.calls = 0
        self.wait_for(min_frames or self.shard_size, wait_s)

    def refresh(self) -> int:
        """Load the shards written since the last call (in frame order); returns frames added."""
        rgb, target, valid = [], [], []
        while True:
            path = shard_path(self.cache_dir, self.width, self.height, self.next_start, self.shard_size,
                              self.seed_base)
            if not path.exists():
                break
            with np.load(path) as data:
                rgb.append(data['rgb'])
                valid.append(data['valid'])
                target.append(np.stack([normalise_log_depth(d, v) for d, v in zip(data['depth'], data['valid'])]))
            self.next_start += self.shard_size
        if rgb:
            keep = self.pool_frames
            self.rgb = np.concatenate([self.rgb] + rgb)[-keep:]
            self.target = np.concatenate([self.target] + [t.astype(np.float16) for t in target])[-keep:]
            self.valid = np.concatenate([self.valid] + valid)[-keep:]
        return sum(len(r) for r in rgb)

    def wait_for(self, frames: int, timeout_s: float = 600.0):
        import time
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            if len(self) >= frames:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f'only {len(self)} of {frames} streamed frames in {self.cache_dir} after '
                                   f'{timeout_s:.0f}s: is the render process running?')
            time.sleep(1.0)

    @property
    def frames_seen(self) -> int:
        """Distinct frames rendered and loaded so far (including those dropped from the pool)."""
        return self.next_start

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def batch(self, batch_size: int, seed: int, step: int, flip: bool = True) -> Batch:
        self.calls += 1
        if self.calls % self.refresh_every == 0:
            self.refresh()
        rng = np.random.default_rng([seed, step])
        n = len(self)
        fresh = batch_size // 2
        idx = np.concatenate([rng.integers(max(0, n - self.recent), n, size=fresh),
                              rng.integers(0, n, size=batch_size - fresh)])
        return _make_batch(rng, self.rgb[idx], self.target[idx].astype(np.float32), self.valid[idx], flip)
