"""Shared helpers for the depth node tests (no tests here): a small ROS graph in one context,
a feeder that publishes camera frames, a collector that records outputs, and fake estimators."""
from __future__ import annotations

import threading
import time
from collections import defaultdict

import numpy as np
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from ppd_ros.geometry.camera import Intrinsics
from ppd_ros.nodes.image_codec import rgb_to_compressed_msg, rgb_to_image_msg

OUTPUT_TYPES = {'depth/relative': Image, 'depth/image': Image, 'depth/camera_info': CameraInfo,
                'depth/points': PointCloud2, 'depth/colorized': Image}
FRAME_ID = 'test_optical_frame'


def overrides(**values) -> list:
    """parameter_overrides from keyword arguments; '__' stands for '.' (output__near → output.near)."""
    return [Parameter(name.replace('__', '.'), value=value) for name, value in values.items()]


class RosGraph:
    """Nodes of one test in one context, spun by a MultiThreadedExecutor on a background thread."""

    def __init__(self, context):
        self.context = context
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.nodes = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = threading.Event()

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5.0)
        self.executor.shutdown(timeout_sec=2.0)  # waits for callbacks in flight
        for node in reversed(self.nodes):
            node.destroy_node()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll predicate until it is true; False after `timeout` seconds (bounded, never hangs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stamp(i: int) -> tuple[int, int]:
    return 1000 + i // 10, (i % 10) * 100_000_000


def header(i: int, frame_id: str = FRAME_ID) -> Header:
    sec, nanosec = stamp(i)
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def camera_info(intr: Intrinsics, hdr: Header, p_intrinsics: Intrinsics | None = None,
                zero_k: bool = False, zero_p: bool = False) -> CameraInfo:
    k = np.zeros((3, 3)) if zero_k else intr.K
    pk = (p_intrinsics or intr).K
    p = np.zeros((3, 4)) if zero_p else np.hstack([pk, np.zeros((3, 1))])
    return CameraInfo(header=hdr, width=intr.width, height=intr.height, distortion_model='plumb_bob',
                      d=[0.0] * 5, r=np.eye(3).ravel().tolist(), k=k.ravel().tolist(),
                      p=p.ravel().tolist())


class Feeder(Node):
    """Publishes image (raw or compressed) + camera_info like a camera driver (reliable)."""

    def __init__(self, context, compressed: bool = False, namespace: str = ''):
        super().__init__('test_feeder', context=context, namespace=namespace)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(CompressedImage if compressed else Image,
                                               'image/compressed' if compressed else 'image', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', qos)

    def connected(self) -> bool:
        return self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0

    def send(self, i: int, rgb: np.ndarray, intr: Intrinsics, encoding: str = 'rgb8', info=None,
             image=None, info_index: int | None = None) -> None:
        """Frame i (stamp from i; the CameraInfo's from info_index if given); `image`/`info`
        replace the generated messages (bad input)."""
        if image is None:
            if encoding in ('jpeg', 'png'):
                image = rgb_to_compressed_msg(rgb, header(i), encoding)
            else:
                image = rgb_to_image_msg(rgb, header(i), encoding)
        image.header = header(i)
        info = camera_info(intr, header(i)) if info is None else info
        info.header = header(i if info_index is None else info_index)
        self.info_pub.publish(info)
        self.image_pub.publish(image)


class Collector(Node):
    """Records every message on the given depth outputs (reliable, deep history)."""

    def __init__(self, context, topics=tuple(OUTPUT_TYPES), namespace: str = ''):
        super().__init__('test_collector', context=context, namespace=namespace)
        self.messages = defaultdict(list)
        self._lock = threading.Lock()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.topics = tuple(topics)
        self._subs = [self.create_subscription(OUTPUT_TYPES[t], t, lambda m, t=t: self._store(t, m), qos)
                      for t in topics]

    def _store(self, topic, msg):
        with self._lock:
            self.messages[topic].append(msg)

    def count(self, topic) -> int:
        with self._lock:
            return len(self.messages[topic])

    def by_stamp(self, topic, i: int):
        sec, nanosec = stamp(i)
        with self._lock:
            found = [m for m in self.messages[topic]
                     if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, nanosec)]
        return found[-1] if found else None

    def has_frame(self, i: int, topics=None) -> bool:
        return all(self.by_stamp(t, i) is not None for t in (topics or self.topics))


class RecordingEstimator:
    """Fake estimator: a horizontal ramp at a fixed fraction of the input size; records inputs."""

    def __init__(self, scale: float = 0.5, nan_corner: bool = True):
        self.scale = scale
        self.nan_corner = nan_corner
        self.steps = 4
        self.inputs = []
        self.init_depths = []
        self.lock = threading.Lock()

    def infer_size(self, height, width):
        return max(1, int(round(height * self.scale))), max(1, int(round(width * self.scale)))

    def predict(self, rgb, init_depth=None, init_strength=None):
        h, w = self.infer_size(*rgb.shape[:2])
        with self.lock:
            self.inputs.append(rgb.copy())
            self.init_depths.append(None if init_depth is None else (init_depth.copy(), init_strength))
        depth = np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))
        if self.nan_corner:
            depth[0, 0] = np.nan
        return depth

    def describe(self):
        return {'model': 'recording-fake', 'device': 'cpu', 'precision': 'fp32', 'steps': self.steps,
                'resolution': f'x{self.scale}'}


class OracleEstimator:
    """Exact-depth stand-in: returns metric_to_relative(ground truth) of the frame it is given
    (looked up by its RGB), optionally sampled at the model resolution of `scale`."""

    def __init__(self, frames, a: float, b: float, scale: int = 1):
        from ppd_ros.geometry.scale.depth_scale import metric_to_relative
        self.steps = 4
        self.scale = scale
        self._relative = {f.rgb.tobytes(): metric_to_relative(np.where(f.valid, f.depth, np.nan), a, b)
                          for f in frames}

    def predict(self, rgb):
        relative = self._relative[rgb.tobytes()]
        return relative[::self.scale, ::self.scale].copy() if self.scale > 1 else relative.copy()

    def describe(self):
        return {'model': 'oracle', 'device': 'cpu', 'precision': 'fp32', 'steps': self.steps,
                'resolution': 'camera'}


def pattern_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A textured RGB image whose colour channels all differ (so channel swaps are visible)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    return rgb



def float_image(msg: Image) -> np.ndarray:
    """(H, W) float32 of a 32FC1 Image, values as sent (no validity conversion)."""
    assert msg.encoding == '32FC1', msg.encoding
    dtype = '>f4' if msg.is_bigendian else '<f4'
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width * 4]
    return rows.copy().view(dtype).reshape(msg.height, msg.width).astype(np.float32)


def cloud_grid(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) xyz and (H, W, 3) uint8 rgb (or None) of an organized float32 cloud."""
    from ppd_ros.nodes.cloud import unpack_rgb
    offsets = {f.name: f.offset for f in msg.fields}
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.row_step)
    raw = raw[:, :msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
    xyz = np.stack([raw[..., offsets[c]:offsets[c] + 4].copy().view('<f4')[..., 0] for c in 'xyz'], -1)
    rgb = None
    if 'rgb' in offsets:
        rgb = unpack_rgb(raw[..., offsets['rgb']:offsets['rgb'] + 4].copy().view('<f4')[..., 0])
    return xyz, rgb
