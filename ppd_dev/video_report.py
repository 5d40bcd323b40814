"""Streaming video depth (depth_node temporal.mode video): cost/latency per window setting, and what
the causal window alignment does to flicker and AbsRel against `align` and `warm_start`.

Speed: a small random PPVD (no trained weights are available offline; timings only) runs the
causal stream for several ``new_frames`` (n) settings on the CPU, one thread, timed as process CPU
time (a busy shared machine does not inflate it). Per setting: ms per window
(3 keyframes + n new frames), ms per frame in the steady state (window time / n), and the latency
a 30 Hz camera would see: the j-th new frame waits (n − 1 − j)/30 s for its window to fill, then
the window's compute time (mean and max over the window's frames; only meaningful where the
compute keeps up with the camera, column 'keeps up').

Quality: a STAND-IN video model (not PPVD): per window, ground-truth log-depth normalised once for
the whole window, with ONE random scale/shift per window (σ as the per-frame stand-in of
temporal_report) plus per-frame smooth and pixel noise. It runs through depth_node's frame pipeline
(temporal.mode video) and so the real stream code (window schedule, shared keyframes, least-squares
alignment); the per-frame modes (off, align, warm_start) use temporal_report's per-frame stand-in,
through the same pipeline, with the same noise levels. So the table measures the alignment
machinery under an assumed error model, not PPVD's accuracy.

  python -m ppd_dev.video_report [--frames 48] [--new-frames 1 3 5 8 13] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np
import torch

from ppd_dev.temporal_report import StandInEstimator, evaluate, report
from ppd_ros.model.dit_video import VideoDiTConfig
from ppd_ros.model.pi3 import Pi3Config, pi3_encoder_config
from ppd_ros.model.video import VideoDepthEstimator, VideoDepthStream
from ppd_ros.pipeline import DEFAULTS, FrameInput, FramePipeline
from ppd_ros.synthetic import camera_sequence

CAMERA_HZ = 30.0
FRAME_PERIOD_NS = int(1e9 / CAMERA_HZ)


def small_random_estimator(size: int = 128, width: int = 64, steps: int = 4) -> VideoDepthEstimator:
    """PPVD structure (24 DiT blocks, keyframe tokens, temporal blocks; Pi3 encoder + alternating
    decoder) at a small width and frame size, random weights."""
    pi3 = Pi3Config(encoder=pi3_encoder_config(embed_dim=width, depth=4, num_heads=4), decoder_dim=width,
                    decoder_depth=4, decoder_heads=4)
    dit = VideoDiTConfig(hidden_size=width, depth=24, num_heads=4, semantic_dim=pi3.semantic_dim, video_size=size)
    return VideoDepthEstimator.from_config(dit, pi3, device='cpu', steps=steps, seed=0)


def stream_timing(estimator, frames, new_frames: int, windows: int = 4) -> dict:
    """Window compute times of a causal stream over `frames` (H×W×3 uint8 RGB, repeated as needed),
    stopping after `windows` windows."""
    stream = estimator.stream(new_frames=new_frames)
    window_ms = []
    i = 0
    while len(window_ms) < windows:
        started = time.process_time()  # CPU time of this process: robust on a shared machine
        out = stream.push_rgb(frames[i % len(frames)], i)
        i += 1
        if out:
            window_ms.append((time.process_time() - started) * 1e3)
    steady = window_ms[1:] or window_ms  # the first window has no keyframes (and warms caches)
    ms = float(np.median(steady))
    waits = [(new_frames - 1 - j) / CAMERA_HZ * 1e3 for j in range(new_frames)]
    return {'new_frames': new_frames, 'window_frames': new_frames + 3, 'ms_per_window': ms,
            'ms_per_frame': ms / new_frames, 'latency_mean_ms': float(np.mean(waits)) + ms,
            'latency_max_ms': max(waits) + ms, 'keeps_up_30hz': ms <= new_frames / CAMERA_HZ * 1e3,
            'windows_timed': len(steady)}


class StandInVideoModel:
    """Stands in for PPVD inside the real stream (see the module docstring). Frames are
    recognised by their resized pixels."""

    def __init__(self, frames, size: int, seed: int = 0, jitter: float = 0.04, smooth_noise: float = 0.03,
                 pixel_noise: float = 0.01):
        self.size = size
        self._rng = np.random.default_rng(seed)
        self.jitter, self.smooth_noise, self.pixel_noise = jitter, smooth_noise, pixel_noise
        self._log_depth = {}
        for frame in frames:
            key = self._key(self.resize(torch.from_numpy(frame.rgb).permute(2, 0, 1).float()[None] / 255)[0])
            depth = np.where(frame.valid, frame.depth, np.nan).astype(np.float32)
            self._log_depth[key] = np.log1p(cv2.resize(depth, (size, size), interpolation=cv2.INTER_NEAREST))

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(frames, size=(self.size, self.size), mode='bilinear',
                                               align_corners=False)

    @staticmethod
    def _key(frame: torch.Tensor) -> bytes:
        return frame.numpy().tobytes()

    def predict_window(self, clip, noise, steps, trace=None) -> torch.Tensor:
        logs = np.stack([self._log_depth[self._key(f)] for f in clip])
        lo, hi = np.nanpercentile(logs, (2, 98))
        relative = (logs - lo) / max(hi - lo, 1e-6)
        relative = relative * (1 + self._rng.normal(0, self.jitter)) + self._rng.normal(0, self.jitter)
        out = []
        for r in relative:
            coarse = self._rng.normal(0.0, self.smooth_noise, size=(4, 4)).astype(np.float32)
            r = r + cv2.resize(coarse, (self.size, self.size), interpolation=cv2.INTER_CUBIC)
            r = r + self._rng.normal(0.0, self.pixel_noise, size=r.shape)
            out.append(np.nan_to_num(r.astype(np.float32), nan=1.0))
        return torch.from_numpy(np.stack(out))[:, None]


class StandInVideoEstimator:
    """The stand-in model as a video estimator (what the frame pipeline runs for temporal.mode
    video): its streams are the real VideoDepthStream around StandInVideoModel."""
    is_video = True

    def __init__(self, model: StandInVideoModel):
        self.model = model

    def stream(self, new_frames: int) -> VideoDepthStream:
        size = self.model.size
        return VideoDepthStream(self.model, torch.zeros(16, 1, size, size), steps=1, new_frames=new_frames)


def video_predictions(frames, new_frames: int, size: int, seed: int) -> list[np.ndarray]:
    """Relative depth per frame as depth_node publishes it with temporal.mode video (its frame
    pipeline; the frames still waiting at the end are flushed, as ppd-bag does at the end of a bag)."""
    estimator = StandInVideoEstimator(StandInVideoModel(frames, size, seed))
    pipeline = FramePipeline(estimator, DEFAULTS.replace(temporal_mode='video', video_new_frames=new_frames))
    depths = {}
    for i, frame in enumerate(frames):
        for depth in pipeline.process(FrameInput(frame.rgb, i * FRAME_PERIOD_NS, context=i), want_metric=False):
            depths[depth.context] = depth.relative
    for depth in pipeline.flush(want_metric=False):
        depths[depth.context] = depth.relative
    return [depths[i] for i in range(len(frames))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--frames', type=int, default=48)
    p.add_argument('--width', type=int, default=128)
    p.add_argument('--height', type=int, default=96)
    p.add_argument('--new-frames', type=int, nargs='+', default=[1, 3, 5, 8, 13])
    p.add_argument('--size', type=int, default=128, help='frame size S of the small random model')
    p.add_argument('--model-width', type=int, default=64)
    p.add_argument('--steps', type=int, default=4)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--skip-speed', action='store_true')
    p.add_argument('--json', help='write the numbers here')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    frames = camera_sequence(args.seed, args.frames, args.width, args.height, kind='indoor', motion='smooth')
    out = {'frames': args.frames, 'size': [args.width, args.height]}

    if not args.skip_speed:
        estimator = small_random_estimator(args.size, args.model_width, args.steps)
        print(f'speed — small random PPVD (Pi3 width {args.model_width}, video DiT width {args.model_width} x 24 '
              f'blocks, {args.size}x{args.size}, {args.steps} steps), CPU, 1 thread, CPU time; latency at {CAMERA_HZ:g} Hz')
        print(f"{'new':>4}{'window':>8}{'ms/window':>11}{'ms/frame':>10}{'lat mean':>10}{'lat max':>9}{'keeps up':>10}")
        rows = []
        for n in args.new_frames:
            r = stream_timing(estimator, [f.rgb for f in frames], n)
            rows.append(r)
            print(f"{n:>4}{r['window_frames']:>8}{r['ms_per_window']:>11.0f}{r['ms_per_frame']:>10.0f}"
                  f"{r['latency_mean_ms']:>10.0f}{r['latency_max_ms']:>9.0f}{str(r['keeps_up_30hz']):>10}")
        out['speed'] = rows

    print('\nflicker and accuracy — STAND-IN models (per-frame stand-in for off/align/warm_start; per-window '
          'stand-in through the real stream for video)')
    results = report(StandInEstimator(frames, seed=args.seed), frames, [0.5])
    for n in args.new_frames:
        results.append(evaluate(video_predictions(frames, n, args.size, args.seed), frames, f'video n={n}', 0.0))
    print(f"{'mode':<16}{'flicker (seq)':>15}{'flicker (frame)':>17}{'AbsRel (frame)':>16}{'AbsRel (seq)':>14}")
    for r in results:
        print(f'{r.mode:<16}{r.flicker_sequence:>15.4f}{r.flicker_frame:>17.4f}{r.abs_rel_frame:>16.4f}'
              f'{r.abs_rel_sequence:>14.4f}')
    out['quality'] = [r.__dict__ for r in results]
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
