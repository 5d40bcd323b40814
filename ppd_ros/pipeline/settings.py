"""Every choice the frame pipeline makes, with the defaults that every entry point shares.

depth_node's parameters, ppd-bag's and ppd-depth's flags take their defaults from here, so one
frame gives the same depth from each of them unless a user changes a setting.
"""
from __future__ import annotations

import math

from dataclasses import dataclass, replace

TEMPORAL_MODES = ('off', 'align', 'warm_start', 'video')
RECTIFY_MODES = ('auto', 'on', 'off')
RESOLUTIONS = ('inference', 'camera')
UPSAMPLE_METHODS = ('edge_aware', 'guided', 'nearest')  # never bilinear across depth edges
METRIC_SOURCES = ('auto', 'model', 'assumed')
INTRINSICS_SOURCES = ('camera_info', 'model')
COLORIZE_MODES = ('percentile', 'fixed')
#: 30 Hz: ~170 ms of buffering per window; see the README, 'Streaming video depth'
VIDEO_NEW_FRAMES = 5


@dataclass(frozen=True)
class PipelineSettings:
    # input
    rectify: str = 'auto'                  # distorted raw images: auto | on | off
    # model
    seed: int | None = 0                   # noise seed; None: random noise on every frame
    # temporal
    temporal_mode: str = 'off'
    video_new_frames: int = VIDEO_NEW_FRAMES
    warm_start_strength: float = 0.5
    align_smoothing: float = 0.8
    # scale
    near: float = 0.5                      # assumed metres at relative depth 0
    far: float = 10.0                      # assumed metres at relative depth 1
    metric_source: str = 'auto'
    metric_every_n_frames: int = 1
    metric_resolution_level: int = 9
    metric_smoothing: float = 0.5
    metric_max_hold_age: float = 5.0
    intrinsics: str = 'camera_info'
    # output geometry
    resolution: str = 'camera'             # the camera's size (enlarged by upsample) | inference
    upsample: str = 'guided'
    upsample_edge_threshold: float = 0.02
    # products
    points_rgb: bool = True
    colorize_mode: str = 'percentile'
    colorize_percentiles: tuple = (2.0, 98.0)
    colorize_range: tuple = (0.5, 10.0)
    # costmap outputs (geometry.costmap_filters; all off by default: depth/image as before)
    confidence_samples: int = 1            # K noise seeds: 1 = the sampler's own signal, K > 1 their spread (K× cost)
    min_range: float = 0.0                 # metres; nearer: −Inf in depth/image, no point (0: off)
    max_range: float = 0.0                 # metres; farther: +Inf in depth/image (REP 117), no point (0: off)
    confidence_min: float = 0.0            # lower confidence: NaN, no point (0: off)
    edge_filter: float = 0.0               # flying points: relative depth jump to a nearer neighbour (0: off)
    cloud_stride: int = 1                  # every n-th row and column in depth/points
    cloud_organized: bool = True           # False: only the valid points, height 1, is_dense true
    # depth/scan (geometry.scan, as depthimage_to_laserscan)
    scan_height: int = 1                   # rows around the principal point's row
    scan_range_min: float = 0.45
    scan_range_max: float = 10.0
    scan_frame_id: str = 'camera_depth_frame'
    scan_min_height: float = 0.2           # scan in a target frame (tf2): its z band, metres
    scan_max_height: float = 2.0

    def replace(self, **changes) -> 'PipelineSettings':
        return replace(self, **changes)


DEFAULTS = PipelineSettings()


def near_far_problem(near: float, far: float, names=('output.near', 'output.far')) -> str | None:
    """Why an assumed range cannot be used (geometry.scale.depth_scale's rule), or None; ``names``
    are the settings' names where the user typed them (parameters or flags)."""
    if 0.0 < near < far and math.isfinite(far):
        return None
    return f'{names[0]} ({near}) must be smaller than {names[1]} ({far}), both positive and finite'
