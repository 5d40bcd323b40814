"""Stage 1: a small DINOv2-style ViT trained from scratch as a discriminative depth regressor.

Its encoder becomes the frozen semantics model of the demo SP-DiT (stage 2); encoder + head are
also the discriminative baseline the demo is compared with. Loss, on valid pixels, in normalised
log-depth: direct MSE + multi-scale gradient term (MiDaS-style) + scale-and-shift-invariant MSE.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ppd_ros.model.config import EncoderConfig
from ppd_ros.model.vit import DIT_PATCH, SemanticEncoder

HEAD_UPSAMPLE = 4  # head predicts a 4×4 block per token, then bilinear ×4 to full resolution


class DepthHead(nn.Module):
    """Light head: per-token MLP → 4×4 sub-pixel block (pixel shuffle) → bilinear to H×W."""

    def __init__(self, embed_dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or embed_dim
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, HEAD_UPSAMPLE * HEAD_UPSAMPLE))

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        gh, gw = height // DIT_PATCH, width // DIT_PATCH
        b, n, _ = tokens.shape
        if n != gh * gw:
            raise ValueError(f'{n} tokens do not match a {gh}x{gw} grid for a {height}x{width} image')
        x = self.mlp(tokens).transpose(1, 2).reshape(b, HEAD_UPSAMPLE ** 2, gh, gw)
        x = F.pixel_shuffle(x, HEAD_UPSAMPLE)
        return F.interpolate(x, size=(height, width), mode='bilinear', align_corners=False)[:, 0]


class DepthRegressor(nn.Module):
    """Encoder + head: image (B, 3, H, W) in [0, 1] → (B, H, W) relative normalised log-depth."""

    def __init__(self, encoder_config: EncoderConfig):
        super().__init__()
        self.encoder = SemanticEncoder(encoder_config)
        self.head = DepthHead(encoder_config.embed_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(image), image.shape[-2], image.shape[-1])


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image least-squares s, t so that s·pred + t ≈ target on the mask; returns s·pred + t."""
    m = mask.float()
    n = m.sum(dim=(1, 2)).clamp_min(1.0)
    mean_p = (pred * m).sum(dim=(1, 2)) / n
    mean_t = (target * m).sum(dim=(1, 2)) / n
    dp = (pred - mean_p[:, None, None]) * m
    dt = (target - mean_t[:, None, None]) * m
    scale = (dp * dt).sum(dim=(1, 2)) / (dp * dp).sum(dim=(1, 2)).clamp_min(1e-6)
    return scale[:, None, None] * (pred - mean_p[:, None, None]) + mean_t[:, None, None]


def gradient_loss(residual: torch.Tensor, mask: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient matching of the residual (pred − target), as in MiDaS."""
    total = residual.new_zeros(())
    r, m = residual, mask.float()
    for _ in range(scales):
        gx = (r[:, :, 1:] - r[:, :, :-1]).abs() * m[:, :, 1:] * m[:, :, :-1]
        gy = (r[:, 1:] - r[:, :-1]).abs() * m[:, 1:] * m[:, :-1]
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp_min(1.0)
        r, m = r[:, ::2, ::2], m[:, ::2, ::2]
    return total / scales


def ssi_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
             ssi_weight: float = 0.25, gradient_weight: float = 0.5, direct_weight: float = 1.0) -> torch.Tensor:
    """Direct MSE to the target (already normalised per map by its 2 %/98 % percentiles, i.e.
    free of the map's scale and shift) + multi-scale gradient matching of that residual +
    scale-and-shift-invariant MSE after per-image least-squares alignment. The direct terms carry
    the learning early on: with a near-constant prediction the alignment is ill-conditioned."""
    m = mask.float()
    n = m.sum().clamp_min(1.0)
    residual = (pred - target) * m
    loss = direct_weight * (residual ** 2).sum() / n + gradient_weight * gradient_loss(residual, mask)
    if ssi_weight:
        aligned = (align_scale_shift(pred, target, mask) - target) * m
        loss = loss + ssi_weight * (aligned ** 2).sum() / n
    return loss
