"""Ghost obstacles as a navigation stack would feel them: each frame's cloud in a costmap, against
the same costmap from the exact ground truth.

Seeded synthetic frames (indoor and outdoor alternating, seeds disjoint from the demo model's
training seeds) at a camera of --width × --height. Each predictor runs through the frame
pipeline exactly as depth_node does (output.resolution camera, guided upsampling), and its
metric scale is the per-frame least-squares fit of log(d + 1) to the ground truth (the best any
(a, b) can do: this report measures the shape of the depth, not its scale). Then, per row of
filter settings, the products depth_node publishes (geometry.costmap_filters: output_depth and
cloud) go into two grids in the world frame (floor at z = 0):

  voxel grid   5 cm voxels of the points between 0.2 m and 2 m above the floor, within 8 m of
               the camera (Nav2's obstacle_max_range for learned depth);
  2-D grid     the same voxels' 5 cm columns: the obstacle costmap.

The ground truth's grids come from the exact depth the same way. Counted per frame:
  ghost    2-D cells marked with no true obstacle cell within one cell (5 cm);
  missed   true obstacle cells with no marked cell within one cell;
  vghost   voxels marked with no true voxel within one voxel;
  cleared  voxels crossed (0.2–2 m high, within 8 m) by the rays of +Inf pixels (beyond
           output.max_range): free space a voxel layer clears; wrongly cleared: of those, voxels
           that hold a true obstacle point (some are only the 5 cm discretisation: a ray through
           a voxel whose corner holds a surface point; GT exact shows how many).
Rows: PPD's raw cloud, each filter, confidence thresholds, everything of config/ppd_costmap.yaml;
the demo model's discriminative baseline head (one forward pass, same encoder); and the ground
truth shrunk 8× and enlarged bilinearly (the flying-pixel reference of a low-resolution model).

    python -m ppd_dev.costmap_report --frames 12 [--width 256 --height 192]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from ppd_ros.eval.baselines import GroundTruthResampled
from ppd_ros.eval.metrics import align_to_gt, valid_gt
from ppd_ros.geometry.backproject import depth_to_points
from ppd_ros.geometry.rectify import Calibration
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline, ScaleInUse

FIRST_SEED = 7000
CELL = 0.05
BAND = (0.2, 2.0)
OBSTACLE_RANGE = 8.0
_OFF, _M = 4096, 8192


def _keys2(cells: np.ndarray) -> np.ndarray:
    return (cells[:, 0] + _OFF) * _M + (cells[:, 1] + _OFF)


def _keys3(cells: np.ndarray) -> np.ndarray:
    return ((cells[:, 0] + _OFF) * _M + (cells[:, 1] + _OFF)) * 256 + np.clip(cells[:, 2], 0, 255)


def _near(keys: np.ndarray, reference: np.ndarray, offsets) -> np.ndarray:
    """Which ``keys`` have a ``reference`` key within the neighbourhood ``offsets``."""
    hit = np.zeros(keys.size, bool)
    for offset in offsets:
        hit |= np.isin(keys + offset, reference)
    return hit


OFFSETS2 = [dx * _M + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
OFFSETS3 = [(dx * _M + dy) * 256 + dz for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)]


def grids(points_cam: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2-D cell keys, voxel keys) of finite camera-frame points in the obstacle band."""
    p = points_cam[np.isfinite(points_cam).all(axis=1)]
    p = p[np.linalg.norm(p, axis=1) <= OBSTACLE_RANGE]
    world = p @ T[:3, :3].T + T[:3, 3]
    world = world[(world[:, 2] >= BAND[0]) & (world[:, 2] <= BAND[1])]
    cells = np.floor(world / CELL).astype(np.int64)
    return np.unique(_keys2(cells)), np.unique(_keys3(cells))


def cleared_voxels(depth: np.ndarray, intrinsics, T: np.ndarray, stride: int = 2) -> np.ndarray:
    """Voxels the rays of +Inf pixels cross in the obstacle band, up to OBSTACLE_RANGE."""
    far = np.isposinf(depth[::stride, ::stride])
    if not far.any():
        return np.empty(0, np.int64)
    rays = depth_to_points(np.ones_like(depth), intrinsics)[::stride, ::stride][far]
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    steps = np.arange(CELL / 2, OBSTACLE_RANGE, CELL / 2)
    samples = (rays[:, None, :] * steps[None, :, None]).reshape(-1, 3)
    world = samples @ T[:3, :3].T + T[:3, 3]
    world = world[(world[:, 2] >= BAND[0]) & (world[:, 2] <= BAND[1])]
    return np.unique(_keys3(np.floor(world / CELL).astype(np.int64)))


class _FramePredictor:
    """A ground-truth baseline behind ``predict(rgb)``, for the frame pipeline (it needs the frame)."""

    def __init__(self, baseline):
        self.baseline, self.frame, self.steps = baseline, None, 0

    def predict(self, rgb):
        return self.baseline.predict_frame(self.frame)

    def describe(self):
        return self.baseline.describe()


def calibration_of(intrinsics) -> Calibration:
    k = intrinsics.K
    return Calibration.of(intrinsics.width, intrinsics.height, 'plumb_bob', [0.0] * 5, k.ravel(),
                          np.eye(3).ravel(), np.hstack([k, np.zeros((3, 1))]).ravel())


def rows_for(model: str) -> list[tuple[str, dict]]:
    raw = [('raw cloud', {})]
    if model == 'ppd':
        return raw + [
            ('max_range 8 m', {'max_range': 8.0}),
            ('edge_filter 0.05', {'edge_filter': 0.05}),
            ('edge_filter 0.10', {'edge_filter': 0.10}),
            ('confidence_min 0.3', {'confidence_min': 0.3}),
            ('confidence_min 0.6', {'confidence_min': 0.6}),
            ('ppd_costmap.yaml (max 8, min 0.3, edge 0.05, stride 2)',
             {'max_range': 8.0, 'min_range': 0.3, 'edge_filter': 0.05, 'cloud_stride': 2}),
        ]
    return raw + [('edge_filter 0.05', {'edge_filter': 0.05}),
                  ('ppd_costmap.yaml (max 8, min 0.3, edge 0.05, stride 2)',
                   {'max_range': 8.0, 'min_range': 0.3, 'edge_filter': 0.05, 'cloud_stride': 2})]


def run(frames: int, width: int, height: int, models=('ppd', 'baseline', 'gt_resampled', 'gt')) -> dict:
    from ppd_ros.eval.baselines import Oracle
    from ppd_ros.model.estimator import PPDEstimator
    from ppd_ros.synthetic.render import render_frame
    settings = DEFAULTS.replace(resolution='camera', seed=0)
    predictors = {}
    if 'ppd' in models:
        predictors['ppd'] = PPDEstimator.demo(device='cpu', seed=0)
    if 'baseline' in models:
        from ppd_dev.training.baseline import BaselineEstimator
        predictors['baseline'] = BaselineEstimator.demo()
    if 'gt_resampled' in models:
        predictors['gt_resampled'] = _FramePredictor(GroundTruthResampled(scale=0.125))
    if 'gt' in models:
        predictors['gt'] = _FramePredictor(Oracle())
    pipelines = {name: FramePipeline(p, settings) for name, p in predictors.items()}
    totals: dict = {}
    for i in range(frames):
        frame = render_frame(FIRST_SEED + i, width, height, kind=('indoor', 'outdoor')[i % 2])
        truth_depth = np.where(frame.valid, frame.depth, np.nan).astype(np.float32)
        truth2, truth3 = grids(depth_to_points(truth_depth, frame.intrinsics).reshape(-1, 3), frame.T_world_cam)
        for name, pipeline in pipelines.items():
            if isinstance(predictors[name], _FramePredictor):
                predictors[name].frame = frame
            depth = pipeline.process(FrameInput(frame.rgb, i + 1, calibration_of(frame.intrinsics)),
                                     want_metric=False, want_confidence=(name == 'ppd'))[0]
            valid = valid_gt(frame.depth, frame.valid) & np.isfinite(depth.relative)
            _, a, b = align_to_gt(np.nan_to_num(depth.relative), frame.depth, valid)
            scale = ScaleInUse(a, b, 'oracle', 0, 'least squares to the ground truth')
            for row, changes in rows_for(name):
                d = dataclasses.replace(depth, scale=scale, settings=settings.replace(**changes))
                metric = d.metric
                ok = valid & np.isfinite(metric)
                absrel = float(np.mean(np.abs(metric[ok] - frame.depth[ok]) / frame.depth[ok]))
                points, _ = d.cloud
                cells2, cells3 = grids(points.reshape(-1, 3), frame.T_world_cam)
                cleared = cleared_voxels(d.output_depth, d.intrinsics, frame.T_world_cam)
                entry = totals.setdefault((name, row), {k: [] for k in (
                    'absrel', 'ghost', 'missed', 'vghost', 'cleared', 'wrong_cleared', 'points')})
                entry['absrel'].append(absrel)
                entry['ghost'].append(int((~_near(cells2, truth2, OFFSETS2)).sum()))
                entry['missed'].append(int((~_near(truth2, cells2, OFFSETS2)).sum()))
                entry['vghost'].append(int((~_near(cells3, truth3, OFFSETS3)).sum()))
                entry['cleared'].append(int(cleared.size))
                entry['wrong_cleared'].append(int(np.isin(cleared, truth3).sum()))
                entry['points'].append(int(np.isfinite(points).all(axis=2).sum()))
    return {key: {k: float(np.mean(v)) for k, v in value.items()} for key, value in totals.items()}


NAMES = {'ppd': 'PPD demo (4 steps)', 'baseline': 'discriminative baseline head',
         'gt_resampled': 'GT shrunk 8x + bilinear', 'gt': 'GT exact'}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--frames', type=int, default=12)
    p.add_argument('--width', type=int, default=256)
    p.add_argument('--height', type=int, default=192)
    a = p.parse_args(argv)
    result = run(a.frames, a.width, a.height)
    print(f'{a.frames} synthetic frames (seeds {FIRST_SEED}.., indoor/outdoor), camera {a.width}x{a.height}, '
          f'5 cm cells/voxels, obstacles {BAND[0]}-{BAND[1]} m high within {OBSTACLE_RANGE} m; per frame:')
    print('| depth | filter | AbsRel | ghost cells | missed cells | ghost voxels | cleared voxels | '
          'wrongly cleared | points |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for (name, row), v in result.items():
        print(f'| {NAMES[name]} | {row} | {v["absrel"]:.3f} | {v["ghost"]:.1f} | {v["missed"]:.1f} | '
              f'{v["vghost"]:.1f} | {v["cleared"]:.0f} | {v["wrong_cleared"]:.1f} | {v["points"]:.0f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
