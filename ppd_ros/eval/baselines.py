"""Reference "estimators" made from the ground truth, to calibrate the metrics.

Protocol: an evaluator calls `estimator.predict_frame(frame)` when the estimator has that method,
else `estimator.predict(frame.rgb)`. `frame` is anything with `rgb` (H×W×3 uint8), `depth`
(H×W metres), `valid` (H×W bool) and `intrinsics` (a synthetic `Frame` or a loaded RGB-D pair).
These baselines need the ground truth, so they implement `predict_frame`; their `predict(rgb)`
raises. Like the real estimator they return relative depth at their output resolution — here
log(d + 1), so `align_to_gt` finds a ≈ 1, b ≈ 0 — plus `steps`, `infer_size` and `describe()`.

Output resolution: `output_size(height, width) -> (h, w)`, default the frame's own size; pass
`ppd_ros.model.preprocess.model_size` (or a lambda around it) to mimic the model's resolution.
Invalid ground truth (sky) is filled with the farthest valid depth before anything is resampled.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def _filled_depth(frame) -> np.ndarray:
    depth = np.asarray(frame.depth, dtype=np.float32)
    valid = np.asarray(frame.valid, dtype=bool) & np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise ValueError('frame has no valid ground-truth depth')
    return np.where(valid, depth, depth[valid].max()).astype(np.float32)


class _GroundTruthBaseline:
    steps = 0

    def __init__(self, output_size: Callable[[int, int], tuple] | None = None):
        self.output_size = output_size

    def infer_size(self, height: int, width: int) -> tuple[int, int]:
        return tuple(self.output_size(height, width)) if self.output_size else (int(height), int(width))

    def predict(self, rgb):
        raise RuntimeError(f'{type(self).__name__} needs the ground truth: call predict_frame(frame)')


class Oracle(_GroundTruthBaseline):
    """The exact ground truth as relative depth log(d + 1), resized with nearest (never blended)."""

    def predict_frame(self, frame) -> np.ndarray:
        depth = _filled_depth(frame)
        h, w = self.infer_size(*depth.shape)
        if (h, w) != depth.shape:
            depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        return np.log1p(depth).astype(np.float32)

    def describe(self) -> dict:
        return {'model': 'oracle (exact ground truth, nearest resize)', 'device': 'cpu', 'precision': 'fp32',
                'steps': 0, 'resolution': 'model' if self.output_size else 'camera'}


class GroundTruthResampled(_GroundTruthBaseline):
    """Ground truth shrunk by `scale` (area averaging) and enlarged back bilinearly to the output size.

    A predictor that is exact at 1/`scale` resolution but blends across every depth edge — the
    flying-pixel behaviour of a low-resolution / VAE-latent model (scale 1/8 ≈ an SD VAE latent).
    Returned as log(d + 1) of the blurred metric depth.
    """

    def __init__(self, scale: float = 0.125, output_size: Callable[[int, int], tuple] | None = None):
        if not 0.0 < scale <= 1.0:
            raise ValueError(f'scale must be in (0, 1], got {scale}')
        super().__init__(output_size)
        self.scale = float(scale)

    def predict_frame(self, frame) -> np.ndarray:
        depth = _filled_depth(frame)
        H, W = depth.shape
        h, w = self.infer_size(H, W)
        small = (max(1, int(round(W * self.scale))), max(1, int(round(H * self.scale))))
        low = cv2.resize(depth, small, interpolation=cv2.INTER_AREA)
        return np.log1p(cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)).astype(np.float32)

    def describe(self) -> dict:
        return {'model': f'ground truth at 1/{1 / self.scale:g} resolution, bilinear back', 'device': 'cpu',
                'precision': 'fp32', 'steps': 0, 'resolution': 'model' if self.output_size else 'camera'}


def predict_for_eval(estimator, frame) -> np.ndarray:
    """The evaluation protocol: `predict_frame(frame)` if the estimator has it, else `predict(frame.rgb)`."""
    if hasattr(estimator, 'predict_frame'):
        return estimator.predict_frame(frame)
    return estimator.predict(frame.rgb)


__all__ = ['Oracle', 'GroundTruthResampled', 'predict_for_eval']
