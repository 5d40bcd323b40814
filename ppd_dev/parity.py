"""Check this implementation against vectors recorded from the official Pixel-Perfect Depth code.

    python -m ppd_dev.parity PARITY_DIR/ppd_official_tiny.pt
    python -m ppd_dev.parity PARITY_DIR/ppd_official_moge_tiny.pt   (PPD with MoGe-2 semantics)
    python -m ppd_dev.parity PARITY_DIR/ppvd_official_tiny.pt   (video model: parity_video)
    python -m ppd_dev.parity FILE --bench [--official /path/to/official/checkout] [--size 256x384]

PARITY_DIR: the folder of the outputs recorded from the authors' code (docs/development.md, "Parity
with the authors' code").

Prints the max abs error of each part (dit_forward, sampling, encoder_forward) on its own line;
exit status 1 if any exceeds the tolerance (1e-5), 2 if the file is missing or invalid. A MoGe
file (recognised by its ``moge_config``) is checked part by part by ``ppd_dev.parity_moge``.
``--bench`` also times one DiT forward, one 4-step sample (given semantics) and one encoder
forward on the CPU; with ``--official`` the released modules are imported from that checkout
(read-only; ``timm`` helpers are shimmed if timm is absent) and timed side by side.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

import torch

from ppd_ros.model.checkpoint import CheckpointError, dit_from_tensors, encoder_from_tensors
from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_ros.model.sampler import sample, sampling_timesteps

from . import parity_moge

TOLERANCE = 1e-5
PARTS = ('dit_forward', 'sampling', 'encoder_forward')
_REQUIRED = {
    'dit_forward': ('x', 'semantics', 'timestep', 'output'),
    'sampling': ('image', 'semantics', 'steps', 'initial_noise', 'timesteps', 'depth'),
    'encoder_forward': ('image', 'semantics'),
}


class ParityFileError(ValueError):
    pass


def load_parity_file(path) -> dict:
    """The recorded vectors; tensors, dicts, numbers and strings only (weights_only load)."""
    path = Path(path)
    if not path.is_file():
        raise ParityFileError(f'{path}: parity file does not exist')
    try:
        data = torch.load(str(path), map_location='cpu', weights_only=True)
    except Exception as exc:
        detail = str(exc).split('. ')[0][:160]
        raise ParityFileError(f'{path}: not a readable parity file ({type(exc).__name__}: {detail})') from exc
    if is_moge_file(data):
        missing = [k for k in parity_moge.NEEDED if k not in data]
        if missing:
            raise ParityFileError(f'{path}: not a MoGe parity file, missing entries: {", ".join(missing)}')
        return data
    from . import parity_video
    if parity_video.is_video_file(data):
        missing = parity_video.missing_entries(data)
        if missing:
            raise ParityFileError(f'{path}: not a PPVD parity file, missing entries: {", ".join(missing)}')
        return data
    needed = ('dit_config', 'encoder_config', 'dit_state_dict', 'encoder_state_dict') + PARTS
    missing = [k for k in needed if not isinstance(data, dict) or k not in data]
    missing += [f'{part}.{k}' for part, keys in _REQUIRED.items()
                if isinstance(data, dict) and isinstance(data.get(part), dict)
                for k in keys if k not in data[part]]
    if missing:
        raise ParityFileError(f'{path}: not a parity file, missing entries: {", ".join(missing)}')
    return data


def is_moge_file(data) -> bool:
    """PPD with MoGe-2 semantics (``ppd_official_moge_tiny.pt``) rather than the DA2 file."""
    return isinstance(data, dict) and 'moge_config' in data


def build_models(data, path='<parity file>'):
    dit = dit_from_tensors(data['dit_state_dict'], path, DiTConfig.from_dict(data['dit_config']))
    encoder = encoder_from_tensors(data['encoder_state_dict'], path,
                                   EncoderConfig.from_dict(data['encoder_config']))
    return dit, encoder


def run_parity(data, path='<parity file>') -> dict[str, float]:
    """Max abs error per part (float32, CPU)."""
    from . import parity_video
    if parity_video.is_video_file(data):
        return parity_video.run_video_parity(data, path)
    dit, encoder = build_models(data, path)
    errors = {}
    with torch.inference_mode():
        f = data['dit_forward']
        out = dit(f['x'], f['semantics'], f['timestep'])
        errors['dit_forward'] = _max_err(out, f['output'])

        errors['sampling'] = sampling_error(dit, data['sampling'], path)

        e = data['encoder_forward']
        errors['encoder_forward'] = _max_err(encoder(e['image']), e['semantics'])
    return errors


def sampling_error(dit, s, path='<parity file>') -> float:
    """Max abs error of the full Euler sampler (semantics given) against a ``sampling`` record."""
    if sampling_timesteps(int(s['steps'])) != s['timesteps'].tolist():
        raise ParityFileError(f'{path}: timesteps {s["timesteps"].tolist()} differ from ours '
                              f'{sampling_timesteps(int(s["steps"]))}')
    with torch.inference_mode():
        depth = sample(dit, s['image'], s['semantics'], s['initial_noise'], int(s['steps']))
    return _max_err(depth, s['depth'])


def _max_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    if ours.shape != ref.shape:
        return float('inf')
    return (ours.float() - ref.float()).abs().max().item()


# ---------------------------------------------------------------------------------- benchmark
def _timed(fns, repeats: int, clock=time.perf_counter) -> list[float]:
    """Median time in ms of each function; calls alternate between the functions so that load
    changes on a shared machine affect them alike. Two warm-up rounds first."""
    times = [[] for _ in fns]
    for round_ in range(repeats + 2):
        for fn, log in zip(fns, times):
            start = clock()
            fn()
            if round_ >= 2:
                log.append((clock() - start) * 1e3)
    return [statistics.median(log) for log in times]


def _import_official(root: Path):
    """Official DiT, sampler and DINOv2 classes from a checkout (timm helpers shimmed if absent)."""
    try:
        import timm  # noqa: F401
    except ImportError:
        helpers = types.ModuleType('timm.layers.helpers')
        helpers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
        grn = types.ModuleType('timm.layers.grn')
        grn.GlobalResponseNorm = None  # imported by ppd/models/mlp.py, unused by the DiT
        for name, module in {'timm': types.ModuleType('timm'), 'timm.layers': types.ModuleType('timm.layers'),
                             'timm.layers.helpers': helpers, 'timm.layers.grn': grn}.items():
            sys.modules.setdefault(name, module)
    sys.path.insert(0, str(root))
    import logging
    logging.getLogger('dinov2').setLevel(logging.ERROR)
    from ppd.models.depth_anything_v2.dinov2 import DinoVisionTransformer
    from ppd.models.depth_anything_v2.dinov2_layers import MemEffAttention, NestedTensorBlock
    from ppd.models.dit import DiT
    from ppd.utils.diffusion.sampler import EulerSampler
    from ppd.utils.diffusion.schedule import LinearSchedule
    from ppd.utils.diffusion.timesteps import Timesteps
    return types.SimpleNamespace(DiT=DiT, EulerSampler=EulerSampler, LinearSchedule=LinearSchedule,
                                 Timesteps=Timesteps, DinoVisionTransformer=DinoVisionTransformer,
                                 Block=NestedTensorBlock, Attn=MemEffAttention)


def _official_models(off, data):
    import functools
    dit = off.DiT(**data['dit_config']).eval()
    dit.load_state_dict({k[4:]: v for k, v in data['dit_state_dict'].items()})
    cfg = data['encoder_config']
    vit = off.DinoVisionTransformer(
        img_size=cfg['img_size'], patch_size=cfg['patch_size'], embed_dim=cfg['embed_dim'],
        depth=cfg['depth'], num_heads=cfg['num_heads'], mlp_ratio=4, init_values=cfg['init_values'],
        block_fn=functools.partial(off.Block, attn_class=off.Attn), ffn_layer='mlp', block_chunks=0,
        num_register_tokens=0, interpolate_antialias=cfg['interpolate_antialias'],
        interpolate_offset=cfg['interpolate_offset']).eval()
    vit.load_state_dict({k[len('pretrained.'):]: v for k, v in data['encoder_state_dict'].items()})

    def encode(image):  # the released DepthAnythingV2.forward_semantics, step by step
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x = (image - mean) / std
        h, w = image.shape[-2:]
        x = torch.nn.functional.interpolate(x, size=((h // 16) * 14, (w // 16) * 14), mode='bicubic',
                                            align_corners=False)
        return vit.forward_features(x)['x_norm_patchtokens']

    return dit, encode


def _official_sample(off, dit, image, semantics, noise, steps):
    """The released PixelPerfectDepth.forward_test loop (semantics given)."""
    schedule = off.LinearSchedule(T=1000)
    timesteps = off.Timesteps(T=schedule.T, steps=steps, device='cpu')
    sampler = off.EulerSampler(schedule=schedule, timesteps=timesteps, prediction_type='velocity')
    cond = image - 0.5
    latent = noise
    for timestep in timesteps:
        pred = dit(x=torch.cat([latent, cond], dim=1), semantics=semantics, timestep=timestep)
        latent = sampler.step(pred=pred, x_t=latent, t=timestep)
    return latent + 0.5


def benchmark(data, official_root: Path | None, sizes, threads: int, repeats: int,
              clock: str = 'wall') -> list[str]:
    """Timing lines; ``clock='cpu'`` measures process CPU time instead of wall time (robust when
    other jobs share the cores: time spent descheduled is not counted)."""
    torch.set_num_threads(threads)
    timer = time.process_time if clock == 'cpu' else time.perf_counter
    dit, encoder = build_models(data)
    off = _import_official(official_root) if official_root else None
    if off:
        off_dit, off_encode = _official_models(off, data)
    lines = [f'threads={threads} repeats={repeats} clock={clock} '
             '(median ms; semantics given to the sampler)']
    s = data['sampling']
    for batch, (h, w) in sizes:
        gen = torch.Generator().manual_seed(0)
        image = torch.rand((batch, 3, h, w), generator=gen)
        noise = torch.randn((batch, 1, h, w), generator=gen)
        sem = torch.randn((batch, (h // 16) * (w // 16), dit.config.semantic_dim), generator=gen)
        x = torch.cat((noise, image - 0.5), dim=1)
        t = torch.tensor(750, dtype=torch.int32)
        steps = int(s['steps'])
        runs = {
            'dit_forward': (lambda: dit(x, sem, t),
                            (lambda: off_dit(x=x, semantics=sem, timestep=t)) if off else None),
            f'sample_{steps}_steps': (lambda: sample(dit, image, sem, noise, steps),
                                      (lambda: _official_sample(off, off_dit, image, sem, noise, steps))
                                      if off else None),
            'encoder_forward': (lambda: encoder(image), (lambda: off_encode(image)) if off else None),
        }
        for name, (ours, theirs) in runs.items():
            with torch.inference_mode():
                ms = _timed([ours, theirs] if theirs else [ours], repeats, timer)
            line = f'{batch}x{h}x{w} {name:16s} ours {ms[0]:8.2f} ms'
            if theirs:
                line += f'   official {ms[1]:8.2f} ms   speedup {ms[1] / ms[0]:5.2f}x'
            lines.append(line)
    return lines


def _parse_size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'size must be HxW, got {text!r}') from exc
    if h % 16 or w % 16 or h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f'size must be positive multiples of 16, got {text!r}')
    return h, w


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('file', type=Path, help='parity vectors (.pt) recorded from the official code')
    parser.add_argument('--tolerance', type=float, default=TOLERANCE)
    parser.add_argument('--bench', action='store_true', help='also time ours (and --official) on the CPU')
    parser.add_argument('--official', type=Path, default=None,
                        help='checkout of the official repository to time side by side')
    parser.add_argument('--size', type=_parse_size, action='append', default=[],
                        help='extra benchmark input size HxW (batch 1); repeatable')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1 gives stable numbers on a shared machine)')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--clock', choices=('wall', 'cpu'), default='wall',
                        help='cpu: process CPU time, robust on a shared machine')
    args = parser.parse_args(argv)

    try:
        data = load_parity_file(args.file)
        if is_moge_file(data):
            checks = parity_moge.run_checks(data, args.file, args.tolerance,
                                            lambda dit, record: sampling_error(dit, record, args.file))
        else:
            errors = run_parity(data, args.file)
    except (ParityFileError, CheckpointError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if is_moge_file(data):
        for check in checks:
            print(parity_moge.format_check(check))
        if args.bench:
            print('--bench times the DA2 file only', file=sys.stderr)
        return 0 if all(check.ok for check in checks) else 1
    failed = False
    for part in errors:
        ok = errors[part] <= args.tolerance
        failed |= not ok
        print(f'{part:22s} max_abs_err={errors[part]:.3e}  {"OK" if ok else "FAIL"} (tol {args.tolerance:g})')
    if args.bench and 'dit_forward' not in errors:
        print('--bench: not available for this file format (image-model files only)', file=sys.stderr)
    elif args.bench:
        sizes = [(int(data['dit_forward']['x'].shape[0]), tuple(data['dit_forward']['x'].shape[-2:]))]
        sizes += [(1, size) for size in args.size]
        for line in benchmark(data, args.official, sizes, args.threads, args.repeats, args.clock):
            print(line)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
