"""Depth-quality metrics: alignment of relative predictions, AbsRel, δ1, the paper's edge-aware
Chamfer distance, a flying-pixel rate, and temporal flicker. Numpy + OpenCV only.

Conventions: depths are metres; a pixel takes part when `mask` is true (if given) and the ground
truth there is finite and > 0. Predictions must be finite and > 0 on those pixels — a metric
raises ValueError rather than quietly skipping or clamping bad predictions (`align_to_gt`
output is always finite and positive). Where a missing prediction is an expected outcome (a
failed scale fit in the fusion report), `invalid='miss'` scores such a pixel as entirely wrong
instead: AbsRel 1 for a non-finite value, never inside the δ1 threshold.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..geometry.backproject import depth_to_points
from ..geometry.camera import Intrinsics
from .nearest import nearest_distances


def valid_gt(gt_depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pixels that take part: mask (if given) and finite, positive ground truth."""
    gt = np.asarray(gt_depth)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(gt) & (gt > 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != gt.shape:
            raise ValueError(f'mask is {mask.shape} but the depth is {gt.shape}')
        valid &= mask
    return valid


def _checked(pred, gt, mask, name='prediction'):
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f'{name} is {pred.shape} but the ground truth is {gt.shape}; resize one of them first')
    valid = valid_gt(gt, mask)
    if not valid.any():
        raise ValueError('no valid ground-truth pixels to evaluate')
    p = pred[valid]
    if not np.isfinite(p).all() or (p <= 0).any():
        bad = int((~np.isfinite(p) | (p <= 0)).sum())
        raise ValueError(f'{name} has {bad} non-finite or non-positive values on valid pixels')
    return pred, gt, valid


def align_to_gt(pred_rel: np.ndarray, gt_depth: np.ndarray, mask: np.ndarray | None = None,
                clip: bool = True):
    """Fit log(gt + 1) ≈ a·pred + b by least squares on the valid pixels → (metric_pred, a, b).

    That is the relative model's own space: PPD predicts normalised log(d + 1) (larger = farther),
    and its released evaluation recovers metric depth with the same affine-in-log(d+1) model
    (there with RANSAC; plain least squares here, which is deterministic and exact for an exact
    affine relation). metric = exp(a·pred + b) − 1, then, as in the released evaluation, clipped
    to [1e-3, max valid GT] (`clip=False` keeps the raw values; then it may be ≤ 0 or NaN).
    A constant prediction gives a = 0, b = mean log(gt + 1).
    """
    pred = np.asarray(pred_rel, dtype=np.float64)
    gt = np.asarray(gt_depth, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction is {pred.shape} but the ground truth is {gt.shape}; resize one of them first')
    valid = valid_gt(gt, mask)
    if valid.sum() < 2:
        raise ValueError('need at least 2 valid ground-truth pixels to align')
    x = pred[valid]
    if not np.isfinite(x).all():
        raise ValueError(f'relative prediction has {int((~np.isfinite(x)).sum())} non-finite values on valid pixels')
    y = np.log1p(gt[valid])
    xm, ym = x.mean(), y.mean()
    var = float(((x - xm) ** 2).mean())
    a = float(((x - xm) * (y - ym)).mean() / var) if var > 0 else 0.0
    b = float(ym - a * xm)
    with np.errstate(over='ignore', invalid='ignore'):
        metric = np.expm1(a * pred + b)
    if clip:
        metric = np.clip(np.nan_to_num(metric, nan=1e-3, posinf=np.inf), 1e-3, float(gt[valid].max()))
    return metric.astype(np.float32), a, b


def align_sequence(preds, gts, masks=None, clip: bool = True):
    """One (a, b) for a whole sequence (so per-frame scale jitter stays visible to `temporal_flicker`)."""
    if len(preds) != len(gts) or len(preds) == 0:
        raise ValueError('need equally many (≥ 1) predictions and ground truths')
    masks = [None] * len(preds) if masks is None else masks
    valids = [valid_gt(g, m) for g, m in zip(gts, masks)]
    stacked_pred = np.concatenate([np.asarray(p, np.float64)[v] for p, v in zip(preds, valids)])
    stacked_gt = np.concatenate([np.asarray(g, np.float64)[v] for g, v in zip(gts, valids)])
    _, a, b = align_to_gt(stacked_pred, stacked_gt, None, clip=False)
    top = float(stacked_gt.max())
    out = []
    for p in preds:
        with np.errstate(over='ignore', invalid='ignore'):
            m = np.expm1(a * np.asarray(p, np.float64) + b)
        if clip:
            m = np.clip(np.nan_to_num(m, nan=1e-3), 1e-3, top)
        out.append(m.astype(np.float32))
    return out, a, b


INVALID_PREDICTIONS = ('raise', 'miss')


def _scored(pred, gt, mask, invalid: str):
    """(prediction, ground truth) on the valid pixels, checked as `invalid` says."""
    if invalid not in INVALID_PREDICTIONS:
        raise ValueError(f'invalid must be one of {INVALID_PREDICTIONS}, got {invalid!r}')
    if invalid == 'raise':
        pred, gt, valid = _checked(pred, gt, mask)
    else:
        pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
        if pred.shape != gt.shape:
            raise ValueError(f'prediction is {pred.shape} but the ground truth is {gt.shape}; resize one of them first')
        valid = valid_gt(gt, mask)
        if not valid.any():
            raise ValueError('no valid ground-truth pixels to evaluate')
    return pred[valid], gt[valid]


def abs_rel(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, invalid: str = 'raise') -> float:
    """Mean |pred − gt| / gt over valid pixels (`invalid='miss'`: a non-finite prediction counts as 0)."""
    p, g = _scored(pred, gt, mask, invalid)
    p = np.where(np.isfinite(p), p, 0.0)
    return float(np.mean(np.abs(p - g) / g))


def delta1(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, threshold: float = 1.25,
           invalid: str = 'raise') -> float:
    """Fraction of valid pixels with max(pred/gt, gt/pred) < 1.25 (`invalid='miss'`: a non-finite
    or non-positive prediction is outside)."""
    p, g = _scored(pred, gt, mask, invalid)
    good = np.isfinite(p) & (p > 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.maximum(p / g, g / p)
    return float(np.mean(good & (ratio < threshold)))


# --------------------------------------------------------------------------- edges & point clouds

LOG_SCALE = 250.0  # int16 units per unit of log-depth in the Sobel images handed to Canny


def depth_edges(gt_depth: np.ndarray, mask: np.ndarray | None = None, low_ratio: float = 0.05,
                high_ratio: float = 0.10) -> np.ndarray:
    """Canny edges of the ground-truth depth, thresholds in depth ratios (scale-free).

    Canny runs on the 3×3 Sobel derivatives of log-depth: a step from d to d·k gives a Sobel
    response of 4·ln k, so `high_ratio` = 0.10 seeds edges at jumps ≥ 10 % between neighbours and
    `low_ratio` = 0.05 continues them down to 5 %. Invalid pixels (sky) are filled with twice the
    farthest valid depth, so object/sky boundaries count as edges too; only valid pixels are kept.
    """
    valid = valid_gt(gt_depth, mask)
    if not valid.any():
        return np.zeros(valid.shape, bool)
    log_d = np.zeros(valid.shape, np.float32)
    log_d[valid] = np.log(np.asarray(gt_depth, np.float64)[valid])
    log_d[~valid] = log_d[valid].max() + np.log(2.0)
    dx = cv2.Sobel(log_d, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    dy = cv2.Sobel(log_d, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    to16 = lambda g: np.clip(np.round(g * LOG_SCALE), -32767, 32767).astype(np.int16)  # noqa: E731
    edges = cv2.Canny(to16(dx), to16(dy), 4 * LOG_SCALE * np.log1p(low_ratio),
                      4 * LOG_SCALE * np.log1p(high_ratio), L2gradient=True)
    return (edges > 0) & valid


def edge_region(gt_depth: np.ndarray, mask: np.ndarray | None = None, dilation: int = 2, **edge_args) -> np.ndarray:
    """`depth_edges` dilated by `dilation` px (square window), restricted to valid pixels."""
    edges = depth_edges(gt_depth, mask, **edge_args)
    if dilation > 0:
        k = 2 * int(dilation) + 1
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    return edges & valid_gt(gt_depth, mask)


def edge_chamfer(pred_depth: np.ndarray, gt_depth: np.ndarray, intr: Intrinsics, mask: np.ndarray | None = None,
                 dilation: int = 2, max_points: int = 10000, seed: int = 0, **edge_args) -> float:
    """The paper's edge-aware point-cloud metric (§4.4): Chamfer distance (m) between the predicted
    and the ground-truth point clouds of the pixels near ground-truth depth edges.

    Pixels: `edge_region` (Canny on GT log-depth, see `depth_edges`, dilated `dilation` px).
    Both clouds are back-projected with `intr` from the same pixels; Chamfer =
    ½·(mean over predicted points of the distance to the nearest GT point + mean over GT points of
    the distance to the nearest predicted point), exact nearest neighbours. Above `max_points`
    pixels a fixed random subset (seeded) is used. Returns 0.0 when there are no edge pixels.
    """
    pred, gt, valid = _checked(pred_depth, gt_depth, mask)
    if (intr.height, intr.width) != gt.shape:
        raise ValueError(f'intrinsics are for {intr.width}x{intr.height} but the depth is {gt.shape[1]}x{gt.shape[0]}')
    region = edge_region(gt, valid, dilation, **edge_args)
    rows, cols = np.nonzero(region)
    if rows.size == 0:
        return 0.0
    if rows.size > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(rows.size, size=max_points, replace=False))
        rows, cols = rows[keep], cols[keep]
    p = depth_to_points(pred, intr)[rows, cols]
    g = depth_to_points(gt, intr)[rows, cols]
    return float(0.5 * (nearest_distances(p, g).mean() + nearest_distances(g, p).mean()))


def flying_pixel_rate(pred_depth: np.ndarray, gt_depth: np.ndarray, intr: Intrinsics | None = None,
                      mask: np.ndarray | None = None, radius: int = 2, jump: float = 0.10,
                      tolerance: float = 0.05) -> float:
    """Fraction of pixels near GT depth discontinuities whose prediction floats between the surfaces.

    Near a discontinuity: a valid pixel whose (2·radius+1)² window of valid GT depths spans more
    than a `jump` ratio (far > near·(1 + jump)); near / far are that window's min / max GT depth.
    Flying: the prediction is more than `tolerance` (relative) off the pixel's own GT depth AND
    strictly between the surfaces with that margin from both: near·(1 + tol) < pred < far·(1 − tol).
    A sharp prediction (each pixel on its own side) scores 0; a blend across the edge scores > 0;
    a plain depth error outside [near, far] is not counted here (AbsRel sees it).
    Invalid pixels (sky) are not surfaces: object/sky boundaries are not tested.
    Returns NaN when the frame has no discontinuities. `intr` is accepted for the shared signature
    (the test is per pixel along its own ray, so it needs no geometry).
    """
    pred, gt, valid = _checked(pred_depth, gt_depth, mask)
    k = np.ones((2 * int(radius) + 1,) * 2, np.uint8)
    near = cv2.erode(np.where(valid, gt, np.inf).astype(np.float32), k, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)
    far = cv2.dilate(np.where(valid, gt, 0.0).astype(np.float32), k, borderType=cv2.BORDER_CONSTANT, borderValue=0.0)
    band = valid & (far > near * (1.0 + jump))
    n = int(band.sum())
    if n == 0:
        return float('nan')
    p, g = pred[band], gt[band]
    lo, hi = near[band] * (1.0 + tolerance), far[band] * (1.0 - tolerance)
    flying = (np.abs(p - g) > tolerance * g) & (p > lo) & (p < hi)
    return float(flying.sum() / n)


def temporal_flicker(aligned_depths, gts, masks=None) -> float:
    """Mean |Δₜ log(pred/gt)| over pixels valid in consecutive frames, averaged over frame pairs.

    The per-pixel log error e = log(pred) − log(gt) is compared from frame to frame: an error that
    stays put (a consistent bias) does not count, one that jumps does. With a static camera gt is
    the same in both frames, so this is the mean absolute relative (log) change of the prediction
    itself. With a moving camera it separates flicker from the scene's own depth change. Align all
    frames with one (a, b) (`align_sequence`) to also see scale jitter between frames.
    """
    if len(aligned_depths) != len(gts) or len(gts) < 2:
        raise ValueError('need at least 2 frames, as many predictions as ground truths')
    masks = [None] * len(gts) if masks is None else masks
    if len(masks) != len(gts):
        raise ValueError('need one mask per frame')
    errors, valids = [], []
    for pred, gt, m in zip(aligned_depths, gts, masks):
        pred, gt, valid = _checked(pred, gt, m)
        e = np.zeros(gt.shape)
        e[valid] = np.log(pred[valid]) - np.log(gt[valid])
        errors.append(e)
        valids.append(valid)
    if len({e.shape for e in errors}) != 1:
        raise ValueError('all frames must have the same size')
    changes = []
    for t in range(1, len(errors)):
        both = valids[t] & valids[t - 1]
        if both.any():
            changes.append(float(np.mean(np.abs(errors[t][both] - errors[t - 1][both]))))
    if not changes:
        raise ValueError('no pixel is valid in two consecutive frames')
    return float(np.mean(changes))


__all__ = ['valid_gt', 'align_to_gt', 'align_sequence', 'abs_rel', 'delta1', 'depth_edges', 'edge_region',
           'edge_chamfer', 'flying_pixel_rate', 'temporal_flicker']
