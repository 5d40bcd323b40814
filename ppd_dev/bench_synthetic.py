"""Render-speed benchmark of the synthetic world (prints numbers; no assertions).

  OMP_NUM_THREADS=1 python -m ppd_dev.bench_synthetic [--frames 10] [--width 640 --height 480]

Reports per kind the median / mean wall time and process CPU time of `render_frame`, and the
time of the simulated sensors on one frame. On a shared machine, CPU time is the steadier number.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ppd_ros.synthetic import render_frame, simulate_lidar, simulate_rgbd


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m ppd_dev.bench_synthetic', description=__doc__.split('\n')[0])
    p.add_argument('--frames', type=int, default=10, help='frames per kind (default 10)')
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    print(f'render_frame {args.width}x{args.height}, {args.frames} frames per kind, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}, load average {os.getloadavg()[0]:.2f}')
    render_frame(args.seed, 64, 48)  # imports and caches out of the timing
    frame = None
    for kind in ('indoor', 'outdoor'):
        walls, cpus = [], []
        for i in range(args.frames):
            frame, wall, cpu = _timed(lambda: render_frame(args.seed + i, args.width, args.height, kind=kind))
            walls.append(wall)
            cpus.append(cpu)
        print(f'  {kind:8} wall median {np.median(walls):6.1f} ms  mean {np.mean(walls):6.1f} ms | '
              f'cpu median {np.median(cpus):6.1f} ms  mean {np.mean(cpus):6.1f} ms')
    for name, fn in (('simulate_lidar 16 lines', lambda: simulate_lidar(frame, lines=16)),
                     ('simulate_lidar 64 lines', lambda: simulate_lidar(frame, lines=64)),
                     ('simulate_rgbd', lambda: simulate_rgbd(frame, hole_fraction=0.5))):
        _, wall, cpu = _timed(fn)
        print(f'  {name:24} wall {wall:6.1f} ms  cpu {cpu:6.1f} ms')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
