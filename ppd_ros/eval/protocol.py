"""How one prediction is scored against one frame, and how per-frame scores are summarised.

Resolution ('at'):
- 'model' (default): the prediction stays at its own (model) resolution; the ground truth and its
  validity are resized to it with nearest-neighbour (pixel-centre exact, never blended, so every
  GT value is a true depth) and the intrinsics follow (`Intrinsics.resized_to`).
- 'camera': (a, b) is fitted at model resolution as above, the metric prediction is enlarged to
  the camera resolution with `ppd_ros.geometry.upsample.upsample_depth` (method chosen by the
  caller: 'guided' uses the frame's RGB), and scored against the untouched camera-resolution GT.

Scores per frame: AbsRel, δ1, edge Chamfer (m), flying-pixel rate (NaN without discontinuities),
and the alignment (a, b). See metrics.py for the definitions.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .metrics import abs_rel, align_to_gt, delta1, edge_chamfer, flying_pixel_rate, valid_gt

METRIC_KEYS = ('abs_rel', 'delta1', 'edge_chamfer', 'flying_pixel_rate')


def ground_truth_at(frame, height: int, width: int):
    """(depth, valid, intrinsics) of the frame at height × width (nearest-neighbour, exact values)."""
    depth = np.asarray(frame.depth, dtype=np.float32)
    valid = valid_gt(depth, frame.valid)
    if depth.shape == (height, width):
        return depth, valid, frame.intrinsics
    depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    valid = cv2.resize(valid.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT) > 0
    return depth, valid, frame.intrinsics.resized_to(width, height)


def evaluate_prediction(pred_rel: np.ndarray, frame, at: str = 'model', upsample: str | None = None) -> dict:
    """Score one relative prediction (h, w) against a frame; returns a dict of floats."""
    pred = np.asarray(pred_rel, dtype=np.float32)
    if pred.ndim != 2 or pred.size == 0:
        raise ValueError(f'prediction must be a non-empty (h, w) array, got shape {pred.shape}')
    if at not in ('model', 'camera'):
        raise ValueError(f"at must be 'model' or 'camera', got {at!r}")
    gt_m, valid_m, intr_m = ground_truth_at(frame, *pred.shape)
    metric, a, b = align_to_gt(pred, gt_m, valid_m)
    if at == 'model':
        gt, valid, intr = gt_m, valid_m, intr_m
    else:
        from ..geometry.upsample import upsample_depth
        H, W = np.asarray(frame.depth).shape
        guide = frame.rgb if upsample in (None, 'guided') else None
        metric = upsample_depth(metric, W, H, method=upsample, guide=guide)
        gt, valid, intr = np.asarray(frame.depth, np.float32), valid_gt(frame.depth, frame.valid), frame.intrinsics
        top = float(gt[valid].max())
        metric = np.clip(np.nan_to_num(metric, nan=1e-3), 1e-3, top)
    return {
        'abs_rel': abs_rel(metric, gt, valid),
        'delta1': delta1(metric, gt, valid),
        'edge_chamfer': edge_chamfer(metric, gt, intr, valid),
        'flying_pixel_rate': flying_pixel_rate(metric, gt, intr, valid),
        'a': a, 'b': b, 'eval_width': int(gt.shape[1]), 'eval_height': int(gt.shape[0]),
    }


def summarize(rows: list, keys=METRIC_KEYS + ('latency_ms',)) -> dict:
    """Mean of each key over rows (NaN entries skipped), plus the frame count and median latency."""
    out = {'frames': len(rows)}
    for k in keys:
        values = [r[k] for r in rows if k in r and r[k] is not None and not math.isnan(r[k])]
        out[k] = float(np.mean(values)) if values else float('nan')
    lat = [r['latency_ms'] for r in rows if 'latency_ms' in r]
    if lat:
        out['latency_ms_median'] = float(np.median(lat))
    return out


__all__ = ['METRIC_KEYS', 'ground_truth_at', 'evaluate_prediction', 'summarize']
