"""What each costmap output adds to a frame at 640×480, measured interleaved.

    python -m ppd_dev.bench_costmap [--repeats 15] [--width 640 --height 480]

The frame: a synthetic 640×480 scene through the frame pipeline as depth_node runs it (the demo
model, output.resolution camera, guided upsampling) plus depth/image and an organized
depth/points message — what a costmap user subscribes to anyway. Each output's extra time is
measured against that frame, interleaved (A, B, A, B, …, so drift hits both), and printed as
median extra milliseconds and as a share of the frame's median:

  confidence (K = 1)   the model call with the sampler's signals against the plain call
                       (interleaved: the only difference inside the frame), plus making the
                       depth/confidence image and message from them
  confidence (K = 4)   the same with confidence.samples 4 (three more samplings)
  others               the product on the frame's depth alone (filters, cloud variants, scan)
                       against nothing: the filter + its message, minus the plain message

CPU only here: the demo model is small (its frame is short), so the shares are an upper bound of
what the same outputs add to a released-size model's frame.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
from std_msgs.msg import Header

from ppd_ros.geometry.confidence import confidence_from_uncertainty, uncertainty_of
from ppd_ros.nodes.depth_messages import depth_message
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline

from .costmap_report import calibration_of


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--threads', type=int, default=1, help='torch threads')
    a = p.parse_args(argv)
    import torch
    from ppd_ros.model.estimator import PPDEstimator
    from ppd_ros.synthetic.render import render_frame
    torch.set_num_threads(a.threads)  # a shared machine: fewer threads, steadier numbers
    frame = render_frame(7000, a.width, a.height, kind='indoor')
    settings = DEFAULTS.replace(resolution='camera', seed=0)
    pipeline = FramePipeline(PPDEstimator.demo(device='cpu', seed=0), settings)
    calibration = calibration_of(frame.intrinsics)
    header = Header(frame_id='camera_optical_frame')

    def run_frame(confidence=False, samples=1):
        pipeline.settings = settings.replace(confidence_samples=samples)
        depth = pipeline.process(FrameInput(frame.rgb, 1, calibration), want_confidence=confidence)[0]
        depth_message('image', depth, header)
        depth_message('points', depth, header)
        if confidence:
            depth_message('confidence', depth, header)
        return depth

    _, signals = pipeline.estimator.predict_with_uncertainty(frame.rgb)
    depth = run_frame(confidence=True)  # warm-up; its depth (with confidence) feeds the product timings
    # confidence: the model call with the sampler's signals against the plain one (the only
    # difference inside the frame), interleaved with whole frames, plus turning them into
    # depth/confidence
    estimator = pipeline.estimator
    frames, extras = [], {'confidence (K = 1)': [], 'confidence (K = 4)': []}
    for _ in range(a.repeats):
        for name, samples in (('confidence (K = 1)', 1), ('confidence (K = 4)', 4)):
            frames.append(_timed(run_frame))
            plain = _timed(lambda: estimator.predict(frame.rgb))
            extras[name].append(_timed(lambda: estimator.predict_with_uncertainty(frame.rgb, samples=samples)) - plain)
    product_part = [_timed(lambda: (confidence_from_uncertainty(uncertainty_of(signals)),
                                    depth_message('confidence', depth, header))) for _ in range(a.repeats)]
    for name in extras:
        extras[name] = [e + float(np.median(product_part)) for e in extras[name]]

    def product(changes, names):
        d = dataclasses.replace(depth, settings=settings.replace(**changes))
        for name in names:
            depth_message(name, d, header)

    products = {
        'output.max_range + min_range': ({'max_range': 8.0, 'min_range': 0.3}, ('image', 'points')),
        'output.edge_filter 0.05': ({'edge_filter': 0.05}, ('image', 'points')),
        'output.confidence_min 0.5 (confidence computed)': ({'confidence_min': 0.5}, ('image', 'points')),
        'cloud.stride 2': ({'cloud_stride': 2}, ('image', 'points')),
        'cloud.organized false': ({'cloud_organized': False}, ('image', 'points')),
        'depth/scan (scan.height 9)': ({'scan_height': 9}, ('image', 'points', 'scan')),
    }
    for name in products:
        extras[name] = []
    for _ in range(a.repeats * 6):
        frames.append(_timed(run_frame))
        for name, (changes, names) in products.items():
            plain = _timed(lambda: product({}, ('image', 'points')))
            extras[name].append(_timed(lambda: product(changes, names)) - plain)
    frame_ms = 1e3 * float(np.median(frames))
    print(f'{a.width}x{a.height} camera, demo model (CPU, {pipeline.estimator.steps} steps), output.resolution '
          f'camera; frame (pipeline + depth/image + depth/points) median {frame_ms:.1f} ms, {a.repeats} repeats, '
          f'{a.threads} torch thread(s)')
    print('| output | extra ms (median) | share of the frame |')
    print('| --- | --- | --- |')
    for name, values in extras.items():
        extra = 1e3 * float(np.median(values))
        print(f'| {name} | {extra:+.2f} | {100 * extra / frame_ms:+.1f} % |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
