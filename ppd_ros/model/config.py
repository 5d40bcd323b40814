"""Model sizes as plain dataclasses, so checkpoints can carry them as JSON and tests can build
tiny random models with the released architecture."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping


def _from_mapping(cls, values: Mapping[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f'{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}')
    return cls(**dict(values))


@dataclass(frozen=True)
class DiTConfig:
    """SP-DiT size. Defaults are the released ``ppd.pth`` (DiT-L/8 cascade, 1024-wide semantics).

    Field names match the constructor arguments of the official ``DiT`` (plus ``semantic_dim``,
    fixed to 1024 there, and ``rope_frequency``, fixed to 100 there).
    """
    in_channels: int = 4
    out_channels: int = 1
    hidden_size: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 8
    mlp_ratio: float = 4.0
    semantic_dim: int = 1024
    rope_frequency: float = 100.0
    #: The image DiT rotates q/k with 2D RoPE (half of each head by row, half by column), so its
    #: head dim must be divisible by 4; the video DiT (sin-cos positions, no RoPE) sets False.
    rope: ClassVar[bool] = True

    def __post_init__(self):
        if self.depth < 2:  # the first depth // 2 blocks are coarse, the rest fine
            raise ValueError(f'DiT depth must be >= 2 (coarse + fine stages), got {self.depth}')
        if self.hidden_size % self.num_heads:
            raise ValueError(f'hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}')
        if self.rope and (self.hidden_size // self.num_heads) % 4:
            raise ValueError('2D RoPE needs a head dim divisible by 4, got '
                             f'{self.hidden_size // self.num_heads}')
        if self.patch_size < 1:
            raise ValueError(f'patch_size must be >= 1, got {self.patch_size}')

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def coarse_patch(self) -> int:
        """Patch size of the first (coarse) half; the image size must be a multiple of it."""
        return 2 * self.patch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'DiTConfig':
        return _from_mapping(cls, values)

    @classmethod
    def tiny(cls, semantic_dim: int = 64) -> 'DiTConfig':
        """A few-thousand-parameter model for tests and fake pipelines."""
        return cls(hidden_size=64, depth=2, num_heads=2, semantic_dim=semantic_dim)


@dataclass(frozen=True)
class EncoderConfig:
    """DINOv2 ViT size as used by Depth-Anything-v2 (patch 14, layer scale, MLP FFN, no registers).

    Field names match the parity file's ``encoder_config``. Defaults are ViT-L (the released PPD).
    """
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 14
    img_size: int = 518
    mlp_ratio: float = 4.0
    init_values: float = 1.0
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False
    num_register_tokens: int = 0  # DINOv2-reg (Pi3's encoder): 4 tokens after the class token
    mask_token: bool = True       # training-only parameter; Pi3 deletes it from its encoder

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f'embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}')
        if self.depth < 1:
            raise ValueError(f'encoder depth must be >= 1, got {self.depth}')
        if self.num_register_tokens < 0:
            raise ValueError(f'num_register_tokens must be >= 0, got {self.num_register_tokens}')

    @property
    def grid_size(self) -> int:
        """Side of the square positional-embedding grid the weights were trained with."""
        return self.img_size // self.patch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'EncoderConfig':
        return _from_mapping(cls, values)

    @classmethod
    def preset(cls, name: str) -> 'EncoderConfig':
        """Depth-Anything-v2 sizes 'vits', 'vitb', 'vitl' (vitg uses a SwiGLU FFN: not supported)."""
        sizes = {'vits': (384, 12, 6), 'vitb': (768, 12, 12), 'vitl': (1024, 24, 16)}
        if name not in sizes:
            raise ValueError(f'unknown encoder preset {name!r}; choose one of {sorted(sizes)}')
        dim, depth, heads = sizes[name]
        return cls(embed_dim=dim, depth=depth, num_heads=heads)

    @classmethod
    def tiny(cls) -> 'EncoderConfig':
        return cls(embed_dim=64, depth=2, num_heads=2)


SIZES = ('tiny', 'small', 'base', 'large')


def model_configs(size: str) -> tuple[DiTConfig, EncoderConfig]:
    """(DiT, encoder) of a named size. 'large' is the released ppd.pth + Depth-Anything-v2 ViT-L;
    'small'/'base' pair a DiT of the ViT-S/B width with that encoder (not released models, for
    speed exploration only); 'tiny' is the test-size model of ``PPDEstimator.from_config``."""
    if size == 'large':
        return DiTConfig(), EncoderConfig.preset('vitl')
    if size == 'base':
        return DiTConfig(hidden_size=768, depth=12, num_heads=12, semantic_dim=768), EncoderConfig.preset('vitb')
    if size == 'small':
        return DiTConfig(hidden_size=384, depth=12, num_heads=6, semantic_dim=384), EncoderConfig.preset('vits')
    if size == 'tiny':
        encoder = EncoderConfig.tiny()
        return DiTConfig.tiny(semantic_dim=encoder.embed_dim), encoder
    raise ValueError(f'unknown model size {size!r}; choose one of {", ".join(SIZES)}')
