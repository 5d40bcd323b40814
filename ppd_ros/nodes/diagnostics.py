"""/diagnostics for any node: rate and latency meters, and a 1 Hz DiagnosticArray publisher.

A node hands DiagnosticsPublisher a function that returns (level, message, values); the
publisher turns it into one diagnostic_msgs/DiagnosticStatus on the absolute `/diagnostics`
topic (what rqt_robot_monitor and diagnostic_aggregator read), like diagnostic_updater does.
The meters are thread-safe: worker threads record, the timer reads.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


class RateMeter:
    """Events per second over the last `window` seconds (monotonic clock)."""

    def __init__(self, window: float = 5.0):
        self._window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.total += 1
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()


class StatWindow:
    """Mean / max / last of the most recent `size` samples (seconds of latency, say)."""

    def __init__(self, size: int = 100):
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def summary(self) -> dict:
        with self._lock:
            values = list(self._values)
        if not values:
            return {'count': 0, 'mean': float('nan'), 'max': float('nan'), 'last': float('nan')}
        return {'count': len(values), 'mean': sum(values) / len(values), 'max': max(values),
                'last': values[-1]}


def _text(value) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


def make_status(name: str, hardware_id: str, level, message: str, values: dict) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=str(k), value=_text(v)) for k, v in values.items()])


class DiagnosticsPublisher:
    """Publishes collect() → (level, message, values) as a DiagnosticArray every `period` s."""

    def __init__(self, node, collect: Callable[[], tuple], hardware_id: str = '',
                 period: float = 1.0, name: str | None = None, callback_group=None):
        self._node = node
        self._collect = collect
        self.hardware_id = hardware_id
        self.name = name or node.get_fully_qualified_name()
        self._publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period, self.publish, callback_group=callback_group)

    def close(self) -> None:
        """Stop publishing: destroy the timer and the publisher."""
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._publisher)

    def publish(self) -> DiagnosticArray:
        try:
            level, message, values = self._collect()
        except Exception as exc:  # a diagnostics bug must not take the node down
            level, message, values = ERROR, f'diagnostics failed: {exc}', {}
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        array.status.append(make_status(self.name, self.hardware_id, level, message, values))
        self._publisher.publish(array)
        return array
