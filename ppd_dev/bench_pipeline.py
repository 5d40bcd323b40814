"""Time the depth node's data path outside model inference, stage by stage.

    python -m ppd_dev.bench_pipeline [--width 640 --height 480 --repeats 60]
    python -m ppd_dev.bench_pipeline --quality 20   # resampling quality instead of timing

For one camera frame (a synthetic scene rendered at the camera size) and each model resolution
(default: the 1024×768-area model size and 512×384), runs the node's per-frame work:
decode the Image message → resize to the model resolution → [the model: not timed; its output is
stood in by the scene's true relative depth] → (camera mode) enlarge depth to the camera size →
relative → metric → back-project → PointCloud2 (x y z rgb) → depth Image messages (relative and
metric, 32FC1) → colourised bgr8 Image. Prints median and p90 per stage and for the total, for
output.resolution 'camera' and 'inference'. Optional stages (temporal align, cloud without rgb,
JPEG decode) are timed but not added to the totals.

Also compares PointCloud2 packing with a per-point packer: a small re-implementation (written for
this benchmark, not the original code) of how sensor_msgs' point_cloud2.create_cloud packs in
ROS 1 and early ROS 2 sensor_msgs_py — the points as a list of tuples, struct.pack_into per
point into a ctypes buffer. (Later sensor_msgs_py versions convert through numpy instead.)
"""
from __future__ import annotations

import argparse
import ctypes
import struct
import time

import numpy as np

from ppd_ros.geometry.backproject import depth_to_points, pixel_rays
from ppd_ros.geometry.colorize import colorize_depth
from ppd_ros.geometry.scale.depth_scale import near_far_scale, relative_to_metric
from ppd_ros.geometry.temporal import TemporalAligner
from ppd_ros.geometry.upsample import upsample_depth
from ppd_ros.model.preprocess import model_size, resize_for_model
from ppd_ros.nodes.cloud import PointCloud2, PointField, points_to_cloud_msg
from ppd_ros.pipeline import DEFAULTS
from ppd_ros.nodes.image_codec import (
    bgr_to_image_msg, compressed_to_rgb, depth_to_image_msg, image_to_rgb, retain_freed_memory,
    rgb_to_compressed_msg, rgb_to_image_msg)
from ppd_ros.synthetic import render_frame

EDGE_THRESHOLD = DEFAULTS.upsample_edge_threshold  # depth_node's default (relative units)


def synthetic_input(width: int, height: int, seed: int):
    """RGB, metric depth (NaN invalid) and intrinsics of a synthetic indoor scene."""
    frame = render_frame(seed, width, height, 'indoor')
    depth = np.where(frame.valid, frame.depth, np.nan).astype(np.float32)
    return frame.rgb, depth, frame.intrinsics


def to_relative(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    a, b = near_far_scale(near, far)
    return ((np.log1p(depth) - b) / a).astype(np.float32)


# ----------------------------------------------------------------------- per-point packing

def per_point_cloud_msg(points: np.ndarray, rgb: np.ndarray | None) -> PointCloud2:
    """Re-implementation of the per-point approach (see module docstring): list of tuples,
    struct.pack_into per point; invalid points kept (organized), as our packer does."""
    height, width = points.shape[:2]
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate('xyz')]
    rows = points.reshape(-1, 3).tolist()
    if rgb is not None:
        fields.append(PointField(name='rgb', offset=12, datatype=PointField.UINT32, count=1))
        colours = rgb.reshape(-1, 3).astype(np.uint32)
        packed = ((colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]).tolist()
        rows = [(*p, c) for p, c in zip(rows, packed)]
        fmt = struct.Struct('<fffI')
    else:
        rows = [tuple(p) for p in rows]
        fmt = struct.Struct('<fff')
    buffer = ctypes.create_string_buffer(fmt.size * len(rows))
    pack_into, step, offset = fmt.pack_into, fmt.size, 0
    for row in rows:
        pack_into(buffer, offset, *row)
        offset += step
    return PointCloud2(height=height, width=width, fields=fields, is_bigendian=False,
                       point_step=step, row_step=step * width, data=buffer.raw, is_dense=False)


# ----------------------------------------------------------------------- timing

class Timer:
    def __init__(self):
        self.samples: dict[str, list[float]] = {}

    def run(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.samples.setdefault(name, []).append(time.perf_counter() - start)
        return result


def stats_ms(values) -> tuple[float, float, float]:
    """(median, p90, min) in ms; min shows the cost without preemption on a busy machine."""
    ms = np.asarray(values) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90)), float(ms.min())


def cell(values) -> str:
    median, p90, low = stats_ms(values)
    return f'{median:7.2f} /{p90:6.2f} /{low:6.2f}'


CORE_STAGES = [
    ('decode', 'Image bgr8 → RGB'),
    ('resize', 'resize to model resolution'),
    ('upsample', 'enlarge depth to camera (guided)'),
    ('metric', 'relative → metric'),
    ('backproject', 'back-projection (cached rays)'),
    ('cloud_rgb', 'PointCloud2 x y z rgb'),
    ('depth_msgs', 'relative + metric 32FC1 Image'),
    ('colorize', 'colorize (percentile) + bgr8 Image'),
]
EXTRA_STAGES = [
    ('decode_rgb8', 'Image rgb8 → RGB'),
    ('decode_jpeg', 'CompressedImage jpeg → RGB'),
    ('align', 'temporal align (model resolution)'),
    ('cloud_xyz', 'PointCloud2 x y z (no rgb)'),
    ('upsample_edge_aware', 'enlarge depth (edge_aware, no guide)'),
]


def bench_config(rgb, depth, intr, target_area, mode: str, repeats: int, near=DEFAULTS.near, far=DEFAULTS.far) -> Timer:
    """Run the node's per-frame data path `repeats` times; mode 'camera' or 'inference'."""
    height, width = rgb.shape[:2]
    header = None
    scale = near_far_scale(near, far)
    bgr_msg = rgb_to_image_msg(rgb, header, 'bgr8')
    rgb_msg = rgb_to_image_msg(rgb, header, 'rgb8')
    jpeg_msg = rgb_to_compressed_msg(rgb, header, 'jpeg')
    h, w = model_size(height, width, target_area)
    import cv2
    model_out = to_relative(cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST_EXACT), near, far)
    out_intr = intr if mode == 'camera' else intr.resized_to(w, h)
    rays = pixel_rays(out_intr)
    aligner = TemporalAligner()
    timer = Timer()
    for i in range(repeats + 3):
        if i == 3:
            timer.samples.clear()  # warm-up done
        frame = timer.run('decode', image_to_rgb, bgr_msg)
        timer.run('decode_rgb8', image_to_rgb, rgb_msg)
        timer.run('decode_jpeg', compressed_to_rgb, jpeg_msg)
        small = timer.run('resize', resize_for_model, frame, target_area).image
        relative = model_out  # the model would run here
        timer.run('align', aligner.update, relative * np.float32(1.0 + 0.01 * (i % 5)))
        if mode == 'camera':
            relative = timer.run('upsample', upsample_depth, relative, width, height, 'guided', guide=frame,
                                 absolute_threshold=EDGE_THRESHOLD)
            timer.run('upsample_edge_aware', upsample_depth, model_out, width, height, 'edge_aware',
                      absolute_threshold=EDGE_THRESHOLD)
            colour = frame
        else:
            colour = small
        metric = timer.run('metric', relative_to_metric, relative, *scale)
        points = timer.run('backproject', depth_to_points, metric, out_intr, rays)
        timer.run('cloud_rgb', points_to_cloud_msg, points, header, colour)
        timer.run('cloud_xyz', points_to_cloud_msg, points, header, None)
        timer.run('depth_msgs', lambda: (depth_to_image_msg(relative, header), depth_to_image_msg(metric, header)))
        timer.run('colorize', lambda: bgr_to_image_msg(colorize_depth(metric, 'percentile'), header))
    return timer


def print_table(configs: dict[str, Timer]) -> None:
    names = list(configs)
    width, column = 40, 26
    print(f"{'stage (ms: median / p90 / min)':<{width}}" + ''.join(f'{n:>{column}}' for n in names))
    for key, label in CORE_STAGES:
        cells = [cell(configs[n].samples[key]) if key in configs[n].samples else '—' for n in names]
        print(f'{label:<{width}}' + ''.join(f'{c:>{column}}' for c in cells))
    cells = []
    for name in names:
        samples = configs[name].samples
        cells.append(cell(np.sum([samples[k] for k, _ in CORE_STAGES if k in samples], axis=0)))
    print(f"{'TOTAL (per frame)':<{width}}" + ''.join(f'{c:>{column}}' for c in cells))
    print('not in the total:')
    for key, label in EXTRA_STAGES:
        cells = [cell(configs[n].samples[key]) if key in configs[n].samples else '—' for n in names]
        print(f'  {label:<{width - 2}}' + ''.join(f'{c:>{column}}' for c in cells))


def bench_per_point(rgb, depth, intr, repeats: int) -> None:
    points = depth_to_points(depth, intr)
    for with_rgb in (False, True):
        colour = rgb if with_rgb else None
        ours = [time.perf_counter()]
        for _ in range(max(10, repeats)):
            fast = points_to_cloud_msg(points, None, colour)
            ours.append(time.perf_counter())
        slow_times = []
        for _ in range(repeats):
            start = time.perf_counter()
            slow = per_point_cloud_msg(points, colour)
            slow_times.append(time.perf_counter() - start)
        assert bytes(slow.data) == bytes(fast.data), 'per-point and numpy packing disagree'
        fast_ms = stats_ms(np.diff(ours))[0]
        slow_ms = stats_ms(slow_times)[0]
        label = 'x y z rgb' if with_rgb else 'x y z'
        print(f'  {label:<10} numpy (points_to_cloud_msg): {fast_ms:8.2f} ms   per-point struct.pack_into: '
              f'{slow_ms:9.1f} ms   ({slow_ms / fast_ms:,.0f}× slower; identical bytes)')


# ----------------------------------------------------------------------- resampling quality

QUALITY_METHODS = [  # (label, method, keyword arguments); relative = the depth node's path
    ('nearest', 'nearest', {}),
    ('bilinear', 'bilinear', {}),
    ('area', 'area', {}),
    ('edge_aware (relative, abs 0.02)', 'edge_aware', {'absolute_threshold': EDGE_THRESHOLD}),
    ('edge_aware (metric, rel 0.05)', 'edge_aware', {'edge_threshold': 0.05, 'metric': True}),
    ('guided (relative, abs 0.02)', 'guided', {'absolute_threshold': EDGE_THRESHOLD}),
]


def resample_quality(num_frames: int, width: int, height: int, near=DEFAULTS.near, far=DEFAULTS.far) -> None:
    """Flying-pixel rate and AbsRel of each method on synthetic frames (half indoor, half outdoor).

    'up': the true depth shrunk to the 512×384-area model size (nearest: a perfectly sharp model
    output) and enlarged back. 'down': the same scene rendered at the 1024×768-area model size and
    shrunk to the camera size. The node resamples relative depth (normalised log(d+1), near/far
    0.5/10 m); the metric variant resamples metres directly.
    """
    import cv2
    from ppd_ros.eval.metrics import abs_rel, edge_region, flying_pixel_rate
    a, b = near_far_scale(near, far)
    results = {label: {'up': [], 'down': []} for label, _, _ in QUALITY_METHODS}
    for i in range(num_frames):
        kind = 'indoor' if i % 2 == 0 else 'outdoor'
        truth = render_frame(i, width, height, kind)
        gt = np.where(truth.valid, truth.depth, np.nan).astype(np.float32)
        sources = {}
        h, w = model_size(height, width, (512, 384))
        sources['up'] = cv2.resize(gt, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        h, w = model_size(height, width, (1024, 768))
        big = render_frame(i, w, h, kind)
        sources['down'] = np.where(big.valid, big.depth, np.nan).astype(np.float32)
        band = edge_region(gt, truth.valid)
        guide = truth.rgb
        for label, method, kwargs in QUALITY_METHODS:
            kwargs = dict(kwargs)
            metric_space = kwargs.pop('metric', False)
            for direction, source in sources.items():
                if metric_space:
                    pred = upsample_depth(source, width, height, method, guide=guide, **kwargs)
                else:
                    relative = ((np.log1p(source) - b) / a).astype(np.float32)
                    pred = relative_to_metric(
                        upsample_depth(relative, width, height, method, guide=guide, **kwargs), a, b)
                covered = truth.valid & np.isfinite(pred)
                results[label][direction].append((
                    flying_pixel_rate(pred, gt, truth.intrinsics, covered),
                    abs_rel(pred, gt, covered),
                    abs_rel(pred, gt, covered & band) if (covered & band).any() else np.nan,
                    1.0 - covered.sum() / truth.valid.sum(),
                    (np.isfinite(pred) & ~truth.valid).sum() / (~truth.valid).sum() if not truth.valid.all()
                    else np.nan))
    print(f'{num_frames} synthetic frames {width}x{height} (indoor/outdoor alternating); means over frames')
    print('lost: valid pixels that came out NaN; invented: invalid (sky) pixels that got a depth')
    print(f"{'method':<34}{'dir':>5}{'flying px %':>13}{'AbsRel %':>10}{'AbsRel@edges %':>16}{'lost %':>8}"
          f"{'invented %':>12}")
    for label, per_direction in results.items():
        for direction, rows in per_direction.items():
            fly, rel, rel_edge, lost, invented = (np.nanmean(np.asarray(rows, float), axis=0) * 100).tolist()
            print(f'{label:<34}{direction:>5}{fly:13.3f}{rel:10.3f}{rel_edge:16.3f}{lost:8.3f}{invented:12.3f}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--repeats', type=int, default=60, help='frames timed per configuration')
    p.add_argument('--per-point-repeats', type=int, default=3)
    p.add_argument('--target-areas', default='1024x768,512x384',
                   help='comma-separated model target areas WxH (the model resolution follows the camera aspect)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--default-malloc', action='store_true',
                   help="don't call image_codec.retain_freed_memory() (glibc's default: large buffers "
                        'are returned to the OS and page-fault in again every frame)')
    p.add_argument('--quality', type=int, metavar='FRAMES', default=0,
                   help='instead of timing: flying-pixel rate and AbsRel of each resampling method on '
                        'FRAMES synthetic frames')
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.quality:
        resample_quality(args.quality, args.width, args.height)
        return
    import cv2
    tuned = False if args.default_malloc else retain_freed_memory()
    rgb, depth, intr = synthetic_input(args.width, args.height, args.seed)
    print(f'camera {args.width}x{args.height}, {args.repeats} frames per configuration, '
          f'OpenCV threads {cv2.getNumThreads()}, numpy {np.__version__}, '
          f"malloc {'tuned (retain_freed_memory)' if tuned else 'default'}")
    configs = {}
    for area in args.target_areas.split(','):
        target = tuple(int(v) for v in area.lower().split('x'))
        h, w = model_size(args.height, args.width, target)
        for mode in ('camera', 'inference'):
            configs[f'{w}x{h} {mode}'] = bench_config(rgb, depth, intr, target, mode, args.repeats)
    print_table(configs)
    print(f'\nPointCloud2 packing, {args.width}x{args.height} organized:')
    bench_per_point(rgb, depth, intr, args.per_point_repeats)


if __name__ == '__main__':
    main()
