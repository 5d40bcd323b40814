"""Held-out evaluation of the demo model against the discriminative baseline and a
"ground truth at model resolution" reference (ppd_ros.eval.baselines), with the shared metrics
(ppd_ros.eval.metrics)."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import cv2
import numpy as np

from ppd_ros.eval.baselines import predict_for_eval

EVAL_SEEDS = range(100)  # training seeds start at 100000


def eval_kind(seed: int) -> str:
    return 'indoor' if seed % 2 == 0 else 'outdoor'


def evaluate(estimators: dict[str, object], *, width: int, height: int, seeds: Sequence[int] = EVAL_SEEDS,
             log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Mean AbsRel, δ1, edge Chamfer (m), flying-pixel rate and seconds per frame, per estimator,
    over rendered held-out scenes.

    Predictions are at the model's resolution; when that differs from the frame they are resized
    (bilinear) to the frame before alignment to the ground truth in log(d + 1) space.
    """
    from ppd_ros.eval import metrics
    from ppd_ros.synthetic import render_frame

    rows = {name: {'abs_rel': [], 'delta1': [], 'edge_chamfer': [], 'flying_pixels': [], 'time_s': []}
            for name in estimators}
    for seed in seeds:
        frame = render_frame(seed, width=width, height=height, kind=eval_kind(seed))
        mask = frame.valid
        for name, est in estimators.items():
            start = time.perf_counter()
            rel = predict_for_eval(est, frame)  # ground-truth baselines read the frame itself
            row = rows[name]
            row['time_s'].append(time.perf_counter() - start)
            if rel.shape != (height, width):
                rel = cv2.resize(rel, (width, height), interpolation=cv2.INTER_LINEAR)
            pred, _, _ = metrics.align_to_gt(rel, frame.depth, mask)
            row['abs_rel'].append(metrics.abs_rel(pred, frame.depth, mask))
            row['delta1'].append(metrics.delta1(pred, frame.depth, mask))
            row['edge_chamfer'].append(metrics.edge_chamfer(pred, frame.depth, frame.intrinsics, mask))
            # NaN for a frame without depth discontinuities: left out of the mean
            row['flying_pixels'].append(metrics.flying_pixel_rate(pred, frame.depth, frame.intrinsics, mask))
    table = {name: {k: float(np.nanmean(v)) for k, v in row.items()} for name, row in rows.items()}
    for name, row in table.items():
        log(f'{name:>28s}: ' + '  '.join(f'{k} {v:.4f}' for k, v in row.items()))
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    lines = ['| model | AbsRel ↓ | δ1 ↑ | edge Chamfer (m) ↓ | flying pixels ↓ | s/frame |',
             '|---|---|---|---|---|---|']
    for name, row in table.items():
        lines.append(f"| {name} | {row['abs_rel']:.4f} | {row['delta1']:.4f} | {row['edge_chamfer']:.4f} | "
                     f"{row['flying_pixels']:.4f} | {row['time_s']:.3f} |")
    return '\n'.join(lines)
