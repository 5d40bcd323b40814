"""The demo model's recipe: resolution, sizes, data and schedule, in one JSON-able place."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_dev.training.data import TRAIN_SEED_BASE
from ppd_dev.training.loop import LoopConfig


@dataclass
class DemoRecipe:
    width: int = 128
    height: int = 96
    num_frames: int = 3000
    shard_size: int = 200
    stream_shard: int = 50       # frames per shard when streaming (--stream)
    seed: int = 0
    first_seed: int = TRAIN_SEED_BASE  # scene seed of training frame 0 (a fine-tune starts past what it saw)
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(
        embed_dim=192, depth=6, num_heads=3, patch_size=14, img_size=224, init_values=0.1))
    # Width 256: the coarse patch embedding squeezes 16·16·4 = 1024 values into `hidden_size`;
    # at 128 the noise channel of x_t (256 values per patch) cannot pass, and the velocity at high t
    # (which must reproduce that noise) stays wrong — the released model uses 1024.
    dit: DiTConfig = field(default_factory=lambda: DiTConfig(
        hidden_size=256, depth=4, num_heads=4, patch_size=8, semantic_dim=192))
    stage1_batch: int = 16
    stage2_batch: int = 8
    stage2_loss: str = 'mse'  # or 'l1' (stage2.FlowMatchingObjective)
    stage1: LoopConfig = field(default_factory=lambda: LoopConfig(
        steps=3000, lr=4e-4, warmup_steps=50, checkpoint_every=100))
    stage2: LoopConfig = field(default_factory=lambda: LoopConfig(
        steps=5000, lr=5e-4, warmup_steps=50, checkpoint_every=100, ema_decay=0.999))

    @property
    def target_area(self) -> tuple[int, int]:
        return (self.width, self.height)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def tiny(cls) -> 'DemoRecipe':
        """Seconds-long recipe for tests: 64×48 frames, 2-block models."""
        return cls(width=64, height=48, num_frames=8, shard_size=4, stream_shard=4,
                   encoder=EncoderConfig(embed_dim=32, depth=1, num_heads=2, patch_size=14, img_size=56),
                   dit=DiTConfig(hidden_size=32, depth=2, num_heads=2, patch_size=8, semantic_dim=32),
                   stage1_batch=2, stage2_batch=2,
                   stage1=LoopConfig(steps=3, warmup_steps=1, checkpoint_every=2, log_every=1),
                   stage2=LoopConfig(steps=3, warmup_steps=1, checkpoint_every=2, log_every=1,
                                     ema_decay=0.99))
