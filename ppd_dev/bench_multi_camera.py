"""Several cameras, one model: what batching them costs and saves (issue 23). Prints numbers only.

  memory      peak resident memory (VmHWM) of one depth_node with 4 cameras vs 4 single-camera
              depth_nodes, each a subprocess with a real rclpy node fed real topics until every
              camera published --frames frames
  throughput  frames per second of batched (pipeline.batch.process_cameras) vs one after another
              (the same call, batching off), 2 and 4 cameras of one resolution, interleaved runs,
              ratio = batched fps / one-after-another fps
  overload    cameras sending faster than the model: the scheduler's worst per-camera latency
              (submit → depth), drops and frames served per camera, all batched and max batch 2
  roofline    analytic FLOPs per batch (ppd_dev.bench.pipeline_flops × batch) and the weight
              bytes each model call reads: arithmetic intensity and the roofline bound on a named
              GPU (datasheet peak and bandwidth; no GPU is measured here)

  python -m ppd_dev.bench_multi_camera --model demo
  python -m ppd_dev.bench_multi_camera --model random-large --area 128x96 --iters 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

BANDWIDTH_GBS = {'h100-sxm': 3350, 'h100-pcie': 2000, 'h200': 4800, 'a100': 2039, 'rtx4090': 1008, 'l4': 300}


def _estimator(model: str, area, device: str, steps: int):
    from ppd_ros.model.factory import build_estimator
    return build_estimator(model, device=device, steps=steps, seed=0, target_area=area, synthetic_input=True)


def _frames(n_cameras: int, area, count: int = 2):
    w, h = area
    rng = np.random.default_rng(0)
    return [[rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(count)] for _ in range(n_cameras)]


# ------------------------------------------------------------------------------ throughput

def throughput(est, area, batches=(2, 4), iters: int = 5) -> list[str]:
    from ppd_ros.pipeline import FrameInput, FramePipeline
    from ppd_ros.pipeline.batch import CameraFrame, process_cameras
    lines = [f'throughput ({est.name}, {area[0]}x{area[1]}, {est.steps} steps, {est.device}, median of {iters} '
             'interleaved runs; ratio: median (range) of the back-to-back pairs)',
             f'  {"cameras":>8s} {"batched fps":>12s} {"one-by-one fps":>15s} {"ratio":>7s}']
    clock = _clock(est)
    for n in batches:
        clips = _frames(n, area)
        pipelines = {i: FramePipeline(est) for i in range(n)}
        frames = {i: CameraFrame(FrameInput(clips[i][0], 1), want_metric=False) for i in range(n)}
        process_cameras(pipelines, frames)  # warm-up (allocator, caches)
        times = {True: [], False: []}
        for k in range(iters):
            for batching in ((True, False) if k % 2 == 0 else (False, True)):
                start = clock()
                process_cameras(pipelines, frames, batching=batching)
                times[batching].append(clock() - start)
        fps = {b: n / float(np.median(t)) for b, t in times.items()}
        ratios = np.array(times[False]) / np.array(times[True])  # each pair ran back to back
        lines.append(f'  {n:8d} {fps[True]:12.2f} {fps[False]:15.2f} {np.median(ratios):6.2f}x '
                     f'({ratios.min():.2f}..{ratios.max():.2f})')
    return lines


def _clock(est):
    import torch

    def now():
        if est.device.type == 'cuda':
            torch.cuda.synchronize(est.device)
        return time.perf_counter()
    return now


# ------------------------------------------------------------------------------ overload

def overload(est, area, cameras: int = 4, rate_hz: float = 30.0, seconds: float = 6.0, max_batch=None) -> str:
    """Cameras at rate_hz each through CameraSlots + process_cameras on one thread, for
    ``seconds`` and until every camera was served at least once."""
    from ppd_ros.pipeline import FrameInput, FramePipeline
    from ppd_ros.pipeline.batch import CameraFrame, process_cameras
    from ppd_ros.pipeline.scheduler import CameraSlots
    clips = _frames(cameras, area, count=1)
    pipelines = {i: FramePipeline(est) for i in range(cameras)}
    slots = CameraSlots(range(cameras))
    latency = {i: [] for i in range(cameras)}
    stop = threading.Event()
    for n in range(1, cameras + 1):  # every batch size once: the first run of a shape is slow
        process_cameras(pipelines, {i: CameraFrame(FrameInput(clips[i][0], 1), want_metric=False) for i in range(n)})

    def produce():
        period, tick = 1.0 / rate_hz, time.perf_counter()
        while not stop.is_set():
            for i in range(cameras):
                slots.submit(i, time.perf_counter())
            tick += period
            time.sleep(max(0.0, tick - time.perf_counter()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or not all(latency.values()):  # and every camera served at least once
        taken = slots.take(max_batch=max_batch, timeout=0.5)
        frames = {i: CameraFrame(FrameInput(clips[i][0], 1), want_metric=False) for i, _, _ in taken}
        process_cameras(pipelines, frames)
        done = time.perf_counter()
        for i, submitted, _ in taken:
            latency[i].append(done - submitted)
    stop.set()
    slots.stop()
    producer.join(2)
    worst = max(max(v) for v in latency.values() if v)
    median = float(np.median([x for v in latency.values() for x in v]))
    served = [len(latency[i]) for i in range(cameras)]
    drops = [slots.stats(i)['dropped'] for i in range(cameras)]
    return (f'  {cameras} cameras x {rate_hz:g} Hz, max batch {max_batch or cameras}: worst per-camera latency '
            f'{worst * 1e3:.0f} ms (median {median * 1e3:.0f} ms); frames served per camera {served}; dropped {drops}')


# ------------------------------------------------------------------------------ memory

_NODE_SCRIPT = r'''
import json, sys, time, numpy as np, rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from ppd_ros.model.factory import build_estimator
from ppd_ros.nodes.depth_node import DepthNode
from ppd_ros.nodes.image_codec import rgb_to_image_msg
model, w, h, n, frames, ns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
rclpy.init()
est = build_estimator(model, device='cpu', seed=0, target_area=(w, h), synthetic_input=True)
cams = [f'cam{i}' for i in range(n)] if n > 1 else []
node = DepthNode(estimator=est, namespace=ns, parameter_overrides=[Parameter('cameras', value=cams)] if cams else [])
io = rclpy.create_node('bench_io', namespace=ns)
qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
prefixes = [c + '/' for c in cams] or ['']
pubs = [(io.create_publisher(Image, p + 'image', qos), io.create_publisher(CameraInfo, p + 'camera_info', qos)) for p in prefixes]
got = {p: 0 for p in prefixes}
subs = [io.create_subscription(Image, p + 'depth/relative', lambda m, p=p: got.__setitem__(p, got[p] + 1), qos) for p in prefixes]
ex = MultiThreadedExecutor(num_threads=3); ex.add_node(node); ex.add_node(io)
rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
deadline = time.monotonic() + 600
sent = 0
while min(got.values()) < frames and time.monotonic() < deadline:
    if sent <= min(got.values()):
        for image_pub, info_pub in pubs:
            msg = rgb_to_image_msg(rgb, None); msg.header.stamp.sec = 1000 + sent
            info = CameraInfo(header=msg.header, width=w, height=h, distortion_model='plumb_bob', d=[0.0] * 5,
                              k=[w * 0.8, 0, w / 2, 0, w * 0.8, h / 2, 0, 0, 1], r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
                              p=[w * 0.8, 0, w / 2, 0, 0, w * 0.8, h / 2, 0, 0, 0, 1, 0])
            info_pub.publish(info); image_pub.publish(msg)
        sent += 1
    ex.spin_once(timeout_sec=0.05)
status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)
print(json.dumps({'published': min(got.values()), 'hwm_kb': int(status['VmHWM'].split()[0]),
                  'rss_kb': int(status['VmRSS'].split()[0])}), flush=True)
import os; os._exit(0)  # measured: skip the teardown
'''


_DOMAIN = str(100 + os.getpid() % 100)  # this run's own ROS domain, away from other runs and tests


def _node_process(model: str, area, cameras: int, frames: int, index: int = 0) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS='1', ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=_DOMAIN)
    return subprocess.Popen([sys.executable, '-c', _NODE_SCRIPT, model, str(area[0]), str(area[1]), str(cameras),
                             str(frames), f'/bench{index}'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=900)
    if process.returncode != 0:
        raise RuntimeError(f'node subprocess failed: {err.strip().splitlines()[-1] if err.strip() else "?"}')
    return json.loads(out.strip().splitlines()[-1])


def memory(model: str, area, frames: int, concurrent: bool) -> list[str]:
    four = _result(_node_process(model, area, 4, frames))
    if concurrent:  # four single-camera nodes side by side
        singles = [_result(p) for p in [_node_process(model, area, 1, frames, i) for i in range(4)]]
        note = '4 subprocesses side by side'
    else:
        singles = [_result(_node_process(model, area, 1, frames))] * 4
        note = 'one subprocess measured, x4'
    total = sum(s['hwm_kb'] for s in singles)
    return [f'memory ({model}, {area[0]}x{area[1]}, {frames} frames per camera published; peak RSS, VmHWM)',
            f'  one node, 4 cameras:      {four["hwm_kb"] / 1024:8.0f} MiB',
            f'  4 single-camera nodes:    {total / 1024:8.0f} MiB ({note}: '
            + ', '.join(f"{s['hwm_kb'] / 1024:.0f}" for s in singles) + ')',
            f'  ratio 4 nodes / 1 node:   {total / four["hwm_kb"]:8.2f}x']


# ------------------------------------------------------------------------------ roofline

def roofline(est, area, gpu: str, precision: str, batches=(1, 2, 4, 8)) -> list[str]:
    from ppd_dev.bench import PEAK_TFLOPS, pipeline_flops
    from ppd_ros.model.preprocess import model_size
    h, w = model_size(area[1], area[0], est.target_area)
    flops = pipeline_flops(est.dit.config, est.encoder.config, h, w, est.steps)
    bytes_per = {'fp32': 4, 'fp16': 2, 'bf16': 2}[precision]
    dit_bytes = sum(p.numel() for p in est.dit.parameters()) * bytes_per
    enc_bytes = sum(p.numel() for p in est.encoder.parameters()) * bytes_per
    weight_bytes = enc_bytes + est.steps * dit_bytes  # every Euler step reads the DiT's weights again
    peak, bandwidth = PEAK_TFLOPS[gpu][precision], BANDWIDTH_GBS[gpu]
    ridge = peak * 1e12 / (bandwidth * 1e9)
    lines = [f'roofline (analytic; {est.name} at {w}x{h}, {est.steps} steps, {precision} weights; {gpu}: '
             f'{peak:g} TFLOP/s, {bandwidth} GB/s, ridge {ridge:.0f} FLOP/byte; bytes = weights read per call, '
             'activations not counted)',
             f'  {"batch":>6s} {"GFLOP/call":>11s} {"weight MB/call":>15s} {"FLOP/byte":>10s} '
             f'{"bound TFLOP/s":>14s} {"bound":>8s}']
    for b in batches:
        total = b * flops.total
        intensity = total / weight_bytes
        bound = min(peak, intensity * bandwidth * 1e9 / 1e12)
        lines.append(f'  {b:6d} {total / 1e9:11.2f} {weight_bytes / 1e6:15.1f} {intensity:10.1f} {bound:14.1f} '
                     f'{"compute" if intensity >= ridge else "memory":>8s}')
    return lines


def _area(text: str) -> tuple[int, int]:
    w, h = text.lower().split('x')
    return int(w), int(h)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='bench_multi_camera', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='demo', help='demo or random-<size> (random-large: the released size)')
    p.add_argument('--area', type=_area, default=None, help='model resolution WxH (default: the model\'s own)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--steps', type=int, default=4)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--frames', type=int, default=5, help='frames per camera before memory is read')
    p.add_argument('--only', nargs='+', default=['throughput', 'overload', 'memory', 'roofline'],
                   choices=['throughput', 'overload', 'memory', 'roofline'])
    p.add_argument('--concurrent', action='store_true', help='memory: run the 4 single-camera nodes side by side')
    p.add_argument('--gpu', default='h100-sxm', choices=sorted(BANDWIDTH_GBS))
    p.add_argument('--precision', default='bf16', choices=('fp32', 'fp16', 'bf16'), help='roofline weights')
    p.add_argument('--rate', type=float, default=30.0, help='overload: frames per second per camera')
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    est = _estimator(args.model, args.area, args.device, args.steps)
    area = args.area or tuple(est.target_area)
    print(f'bench_multi_camera: {est.describe()["model"]}; {torch.get_num_threads()} threads')
    if 'throughput' in args.only:
        print('\n'.join(throughput(est, area, iters=args.iters)))
    if 'overload' in args.only:
        print(f'overload ({est.name}, {area[0]}x{area[1]}; latency = submit to depth)')
        print(overload(est, area, rate_hz=args.rate))
        print(overload(est, area, rate_hz=args.rate, max_batch=2))
    if 'memory' in args.only:
        print('\n'.join(memory(args.model, area, args.frames, args.concurrent)))
    if 'roofline' in args.only:
        print('\n'.join(roofline(est, area, args.gpu, args.precision)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
