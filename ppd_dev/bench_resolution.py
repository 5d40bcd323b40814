"""What depth at the camera's size costs per frame, against depth at the model resolution.

    python -m ppd_dev.bench_resolution [--sizes 640x480,1280x720] [--repeats 15] [--model demo]

output.resolution camera (the default of depth_node and of every command) enlarges the model's
depth to the camera's size with the guided, edge-preserving upsampling, and every product (metric
depth, the cloud, the messages, the preview) then has the camera's pixel count. This runs the
whole frame as depth_node does — the frame pipeline with the model (the bundled demo model by
default, on the CPU), then the messages of depth/relative, depth/image, depth/points (rgb) and
depth/colorized — for a synthetic camera frame, alternating the two settings frame by frame
(interleaved, so that load on the machine hits both alike). Prints per size the median frame time
of each and the median of the paired ratios; and, as the model's time varies most on a loaded
machine, the rest of the frame (everything but the model's predict) and the median of its paired
differences: the extra cost of the camera's size.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from std_msgs.msg import Header

from ppd_ros.geometry.rectify import Calibration
from ppd_ros.model.factory import build_estimator
from ppd_ros.nodes.depth_messages import depth_message
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline
from ppd_ros.synthetic import render_frame

MODES = ('camera', 'inference')
OUTPUTS = ('relative', 'image', 'points', 'colorized')  # what a typical subscriber set asks for


def calibration_of(intrinsics) -> Calibration:
    k = intrinsics.K
    return Calibration.of(intrinsics.width, intrinsics.height, 'plumb_bob', [0.0] * 5, k.ravel(),
                          np.eye(3).ravel(), np.hstack((k, np.zeros((3, 1)))).ravel())


class TimedModel:
    """The estimator, with the seconds of its last predict (the model's share of a frame)."""

    def __init__(self, estimator):
        self._estimator = estimator
        self.seconds = 0.0

    def predict(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._estimator.predict(*args, **kwargs)
        finally:
            self.seconds = time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self._estimator, name)


def one_frame(pipeline: FramePipeline, model: TimedModel, frame: FrameInput) -> tuple[float, float, tuple]:
    """(seconds for one frame through the pipeline and its messages, of them outside the model,
    the output size)."""
    started = time.perf_counter()
    depth = pipeline.process(frame)[0]
    for name in OUTPUTS:
        depth_message(name, depth, Header())
    seconds = time.perf_counter() - started
    return seconds, seconds - model.seconds, depth.relative.shape


def bench_size(estimator, width: int, height: int, repeats: int) -> dict:
    scene = render_frame(3, width, height, 'indoor')
    frame = FrameInput(scene.rgb, 0, calibration_of(scene.intrinsics), None)
    model = TimedModel(estimator)
    pipelines = {mode: FramePipeline(model, DEFAULTS.replace(resolution=mode)) for mode in MODES}
    times = {mode: [] for mode in MODES}
    outside = {mode: [] for mode in MODES}
    shapes = {}
    for mode in MODES:  # warm-up, not timed
        *_, shapes[mode] = one_frame(pipelines[mode], model, frame)
    for i in range(repeats):
        for mode in (MODES if i % 2 == 0 else MODES[::-1]):
            seconds, rest, _ = one_frame(pipelines[mode], model, frame)
            times[mode].append(seconds)
            outside[mode].append(rest)
    camera, inference = np.array(times['camera']), np.array(times['inference'])
    rest_camera, rest_inference = np.array(outside['camera']), np.array(outside['inference'])
    return {'size': f'{width}x{height}', 'model': f'{shapes["inference"][1]}x{shapes["inference"][0]}',
            'camera_ms': 1e3 * np.median(camera), 'inference_ms': 1e3 * np.median(inference),
            'ratio': float(np.median(camera / inference)),
            'rest_camera_ms': 1e3 * np.median(rest_camera), 'rest_inference_ms': 1e3 * np.median(rest_inference),
            'extra_ms': 1e3 * np.median(rest_camera - rest_inference)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sizes', default='640x480,1280x720', help='camera sizes, comma separated (WxH)')
    p.add_argument('--repeats', type=int, default=15, help='frames per setting and size (interleaved)')
    p.add_argument('--model', default='demo', help='demo (bundled) or random-tiny')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch\'s default)')
    args = p.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    estimator = build_estimator(args.model, device='cpu')
    describe = estimator.describe()
    print(f"model {describe.get('model')} on {describe.get('device')}, {estimator.steps} steps, torch threads "
          f'{torch.get_num_threads()}; {args.repeats} frames per setting, interleaved; upsample '
          f'{DEFAULTS.upsample}; messages: depth/' + ', depth/'.join(OUTPUTS))
    print('frame = model + the rest (rectification check, upsampling, scale, cloud, messages); extra = the '
          'median of the paired differences of the rest; ratio = the median of the paired ratios of whole frames')
    print(f"{'camera':>10} {'model res':>10} {'frame ms camera':>16} {'/ inference':>12} {'ratio':>6} "
          f"{'rest ms camera':>15} {'/ inference':>12} {'extra ms':>9}")
    for size in args.sizes.split(','):
        width, height = (int(v) for v in size.lower().split('x'))
        r = bench_size(estimator, width, height, args.repeats)
        print(f"{r['size']:>10} {r['model']:>10} {r['camera_ms']:>16.1f} {r['inference_ms']:>12.1f} "
              f"{r['ratio']:>6.2f} {r['rest_camera_ms']:>15.1f} {r['rest_inference_ms']:>12.1f} {r['extra_ms']:>9.1f}")


if __name__ == '__main__':
    main()
