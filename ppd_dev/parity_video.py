"""Parity of the video model (PPVD) against ``ppvd_official_tiny.pt`` (see docs/development.md, "Parity with the authors' code").

Parts, each a max abs error: ``pi3_forward_semantics`` (Pi3 on one clip), ``dit_video_forward``
(one video-DiT call), ``window_semantics``/``window_preds``/``window_preds_resized`` (every window
of ``infer_video``), ``align_scale_shift`` (the least-squares fits) and ``infer_video`` (the final
depths). ``window_slots`` is checked exactly (0 or inf). Sizes come from the file: the weights,
``pi3_config`` only for the encoder head count (shapes cannot tell it) and ``constants`` for the
video DiT's fixed structure, which is checked against ours.
"""
from __future__ import annotations

import torch

from ppd_ros.model.checkpoint import CheckpointError, pi3_from_tensors, video_dit_from_tensors
from ppd_ros.model.sampler import sampling_timesteps
from ppd_ros.model.video import INFER_LEN, KEYFRAMES, OVERLAP, PPVD, STRIDE, VideoDepthEstimator, window_slots

PARTS = ('pi3_forward_semantics', 'dit_video_forward', 'window_slots', 'window_semantics', 'window_preds',
         'window_preds_resized', 'align_scale_shift', 'infer_video')
REQUIRED = {
    'pi3_forward_semantics': ('images', 'semantics'),
    'dit_video_forward': ('x', 'semantics', 'timestep', 'output'),
    'infer_video': ('frames', 'steps', 'initial_noise', 'timesteps', 'window_slots', 'window_semantics',
                    'window_preds', 'window_preds_resized', 'align_scale_shift', 'depths'),
}


def is_video_file(data) -> bool:
    return isinstance(data, dict) and 'dit_video_state_dict' in data


def missing_entries(data) -> list[str]:
    missing = [k for k in ('pi3_state_dict', 'dit_video_state_dict') + tuple(REQUIRED) if k not in data]
    missing += [f'{part}.{k}' for part, keys in REQUIRED.items() if isinstance(data.get(part), dict)
                for k in keys if k not in data[part]]
    return missing


def check_constants(data, path) -> None:
    """The file's fixed window/structure constants must be ours (they are not in the weights)."""
    c = data.get('constants', {})
    ours = {'INFER_LEN': INFER_LEN, 'KEYFRAMES': list(KEYFRAMES), 'OVERLAP': OVERLAP, 'STRIDE': STRIDE}
    for key, value in ours.items():
        if key in c and (list(c[key]) if isinstance(value, list) else c[key]) != value:
            raise ValueError(f'{path}: constant {key}={c[key]} differs from ours ({value})')


def build_model(data, path='<parity file>') -> PPVD:
    heads = data.get('pi3_config', {}).get('encoder', {}).get('num_heads')
    semantics = pi3_from_tensors(data['pi3_state_dict'], path, encoder_heads=heads)
    dit = video_dit_from_tensors(data['dit_video_state_dict'], path)
    c, cfg = data.get('constants', {}), dit.config
    expected = {'dit_video_depth': cfg.depth, 'fusion_after_block': cfg.depth // 2 - 1,
                'ref_token_blocks': list(range(cfg.reference_from, cfg.depth)),
                'temporal_block_before': list(range(cfg.depth - cfg.temporal_depth, cfg.depth)),
                'ref_pool_kernel': cfg.reference_pool, 'ref_frames': list(range(cfg.reference_frames)),
                'video_size': cfg.video_size, 'semantics_dim': cfg.semantic_dim,
                'pi3_register_tokens': semantics.config.register_tokens,
                'pi3_rope_freq': semantics.config.rope_frequency}
    wrong = [f'{k}: file {c[k]} vs ours {v}' for k, v in expected.items() if k in c and c[k] != v]
    if wrong:
        raise CheckpointError(f'{path}: the video model structure differs: {"; ".join(wrong)}')
    return PPVD(semantics, dit)


def run_video_parity(data, path='<parity file>') -> dict[str, float]:
    check_constants(data, path)
    model = build_model(data, path)
    errors = {}
    with torch.inference_mode():
        f = data['pi3_forward_semantics']
        errors['pi3_forward_semantics'] = _max_err(model.semantics(f['images']), f['semantics'])
        f = data['dit_video_forward']
        errors['dit_video_forward'] = _max_err(model.dit(f['x'], f['semantics'], f['timestep']), f['output'])
    v = data['infer_video']
    if sampling_timesteps(int(v['steps'])) != v['timesteps'].tolist():
        raise ValueError(f'{path}: timesteps {v["timesteps"].tolist()} differ from ours '
                         f'{sampling_timesteps(int(v["steps"]))}')
    estimator = VideoDepthEstimator(model, device='cpu', steps=int(v['steps']))
    frames = v['frames']
    errors['window_slots'] = 0.0 if window_slots(len(frames)) == [list(w) for w in v['window_slots']] \
        else float('inf')
    trace: dict = {}
    depths = estimator.infer_video(frames, noise=v['initial_noise'], trace=trace)
    for key in ('window_semantics', 'window_preds', 'window_preds_resized'):
        errors[key] = _max_list_err(trace.get(key, []), v[key])
    errors['align_scale_shift'] = _max_list_err(trace.get('align_scale_shift', []),
                                                [torch.tensor(p) for p in v['align_scale_shift']])
    errors['infer_video'] = _max_err(torch.from_numpy(depths), v['depths'])
    return errors


def _max_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    if tuple(ours.shape) != tuple(ref.shape):
        return float('inf')
    return (ours.float() - ref.float()).abs().max().item()


def _max_list_err(ours, refs) -> float:
    if len(ours) != len(refs):
        return float('inf')
    return max((_max_err(a, b) for a, b in zip(ours, refs)), default=0.0)
