"""The video DiT of Pixel-Perfect Video Depth (PPVD): the SP-DiT cascade made temporal.

Input: a window of N frames (N, 4, S, S) = noisy depth ⊕ (frame − 0.5), Pi3 semantics of those
frames, and ONE timestep shared by all frames. Compared with the image SP-DiT (``dit.py``):
  * absolute 2-D sin-cos positions (a fixed table for the S/16 × S/16 grid, stored in the
    checkpoint) are added after the patch embedding, and there is NO RoPE — so the released
    model only runs on S × S frames (S = 512);
  * from block ``reference_from`` (18) on, the fine tokens of frames 0, 1, 2 (the keyframes the
    window inherits from the previous window) are average-pooled 4×4 and appended to every frame's
    tokens for that block — each frame attends to the keyframes;
  * before each of the last ``temporal_depth`` (3) blocks a temporal block (same block type)
    attends across the N frames at each token position.
Blocks, semantics fusion (after block depth/2 − 1), final layer and unpatchify are the image
DiT's. Parameter names follow ``ppvd.pth`` (without its ``dit_video.`` prefix).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import DiTConfig
from .dit import DiTBlock, SPDiT


@dataclass(frozen=True)
class VideoDiTConfig(DiTConfig):
    """Video DiT size. Defaults are the released ``ppvd.pth`` (2048-wide Pi3 semantics, 512²)."""
    semantic_dim: int = 2048
    video_size: int = 512        # S: the only frame size the position table covers
    temporal_depth: int = 3      # temporal blocks, before the last ``temporal_depth`` blocks
    reference_from: int = 18     # first block that sees the keyframes' pooled tokens
    reference_frames: int = 3    # window slots 0..2 hold the inherited keyframes
    reference_pool: int = 4      # average-pool kernel on the fine (8-pixel) token grid
    rope: ClassVar[bool] = False  # timm attention as the authors' DiT_Video: any head dim

    def __post_init__(self):
        super().__post_init__()
        if self.video_size % self.coarse_patch:
            raise ValueError(f'video_size {self.video_size} is not a multiple of {self.coarse_patch}')
        if (self.video_size // self.patch_size) % self.reference_pool:
            raise ValueError(f'the fine grid of {self.video_size} px cannot be pooled by {self.reference_pool}')
        if not 0 <= self.temporal_depth <= self.depth or not 0 <= self.reference_from <= self.depth:
            raise ValueError(f'temporal_depth {self.temporal_depth} / reference_from {self.reference_from} '
                             f'do not fit {self.depth} blocks')
        if self.hidden_size % 4:
            raise ValueError(f'sin-cos positions need a width divisible by 4, got {self.hidden_size}')

    @property
    def grid(self) -> int:
        """Side of the coarse token grid (S/16)."""
        return self.video_size // self.coarse_patch

    @classmethod
    def tiny(cls, semantic_dim: int = 64, video_size: int = 64) -> 'VideoDiTConfig':
        return cls(hidden_size=32, depth=24, num_heads=2, semantic_dim=semantic_dim, video_size=video_size)


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """(M, dim) = [sin(p·ω), cos(p·ω)], ω_k = 10000^(−2k/dim), in float64 (as MAE/DiT)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate((np.sin(angles), np.cos(angles)), axis=1)


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """(grid², dim) float32 table of a row-major square grid: first half encodes the column
    (x), second half the row (y) — the MAE/DiT convention."""
    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32), indexing='ij')
    table = np.concatenate((sincos_1d(dim // 2, xs), sincos_1d(dim // 2, ys)), axis=1)
    return torch.from_numpy(table).float()


class VideoDiT(SPDiT):
    """Window (N, in, S, S) + semantics + one timestep → velocity (N, out, S, S)."""

    def __init__(self, cfg: VideoDiTConfig = VideoDiTConfig()):
        super().__init__(cfg)
        self.video_config = cfg  # = self.config, typed as the video config
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid ** 2, cfg.hidden_size), requires_grad=False)
        self.temporal_blocks = nn.ModuleList(DiTBlock(cfg.hidden_size, cfg.num_heads, cfg.mlp_ratio)
                                             for _ in range(cfg.temporal_depth))
        self.reset_parameters()

    def reset_parameters(self, zero_output: bool = True):
        super().reset_parameters(zero_output)
        if hasattr(self, 'pos_embed'):
            with torch.no_grad():
                self.pos_embed.copy_(sincos_2d(self.config.hidden_size, self.config.grid)[None])
            for block in self.temporal_blocks:
                for module in block.modules():
                    if isinstance(module, nn.Linear):
                        nn.init.xavier_uniform_(module.weight)
                        nn.init.zeros_(module.bias)

    def check_input_size(self, height: int, width: int):
        size = self.video_config.video_size
        if (height, width) != (size, size):
            raise ValueError(f'the video DiT runs on {size}x{size} frames only (its position table is '
                             f'fixed to a {size // 16}x{size // 16} token grid); got {height}x{width}')

    def forward(self, x: torch.Tensor, semantics: torch.Tensor, timestep: torch.Tensor,
                semantics_normalized: bool = False) -> torch.Tensor:
        """x (N, in, S, S) — the N frames of one window; semantics (N, (S/16)², semantic_dim);
        timestep: a scalar (or one-element) tensor on the 0..T scale, shared by all frames."""
        cfg = self.video_config
        n, _, height, width = x.shape
        self.check_input_size(height, width)
        if n <= cfg.reference_frames - 1 and cfg.reference_from < cfg.depth:
            raise ValueError(f'a window needs at least {cfg.reference_frames} frames (its keyframes), got {n}')
        gh = gw = cfg.grid
        if semantics.shape != (n, gh * gw, cfg.semantic_dim):
            raise ValueError(f'semantics shape {tuple(semantics.shape)} does not match '
                             f'{(n, gh * gw, cfg.semantic_dim)} for a window of {n} {height}x{width} frames')
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1)[:1]
        c = self.t_embedder(timestep)  # (1, D): broadcast over frames (and token positions)
        tokens = self.x_embedder(x) + self.pos_embed
        half = cfg.depth // 2
        temporal_from = cfg.depth - cfg.temporal_depth
        for i, block in enumerate(self.blocks):
            if i >= temporal_from:
                tokens = self.temporal_blocks[i - temporal_from](tokens.transpose(0, 1), c, None).transpose(0, 1)
            if i >= cfg.reference_from:
                length = tokens.shape[1]
                tokens = block(torch.cat((tokens, self._keyframe_tokens(tokens, 2 * gh, 2 * gw)), dim=1), c, None)
                tokens = tokens[:, :length]
            else:
                tokens = block(tokens, c, None)
            if i == half - 1:
                tokens = self._fuse_and_split(tokens, semantics, semantics_normalized, gh, gw)
        out = self.final_layer(tokens, c)
        return self._unpatchify(out, 2 * gh, 2 * gw)

    def _keyframe_tokens(self, tokens: torch.Tensor, fine_h: int, fine_w: int) -> torch.Tensor:
        """Frames 0..2's fine tokens pooled k×k, in frame order, row-major; repeated per frame."""
        cfg = self.video_config
        n, _, d = tokens.shape
        keys = tokens[:cfg.reference_frames].transpose(1, 2).reshape(cfg.reference_frames, d, fine_h, fine_w)
        pooled = F.avg_pool2d(keys, cfg.reference_pool).flatten(2).transpose(1, 2)
        return pooled.reshape(1, -1, d).expand(n, -1, -1)
