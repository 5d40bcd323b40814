"""Parity checks for PPD with MoGe-2 semantics (``ppd_official_moge_tiny.pt``; see the shared
docs/development.md). Used by ``ppd_dev.parity``, which recognises the file by its ``moge_config``.

Every check is a ``Check``: the error, the tolerance it must meet and how it was measured.
Tolerances: 1e-5 max abs error, except
  * ``moge_forward.normal``: 10× — normals are the head output divided by its length, so float32
    rounding upstream (different CPU kernels) is amplified where that length is small; the
    official code itself, run here from the stored weights, differs from the recording by 1.6e-5;
  * infer ``depth``/``points`` (metres): error relative to max(1, |value|), i.e. 1e-5 m below 1 m
    and 1e-5 relative above;
  * focal/shift: against the official (released ``ftol=1e-3`` stop); the distance to the fully
    converged values is printed for information;
  * RANSAC ``clean`` cases: the same branch and inlier set, a and b and the metric depth within
    1e-5 (the final least squares is float64 here, float32 in scikit-learn). The ``pipeline`` case
    depends on scikit-learn's random draws and is informational.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ppd_ros.geometry.scale.ransac import recover_metric_depth
from ppd_ros.model.checkpoint import dit_from_tensors, moge_from_tensors
from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_ros.model.moge import recover_focal_shift

NEEDED = ('moge_config', 'moge_backbone', 'moge_state_dict', 'dit_config', 'dit_state_dict',
          'semantics_forward', 'moge_forward', 'moge_infer', 'focal_shift', 'dit_forward', 'sampling', 'ransac')
NORMAL_FACTOR = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    error: float
    tolerance: float | None  # None: informational, never fails
    how: str = 'max_abs_err'

    @property
    def ok(self) -> bool:
        return self.tolerance is None or self.error <= self.tolerance


def _abs(ours, ref) -> float:
    ours, ref = torch.as_tensor(ours).float(), torch.as_tensor(ref).float()
    return float('inf') if ours.shape != ref.shape else (ours - ref).abs().max().item()


def _metric(ours, ref) -> float:
    """Max error relative to max(1, |ref|) over finite reference values; inf if the +inf pattern differs."""
    ours, ref = torch.as_tensor(ours).float(), torch.as_tensor(ref).float()
    if ours.shape != ref.shape or not torch.equal(torch.isfinite(ours), torch.isfinite(ref)):
        return float('inf')
    finite = torch.isfinite(ref)
    if not finite.any():
        return 0.0
    return ((ours[finite] - ref[finite]).abs() / ref[finite].abs().clamp(min=1)).max().item()


def _mismatches(ours, ref) -> float:
    ours, ref = torch.as_tensor(ours), torch.as_tensor(ref)
    return float('inf') if ours.shape != ref.shape else float((ours != ref).sum().item())


def build_models(data, path='<parity file>'):
    backbone = data['moge_backbone']
    config = EncoderConfig(embed_dim=backbone['embed_dim'], depth=backbone['depth'], num_heads=backbone['num_heads'],
                           patch_size=backbone['patch_size'], img_size=backbone['img_size'],
                           mlp_ratio=float(backbone['mlp_ratio']), init_values=float(backbone['init_values']),
                           interpolate_offset=float(backbone['interpolate_offset']),
                           interpolate_antialias=bool(backbone['interpolate_antialias']))
    moge = moge_from_tensors(data['moge_config'], data['moge_state_dict'], path, backbone=config)
    dit_config = dict(data['dit_config'], semantic_dim=int(data.get('semantics_dim', moge.semantic_dim)))
    dit = dit_from_tensors(data['dit_state_dict'], path, DiTConfig.from_dict(dit_config))
    return moge, dit


def run_checks(data, path, tolerance: float, sampling_error) -> list[Check]:
    """All checks of a MoGe parity file; ``sampling_error(dit, record)`` is the DA2 tool's."""
    moge, dit = build_models(data, path)
    tol = tolerance
    checks = []
    with torch.inference_mode():
        s = data['semantics_forward']
        checks.append(Check('semantics_forward', _abs(moge.semantics(s['image']), s['semantics']), tol))

        f = data['moge_forward']
        out = moge(f['image'], int(f['num_tokens']))
        for key in ('points', 'mask', 'metric_scale'):
            checks.append(Check(f'moge_forward.{key}', _abs(out[key], f[key]), tol))
        checks.append(Check('moge_forward.normal', _abs(out['normal'], f['normal']), NORMAL_FACTOR * tol))

        i = data['moge_infer']
        geometry = moge.infer(i['image'], resolution_level=int(i.get('resolution_level', 9)))
        if moge.default_num_tokens(int(i.get('resolution_level', 9))) != int(i['num_tokens']):
            checks.append(Check('moge_infer.num_tokens', float('inf'), tol))
        checks.append(Check('moge_infer.depth', _metric(geometry.depth[0], i['depth']), tol, 'max_err(rel>1m)'))
        finite = torch.isfinite(i['depth'])
        checks.append(Check('moge_infer.depth_abs', _abs(geometry.depth[0][finite], i['depth'][finite]), None))
        checks.append(Check('moge_infer.mask', _mismatches(geometry.mask[0], i['mask']), 0.0, 'mismatches'))
        checks.append(Check('moge_infer.intrinsics', _abs(geometry.intrinsics[0], i['intrinsics']), tol))
        checks.append(Check('moge_infer.points', _metric(geometry.points[0], i['points']), tol, 'max_err(rel>1m)'))

        for key in ('focal_shift', 'focal_shift_synthetic'):
            if key not in data:
                continue
            r = data[key]
            size = tuple(int(v) for v in r['downsample_size'])
            focal, shift = recover_focal_shift(r['points'], r['mask'], size)
            checks.append(Check(f'{key}.focal', _abs(focal, r['focal']), tol))
            checks.append(Check(f'{key}.shift', _abs(shift, r['shift']), tol))
            checks.append(Check(f'{key}.focal_vs_converged', abs(focal.item() - float(r['focal_converged'])), None))
            checks.append(Check(f'{key}.shift_vs_converged', abs(shift.item() - float(r['shift_converged'])), None))
            full_focal, full_shift = recover_focal_shift(r['points'], r['mask'], size, converged=True)
            checks.append(Check(f'{key}.converged_solver_focal', abs(full_focal.item() - float(r['focal_converged'])),
                                None, 'abs_err_vs_converged'))
            checks.append(Check(f'{key}.converged_solver_shift', abs(full_shift.item() - float(r['shift_converged'])),
                                None, 'abs_err_vs_converged'))

        d = data['dit_forward']
        checks.append(Check('dit_forward', _abs(dit(d['x'], d['semantics'], d['timestep']), d['output']), tol))
        checks.append(Check('sampling', sampling_error(dit, data['sampling']), tol))
        sampling = data['sampling']
        checks.append(Check('sampling.semantics', _abs(moge.semantics(sampling['image']), sampling['semantics']), tol))

    for name, case in data['ransac'].items():
        checks += _ransac_checks(name, case, tol)
    return checks


def _ransac_checks(name: str, case, tol: float) -> list[Check]:
    rng = np.random.RandomState(int(case['np_seed']))
    result = recover_metric_depth(case['pred'].numpy(), case['gt'].numpy(), case['mask'].numpy(), rng=rng)
    exact = name != 'pipeline'  # the pipeline case needs scikit-learn's own random draws
    limit = tol if exact else None
    inliers = case['inlier_mask'].numpy()
    same_inliers = result.inliers is not None and result.inliers.shape == inliers.shape
    return [
        Check(f'ransac.{name}.branch', float(result.branch != case['branch']), 0.0 if exact else None, 'mismatch'),
        Check(f'ransac.{name}.inliers', float((result.inliers != inliers).sum()) if same_inliers else float('inf'),
              0.0 if exact else None, 'mismatches'),
        Check(f'ransac.{name}.a', abs(result.a - float(case['a'])), limit),
        Check(f'ransac.{name}.b', abs(result.b - float(case['b'])), limit),
        Check(f'ransac.{name}.metric_depth', _metric(result.depth, case['metric_depth']), limit, 'max_err(rel>1m)'),
    ]


def format_check(check: Check) -> str:
    status = 'info' if check.tolerance is None else ('OK' if check.ok else 'FAIL')
    tol = '' if check.tolerance is None else f' (tol {check.tolerance:g})'
    return f'{check.name:42s} {check.how}={check.error:.3e}  {status}{tol}'
