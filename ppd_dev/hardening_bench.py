"""Busy time and memory of the nodes under hostile or huge input (issue 13's attacks, in-process).

    python -m ppd_dev.hardening_bench                   # every case, each in a fresh process
    python -m ppd_dev.hardening_bench --cases aspect decode

Cases (each runs in its own Python process, so peaks do not mix; RSS from /proc, peak from a
2 ms sampler thread):

  aspect   a 1×60000 mono8 Image (60 kB) + CameraInfo handed to depth_node (bundled demo model)
  decode   a 16000×16000 PNG (~0.7 MB) CompressedImage handed to depth_node (input.compressed)
  lidar    scale_fusion_node fed 6.3 MB PointCloud2s (a 128-line LiDAR, 131072 points × 48 B)
           stamped at 10 Hz for --lidar-seconds of stamp time, with a depth frame every 0.1 s
  huge     scale_fusion_node fed one 10M-point cloud (160 MB), then one normal depth frame

Messages are handed to the nodes' callbacks directly (no DDS): what is measured is what the node
does with a message once it has arrived. "busy" is until the node's worker is idle again (depth
node) or the callbacks returned (fusion node); "after" is the RSS once the case is over.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

CASES = ('aspect', 'decode', 'lidar', 'huge')
REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf('SC_PAGE_SIZE')


def rss_bytes() -> int:
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * PAGE


class PeakSampler:
    """Highest RSS seen while active (sampled every 2 ms on a thread)."""

    def __init__(self):
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def _header(sec: float, frame_id: str):
    from std_msgs.msg import Header
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = int(sec), int(round((sec % 1) * 1e9)) % 1_000_000_000
    return header


def _camera_info(width: int, height: int, header):
    from sensor_msgs.msg import CameraInfo
    f = float(max(width, height))
    return CameraInfo(header=header, width=width, height=height,
                      k=[f, 0.0, width / 2, 0.0, f, height / 2, 0.0, 0.0, 1.0],
                      p=[f, 0.0, width / 2, 0.0, 0.0, f, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0])


def _depth_node_case(image_msg, width: int, height: int, compressed: bool) -> dict:
    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from ppd_ros.nodes.depth_node import DepthNode
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = DepthNode(context=context, parameter_overrides=[Parameter('input.compressed', value=compressed)])
    listener = rclpy.create_node('bench_listener', context=context)
    listener.create_subscription(Image, 'depth/relative', lambda _m: None, 1)
    try:
        deadline = time.monotonic() + 10
        while not node.wanted_outputs() and time.monotonic() < deadline:
            time.sleep(0.05)
        info = _camera_info(width, height, image_msg.header)
        gc.collect()
        before = rss_bytes()
        with PeakSampler() as sampler:
            started = time.perf_counter()
            node._on_pair(image_msg, info)
            node.worker.wait_idle(300)
            busy = time.perf_counter() - started
        gc.collect()
        time.sleep(0.2)
        after = rss_bytes()
        return {'busy_s': busy, 'peak_mb': (sampler.peak - before) / 2**20, 'after_mb': (after - before) / 2**20,
                'errors': node.errors, 'published': node.published_frames, 'last_error': node.last_error}
    finally:
        listener.destroy_node()
        node.destroy_node()
        rclpy.shutdown(context=context)


def case_aspect() -> dict:
    from ppd_ros.nodes.image_codec import array_to_image_msg
    width, height = 60000, 1
    pixels = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    msg = array_to_image_msg(pixels, _header(1000.0, 'cam'), 'mono8')
    return _depth_node_case(msg, width, height, compressed=False)


def bomb_png(side: int = 16000) -> bytes:
    """A side×side 8-bit grey PNG of zeros, written chunk by chunk (never decoded here)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = b'\0' * (side + 1)  # filter byte + pixels
    data = b''.join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 8, 0, 0, 0, 0))
            + chunk(b'IDAT', data) + chunk(b'IEND', b''))


def case_decode() -> dict:
    from sensor_msgs.msg import CompressedImage

    from ppd_ros.nodes.image_codec import fill_data
    side = 16000
    png = bomb_png(side)
    msg = CompressedImage(header=_header(1000.0, 'cam'), format='rgb8; png compressed bgr8')
    fill_data(msg, np.frombuffer(png, np.uint8))
    result = _depth_node_case(msg, side, side, compressed=True)
    result['png_kb'] = len(png) / 1024
    return result


def _cloud(points: int, stamp: float, point_step: int = 48):
    """A PointCloud2 of `points` points (x y z float32 + padding to point_step), 1–10 m ahead."""
    from sensor_msgs.msg import PointCloud2, PointField

    from ppd_ros.nodes.image_codec import fill_data
    rng = np.random.default_rng(int(stamp * 10))
    raw = np.zeros((points, point_step // 4), np.float32)
    raw[:, 0] = rng.uniform(-3, 3, points)
    raw[:, 1] = rng.uniform(-2, 2, points)
    raw[:, 2] = rng.uniform(1, 10, points)
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate('xyz')]
    msg = PointCloud2(header=_header(stamp, 'cam'), height=1, width=points, fields=fields,
                      is_bigendian=False, point_step=point_step, row_step=point_step * points, is_dense=True)
    fill_data(msg, raw)
    return msg


def _fusion_node():
    import rclpy

    from ppd_ros.nodes.scale_fusion_node import ScaleFusionNode
    context = rclpy.context.Context()
    rclpy.init(context=context)
    return ScaleFusionNode(context=context), context


def _relative(stamp: float, width: int = 128, height: int = 96):
    from ppd_ros.nodes.image_codec import depth_to_image_msg
    header = _header(stamp, 'cam')
    relative = np.tile(np.linspace(0.1, 0.9, width, dtype=np.float32), (height, 1))
    return depth_to_image_msg(relative, header), _camera_info(width, height, header)


def _fusion_result(node, before: int, sampler, started: float) -> dict:
    busy = time.perf_counter() - started
    gc.collect()
    time.sleep(0.2)
    after = rss_bytes()
    held = getattr(node, 'held_source_bytes', None)
    if held is None:  # the node before issue 13 kept a deque of (stamp, msg)
        held = sum(len(m.data) for _, m in node._sources)
    return {'busy_s': busy, 'peak_mb': (sampler.peak - before) / 2**20, 'after_mb': (after - before) / 2**20,
            'held_sources': len(node._sources), 'held_mb': held / 2**20, 'frames': node.frames,
            'fresh_fits': node.fresh_fits}


def case_lidar(seconds: float) -> dict:
    import rclpy
    node, context = _fusion_node()
    try:
        _on_depth = node._on_depth
        gc.collect()
        before = rss_bytes()
        with PeakSampler() as sampler:
            started = time.perf_counter()
            for i in range(int(seconds * 10)):
                stamp = 1000.0 + 0.1 * i
                node._on_source(_cloud(131072, stamp))
                _on_depth(*_relative(stamp - 0.05))
            result = _fusion_result(node, before, sampler, started)
        result['clouds'] = int(seconds * 10)
        return result
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def case_huge() -> dict:
    import rclpy
    node, context = _fusion_node()
    try:
        gc.collect()
        before = rss_bytes()
        with PeakSampler() as sampler:
            started = time.perf_counter()
            cloud = _cloud(10_000_000, 1000.0, point_step=16)
            node._on_source(cloud)
            del cloud
            node._on_depth(*_relative(1000.0))
            result = _fusion_result(node, before, sampler, started)
        return result
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def run_case(name: str, args) -> dict:
    from ppd_ros.nodes.image_codec import retain_freed_memory
    retain_freed_memory()  # as run_node does for every node
    if name == 'aspect':
        return case_aspect()
    if name == 'decode':
        return case_decode()
    if name == 'lidar':
        return case_lidar(args.lidar_seconds)
    return case_huge()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cases', nargs='+', choices=CASES, default=list(CASES))
    parser.add_argument('--lidar-seconds', type=float, default=60.0, help='stamp time of the LiDAR case')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print('RESULT ' + json.dumps(run_case(args.child, args)), flush=True)
        return 0
    env = dict(os.environ, OMP_NUM_THREADS='1', ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))
    for name in args.cases:
        out = subprocess.run([sys.executable, '-m', 'ppd_dev.hardening_bench', '--child', name,
                              '--lidar-seconds', str(args.lidar_seconds)],
                             env=env, cwd=REPO, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith('RESULT ')]
        if not lines:
            print(f'{name}: failed (exit {out.returncode})\n{out.stderr[-2000:]}')
            continue
        result = json.loads(lines[-1][7:])
        numbers = ', '.join(f'{k} {v:.2f}' if isinstance(v, float) else f'{k} {v}' for k, v in result.items())
        print(f'{name}: {numbers}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
