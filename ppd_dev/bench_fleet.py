"""ppd-bag over many bags: bags/hour and frames/s for 1 and 2 local workers and for Ray with 2
actors on this machine, Ray's overhead against local workers, and peak memory per worker
(prints numbers; no assertions).

  python -m ppd_dev.bench_fleet [--bags 4] [--frames 8] [--size 128x96] [--repeats 2] [--model demo]

Each configuration is the command a user runs (``python -m ppd_ros.nodes.bag BAGS OUT ...`` in a
fresh process: imports, model loads and, for Ray, starting a local Ray are in its time), on the
same synthetic bags, interleaved (1, 2, ray, 1, 2, ray, ...). Rates are from the fastest run of
each (the one least disturbed on a shared machine; the median is printed beside it). Peak memory
is each worker's peak resident set (ppd-bag's summary JSON, ``peak_mb``). ``busy`` is the sum of
the bags' conversion times (the summary's ``seconds``): wall minus busy/workers is the start-up.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {'1 local worker': ['--workers', '1'], '2 local workers': ['--workers', '2'],
           'Ray, 2 actors': ['--ray', 'auto', '--workers', '2']}


def write_bags(folder: Path, bags: int, frames: int, size: tuple[int, int]) -> None:
    """``bags`` rosbag2 (mcap) bags of ``frames`` synthetic camera frames each."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from ppd_ros.nodes.bag import BagRecorder
    from ppd_ros.nodes.image_codec import rgb_to_image_msg
    from ppd_ros.nodes.synthetic_camera_node import camera_info_msg
    from ppd_ros.synthetic import camera_sequence
    t0, dt = 1_700_000_000_000_000_000, 33_333_333
    for b in range(bags):
        with BagRecorder(folder / f'bag{b}') as rec:
            for i, frame in enumerate(camera_sequence(b, frames, width=size[0], height=size[1])):
                t = t0 + i * dt
                header = Header(frame_id='camera_optical_frame', stamp=Time(sec=t // 10**9, nanosec=t % 10**9))
                rec.write('/camera/camera_info', camera_info_msg(frame.intrinsics, header), t)
                rec.write('/camera/image_raw', rgb_to_image_msg(frame.rgb, header), t)


def run(bags: Path, out: Path, model: list[str], extra: list[str]) -> tuple[float, dict]:
    """(wall seconds, summary JSON) of one ppd-bag run."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, '-m', 'ppd_ros.nodes.bag', str(bags), str(out), '-q', *model, *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f'ppd-bag {" ".join(extra)} exited {done.returncode}')
    return wall, json.loads((out / 'ppd-bag-summary.json').read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m ppd_dev.bench_fleet', description=__doc__.split('\n')[0])
    p.add_argument('--bags', type=int, default=4)
    p.add_argument('--frames', type=int, default=8, help='frames per bag (default 8)')
    p.add_argument('--size', default='128x96', help="camera size WxH (default 128x96, the demo model's own)")
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--model', default='demo')
    p.add_argument('--no-ray', action='store_true', help='only the local workers')
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split('x'))
    configs = {k: v for k, v in CONFIGS.items() if not (args.no_ray and '--ray' in v)}
    root = Path(tempfile.mkdtemp(prefix='bench_fleet_'))
    try:
        write_bags(root / 'bags', args.bags, args.frames, size)
        frames = args.bags * args.frames
        print(f'ppd-bag on {args.bags} bags x {args.frames} frames ({args.size}), model {args.model}, '
              f'{os.cpu_count()} CPUs, {args.repeats} interleaved repeats, '
              f'load average at start {os.getloadavg()[0]:.2f}')
        walls: dict[str, list[float]] = {k: [] for k in configs}
        peaks: dict[str, list[float]] = {k: [] for k in configs}
        busy: dict[str, list[float]] = {k: [] for k in configs}
        for _ in range(args.repeats):
            for name, extra in configs.items():
                wall, summary = run(root / 'bags', root / 'out', ['--model', args.model], extra)
                walls[name].append(wall)
                peaks[name] += [row['peak_mb'] for row in summary['bags']]
                busy[name].append(sum(row['seconds'] for row in summary['bags']))
        base = min(walls['1 local worker'])
        for name in configs:
            wall = min(walls[name])
            print(f'  {name:16} wall {wall:6.1f} s (median {statistics.median(walls[name]):.1f}; runs '
                  f'{", ".join(f"{w:.1f}" for w in walls[name])})  {args.bags / wall * 3600:6.0f} bags/h  '
                  f'{frames / wall:5.2f} frames/s  x{base / wall:.2f} vs 1 worker  busy {min(busy[name]):.1f} s  '
                  f'peak memory per worker {max(peaks[name]):.0f} MB')
        if 'Ray, 2 actors' in configs:
            local, ray = min(walls['2 local workers']), min(walls['Ray, 2 actors'])
            print(f'  Ray overhead against 2 local workers: {ray - local:+.1f} s per run ({ray / local:.2f}x), '
                  'starting a local Ray included')
        print(f'load average at end {os.getloadavg()[0]:.2f}')
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
