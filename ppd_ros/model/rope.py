"""2D rotary position embedding of the SP-DiT, with its tables built once per token grid.

Each attention head's features split in two halves: the first half rotates with the token's row,
the second with its column; inside each half the usual rotate-half RoPE with base frequency 100.
The released code rebuilds positions and looks the tables up on every attention call (and reads
the largest position back to the host); here a grid's (cos, sin) tables are built once and reused
by every block and every sampling step.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class RopeTables(NamedTuple):
    """(1, 1, N, head_dim) float32 factors: rope(x) = x·cos + swap_quarters(x)·sin_signed."""
    cos: torch.Tensor
    sin_signed: torch.Tensor


def _axis_tables(positions: torch.Tensor, dim: int, base: float):
    """cos/sin for one axis, dim features (rotate-half layout: angles repeated twice)."""
    exponents = torch.arange(0, dim, 2, device=positions.device).float() / dim
    inv_freq = 1.0 / (base ** exponents)
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def build_rope_tables(grid_h: int, grid_w: int, head_dim: int, base: float,
                      device: torch.device) -> RopeTables:
    """Tables for a row-major grid_h × grid_w token grid (token i sits at row i // grid_w)."""
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)
    cols = torch.arange(grid_w, device=device).repeat(grid_h)
    return rope_tables_at(rows, cols, head_dim, base)


def rope_tables_at(rows: torch.Tensor, cols: torch.Tensor, head_dim: int, base: float) -> RopeTables:
    """Tables for tokens at explicit (row, col) positions (1-D integer tensors, one per token)."""
    if head_dim % 4:
        raise ValueError(f'2D RoPE needs head_dim divisible by 4, got {head_dim}')
    half = head_dim // 2
    cos_r, sin_r = _axis_tables(rows, half, base)
    cos_c, sin_c = _axis_tables(cols, half, base)
    q = half // 2
    # rotate_half(x) = (-x_b, x_a) per half  ==  swap(x) * (-sin_a, +sin_b): fold the sign in.
    sin_signed = torch.cat((-sin_r[:, :q], sin_r[:, q:], -sin_c[:, :q], sin_c[:, q:]), dim=-1)
    cos = torch.cat((cos_r, cos_c), dim=-1)
    return RopeTables(cos[None, None], sin_signed[None, None])


def swap_quarters(x: torch.Tensor) -> torch.Tensor:
    """(a, b, c, d) → (b, a, d, c) over the last dim split in four equal parts."""
    return x.unflatten(-1, (2, 2, x.shape[-1] // 4)).flip(-2).flatten(-3)


def apply_rope(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """x: (..., N, head_dim). The rotation is computed in fp32 (the released code rounds the
    angles to the query dtype first, which loses precision in bf16) and returned in x's dtype."""
    return torch.addcmul(x * tables.cos, swap_quarters(x), tables.sin_signed).to(x.dtype)


class RopeCache:
    """Tables per (grid, head_dim, device); the SP-DiT uses two grids per resolution."""

    def __init__(self, base: float = 100.0, max_entries: int = 16):
        self.base = float(base)
        self.max_entries = max_entries
        self._tables: dict = {}

    def get(self, grid_h: int, grid_w: int, head_dim: int, device: torch.device) -> RopeTables:
        key = (grid_h, grid_w, head_dim, device)
        tables = self._tables.get(key)
        if tables is None:
            if len(self._tables) >= self.max_entries:
                self._tables.clear()
            # Normal (not inference-mode) constants: usable later in autograd, e.g. training.
            with torch.inference_mode(False), torch.no_grad():
                tables = build_rope_tables(grid_h, grid_w, head_dim, self.base, device)
            self._tables[key] = tables
        return tables
