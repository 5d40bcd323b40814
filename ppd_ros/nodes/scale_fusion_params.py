"""scale_fusion_node's parameters: one table (declared, documented, validated from it) and its
cross-checks. The node's module docstring says what they do together.
"""
from __future__ import annotations

import numpy as np

from ppd_ros.geometry.scale.fit import RANGE_MODES

from .params import DIAGNOSTICS_SPECS, ParamSpec, pairing_specs, qos_specs

SOURCES = ('depth_image', 'pointcloud', 'range')


def _quaternion_problem(q) -> str | None:
    return None if np.linalg.norm(np.asarray(q, dtype=float)) > 1e-6 else 'must not be the zero quaternion'


PARAMETERS = (
    ParamSpec('source', 'pointcloud', 'metric source: depth_image (metric_source/depth), pointcloud '
              '(metric_source/points) or range (metric_source/range)', choices=SOURCES),
    ParamSpec('source_tolerance', 0.1, 'max |stamp difference| in s between a relative depth frame and '
              'the source message paired with it (the closest one is used)', dynamic=True, low=0.0, high=60.0),
    ParamSpec('stale_after', 1.0, 'a source whose newest message is this many s older than the depth '
              'frame is stale (the fit is held)', dynamic=True, low=0.0, high=3600.0),
    ParamSpec('source_queue', 100, 'source messages kept for pairing by stamp, at most', low=1, high=10000),
    ParamSpec('source_window', 2.0, 'seconds of source messages kept for pairing (by stamp, back from the '
              'newest); also, messages older than the last paired depth frame minus source_tolerance are '
              'released', dynamic=True, low=0.01, high=3600.0),
    ParamSpec('source_budget_mb', 64.0, 'MB of source messages kept for pairing at most (oldest dropped '
              'first); a single larger message is refused with a warning', dynamic=True, low=0.001,
              high=65536.0),
    ParamSpec('source_frame', '', 'frame_id the extrinsic parameters describe; point clouds in another '
              'frame are refused (empty: not checked). Ignored when tf2 is used', dynamic=True),
    ParamSpec('use_tf', True, 'pointcloud: look up T_cam_source with tf2 (camera frame ← cloud frame at the '
              'cloud\'s stamp) when tf2_ros is importable; false, or tf2_ros missing: the extrinsic.* '
              'parameters'),
    ParamSpec('tf_timeout', 0.05, 'seconds a tf2 lookup may wait for the transform to arrive',
              dynamic=True, low=0.0, high=10.0),
    ParamSpec('extrinsic.translation', [0.0, 0.0, 0.0], 'T_cam_source translation [x, y, z] m: source '
              'frame origin in the camera optical frame', dynamic=True, length=3),
    ParamSpec('extrinsic.rotation', [0.0, 0.0, 0.0, 1.0], 'T_cam_source rotation quaternion '
              '[qx, qy, qz, qw] (normalised on use)', dynamic=True, length=4, check=_quaternion_problem),
    ParamSpec('depth_image.unit', 0.001, 'metres per count of a 16UC1 metric depth image',
              dynamic=True, low=1e-9),
    ParamSpec('range.pixel', [-1.0, -1.0], 'pixel [u, v] (depth/camera_info coordinates) whose ray the '
              'range finder measures along; negative: the principal point', dynamic=True, length=2),
    ParamSpec('range.mode', 'prior', 'one range reading cannot fix both a and b. prior: Gaussian prior on '
              'the depths at relative 0 and 1 (range.near/far ± sigmas), the reading moves the less '
              'certain end; offset: keep a from near/far, fit b; scale: log(d+1) = k·(a·r + b)',
              dynamic=True, choices=RANGE_MODES),
    ParamSpec('range.near', 0.8, 'prior: metres at relative 0 (the 2 % depth of the view; for a robot about '
              'the floor at the bottom of the image)', dynamic=True, low=0.0),
    ParamSpec('range.far', 8.0, 'prior: metres at relative 1 (the 98 % depth of the view)',
              dynamic=True, low=0.0),
    ParamSpec('range.near_sigma', 0.2, 'prior spread of log(near + 1) (mode prior)', dynamic=True, low=1e-3),
    ParamSpec('range.far_sigma', 0.5, 'prior spread of log(far + 1) (mode prior)', dynamic=True, low=1e-3),
    ParamSpec('range.sample_sigma', 0.05, 'spread of one reading against the relative depth, log(d+1) '
              'units (mode prior)', dynamic=True, low=1e-3),
    ParamSpec('range.window_frames', 1, 'fit the readings of the last N frames together (robust, with the '
              'prior): a moving robot\'s beam hits different relative depths, which fixes both a and b. '
              'Needs temporally consistent relative depth: run the depth node with temporal.mode: align. '
              '1 = per-frame fit (range.mode)', dynamic=True, low=1, high=10000),
    ParamSpec('range.min_spread', 0.0, 'window: relative-depth spread (p90 - p10) of the readings below which '
              'only the newest reading is fitted (mode prior)', dynamic=True, low=0.0),
    ParamSpec('range.reset_residual', 0.3, 'window: 3 readings in a row this far (log(d+1) units) from the '
              'window fit restart the window (the aligner reset or the scene changed)', dynamic=True, low=1e-3),
    ParamSpec('fit.min_points', 20, 'fewest samples (and inliers) for a full fit', dynamic=True, low=2),
    ParamSpec('fit.min_depth', 0.1, 'samples nearer than this (m) are ignored; also the near clip of '
              'projected points', dynamic=True, low=0.0),
    ParamSpec('fit.max_depth', 100.0, 'samples farther than this (m) are ignored', dynamic=True, low=0.0),
    ParamSpec('fit.inlier_threshold', 0.15, 'RANSAC inlier band in log(d+1) units (0.15 ≈ 16 % depth)',
              dynamic=True, low=1e-6),
    ParamSpec('fit.max_iterations', 200, 'RANSAC hypotheses at most (2-point samples)', dynamic=True,
              low=1, high=100000),
    ParamSpec('fit.min_inlier_ratio', 0.3, 'a fit with fewer inliers (fraction) fails', dynamic=True,
              low=0.0, high=1.0),
    ParamSpec('fit.seed', 0, 'seed of the RANSAC random generator (reproducible fits)', low=0),
    ParamSpec('tracker.smoothing', 0.0, 'weight of the previous fit in the temporal smoothing (0 = none: '
              'PPD normalises each frame itself, so a and b really change per frame)',
              dynamic=True, low=0.0, high=0.99),
    ParamSpec('tracker.max_jump', 0.2, 'reject a fit whose prediction moves more than this (median, '
              'log(d+1) units) from the smoothed one', dynamic=True, low=1e-6),
    ParamSpec('tracker.max_scale_change', 0.5, 'reject a fit whose a changes by more than this fraction',
              dynamic=True, low=1e-6),
    ParamSpec('tracker.max_rejections', 3, 'after this many rejections in a row the new fit is taken',
              dynamic=True, low=1),
    ParamSpec('max_hold_age', 2.0, 'seconds the last good fit is held when the source stalls or fits '
              'fail; after that no metric depth is published (status EXPIRED)', dynamic=True, low=0.0),
    ParamSpec('model_fallback', True, 'when the sensor fit is unusable, use depth_node\'s MoGe-2 scale '
              '(depth/scale, source model) for the same stamp instead of publishing no metric depth',
              dynamic=True),
    *pairing_specs('depth/relative', 'depth/camera_info', slop=0.01),
    *qos_specs(auto_subscription=True),
    *DIAGNOSTICS_SPECS,
)


def check_parameters(values) -> str | None:
    """What is wrong across parameters (each one alone is checked by its spec), or None."""
    if not values['fit.min_depth'] < values['fit.max_depth']:
        return f"fit.min_depth ({values['fit.min_depth']}) must be < fit.max_depth ({values['fit.max_depth']})"
    if not 0 < values['range.near'] < values['range.far']:
        return f"need 0 < range.near ({values['range.near']}) < range.far ({values['range.far']})"
    return None


__all__ = ['PARAMETERS', 'SOURCES', 'check_parameters']
