"""SP-DiT: the pixel-space diffusion transformer of Pixel-Perfect Depth (cascade design).

Input (B, 4, H, W) = noisy depth ⊕ (image − 0.5); H, W multiples of 16.
  1. 16×16 patches → the first depth/2 adaLN-Zero blocks on the coarse (H/16 × W/16) grid.
  2. Concatenate the L2-normalised semantic tokens, fuse with a 3-layer MLP whose output is
     4× wider: each coarse token becomes 2×2 fine tokens (H/8 × W/8 grid).
  3. The last depth/2 blocks on the fine grid, final adaLN layer, unpatchify 8×8 → (B, 1, H, W).
Attention: qk-LayerNorm, 2D RoPE (frequency 100), F.scaled_dot_product_attention.
Parameter names follow the released ``ppd.pth`` (without its ``dit.`` prefix).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiTConfig
from .rope import RopeCache, RopeTables, apply_rope


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x·(1 + scale) + shift per sample, as one fused op."""
    return torch.addcmul(shift.unsqueeze(1), x, 1 + scale.unsqueeze(1))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding (cos first, max period 10000) of the 0..1000 timestep, then an MLP."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self._freqs: dict = {}  # per device: no host→device copy (and sync) per sampling step

    def _frequencies(self, device: torch.device) -> torch.Tensor:
        if device not in self._freqs:
            half = self.frequency_size // 2
            with torch.inference_mode(False):  # a normal tensor, reusable under autograd
                freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half)
                self._freqs[device] = freqs.to(device)
        return self._freqs[device]

    def sinusoid(self, t: torch.Tensor) -> torch.Tensor:
        args = t[:, None].float() * self._frequencies(t.device)[None]
        emb = torch.cat((torch.cos(args), torch.sin(args)), dim=-1)
        if self.frequency_size % 2:
            emb = torch.cat((emb, torch.zeros_like(emb[:, :1])), dim=-1)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(t))


class DiTAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.q_norm = nn.LayerNorm(head_dim)
        self.k_norm = nn.LayerNorm(head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: RopeTables | None) -> torch.Tensor:
        b, n, c = x.shape
        head_dim = c // self.num_heads
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        # q and k normalised and rotated together: half the elementwise passes of doing it apart.
        qk = F.layer_norm(qkv[:2], (head_dim,), eps=self.q_norm.eps)
        weight = torch.stack((self.q_norm.weight, self.k_norm.weight)).view(2, 1, 1, 1, head_dim)
        bias = torch.stack((self.q_norm.bias, self.k_norm.bias)).view(2, 1, 1, 1, head_dim)
        qk = torch.addcmul(bias, qk, weight)
        if rope is not None:
            qk = apply_rope(qk, rope)
        q, k = qk.unbind(0)
        x = F.scaled_dot_product_attention(q, k, qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class DiTMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


class DiTBlock(nn.Module):
    """adaLN-Zero block: shift/scale/gate for attention and MLP from the timestep embedding."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.dim = dim
        self.attn = DiTAttention(dim, num_heads)
        self.mlp = DiTMlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: RopeTables | None) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=1)
        h = modulate(F.layer_norm(x, (self.dim,), eps=1e-6), shift_a, scale_a)
        x = torch.addcmul(x, gate_a.unsqueeze(1), self.attn(h, rope))
        h = modulate(F.layer_norm(x, (self.dim,), eps=1e-6), shift_m, scale_m)
        return torch.addcmul(x, gate_m.unsqueeze(1), self.mlp(h))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch_size: int, out_channels: int):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(F.layer_norm(x, (self.dim,), eps=1e-6), shift, scale))


class SPDiT(nn.Module):
    """Semantics-prompted cascade DiT; ``forward`` predicts the flow velocity (B, out, H, W)."""

    def __init__(self, cfg: DiTConfig = DiTConfig()):
        super().__init__()
        self.config = cfg
        dim = cfg.hidden_size
        self.x_embedder = PatchEmbed(cfg.coarse_patch, cfg.in_channels, dim)
        self.t_embedder = TimestepEmbedder(dim)
        self.blocks = nn.ModuleList(DiTBlock(dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.proj_fusion = nn.Sequential(
            nn.Linear(dim + cfg.semantic_dim, 4 * dim), nn.SiLU(),
            nn.Linear(4 * dim, 4 * dim), nn.SiLU(),
            nn.Linear(4 * dim, 4 * dim),
        )
        self.final_layer = FinalLayer(dim, cfg.patch_size, cfg.out_channels)
        self.rope_cache = RopeCache(cfg.rope_frequency)
        self.reset_parameters()

    def reset_parameters(self, zero_output: bool = True):
        """Released initialisation (Xavier, adaLN-Zero). ``zero_output=False`` gives the zeroed
        modulation/output layers small random weights, so untrained test models are not constant."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        zeroed = [b.adaLN_modulation[-1] for b in self.blocks]
        zeroed += [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for layer in zeroed:
            if zero_output:
                nn.init.zeros_(layer.weight)
            else:
                nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def check_input_size(self, height: int, width: int):
        p = self.config.coarse_patch
        if height < p or width < p or height % p or width % p:
            raise ValueError(f'SP-DiT input {height}x{width}: both sides must be positive multiples '
                             f'of {p}')

    def rope_tables(self, grid_h: int, grid_w: int, device) -> RopeTables:
        return self.rope_cache.get(grid_h, grid_w, self.config.head_dim, device)

    def forward(self, x: torch.Tensor, semantics: torch.Tensor, timestep: torch.Tensor,
                semantics_normalized: bool = False) -> torch.Tensor:
        """x (B, in, H, W); semantics (B, (H/16)(W/16), semantic_dim); timestep scalar or (B,)
        on the 0..T scale. ``semantics_normalized`` skips the L2 normalisation when the caller
        already did it once per frame (the sampler)."""
        cfg = self.config
        n, _, height, width = x.shape
        self.check_input_size(height, width)
        p = cfg.coarse_patch
        gh, gw = height // p, width // p
        if semantics.shape != (n, gh * gw, cfg.semantic_dim):
            raise ValueError(f'semantics shape {tuple(semantics.shape)} does not match '
                             f'{(n, gh * gw, cfg.semantic_dim)} for a {height}x{width} input')
        timestep = torch.as_tensor(timestep, device=x.device)
        if timestep.ndim == 0:
            timestep = timestep[None]

        c = self.t_embedder(timestep)
        tokens = self.x_embedder(x)
        half = cfg.depth // 2
        rope = None
        for i, block in enumerate(self.blocks):
            if i == 0 or i == half:
                rope = self.rope_tables(gh, gw, x.device)
            tokens = block(tokens, c, rope)
            if i == half - 1:
                tokens = self._fuse_and_split(tokens, semantics, semantics_normalized, gh, gw)
                gh, gw = 2 * gh, 2 * gw

        out = self.final_layer(tokens, c)
        return self._unpatchify(out, gh, gw)

    def _fuse_and_split(self, tokens, semantics, normalized, gh, gw):
        """Fuse semantics into coarse tokens and expand each into 2×2 fine tokens (row-major)."""
        if not normalized:
            semantics = F.normalize(semantics, dim=-1)
        n, _, d = tokens.shape
        fused = self.proj_fusion(torch.cat((tokens, semantics), dim=-1))
        fused = fused.view(n, gh, gw, 2, 2, d).permute(0, 1, 3, 2, 4, 5)
        return fused.reshape(n, 4 * gh * gw, d)

    def _unpatchify(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        p, c = self.config.patch_size, self.config.out_channels
        n = x.shape[0]
        x = x.view(n, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(n, c, gh * p, gw * p)

