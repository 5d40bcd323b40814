"""/diagnostics for any node: rate and latency meters, and a 1 Hz DiagnosticArray publisher.

A node hands DiagnosticsPublisher a function that returns (level, message, values); the
publisher turns it into one diagnostic_msgs/DiagnosticStatus on the absolute `/diagnostics`
topic (what rqt_robot_monitor and diagnostic_aggregator read), like diagnostic_updater does.
The meters are thread-safe: worker threads record, the timer reads.
"""
from __future__ import annotations

import inspect
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


class LostMessages:
    """Messages lost before they reached a subscription, counted two ways, per topic:

    * the middleware's message-lost event (DDS SAMPLE_LOST), where it offers it (Fast DDS does;
      `supported` says whether it did);
    * gaps in each publisher's sequence numbers, read from the message info of every message
      taken (rmw publication_sequence_number, per publisher gid). This counts what the event
      misses: a 144 MB frame dropped in transport fired no event, but the next frame's sequence
      number skips it. It counts any loss before the callback (a full reader history too).

    Typically frames too large for what the transport delivers whole to a best-effort
    subscription: they never reach a callback, so without this nothing would say so. A topic's
    count is the larger of the two (they see the same losses). Thread-safe.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}     # the event's cumulative count
        self._gaps: dict[str, int] = {}       # sequence numbers skipped
        self._last_sequence: dict[tuple, int] = {}  # (topic, publisher gid) → last sequence number
        self._reported = 0
        self.supported = True

    def callbacks(self, topic: str):
        from rclpy.event_handler import SubscriptionEventCallbacks
        return SubscriptionEventCallbacks(message_lost=lambda info: self._on_lost(topic, info))

    def _on_lost(self, topic: str, info) -> None:
        with self._lock:  # total_count is cumulative per subscription
            self._totals[topic] = max(self._totals.get(topic, 0), int(info.total_count))

    def on_message_info(self, topic: str, info) -> None:
        """Count the sequence numbers a publisher skipped before this message (rmw MessageInfo)."""
        sequence = info.get('publication_sequence_number') if info else None
        if not sequence:  # None or 0: the middleware does not number its messages
            return
        gid = info.get('publisher_gid')
        key = (topic, bytes((gid or {}).get('data', b'')) if isinstance(gid, dict) else repr(gid))
        with self._lock:
            last = self._last_sequence.get(key)
            self._last_sequence[key] = sequence
            if last is not None and sequence > last + 1:
                self._gaps[topic] = self._gaps.get(topic, 0) + sequence - last - 1
            if len(self._last_sequence) > 256:  # publishers come and go: stay bounded
                self._last_sequence.pop(next(iter(self._last_sequence)))

    def subscribe(self, create, topic: str, *args, **kwargs):
        """create(..., event_callbacks=...) — node.create_subscription or message_filters.Subscriber
        — with the message-lost event, or without it where the middleware does not offer it; its
        callback then also gets the message info, for the sequence gaps."""
        from rclpy.event_handler import UnsupportedEventTypeError
        try:
            made = create(*args, event_callbacks=self.callbacks(topic), **kwargs)
        except UnsupportedEventTypeError:
            self.supported = False
            made = create(*args, **kwargs)
        self._count_gaps(getattr(made, 'sub', made), topic)  # message_filters.Subscriber: .sub
        return made

    def _count_gaps(self, subscription, topic: str) -> None:
        from rclpy.subscription import Subscription
        if not isinstance(subscription, Subscription):
            return  # a test double
        callback = subscription.callback
        try:
            inspect.signature(callback).bind(object())
            takes_info = False
        except TypeError:
            takes_info = True

        def counting(msg, info):
            self.on_message_info(topic, info)
            if takes_info:
                callback(msg, info)
            else:
                callback(msg)
        subscription.callback = counting  # rclpy hands (msg, MessageInfo) to a two-argument callback

    def total(self, topics=None) -> int:
        """Losses on all topics, or on `topics` (the names the subscriptions were counted under)."""
        return sum(n for t, n in self.by_topic().items() if topics is None or t in topics)

    def by_topic(self) -> dict[str, int]:
        """topic → messages lost: the larger of the event's count and the sequence gaps."""
        with self._lock:
            return {t: max(self._totals.get(t, 0), self._gaps.get(t, 0)) for t in {*self._totals, *self._gaps}}

    def new_since_last_call(self) -> int:
        """Losses since the previous call (for a WARN per diagnostics period)."""
        total = self.total()
        with self._lock:
            new, self._reported = total - self._reported, total
        return new


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
