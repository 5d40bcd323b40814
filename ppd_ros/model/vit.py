"""Semantics encoder: the DINOv2 ViT of Depth-Anything-v2, as PPD uses it.

Parameter names follow ``depth_anything_v2_vit*.pth`` (``pretrained.*``) so those files load
as they are (their DPT head, ``depth_head.*``, is not needed). The encoder returns the final-norm
patch tokens, one per 16×16 block of the input image; the L2 normalisation of these tokens happens
on the DiT side (as in the released code), not here.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIT_PATCH = 16  # one semantic token per 16×16 block of the DiT input


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ViTAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class ViTMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class ViTBlock(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTAttention(dim, cfg.num_heads)
        self.ls1 = LayerScale(dim, cfg.init_values)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ViTMlp(dim, int(dim * cfg.mlp_ratio))
        self.ls2 = LayerScale(dim, cfg.init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x + gamma·f(x) as one fused op per branch
        x = torch.addcmul(x, self.attn(self.norm1(x)), self.ls1.gamma)
        return torch.addcmul(x, self.mlp(self.norm2(x)), self.ls2.gamma)


class DinoViT(nn.Module):
    """DINOv2 backbone (class token, optional register tokens); ``forward`` returns final-norm
    patch tokens. Registers (DINOv2-reg) sit after the class token and get no position."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.config = cfg
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid_size ** 2 + 1, dim))
        if cfg.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, dim))
        if cfg.mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training-only; kept for the key layout
        self.blocks = nn.ModuleList(ViTBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._pos_cache: dict = {}
        self.reset_parameters()

    def reset_parameters(self):
        """DINOv2 initialisation (only matters for random test models)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.config.num_register_tokens:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def position_embedding(self, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        """(1, 1 + gh*gw, C) position embedding for an input of height × width pixels.

        Bicubic resampling of the square grid by scale factors (g + offset) / grid, without
        antialiasing, exactly as the released DINOv2; cached per size while weights are frozen
        (computed in the graph when traced by torch.compile / export: the cache key reads storage).
        """
        cfg = self.config
        pos = self.pos_embed
        gh, gw = height // cfg.patch_size, width // cfg.patch_size
        n = pos.shape[1] - 1
        if gh * gw == n and height == width:
            return pos.to(dtype)
        if torch.compiler.is_compiling():  # traced: a few in-graph ops, no cache keyed on storage
            return self._interpolate_position_embedding(pos, gh, gw, dtype)
        key = (gh, gw, dtype, pos.device, pos.data_ptr(), pos._version)
        cacheable = not (torch.is_grad_enabled() and pos.requires_grad)
        if cacheable and key in self._pos_cache:
            return self._pos_cache[key]
        with torch.inference_mode(False), torch.no_grad() if cacheable else contextlib.nullcontext():
            out = self._interpolate_position_embedding(pos, gh, gw, dtype)
        if cacheable:
            if len(self._pos_cache) > 16:
                self._pos_cache.clear()
            self._pos_cache[key] = out
        return out

    def _interpolate_position_embedding(self, pos, gh: int, gw: int, dtype) -> torch.Tensor:
        cfg = self.config
        n = pos.shape[1] - 1
        grid = math.sqrt(n)
        side = int(grid)
        patch_pos = pos.float()[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if cfg.interpolate_offset:
            # The offset changes the sampling positions (scale factors are passed to the kernel).
            scale = ((gh + cfg.interpolate_offset) / grid, (gw + cfg.interpolate_offset) / grid)
            patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode='bicubic',
                                      antialias=cfg.interpolate_antialias)
        else:
            patch_pos = F.interpolate(patch_pos, size=(gh, gw), mode='bicubic',
                                      antialias=cfg.interpolate_antialias)
        if patch_pos.shape[-2:] != (gh, gw):
            raise RuntimeError(f'position-embedding interpolation gave {tuple(patch_pos.shape[-2:])}, '
                               f'expected {(gh, gw)}')
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        return torch.cat((pos.float()[:, :1], patch_pos), dim=1).to(dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Class token + patch tokens of an image batch, with positions added."""
        _, _, height, width = x.shape
        tokens = self.patch_embed(x)
        # cat promotes to the wider dtype: under autocast the residual stream stays fp32, as released.
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.position_embedding(height, width, tokens.dtype)
        registers = self.config.num_register_tokens
        if registers:
            tokens = torch.cat((tokens[:, :1], self.register_tokens.expand(tokens.shape[0], -1, -1).to(tokens.dtype),
                                tokens[:, 1:]), dim=1)
        return tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x)
        registers = self.config.num_register_tokens
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 1 + registers:]

    def intermediate_layers(self, x: torch.Tensor, layers) -> list[torch.Tensor]:
        """Final-norm tokens (class token first) after each block listed in ``layers`` (0-based),
        in block order; blocks after the last one listed are not run (MoGe's multi-layer features)."""
        wanted = sorted(set(int(i) for i in layers))
        if not wanted or wanted[0] < 0 or wanted[-1] >= len(self.blocks):
            raise ValueError(f'intermediate layers {list(layers)} outside the {len(self.blocks)} blocks')
        tokens = self.embed(x)
        taken = []
        for index, block in enumerate(self.blocks[:wanted[-1] + 1]):
            tokens = block(tokens)
            if index in wanted:
                taken.append(self.norm(tokens))
        return taken


class SemanticEncoder(nn.Module):
    """Image (B, 3, H, W) RGB in [0, 1] → semantic tokens (B, (H/16)·(W/16), C).

    ImageNet normalisation, bicubic resize to ((H//16)·14, (W//16)·14) so the ViT's 14-pixel
    patches line up with the DiT's 16-pixel coarse tokens, then the DINOv2 final-norm patch tokens.
    """

    variant = 'da2'  # PPD with Depth-Anything-v2 semantics (the MoGe-2 variant: moge.MoGeSemanticEncoder)

    def __init__(self, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = cfg
        self.pretrained = DinoViT(cfg)
        self._norm_cache: dict = {}

    @property
    def semantic_dim(self) -> int:
        return self.config.embed_dim

    def _mean_std(self, device: torch.device):
        if device not in self._norm_cache:
            with torch.inference_mode(False):  # normal tensors, reusable under autograd
                self._norm_cache[device] = (torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1),
                                            torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1))
        return self._norm_cache[device]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f'expected an image batch (B, 3, H, W), got shape {tuple(image.shape)}')
        height, width = image.shape[-2:]
        if height < DIT_PATCH or width < DIT_PATCH:
            raise ValueError(f'image {height}x{width} is smaller than one {DIT_PATCH}-pixel token')
        mean, std = self._mean_std(image.device)
        x = (image - mean) / std
        patch = self.config.patch_size
        size = ((height // DIT_PATCH) * patch, (width // DIT_PATCH) * patch)
        x = F.interpolate(x, size=size, mode='bicubic', align_corners=False)
        return self.pretrained(x)
