"""Test-only stand-in for the part of tf2_ros (ROS 2 geometry2, tf2_ros_py) that ppd_ros uses.

tf2_ros is not installable from PyPI, so the nodes' tf2 branch is exercised through this. It
keeps the real API and behaviour for what scale_fusion_node calls:

* Buffer(cache_time=None, node=None); set_transform(TransformStamped, authority),
  set_transform_static(...); lookup_transform(target_frame, source_frame, time, timeout=Duration())
  → TransformStamped that maps points from source_frame into target_frame at `time` (0: the
  latest). Like the real Buffer it polls until the transform can be computed or `timeout`
  passes, then raises LookupException (unknown frame), ExtrapolationException (time outside
  what the buffer holds) or ConnectivityException — all TransformException.
* TransformListener(buffer, node, *, spin_thread=False, qos=None, static_qos=None). The real one
  subscribes /tf and /tf_static (tf2_msgs, not installable either); here tests fill the buffer
  directly, as if those messages had arrived.

Simplifications: a tree of one edge per frame pair (direct parent↔child, either direction,
no chaining through intermediate frames); between two stamps the translation is linear and the
rotation normalised-linear. Every lookup is recorded in `Buffer.lookups` for tests.
"""
from __future__ import annotations

import threading
import time as _time
from types import SimpleNamespace

import numpy as np
from rclpy.duration import Duration
from rclpy.time import Time

__all__ = ['Buffer', 'TransformListener', 'TransformException', 'LookupException',
           'ConnectivityException', 'ExtrapolationException', 'InvalidArgumentException']


class TransformException(Exception):
    pass


class LookupException(TransformException):
    pass


class ConnectivityException(TransformException):
    pass


class ExtrapolationException(TransformException):
    pass


class InvalidArgumentException(TransformException):
    pass


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _matrix(transform) -> np.ndarray:
    t, q = transform.translation, transform.rotation
    x, y, z, w = np.array([q.x, q.y, q.z, q.w]) / np.linalg.norm([q.x, q.y, q.z, q.w])
    m = np.eye(4)
    m[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    m[:3, 3] = [t.x, t.y, t.z]
    return m


def _quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    w = np.sqrt(max(0.0, 1.0 + np.trace(r))) / 2.0
    if w > 1e-6:
        return ((r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w), w)
    i = int(np.argmax(np.diag(r)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = np.sqrt(max(0.0, 1.0 + r[i, i] - r[j, j] - r[k, k])) * 2.0
    q = [0.0, 0.0, 0.0]
    q[i] = s / 4.0
    q[j] = (r[j, i] + r[i, j]) / s
    q[k] = (r[k, i] + r[i, k]) / s
    return q[0], q[1], q[2], (r[k, j] - r[j, k]) / s


def _stamped(matrix: np.ndarray, target: str, source: str, stamp_ns: int):
    """The attributes of the geometry_msgs/TransformStamped the real Buffer returns."""
    qx, qy, qz, qw = _quaternion(matrix[:3, :3])
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    x, y, z = (float(v) for v in matrix[:3, 3])
    return SimpleNamespace(
        header=SimpleNamespace(frame_id=target, stamp=SimpleNamespace(sec=sec, nanosec=nanosec)),
        child_frame_id=source,
        transform=SimpleNamespace(translation=SimpleNamespace(x=x, y=y, z=z),
                                  rotation=SimpleNamespace(x=float(qx), y=float(qy), z=float(qz), w=float(qw))))


class Buffer:
    def __init__(self, cache_time: Duration | None = None, node=None):
        self.cache_time = cache_time
        self._static: dict[tuple[str, str], np.ndarray] = {}
        self._dynamic: dict[tuple[str, str], list[tuple[int, np.ndarray]]] = {}
        self._lock = threading.Lock()
        self.lookups: list[SimpleNamespace] = []

    def set_transform(self, transform, authority: str) -> bool:
        key = (transform.header.frame_id, transform.child_frame_id)
        with self._lock:
            history = self._dynamic.setdefault(key, [])
            history.append((_ns(transform.header.stamp), _matrix(transform.transform)))
            history.sort(key=lambda item: item[0])
        return True

    def set_transform_static(self, transform, authority: str) -> bool:
        with self._lock:
            self._static[(transform.header.frame_id, transform.child_frame_id)] = _matrix(transform.transform)
        return True

    def _edge(self, parent: str, child: str, stamp_ns: int) -> np.ndarray | None:
        """T_parent_child at stamp, None when the pair is unknown; ExtrapolationException outside."""
        if (parent, child) in self._static:
            return self._static[(parent, child)]
        history = self._dynamic.get((parent, child))
        if not history:
            return None
        if stamp_ns == 0:
            return history[-1][1]
        stamps = [s for s, _ in history]
        if not stamps[0] <= stamp_ns <= stamps[-1]:
            raise ExtrapolationException(
                f'Lookup would require extrapolation: requested time {stamp_ns * 1e-9:.9f} but the data '
                f'for {parent} → {child} spans [{stamps[0] * 1e-9:.9f}, {stamps[-1] * 1e-9:.9f}]')
        i = int(np.searchsorted(stamps, stamp_ns))
        if stamps[i] == stamp_ns:
            return history[i][1]
        (s0, m0), (s1, m1) = history[i - 1], history[i]
        f = (stamp_ns - s0) / (s1 - s0)
        out = m0 * (1 - f) + m1 * f
        u, _, vt = np.linalg.svd(out[:3, :3])
        out[:3, :3] = u @ vt
        return out

    def _transform_core(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        if not target or not source:
            raise InvalidArgumentException('frame ids must not be empty')
        if target == source:
            return np.eye(4)
        with self._lock:
            forward = self._edge(target, source, stamp_ns)
            if forward is not None:
                return forward
            backward = self._edge(source, target, stamp_ns)
            if backward is not None:
                return np.linalg.inv(backward)
            known = {f for pair in list(self._static) + list(self._dynamic) for f in pair}
        missing = [f for f in (target, source) if f not in known]
        if missing:
            raise LookupException(f'"{missing[0]}" passed to lookupTransform argument frame does not exist.')
        raise ConnectivityException(f'Could not find a connection between "{target}" and "{source}"')

    def can_transform(self, target_frame: str, source_frame: str, time: Time,
                      timeout: Duration = Duration()) -> bool:
        deadline = _time.monotonic() + timeout.nanoseconds * 1e-9
        while True:
            try:
                self._transform_core(target_frame, source_frame, time.nanoseconds)
                return True
            except TransformException:
                if _time.monotonic() >= deadline:
                    return False
            _time.sleep(0.005)

    def lookup_transform(self, target_frame: str, source_frame: str, time: Time,
                         timeout: Duration = Duration()):
        self.lookups.append(SimpleNamespace(target=target_frame, source=source_frame, time=time, timeout=timeout))
        self.can_transform(target_frame, source_frame, time, timeout)
        matrix = self._transform_core(target_frame, source_frame, time.nanoseconds)
        return _stamped(matrix, target_frame, source_frame, time.nanoseconds)


class TransformListener:
    def __init__(self, buffer: Buffer, node, *, spin_thread: bool = False, qos=None, static_qos=None,
                 tf_topic: str = '/tf', tf_static_topic: str = '/tf_static', static_only: bool = False):
        self.buffer = buffer
        self.node = node
        self.spin_thread = spin_thread

    def unregister(self) -> None:
        pass
