"""Cost of metric depth from the camera alone: the MoGe-2 metric pass against PPD's own frame.

    OMP_NUM_THREADS=1 python -m ppd_dev.bench_metric --size tiny --area 256x192 --repeats 5
    OMP_NUM_THREADS=1 python -m ppd_dev.bench_metric --size large --area 256x192 --repeats 1

Random weights (sizes only matter): ``tiny`` is the test size, ``large`` the released sizes
(DiT-L, DINOv2 ViT-L for both encoders, MoGe-2's ConvStack widths of its v2 training config).
Per frame, interleaved round by round (a shared machine's load hits all alike), median of
process CPU time or wall time:

  da2 frame      PPD with Depth-Anything-v2 semantics (relative depth)
  moge2 frame    PPD with MoGe-2 semantics (relative depth)
  metric pass    MoGe-2's ``infer`` on the same frame + the robust scale fit (what metres cost)

and the ratios metric pass / moge2 frame and (moge2 frame + metric pass) / da2 frame, i.e. what
``metric.every_n_frames`` = 1 costs. MoGe-2's pass runs at ``num_tokens`` from its
``resolution_level`` whatever the image size, so its share grows as the model resolution shrinks.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ppd_ros.geometry.scale.model_scale import ModelScale
from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_ros.model.dit import SPDiT
from ppd_ros.model.estimator import PPDEstimator
from ppd_ros.model.moge import MoGe2, MoGeSemanticEncoder, model_config
from ppd_ros.model.vit import SemanticEncoder

#: MoGe-2 ViT-L widths (microsoft/MoGe configs/train/v2.json): neck/heads per level, 4 layers.
LARGE_MOGE = dict(dim_out=1024, widths=(1024, 256, 128, 64, 32), backbone_width=1024,
                  intermediate_layers=[5, 11, 17, 23])
TINY_MOGE = dict(dim_out=64, widths=(16, 16, 8, 8, 8), backbone_width=64, intermediate_layers=2)


def sensible_random_heads(model: MoGe2) -> MoGe2:
    """Shrink the last point/mask layers of a random MoGe-2 so it predicts a plausible scene
    (depth ≈ e, most pixels valid) instead of noise: the metric pass then does its real work."""
    for head in (model.points_head, model.mask_head):
        last = head.output_blocks[-1]
        last.weight.data.mul_(0.01)
        last.bias.data[:] = torch.tensor([0.0, 0.0, 1.0]) if last.bias.numel() == 3 else 3.0
    return model


def build(size: str, area, steps: int, device='cpu', precision='fp32', with_da2: bool = True):
    """(DA2 estimator or None, MoGe-2 estimator) with random weights of the given size."""
    if size == 'large':
        dit_config, backbone, moge = DiTConfig(), EncoderConfig.preset('vitl'), LARGE_MOGE
    else:
        backbone, moge = EncoderConfig.tiny(), TINY_MOGE
        dit_config = DiTConfig.tiny(semantic_dim=backbone.embed_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        frozen = lambda m: m.eval().requires_grad_(False)  # noqa: E731
        da2 = PPDEstimator(frozen(SPDiT(dit_config)), frozen(SemanticEncoder(backbone)), device=device,
                           precision=precision, steps=steps, seed=0, target_area=area) if with_da2 else None
        moge2 = PPDEstimator(frozen(SPDiT(dit_config)),
                             frozen(MoGeSemanticEncoder(sensible_random_heads(MoGe2(model_config(**moge), backbone)))),
                             device=device, precision=precision, steps=steps, seed=0, target_area=area)
    return da2, moge2


def measure(da2, moge2, rgb, repeats: int, resolution_level: int, clock, warmup: int = 1) -> dict[str, float]:
    scale = ModelScale()
    relative = moge2.predict(rgb)  # the fit's input; also a warm-up
    runs = {'da2 frame': lambda: da2.predict(rgb), 'moge2 frame': lambda: moge2.predict(rgb),
            'metric pass': lambda: scale.update(0.0, relative, moge2.metric_geometry(rgb, resolution_level))}
    times = {name: [] for name in runs}
    for round_ in range(repeats + warmup):
        for name, fn in runs.items():
            start = clock()
            with torch.inference_mode():
                fn()
            if round_ >= warmup:
                times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m ppd_dev.bench_metric', description=__doc__.splitlines()[0])
    parser.add_argument('--size', choices=('tiny', 'large'), default='tiny')
    parser.add_argument('--area', default='256x192', help='model resolution WxH (default 256x192)')
    parser.add_argument('--steps', type=int, default=4)
    parser.add_argument('--resolution-level', type=int, default=9, help="MoGe-2's 0..9 (default 9, as released)")
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first (default 1)')
    parser.add_argument('--clock', choices=('cpu', 'wall'), default='cpu')
    args = parser.parse_args(argv)
    area = tuple(int(v) for v in args.area.lower().split('x'))
    da2, moge2 = build(args.size, area, args.steps)
    rgb = np.random.default_rng(0).integers(0, 256, (area[1], area[0], 3), dtype=np.uint8)
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    result = measure(da2, moge2, rgb, args.repeats, args.resolution_level, clock, args.warmup)
    tokens = moge2.encoder.moge.default_num_tokens(args.resolution_level)
    print(f'size={args.size} area={area[0]}x{area[1]} steps={args.steps} moge2 tokens={tokens} '
          f'threads={torch.get_num_threads()} clock={args.clock} repeats={args.repeats} warmup={args.warmup} '
          '(median s)')
    for name, seconds in result.items():
        print(f'  {name:12s} {seconds:9.3f} s')
    print(f'  metric pass / moge2 frame          {result["metric pass"] / result["moge2 frame"]:.2f}x')
    print(f'  (moge2 frame + metric) / da2 frame {(result["moge2 frame"] + result["metric pass"]) / result["da2 frame"]:.2f}x')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
