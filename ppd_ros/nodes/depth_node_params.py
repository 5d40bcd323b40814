"""depth_node's parameters (depth_lifecycle_node's too): one table, its cross-checks, and what
they become: the frame pipeline's settings and the model's build options.

Every default of a pipeline setting comes from ``ppd_ros.pipeline.settings.DEFAULTS``, the same
defaults ppd-bag and ppd-depth use.
"""
from __future__ import annotations

import re

from ppd_ros.model.runtime import BACKENDS, model_options_problem
from ppd_ros.model.preprocess import DEFAULT_MAX_PIXELS
from ppd_ros.pipeline.settings import (COLORIZE_MODES, DEFAULTS, INTRINSICS_SOURCES, METRIC_SOURCES,
                                       RECTIFY_MODES, RESOLUTIONS, TEMPORAL_MODES, UPSAMPLE_METHODS,
                                       PipelineSettings, near_far_problem)

from .image_codec import MONO16_MODES
from .params import DIAGNOSTICS_SPECS, ParamSpec, pairing_specs, qos_specs

IMAGE_TRANSPORTS = ('raw', 'compressed')


def _positive_pair(value) -> str | None:
    return None if value[0] < value[1] else f'needs low < high, got {list(value)}'


def _target_area_problem(value) -> str | None:
    if list(value) != [0, 0] and min(value) < 16:
        return 'use [0, 0] (the model\'s own) or both sides >= 16'
    return None


_CAMERA_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*')


def camera_names_problem(names) -> str | None:
    """Why this list of camera names (the cameras parameter) cannot be used, or None."""
    for name in names:
        if not name:
            return f'has an empty name: {list(names)}'
        if not _CAMERA_NAME.fullmatch(name) or '__' in name:
            return (f"'{name}' is not a valid camera name (letters, digits and _, starting with a letter; "
                    "'/' between parts)")
    twice = sorted({name for name in names if list(names).count(name) > 1})
    if twice:
        return f"names {', '.join(twice)} more than once"
    return None


D = DEFAULTS
PARAMETERS = (
    # several cameras (nodes.depth_cameras)
    ParamSpec('cameras', [], "Camera names, e.g. ['front', 'left', 'right'] (or 'front,left,right'): each "
              'reads <cam>/image and <cam>/camera_info and publishes under <cam>/depth/..., one model runs '
              'them batched; empty: one camera on image and camera_info', array_of=str,
              check=camera_names_problem),
    # input
    ParamSpec('image_transport', 'raw', 'How the image arrives, as image_transport names it: raw '
              '(sensor_msgs/Image on image) or compressed (sensor_msgs/CompressedImage, jpeg or png, '
              'on <image>/compressed)', choices=IMAGE_TRANSPORTS),
    ParamSpec('input.rectify', D.rectify, 'Raw images whose CameraInfo has distortion (D not zero): auto '
              'rectifies them unless the image topic is named as rectified (image_rect...: image_proc\'s '
              'convention); on always rectifies; off never does (a warning once). The outputs then '
              'have the rectified geometry (P). on/off may be typed bare (ROS reads them as true/false)',
              dynamic=True, choices=RECTIFY_MODES),
    ParamSpec('input.mono16', 'shift', 'How mono16 images become 8 bit: shift (value >> 8) or '
              'percentile (per-frame 1–99 % stretch, for 10/12-bit sensors)', choices=MONO16_MODES),
    *pairing_specs('image', 'CameraInfo', slop=0.05),
    ParamSpec('input.max_pixels', DEFAULT_MAX_PIXELS, 'Largest frame (width x height) accepted, raw or '
              'compressed; larger ones are refused with a message before they are decoded (PNG/JPEG '
              'size from the header). Default 7680x4320 (8K UHD)', low=256, high=2**30),
    *qos_specs(auto_subscription=True),
    # model
    ParamSpec('model.dit_path', '', 'Released DiT checkpoint: ppd.pth, ppd_moge.pth (with moge2.pt: metric '
              'depth from the camera alone), or ppvd.pth (the video model, with temporal.mode video); empty: '
              'bundled demo model'),
    ParamSpec('model.encoder_path', '', 'Released encoder checkpoint (Depth-Anything-v2 for ppd.pth, moge2.pt for '
              'ppd_moge.pth, pi3.safetensors for ppvd.pth); give it together with model.dit_path'),
    ParamSpec('model.device', 'auto', 'auto, cpu, cuda, cuda:N, ...'),
    ParamSpec('model.precision', 'fp32', 'Inference precision', choices=('fp32', 'fp16', 'bf16')),
    ParamSpec('model.steps', 4, 'Euler sampling steps (fewer: faster, coarser)', dynamic=True,
              low=1, high=64),
    ParamSpec('model.seed', D.seed, 'Noise seed: every frame starts from the same noise, so a frame gives '
              'the same depth here, in ppd-bag and in ppd-depth; -1: new random noise on every frame', low=-1),
    ParamSpec('model.target_area', [0, 0], 'Model resolution as [width, height] whose pixel '
              'area the input is resized to (aspect kept, multiples of 16); [0, 0]: the model\'s own '
              '(1024x768 for the released weights, the training resolution of the demo model)',
              length=2, low=0, high=8192, check=_target_area_problem),
    ParamSpec('model.compile', False, 'true: torch.compile + CUDA-graph capture of the whole frame for the '
              'model resolution, warmed up at start (CUDA; elsewhere eager, with one log line). A switch: '
              'on/off (ROS reads them as true/false) and the old words \'on\'/\'off\' work too'),
    ParamSpec('model.backend', 'torch', 'torch; onnxruntime (CPU or CUDA provider by model.device) or '
              'tensorrt (onnxruntime TensorRT provider) run model.onnx_path', choices=BACKENDS),
    ParamSpec('model.onnx_path', '', 'ONNX model written by ppd-export, for model.backend '
              'onnxruntime or tensorrt (fixed resolution and steps)'),
    ParamSpec('worker.queue_size', 1, 'Frames waiting for the model; older ones are dropped '
              '(latest frame wins)', low=1, high=16),
    # outputs
    ParamSpec('output.resolution', D.resolution, 'inference: depth at the model resolution '
              '(camera_info scaled per axis); camera: enlarged to the camera resolution',
              dynamic=True, choices=RESOLUTIONS),
    ParamSpec('output.upsample', D.upsample, 'How depth is enlarged for output.resolution camera '
              '(edge-preserving; guided follows the RGB edges)', dynamic=True, choices=UPSAMPLE_METHODS),
    ParamSpec('output.upsample_edge_threshold', D.upsample_edge_threshold, 'Relative-depth step treated as '
              'a depth edge when enlarging', dynamic=True, low=1e-6, high=1.0),
    ParamSpec('output.near', D.near, 'Assumed metres at relative depth 0 (depth/image, depth/points)',
              dynamic=True, low=1e-3),
    ParamSpec('output.far', D.far, 'Assumed metres at relative depth 1', dynamic=True, low=1e-3),
    ParamSpec('output.points_rgb', D.points_rgb, 'Add the packed rgb field to depth/points', dynamic=True),
    # costmap outputs (docs/costmap.md)
    ParamSpec('output.min_range', D.min_range, 'Metres: nearer depth becomes -Inf in depth/image (REP 117: too '
              'close) and no point in depth/points; 0: off', dynamic=True, low=0.0),
    ParamSpec('output.max_range', D.max_range, 'Metres: farther depth becomes +Inf in depth/image (REP 117: '
              'nothing within range, so a voxel layer clears along that ray) and no point in depth/points; '
              '0: off', dynamic=True, low=0.0),
    ParamSpec('output.confidence_min', D.confidence_min, 'Pixels with a lower depth/confidence get NaN in '
              'depth/image and no point (needs the eager sampler); 0: off', dynamic=True, low=0.0, high=1.0),
    ParamSpec('output.edge_filter', D.edge_filter, 'Flying-point filter: a pixel farther than a neighbour by more '
              'than this fraction of that neighbour\'s depth (the far side of a depth jump) gets NaN and no '
              'point; the nearest surface stays. 0: off; 0.05 removes 5 % jumps', dynamic=True, low=0.0, high=10.0),
    ParamSpec('confidence.samples', D.confidence_samples, 'depth/confidence from K noise seeds (their spread; '
              'K× the model time) instead of the one sampling\'s own signal (K = 1, no extra cost)',
              dynamic=True, low=1, high=16),
    ParamSpec('cloud.stride', D.cloud_stride, 'depth/points keeps every n-th row and column', dynamic=True,
              low=1, high=64),
    ParamSpec('cloud.organized', D.cloud_organized, 'depth/points organized (H x W, NaN invalid); false: only '
              'the valid points (height 1, is_dense true, fewer bytes)', dynamic=True),
    ParamSpec('scan.height', D.scan_height, 'depth/scan: rows around the principal point\'s row whose nearest '
              'range each column takes (depthimage_to_laserscan\'s scan_height)', dynamic=True, low=1, high=4096),
    ParamSpec('scan.range_min', D.scan_range_min, 'depth/scan range_min (metres); nearer: -Inf', dynamic=True,
              low=0.0),
    ParamSpec('scan.range_max', D.scan_range_max, 'depth/scan range_max (metres); farther: +Inf', dynamic=True,
              low=0.0),
    ParamSpec('scan.frame_id', D.scan_frame_id, 'frame_id of depth/scan: the camera\'s non-optical frame (x '
              'forward, z up), as depthimage_to_laserscan\'s output_frame; empty: the image\'s frame'),
    ParamSpec('scan.target_frame', '', 'depth/scan in this frame instead (e.g. base_link; x forward, z up), '
              'through tf2 at each image\'s stamp, as pointcloud_to_laserscan: the points between '
              'scan.min_height and scan.max_height of that frame; empty: scan.frame_id, without tf2'),
    ParamSpec('scan.min_height', D.scan_min_height, 'scan.target_frame: lowest point height (metres, its z) '
              'in the scan', dynamic=True),
    ParamSpec('scan.max_height', D.scan_max_height, 'scan.target_frame: highest point height (metres, its z) '
              'in the scan', dynamic=True),
    ParamSpec('scan.tf_timeout', 0.05, 'scan.target_frame: seconds to wait for the transform at the '
              'image\'s stamp', dynamic=True, low=0.0, high=10.0),
    # metric scale
    ParamSpec('metric.source', D.metric_source, 'Scale of depth/image and depth/points: auto (MoGe-2\'s metric '
              'depth when the weights include it, else the assumed output.near/far), model (require '
              'MoGe-2), assumed (always output.near/far)', choices=METRIC_SOURCES),
    ParamSpec('metric.every_n_frames', D.metric_every_n_frames, 'Run the MoGe-2 metric pass on every N-th '
              'frame; the smoothed fit, validity mask and intrinsics are held in between', dynamic=True,
              low=1, high=1000),
    ParamSpec('metric.resolution_level', D.metric_resolution_level, 'MoGe-2\'s token count, 0 (fewest, '
              'fastest) .. 9 (most, as released); the metric pass costs about the same at any image size',
              dynamic=True, low=0, high=9),
    ParamSpec('metric.smoothing', D.metric_smoothing, 'Weight of the previous model-scale fit when a new one '
              'arrives (0 = each pass as is)', dynamic=True, low=0.0, high=0.99),
    ParamSpec('metric.max_hold_age', D.metric_max_hold_age, 'Seconds a model-scale fit is held when passes '
              'fail; after that the assumed range is used', dynamic=True, low=0.0, high=3600.0),
    ParamSpec('camera.intrinsics', D.intrinsics, 'Geometry source: camera_info (subscribe camera_info, '
              'the calibration), or model (MoGe-2\'s intrinsics for cameras without calibration: no '
              'camera_info subscription; depth/camera_info then carries the intrinsics used)',
              choices=INTRINSICS_SOURCES),
    # colorized
    ParamSpec('colorize.mode', D.colorize_mode, 'percentile: range from the frame\'s percentiles; '
              'fixed: colorize.range metres', dynamic=True, choices=COLORIZE_MODES),
    ParamSpec('colorize.percentiles', list(D.colorize_percentiles), 'Low and high percentile for mode '
              'percentile', dynamic=True, length=2, low=0.0, high=100.0, check=_positive_pair),
    ParamSpec('colorize.range', list(D.colorize_range), 'Metres shown at the two ends of the colour map for '
              'mode fixed', dynamic=True, length=2, low=0.0, check=_positive_pair),
    # temporal
    ParamSpec('temporal.mode', D.temporal_mode, 'Temporal smoothing: off; align (fit each frame to the '
              'previous one); warm_start (start sampling from the previous depth, fewer steps); video '
              '(the video model PPVD, causal windows: needs model.dit_path ppvd.pth and '
              'model.encoder_path pi3.safetensors; frames are published when their window is done). off '
              'may be typed bare (ROS reads it as false)',
              dynamic=True, choices=TEMPORAL_MODES),
    ParamSpec('temporal.video_new_frames', D.video_new_frames, 'video: new frames per window (1..13); '
              'each window re-runs the 3 keyframes it inherits, so fewer new frames = lower latency, more '
              'compute per frame (13 = the offline windows of 16)', dynamic=True, low=1, high=13),
    ParamSpec('temporal.warm_start_strength', D.warm_start_strength, 'warm_start: fraction of the sampling '
              'steps run again from the noised previous depth (1 = all steps, a cold start)', dynamic=True,
              low=0.05, high=1.0),
    ParamSpec('temporal.align_smoothing', D.align_smoothing, 'align: weight of the running reference when '
              'it is updated with a new aligned frame (0 = follow each frame)', dynamic=True, low=0.0, high=0.99),
    *DIAGNOSTICS_SPECS,
    ParamSpec('diagnostics.no_input_timeout', 5.0, 'Seconds without any image on the input topic after which '
              '/diagnostics goes WARN and the node says so (once, then every minute while it lasts)', dynamic=True,
              low=0.1, high=3600.0),
)
DEPRECATED_PARAMETERS = {'input.compressed': "use 'image_transport: compressed' (or raw)"}


def pipeline_settings(values) -> PipelineSettings:
    """The frame pipeline's settings from the parameter values (a mapping by name)."""
    seed = values['model.seed']
    return PipelineSettings(
        rectify=values['input.rectify'], seed=None if seed < 0 else seed,
        temporal_mode=values['temporal.mode'], video_new_frames=values['temporal.video_new_frames'],
        warm_start_strength=values['temporal.warm_start_strength'],
        align_smoothing=values['temporal.align_smoothing'],
        near=values['output.near'], far=values['output.far'], metric_source=values['metric.source'],
        metric_every_n_frames=values['metric.every_n_frames'],
        metric_resolution_level=values['metric.resolution_level'],
        metric_smoothing=values['metric.smoothing'], metric_max_hold_age=values['metric.max_hold_age'],
        intrinsics=values['camera.intrinsics'], resolution=values['output.resolution'],
        upsample=values['output.upsample'], upsample_edge_threshold=values['output.upsample_edge_threshold'],
        points_rgb=values['output.points_rgb'], colorize_mode=values['colorize.mode'],
        colorize_percentiles=tuple(values['colorize.percentiles']),
        colorize_range=tuple(values['colorize.range']),
        min_range=values['output.min_range'], max_range=values['output.max_range'],
        confidence_min=values['output.confidence_min'], edge_filter=values['output.edge_filter'],
        confidence_samples=values['confidence.samples'], cloud_stride=values['cloud.stride'],
        cloud_organized=values['cloud.organized'], scan_height=values['scan.height'],
        scan_range_min=values['scan.range_min'], scan_range_max=values['scan.range_max'],
        scan_frame_id=values['scan.frame_id'], scan_min_height=values['scan.min_height'],
        scan_max_height=values['scan.max_height'])


def compile_mode(values) -> str:
    """The model's compile mode ('on' | 'off', runtime.COMPILE_MODES) from the switch model.compile."""
    return 'on' if values['model.compile'] else 'off'


def model_options(values, log=None) -> dict:
    """``ppd_ros.model.factory.build_estimator`` keyword arguments from the model.* parameters:
    released checkpoints when model.dit_path is set, else the bundled demo model. ``log(line)``
    receives the estimator's one line when model.compile falls back to eager. The compiled path is
    warmed up later, on the inference thread."""
    area = values['model.target_area']
    return dict(dit=values['model.dit_path'] or None, encoder=values['model.encoder_path'] or None,
                device=values['model.device'], precision=values['model.precision'],
                steps=values['model.steps'], seed=pipeline_settings(values).seed,
                target_area=tuple(area) if any(area) else None, compile=compile_mode(values),
                backend=values['model.backend'], onnx_path=values['model.onnx_path'] or None, log=log,
                defer_warm_up=True)


def check_parameters(values) -> str | None:
    """Relations between parameters that no single spec can check (before the model is known)."""
    return (near_far_problem(values['output.near'], values['output.far'])
            or model_options_problem(values['model.dit_path'], values['model.encoder_path'], values['model.backend'],
                                     values['model.onnx_path'], compile_mode(values), names='node'))
