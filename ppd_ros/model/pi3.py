"""Pi3 as the semantics encoder of Pixel-Perfect Video Depth (PPVD).

PPVD prompts its video DiT with features that see the whole clip: Pi3 (a DINOv2-with-registers
encoder per frame, then a decoder that alternates frame-wise and clip-wide attention). Only the
semantics path is built here; Pi3's point, confidence and camera heads are not needed (the loader
skips their weights explicitly).

Steps for a clip of N frames (N, 3, h, w), RGB in [0, 1]:
  1. bilinear resize (no antialias) to ((h//16)·14, (w//16)·14), so one 14-pixel ViT patch
     covers one 16-pixel DiT token; then ImageNet normalisation (the file's ``image_mean/std``);
  2. DINOv2-reg ViT (``vit.DinoViT``) → final-norm patch tokens per frame;
  3. 5 learned register tokens in front of each frame's tokens; decoder blocks alternate
     frame-wise attention (even index) and attention over all frames' tokens (odd index), with
     qk-LayerNorm and 2-D RoPE (registers at (0, 0), patches at (row + 1, col + 1));
  4. semantics = the last two decoder blocks' outputs concatenated (second-to-last first),
     registers dropped: (N, (h/16)·(w/16), 2·decoder width).
Parameter names follow ``pi3.safetensors``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderConfig
from .dit import DiTAttention
from .rope import RopeTables, rope_tables_at
from .vit import DIT_PATCH, IMAGENET_MEAN, IMAGENET_STD, DinoViT, LayerScale, ViTMlp


def pi3_encoder_config(**sizes) -> EncoderConfig:
    """Pi3's DINOv2 ViT-L/14-reg: 4 registers, no mask token, position table resized to the
    grid size with antialias (offset 0). ``sizes`` override widths (tests, tiny models)."""
    values = dict(embed_dim=1024, depth=24, num_heads=16, patch_size=14, img_size=518, mlp_ratio=4.0,
                  init_values=1.0, interpolate_offset=0.0, interpolate_antialias=True,
                  num_register_tokens=4, mask_token=False)
    values.update(sizes)
    return EncoderConfig(**values)


@dataclass(frozen=True)
class Pi3Config:
    """Sizes of the semantics path. Defaults are the released ``pi3.safetensors`` (ViT-L encoder,
    36 decoder blocks of width 1024 → 2048-wide semantics)."""
    encoder: EncoderConfig = field(default_factory=pi3_encoder_config)
    decoder_dim: int = 1024
    decoder_depth: int = 36
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 0.01
    register_tokens: int = 5
    rope_frequency: float = 100.0

    def __post_init__(self):
        if self.decoder_depth < 2:
            raise ValueError(f'Pi3 semantics need >= 2 decoder blocks, got {self.decoder_depth}')
        if self.decoder_dim % self.decoder_heads:
            raise ValueError(f'decoder width {self.decoder_dim} not divisible by {self.decoder_heads} heads')
        if self.encoder.embed_dim != self.decoder_dim:
            raise ValueError(f'Pi3 feeds encoder tokens to the decoder unprojected: encoder width '
                             f'{self.encoder.embed_dim} != decoder width {self.decoder_dim}')

    @property
    def semantic_dim(self) -> int:
        return 2 * self.decoder_dim

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'Pi3Config':
        values = dict(values)
        if isinstance(values.get('encoder'), Mapping):
            values['encoder'] = EncoderConfig.from_dict(values['encoder'])
        return cls(**values)

    @classmethod
    def tiny(cls, width: int = 32) -> 'Pi3Config':
        return cls(encoder=pi3_encoder_config(embed_dim=width, depth=2, num_heads=2), decoder_dim=width,
                   decoder_depth=2, decoder_heads=2)


class Pi3DecoderBlock(nn.Module):
    """Pre-norm block: qk-normed RoPE attention and an exact-GELU MLP, each with layer scale."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DiTAttention(dim, num_heads)  # same qkv/q_norm/k_norm/proj layout and maths
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ViTMlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor, rope: RopeTables) -> torch.Tensor:
        x = torch.addcmul(x, self.attn(self.norm1(x), rope), self.ls1.gamma)
        return torch.addcmul(x, self.mlp(self.norm2(x)), self.ls2.gamma)


class Pi3Semantics(nn.Module):
    """Clip (N, 3, h, w) RGB in [0, 1] → semantics (N, (h/16)·(w/16), 2·decoder width)."""

    def __init__(self, cfg: Pi3Config = Pi3Config()):
        super().__init__()
        self.config = cfg
        dim = cfg.decoder_dim
        self.encoder = DinoViT(cfg.encoder)
        self.decoder = nn.ModuleList(Pi3DecoderBlock(dim, cfg.decoder_heads, cfg.mlp_ratio, cfg.init_values)
                                     for _ in range(cfg.decoder_depth))
        self.register_token = nn.Parameter(torch.zeros(1, 1, cfg.register_tokens, dim))
        self.register_buffer('image_mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer('image_std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self._rope: dict = {}
        nn.init.normal_(self.register_token, std=1e-6)

    def frame_rope(self, grid_h: int, grid_w: int, device) -> RopeTables:
        """Tables for one frame's [registers, patches] (registers at (0, 0), patches 1-based)."""
        key = (grid_h, grid_w, device)
        if key not in self._rope:
            if len(self._rope) > 8:
                self._rope.clear()
            reg = torch.zeros(self.config.register_tokens, dtype=torch.long, device=device)
            rows = torch.cat((reg, torch.arange(1, grid_h + 1, device=device).repeat_interleave(grid_w)))
            cols = torch.cat((reg, torch.arange(1, grid_w + 1, device=device).repeat(grid_h)))
            with torch.inference_mode(False), torch.no_grad():
                self._rope[key] = rope_tables_at(rows, cols, self.config.decoder_dim // self.config.decoder_heads,
                                                 self.config.rope_frequency)
        return self._rope[key]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f'expected a clip (N, 3, H, W), got shape {tuple(images.shape)}')
        n, _, height, width = images.shape
        if height < DIT_PATCH or width < DIT_PATCH:
            raise ValueError(f'frames {height}x{width} are smaller than one {DIT_PATCH}-pixel token')
        gh, gw = height // DIT_PATCH, width // DIT_PATCH
        patch = self.config.encoder.patch_size
        x = F.interpolate(images, size=(gh * patch, gw * patch), mode='bilinear', align_corners=False)
        x = (x - self.image_mean) / self.image_std
        tokens = self.encoder(x)
        return self.decode(tokens, gh, gw)

    def decode(self, tokens: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        n, hw, dim = tokens.shape
        registers = self.register_token.expand(n, 1, -1, -1).reshape(n, -1, dim).to(tokens.dtype)
        x = torch.cat((registers, tokens), dim=1)
        length = x.shape[1]
        frame_rope = self.frame_rope(grid_h, grid_w, x.device)
        clip_rope = RopeTables(*(t.repeat(1, 1, n, 1) for t in frame_rope))
        depth = len(self.decoder)
        outputs = []
        for i, block in enumerate(self.decoder):
            if i % 2 == 0:  # each frame alone
                x = block(x.reshape(n, length, dim), frame_rope)
            else:           # all frames of the clip together
                x = block(x.reshape(1, n * length, dim), clip_rope)
            if i >= depth - 2:
                outputs.append(x.reshape(n, length, dim))
        return torch.cat(outputs, dim=-1)[:, self.config.register_tokens:]
