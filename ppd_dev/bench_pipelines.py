"""ppd-bench --pipeline metric | video: the MoGe-2 metric pass and one PPVD window, timed like the
image frame (same clock, warm-up, iterations, device, precision and roofline options).

  metric  per frame, interleaved: PPD with MoGe-2 semantics (relative depth), then MoGe-2's metric
          pass on the same frame (``infer`` + the robust scale fit: what metres from the camera
          alone cost), and their sum (``metric.every_n_frames`` = 1).
  video   one PPVD window of 16 frames at the video DiT's fixed size: Pi3 semantics over the clip,
          then each video-DiT step; per window and per new frame of the released schedule (13).

Random weights of the released sizes (``--size large``) or the test sizes (``--size tiny``). FLOPs
are counted once per pipeline with torch's FlopCounterMode (matmuls, convolutions and attention),
on an untimed first run, so TFLOP/s and the roofline fraction need no analytic formula.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

PIPELINES = ('image', 'metric', 'video')


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _line(name: str, times, flop: int | None, peak: float | None) -> str:
    median = times.median(name)
    line = f'  {name:34s} {median * 1e3:10.2f} {times.p90(name) * 1e3:10.2f}'
    if flop:
        rate = flop / median / 1e12
        line += f' {flop / 1e9:12.3f} {rate:10.4f}'
        if peak:
            line += f' {100 * rate / peak:8.2f}%'
    return line


def _header(peak) -> str:
    return (f'  {"stage":34s} {"median ms":>10s} {"p90 ms":>10s} {"GFLOP":>12s} {"TFLOP/s":>10s}'
            + (f' {"roofline":>9s}' if peak else ''))


def run_metric(args, area, frame_size, peak) -> int:
    from ppd_dev.bench import Clock, StageTimes
    from ppd_dev.bench_metric import build
    from ppd_ros.geometry.scale.model_scale import ModelScale
    _, moge2 = build(args.size, area, args.steps, device=args.device, precision=args.precision, with_da2=False)
    rgb = np.random.default_rng(args.seed).integers(0, 256, (frame_size[1], frame_size[0], 3), dtype=np.uint8)
    clock = Clock(moge2.device)
    scale = ModelScale()
    relative = moge2.predict(rgb)
    runs = {'moge2 frame (relative depth)': lambda: moge2.predict(rgb),
            'metric pass (infer + scale fit)': lambda: scale.update(0.0, relative, moge2.metric_geometry(rgb))}
    flops = {name: _counted(fn) for name, fn in runs.items()}
    times = StageTimes()
    for i in range(args.warmup + args.iters):
        seconds = {}
        for name, fn in (runs.items() if i % 2 == 0 else reversed(runs.items())):
            start = clock.now()
            fn()
            seconds[name] = clock.now() - start
        if i >= args.warmup:
            for name in runs:
                times.add(name, seconds[name])
            times.add('frame + metric pass', sum(seconds.values()))
    flops['frame + metric pass'] = sum(flops.values())
    h, w = moge2.infer_size(frame_size[1], frame_size[0])
    print(f'ppd-bench --pipeline metric: {moge2.describe()["model"]}')
    print(f'  input frame {frame_size[0]}x{frame_size[1]} -> model {w}x{h}, steps {moge2.steps}, MoGe-2 tokens '
          f'{moge2.encoder.moge.default_num_tokens(9)}, device {moge2.device}, precision {moge2.precision}, '
          f'threads {torch.get_num_threads()}, warmup {args.warmup}, iters {args.iters}, torch {torch.__version__}')
    print(_header(peak))
    for name in times.stages:
        print(_line(name, times, flops[name], peak))
    ratio = times.median('metric pass (infer + scale fit)') / times.median('moge2 frame (relative depth)')
    print(f'  metric pass / frame: {ratio:.2f}x')
    return 0


def run_video(args, peak) -> int:
    from ppd_dev.bench import Clock, StageTimes, _autocast
    from ppd_ros.model.dit_video import VideoDiTConfig
    from ppd_ros.model.pi3 import Pi3Config
    from ppd_ros.model.sampler import sampling_timesteps
    from ppd_ros.model.video import INFER_LEN, STRIDE, VideoDepthEstimator
    configs = (VideoDiTConfig(), Pi3Config()) if args.size == 'large' else (None, None)
    est = VideoDepthEstimator.from_config(*configs, device=args.device, precision=args.precision,
                                          steps=args.steps, seed=args.seed)
    model, size, clock = est.model, est.size, Clock(est.device)
    clip = torch.rand((INFER_LEN, 3, size, size), generator=torch.Generator().manual_seed(args.seed)).to(est.device)
    noise = est.initial_noise()

    marks: list[float] = []  # the end of every semantics and DiT call of a window
    for module in (model.semantics, model.dit):
        module.register_forward_hook(lambda *_: marks.append(clock.now()))

    def window():
        with torch.inference_mode(), _autocast(est.device, est.precision):
            return model.predict_window(clip, noise, est.steps)

    flop = _counted(window)
    stages = ['Pi3 semantics (16 frames)'] + [f'video DiT step {i + 1} (t={t})'
                                              for i, t in enumerate(sampling_timesteps(est.steps))]
    times = StageTimes()
    for i in range(args.warmup + args.iters):
        marks.clear()
        start = clock.now()
        window()
        end = clock.now()
        if i >= args.warmup:
            previous = start
            for name, stamp in zip(stages, marks):
                times.add(name, stamp - previous)
                previous = stamp
            times.add('window (16 frames)', end - start)
            times.add(f'per new frame (window / {STRIDE})', (end - start) / STRIDE)
    print(f'ppd-bench --pipeline video: {est.describe()["model"]}')
    print(f'  window {INFER_LEN} frames at {size}x{size}, steps {est.steps}, device {est.device}, precision '
          f'{est.precision}, threads {torch.get_num_threads()}, warmup {args.warmup}, iters {args.iters}, '
          f'torch {torch.__version__}')
    print(_header(peak))
    for name in times.stages:
        count = flop if name.startswith('window') else flop / STRIDE if name.startswith('per new') else None
        print(_line(name, times, int(count) if count else None, peak))
    return 0
