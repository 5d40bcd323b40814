"""MoGe-2: monocular geometry (affine point map, mask, normals, metric scale) and PPD's semantics.

PPD's newer image model conditions its DiT on MoGe-2 features instead of Depth-Anything-v2's; the
same network also gives metric depth and camera intrinsics, which is how a camera alone yields
metres. The architecture is read from the ``model_config`` of a ``moge2.pt`` file:

* encoder: a DINOv2 ViT (``vit.DinoViT``); the blocks listed in ``intermediate_layers`` are each
  final-normed, laid out on the token grid, projected by their own 1×1 conv to ``dim_out`` and
  summed. The input is resized bilinearly WITH antialias to the grid × 14, then normalised.
* neck and heads: ``ConvStack``s over five levels (token grid × 2^l); level 0 gets the features
  plus a view-plane uv map, levels 1–4 the uv map alone. Heads take the neck outputs and only their
  last level is used, resized bilinearly to the image.
* points after the ``exp`` remap (x·e^z, y·e^z, e^z), unit normals, mask probability, metric scale
  = exp(MLP(class token)).

``infer`` turns the affine point map into metric depth: focal and shift from
``geometry.focal_shift``, intrinsics in units of image width/height with the principal point at
(0.5, 0.5), points re-projected through pixel centres, everything × metric scale; invalid pixels
are +inf. Parameter names follow ``moge2.pt["model"]`` so the file loads as it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..geometry.focal_shift import solve_focal_shift, view_plane_uv
from .config import EncoderConfig
from .vit import DIT_PATCH, DinoViT

#: DINOv2 hub names → (width, depth, heads) of the released backbones (ViT-g uses SwiGLU: unsupported).
DINOV2_BACKBONES = {'dinov2_vits14': (384, 12, 6), 'dinov2_vitb14': (768, 12, 12),
                    'dinov2_vitl14': (1024, 24, 16)}
FOCAL_SHIFT_SIZE = (64, 64)  # the point map is resized to this (nearest) before the focal/shift solve
_ACTIVATIONS = {'relu': nn.ReLU, 'leaky_relu': lambda: nn.LeakyReLU(0.2), 'silu': nn.SiLU, 'elu': nn.ELU}
_REMAPS = ('linear', 'sinh', 'exp', 'sinh_exp')


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == 'none':
        return nn.Identity()
    if kind == 'group_norm':
        return nn.GroupNorm(channels // 32, channels)
    if kind == 'layer_norm':
        return nn.GroupNorm(1, channels)
    if kind == 'instance_norm':
        return nn.InstanceNorm2d(channels)
    raise ValueError(f'unknown residual-block norm {kind!r}')


def _activation(kind: str) -> nn.Module:
    if kind not in _ACTIVATIONS:
        raise ValueError(f'unknown activation {kind!r}; known: {sorted(_ACTIVATIONS)}')
    return _ACTIVATIONS[kind]()


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """3×3 convolution with replicate padding (MoGe pads every 3×3 conv this way)."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode='replicate')


class ResidualConvBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))); ``layers`` indices 2 and 5 are the convs."""

    def __init__(self, channels: int, hidden: int, in_norm: str, hidden_norm: str, activation: str):
        super().__init__()
        self.layers = nn.Sequential(_norm(in_norm, channels), _activation(activation), _conv3x3(channels, hidden),
                                    _norm(hidden_norm, hidden), _activation(activation), _conv3x3(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def upsampler(kind: str, c_in: int, c_out: int) -> nn.Sequential:
    """×2 upsampling between ConvStack levels, followed by a 3×3 conv."""
    if kind == 'conv_transpose':
        return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, stride=2), _conv3x3(c_out, c_out))
    if kind in ('bilinear', 'nearest'):
        up = nn.Upsample(scale_factor=2, mode=kind, align_corners=False if kind == 'bilinear' else None)
        return nn.Sequential(up, _conv3x3(c_in, c_out))
    raise ValueError(f'unsupported resampler {kind!r} (supported: conv_transpose, bilinear, nearest)')


def _per_level(value, levels: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * levels
    if len(values) != levels:
        raise ValueError(f'ConvStack {name} has {len(values)} entries for {levels} levels')
    return values


class ConvStack(nn.Module):
    """Multi-level conv decoder: per level, add the level's 1×1-projected input, run residual
    blocks, emit the (optionally 1×1-projected) level output, upsample ×2 to the next level."""

    def __init__(self, dim_in, dim_res_blocks: Sequence[int], dim_out, resamplers, num_res_blocks=1,
                 res_block_in_norm: str = 'layer_norm', res_block_hidden_norm: str = 'group_norm',
                 dim_times_res_block_hidden: int = 1, activation: str = 'relu'):
        super().__init__()
        widths = list(dim_res_blocks)
        levels = len(widths)
        conv1x1 = lambda c_in, c_out: nn.Conv2d(c_in, c_out, 1) if c_in is not None and c_out is not None \
            else nn.Identity()  # noqa: E731
        self.input_blocks = nn.ModuleList(conv1x1(c, w) for c, w in zip(_per_level(dim_in, levels, 'dim_in'), widths))
        self.resamplers = nn.ModuleList(upsampler(kind, a, b) for kind, a, b in
                                        zip(_per_level(resamplers, levels - 1, 'resamplers'), widths[:-1], widths[1:]))
        self.res_blocks = nn.ModuleList(
            nn.Sequential(*(ResidualConvBlock(w, dim_times_res_block_hidden * w, res_block_in_norm,
                                              res_block_hidden_norm, activation) for _ in range(n)))
            for w, n in zip(widths, _per_level(num_res_blocks, levels, 'num_res_blocks')))
        self.output_blocks = nn.ModuleList(conv1x1(w, c) for c, w in zip(_per_level(dim_out, levels, 'dim_out'), widths))

    def forward(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        x = None
        for level, (project, blocks, output) in enumerate(zip(self.input_blocks, self.res_blocks, self.output_blocks)):
            feature = project(inputs[level])
            x = feature if x is None else x + feature
            x = blocks(x)
            outputs.append(output(x))
            if level < len(self.resamplers):
                x = self.resamplers[level](x)
        return outputs


class ScaleHead(nn.Sequential):
    """MLP (Linear, ReLU, …, Linear) from the class token to the log metric scale."""

    def __init__(self, dims: Sequence[int]):
        layers = []
        for c_in, c_out in zip(dims[:-2], dims[1:-1]):
            layers += [nn.Linear(c_in, c_out), nn.ReLU()]
        super().__init__(*layers, nn.Linear(dims[-2], dims[-1]))


class MoGeEncoder(nn.Module):
    """DINOv2 + one 1×1 projection per intermediate layer, summed: (B, dim_out, rows, cols)."""

    def __init__(self, backbone: EncoderConfig, intermediate_layers, dim_out: int):
        super().__init__()
        if isinstance(intermediate_layers, int):  # an int means the last n blocks
            intermediate_layers = range(backbone.depth - intermediate_layers, backbone.depth)
        self.layers = sorted(set(int(i) for i in intermediate_layers))
        self.backbone = DinoViT(backbone)
        self.output_projections = nn.ModuleList(nn.Conv2d(backbone.embed_dim, dim_out, 1) for _ in self.layers)
        self.register_buffer('image_mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer('image_std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (B, dim_out, rows, cols), class token of the last chosen layer (B, width))."""
        patch = self.backbone.config.patch_size
        x = F.interpolate(image, (rows * patch, cols * patch), mode='bilinear', align_corners=False, antialias=True)
        x = (x - self.image_mean) / self.image_std  # normalised after the resize (unlike the DA2 encoder)
        layers = self.backbone.intermediate_layers(x, self.layers)
        grid = lambda tokens: tokens[:, 1:].transpose(1, 2).unflatten(2, (rows, cols))  # noqa: E731
        features = sum(project(grid(tokens)) for project, tokens in zip(self.output_projections, layers))
        return features, layers[-1][:, 0]


def token_grid(num_tokens: int, height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of the ViT grid holding about ``num_tokens`` tokens at the image's aspect."""
    aspect = width / height
    return int((num_tokens / aspect) ** 0.5), int((num_tokens * aspect) ** 0.5)


def _uv_map(width: int, height: int, aspect: float, batch: int, like: torch.Tensor) -> torch.Tensor:
    uv = torch.from_numpy(view_plane_uv(width, height, aspect)).to(like.device, like.dtype)
    return uv.permute(2, 0, 1).unsqueeze(0).expand(batch, -1, -1, -1)


@dataclass
class MoGeGeometry:
    """``MoGe2.infer`` output for a batch. ``depth``/``points`` are metres, +inf where invalid;
    ``intrinsics`` (B, 3, 3) are in units of image width (row 0) and height (row 1)."""
    depth: torch.Tensor        # (B, H, W)
    mask: torch.Tensor         # (B, H, W) bool
    intrinsics: torch.Tensor   # (B, 3, 3)
    points: torch.Tensor       # (B, H, W, 3)
    normal: torch.Tensor | None
    focal: torch.Tensor        # (B,) relative to half the image diagonal
    shift: torch.Tensor        # (B,)
    metric_scale: torch.Tensor  # (B,)


class MoGe2(nn.Module):
    """MoGe-2 (see the module docstring). ``config`` is ``moge2.pt["model_config"]``."""

    def __init__(self, config: Mapping, backbone: EncoderConfig):
        super().__init__()
        config = dict(config)
        for name in ('encoder', 'neck'):
            if not isinstance(config.get(name), Mapping):
                raise ValueError(f'MoGe model_config has no {name!r} section')
        self.config = config
        self.backbone_config = backbone
        self.remap_output = config.get('remap_output', 'linear')
        if self.remap_output not in _REMAPS:
            raise ValueError(f'unknown remap_output {self.remap_output!r}; known: {list(_REMAPS)}')
        self.num_tokens_range = tuple(config.get('num_tokens_range', (1200, 3600)))
        encoder = config['encoder']
        self.encoder = MoGeEncoder(backbone, encoder['intermediate_layers'], int(encoder['dim_out']))
        self.neck = ConvStack(**config['neck'])
        for head in ('points_head', 'normal_head', 'mask_head'):
            if config.get(head) is not None:
                self.add_module(head, ConvStack(**config[head]))
        if config.get('scale_head') is not None:
            self.scale_head = ScaleHead(**config['scale_head'])
        if not hasattr(self, 'points_head'):
            raise ValueError('MoGe model_config has no points_head: no geometry to recover')

    @property
    def semantic_dim(self) -> int:
        return int(self.config['encoder']['dim_out'])

    # ------------------------------------------------------------------------- semantics
    def semantics(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] → (B, (H/16)·(W/16), dim_out) tokens for PPD's DiT."""
        height, width = image.shape[-2:]
        features, _ = self.encoder(image, height // DIT_PATCH, width // DIT_PATCH)
        return features.flatten(2).transpose(1, 2)

    # ---------------------------------------------------------------------------- forward
    def forward(self, image: torch.Tensor, num_tokens: int) -> dict[str, torch.Tensor]:
        """Raw outputs: ``points`` (B, H, W, 3) after the remap, ``normal``, ``mask`` (probability),
        ``metric_scale`` (B,); heads the checkpoint lacks are absent."""
        batch, _, height, width = image.shape
        aspect = width / height
        rows, cols = token_grid(num_tokens, height, width)
        features, cls_token = self.encoder(image, rows, cols)
        levels = [torch.cat((features, _uv_map(cols, rows, aspect, batch, features)), dim=1)]
        levels += [_uv_map(cols * 2 ** level, rows * 2 ** level, aspect, batch, features) for level in range(1, 5)]
        levels = self.neck(levels)
        out = {}
        for name in ('points', 'normal', 'mask'):
            head = getattr(self, f'{name}_head', None)
            if head is not None:
                out[name] = F.interpolate(head(levels)[-1], (height, width), mode='bilinear', align_corners=False)
        out['points'] = self._remap(out['points'].permute(0, 2, 3, 1))
        if 'normal' in out:
            out['normal'] = F.normalize(out['normal'].permute(0, 2, 3, 1), dim=-1)
        if 'mask' in out:
            out['mask'] = out['mask'].squeeze(1).sigmoid()
        if hasattr(self, 'scale_head'):
            out['metric_scale'] = self.scale_head(cls_token).squeeze(1).exp()
        return out

    def _remap(self, points: torch.Tensor) -> torch.Tensor:
        if self.remap_output == 'linear':
            return points
        if self.remap_output == 'sinh':
            return torch.sinh(points)
        xy, z = points.split([2, 1], dim=-1)
        if self.remap_output == 'exp':
            z = torch.exp(z)
            return torch.cat((xy * z, z), dim=-1)
        return torch.cat((torch.sinh(xy), torch.exp(z)), dim=-1)  # sinh_exp

    # ------------------------------------------------------------------------------ infer
    def default_num_tokens(self, resolution_level: int = 9) -> int:
        low, high = self.num_tokens_range
        return int(low + (resolution_level / 9) * (high - low))

    @torch.inference_mode()
    def infer(self, image: torch.Tensor, num_tokens: int | None = None, resolution_level: int = 9) -> MoGeGeometry:
        """Metric geometry of (B, 3, H, W) or (3, H, W) RGB images in [0, 1] (see the module doc)."""
        if image.ndim == 3:
            image = image.unsqueeze(0)
        height, width = image.shape[-2:]
        out = self.forward(image.float(), num_tokens or self.default_num_tokens(resolution_level))
        points = out['points'].float()
        mask = out['mask'] > 0.5 if 'mask' in out else torch.ones_like(points[..., 0], dtype=torch.bool)
        focal, shift = recover_focal_shift(points, mask)
        aspect = width / height
        diagonal = (1 + aspect ** 2) ** 0.5
        fx, fy = focal / 2 * diagonal / aspect, focal / 2 * diagonal
        intrinsics = normalized_intrinsics(fx, fy)
        depth = points[..., 2] + shift[:, None, None]
        mask = mask & (depth > 0)
        points = depth_to_points(depth, fx, fy)
        scale = out.get('metric_scale', torch.ones_like(focal)).float()
        points = points * scale[:, None, None, None]
        depth = depth * scale[:, None, None]
        normal = out.get('normal')
        return MoGeGeometry(
            depth=torch.where(mask, depth, torch.inf),
            mask=mask,
            intrinsics=intrinsics,
            points=torch.where(mask[..., None], points, torch.inf),
            normal=None if normal is None else torch.where(mask[..., None], normal.float(), 0.0),
            focal=focal, shift=shift, metric_scale=scale)


class MoGeSemanticEncoder(nn.Module):
    """PPD's semantics encoder with MoGe-2 inside: ``forward`` gives the DiT's semantic tokens,
    ``moge`` is the whole network for the metric pass (``moge.infer``)."""
    variant = 'moge2'

    def __init__(self, moge: MoGe2):
        super().__init__()
        self.moge = moge

    @property
    def config(self) -> EncoderConfig:
        return self.moge.backbone_config

    @property
    def semantic_dim(self) -> int:
        return self.moge.semantic_dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.moge.semantics(image)


def normalized_intrinsics(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) [[fx, 0, 0.5], [0, fy, 0.5], [0, 0, 1]] in units of image width/height."""
    k = torch.zeros((*fx.shape, 3, 3), dtype=fx.dtype, device=fx.device)
    k[..., 0, 0], k[..., 1, 1] = fx, fy
    k[..., 0, 2] = k[..., 1, 2] = 0.5
    k[..., 2, 2] = 1
    return k


def depth_to_points(depth: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) camera points of depth (B, H, W) through pixel centres u = (j + ½)/W,
    v = (i + ½)/H, principal point (½, ½), focal lengths in units of width/height."""
    _, height, width = depth.shape
    u = (torch.arange(width, device=depth.device, dtype=depth.dtype) + 0.5) / width
    v = (torch.arange(height, device=depth.device, dtype=depth.dtype) + 0.5) / height
    x = (u[None, None, :] - 0.5) / fx[:, None, None] * depth
    y = (v[None, :, None] - 0.5) / fy[:, None, None] * depth
    return torch.stack((x, y, depth), dim=-1)


def recover_focal_shift(points: torch.Tensor, mask: torch.Tensor | None = None,
                        size: tuple[int, int] = FOCAL_SHIFT_SIZE, converged: bool = False):
    """(focal (B,), shift (B,)) of affine point maps (B, H, W, 3): nearest-resized to ``size``
    with the uv map and mask, then ``geometry.focal_shift.solve_focal_shift`` per image (fewer than
    2 valid samples: focal 1, shift 0)."""
    batch, height, width, _ = points.shape
    nearest = lambda t: F.interpolate(t, size, mode='nearest')  # noqa: E731
    uv = torch.from_numpy(view_plane_uv(width, height)).permute(2, 0, 1)[None]
    uv = nearest(uv)[0].permute(1, 2, 0).numpy()
    pts = nearest(points.detach().float().permute(0, 3, 1, 2).cpu()).permute(0, 2, 3, 1).numpy()
    valid = np.ones(pts.shape[:3], dtype=bool) if mask is None else \
        (nearest(mask.detach().float().unsqueeze(1).cpu()).squeeze(1) > 0).numpy()
    focal, shift = [], []
    for i in range(batch):
        if valid[i].sum() < 2:
            f, s = 1.0, 0.0
        else:
            f, s = solve_focal_shift(uv[valid[i]], pts[i][valid[i]], converged)
        focal.append(f)
        shift.append(s)
    as_tensor = lambda v: torch.tensor(v, dtype=points.dtype, device=points.device)  # noqa: E731
    return as_tensor(focal), as_tensor(shift)


# ---------------------------------------------------------------------------- configuration
def model_config(dim_out: int = 1024, widths: Sequence[int] = (32, 24, 16, 16, 8), backbone_width: int = 48,
                 intermediate_layers=4, num_tokens_range=(1200, 3600)) -> dict:
    """A ``moge2.pt``-style ``model_config`` with the released structure (five levels, exp remap,
    points/normal/mask/scale heads) and the given widths: small ones for tests and random models."""
    widths = list(widths)
    head = lambda out: dict(dim_in=widths, dim_out=[None] * (len(widths) - 1) + [out], dim_res_blocks=widths,  # noqa: E731
                            num_res_blocks=[0] + [1] * (len(widths) - 2) + [0], res_block_in_norm='none',
                            res_block_hidden_norm='none',
                            resamplers=['conv_transpose'] * (len(widths) - 2) + ['bilinear'])
    neck = dict(head(None), dim_in=[dim_out + 2] + [2] * (len(widths) - 1), dim_out=None,
                num_res_blocks=[0] + [2] * (len(widths) - 2) + [0])
    return {'encoder': {'backbone': 'dinov2_vitl14', 'intermediate_layers': intermediate_layers, 'dim_out': dim_out},
            'neck': neck, 'points_head': head(3), 'normal_head': head(3), 'mask_head': head(1),
            'scale_head': {'dims': [backbone_width, widths[0], widths[0], 1]}, 'remap_output': 'exp',
            'num_tokens_range': list(num_tokens_range)}


def backbone_config(state: Mapping[str, torch.Tensor], name: str, prefix: str = 'encoder.backbone.',
                    num_heads: int | None = None) -> EncoderConfig:
    """The DINOv2 size behind MoGe's ``backbone`` name, read from the weights: width, depth, patch,
    positional grid and MLP width from tensor shapes; heads from the released table when the width
    is the released one, else ``num_heads`` or width // 64 (DINOv2's head size)."""
    def tensor(key):
        if prefix + key not in state:
            raise KeyError(f'no {prefix + key} in the MoGe weights')
        return state[prefix + key]
    width = tensor('cls_token').shape[-1]
    patch = tensor('patch_embed.proj.weight').shape[-1]
    positions = tensor('pos_embed').shape[1] - 1
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise ValueError(f'{prefix}pos_embed has {positions} positions, not a square grid')
    blocks = {k[len(prefix + 'blocks.'):].split('.')[0] for k in state if k.startswith(prefix + 'blocks.')}
    depth = max((int(b) for b in blocks if b.isdigit()), default=-1) + 1  # missing blocks: the key check says which
    if num_heads is None:
        released = DINOV2_BACKBONES.get(name)
        if released and released[0] == width:
            num_heads = released[2]
        elif width % 64 == 0:
            num_heads = width // 64
        else:
            raise ValueError(f'cannot tell the head count of a {width}-wide {name} backbone; pass num_heads')
    return EncoderConfig(embed_dim=width, depth=depth, num_heads=num_heads, patch_size=patch,
                         img_size=grid * patch, mlp_ratio=tensor('blocks.0.mlp.fc1.weight').shape[0] / width)


__all__ = ['MoGe2', 'MoGeSemanticEncoder', 'MoGeGeometry', 'ConvStack', 'MoGeEncoder', 'ScaleHead', 'token_grid', 'backbone_config',
           'recover_focal_shift', 'depth_to_points', 'model_config', 'normalized_intrinsics', 'DINOV2_BACKBONES']
