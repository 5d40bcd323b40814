"""Pair an image with its CameraInfo: by stamp (approximate time) or with the latest one.

message_filters is not installable from PyPI, so ApproximateTimePairer re-implements the matching
of message_filters' Python ApproximateTimeSynchronizer (same `queue_size` / `slop` meaning):

* each input keeps its messages keyed by stamp (a repeated stamp replaces the older message),
  at most `queue_size` of them — the oldest stamp is dropped first;
* when a message arrives, each other input offers the stamps within `slop` of it, closest first;
  the first combination (new message included) whose spread is strictly below `slop` is emitted
  and all its messages are removed from their queues. Nothing is emitted otherwise.

`subscribe_pair` uses the real message_filters when it is importable, this otherwise, or
LatestPairer for drivers that stamp CameraInfo differently from the image.
"""
from __future__ import annotations

import itertools
import threading
from typing import Callable


def stamp_ns(msg) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class ApproximateTimePairer:
    """Calls callback(msg_0, …, msg_{n-1}) for each approximately simultaneous set of messages."""

    def __init__(self, num_inputs: int, queue_size: int, slop: float, callback: Callable):
        if num_inputs < 2:
            raise ValueError(f'need at least 2 inputs to pair, got {num_inputs}')
        if queue_size < 1:
            raise ValueError(f'queue_size must be at least 1, got {queue_size}')
        if not slop > 0:
            raise ValueError(f'slop must be positive (seconds), got {slop}')
        self._queues: list[dict[int, object]] = [{} for _ in range(num_inputs)]
        self._queue_size = queue_size
        self._slop_ns = int(round(slop * 1e9))
        self._callback = callback
        self._lock = threading.Lock()

    def add(self, index: int, msg) -> bool:
        """Offer a message from input `index`; True when it completed a set (callback called)."""
        stamp = stamp_ns(msg)
        with self._lock:
            queue = self._queues[index]
            queue[stamp] = msg
            while len(queue) > self._queue_size:
                del queue[min(queue)]
            candidates = []
            for other_index, other in enumerate(self._queues):
                if other_index == index:
                    continue
                near = sorted((s for s in other if abs(s - stamp) <= self._slop_ns),
                              key=lambda s: abs(s - stamp))
                if not near:
                    return False
                candidates.append(near)
            for combination in itertools.product(*candidates):
                stamps = list(combination)
                stamps.insert(index, stamp)
                if max(stamps) - min(stamps) < self._slop_ns:
                    matched = [q.pop(s) for q, s in zip(self._queues, stamps)]
                    break
            else:
                return False
        self._callback(*matched)
        return True

    def pending(self) -> list[int]:
        """How many messages wait in each input's queue."""
        with self._lock:
            return [len(q) for q in self._queues]


class LatestPairer:
    """Pairs each primary message with the most recent secondary one (stamps ignored)."""

    def __init__(self, callback: Callable, on_missing: Callable[[], None] | None = None):
        self._callback = callback
        self._on_missing = on_missing
        self._latest = None
        self._lock = threading.Lock()

    def add_secondary(self, msg) -> None:
        with self._lock:
            self._latest = msg

    def add_primary(self, msg) -> bool:
        with self._lock:
            latest = self._latest
        if latest is None:
            if self._on_missing is not None:
                self._on_missing()
            return False
        self._callback(msg, latest)
        return True


def _message_filters():
    try:
        import message_filters
        return message_filters
    except ImportError:
        return None


def subscribe_pair(node, primary: tuple, secondary: tuple, qos, callback: Callable, *,
                   queue_size: int, slop: float, latest_secondary: bool = False,
                   on_missing_secondary: Callable[[], None] | None = None,
                   callback_group=None, lost_messages=None) -> tuple[object, str]:
    """Subscribe (type, topic) pairs and call callback(primary_msg, secondary_msg) for each pair.

    Returns (handle to keep alive, how pairing is done: 'latest', 'message_filters' or 'builtin').
    lost_messages (diagnostics.LostMessages) counts what the middleware reports lost on them.
    """
    def subscribe(create, msg_type, topic, *args, **kwargs):
        if lost_messages is None:
            return create(msg_type, topic, *args, **kwargs)
        return lost_messages.subscribe(create, topic, msg_type, topic, *args, **kwargs)

    if latest_secondary:
        pairer = LatestPairer(callback, on_missing_secondary)
        subs = (subscribe(node.create_subscription, primary[0], primary[1], pairer.add_primary, qos,
                          callback_group=callback_group),
                subscribe(node.create_subscription, secondary[0], secondary[1], pairer.add_secondary, qos,
                          callback_group=callback_group))
        return (pairer, subs), 'latest'
    message_filters = _message_filters()
    if message_filters is not None:
        subs = [subscribe(lambda *a, **k: message_filters.Subscriber(node, *a, **k), msg_type, topic,
                          qos_profile=qos, callback_group=callback_group)
                for msg_type, topic in (primary, secondary)]
        sync = message_filters.ApproximateTimeSynchronizer(subs, queue_size, slop)
        sync.registerCallback(callback)
        return (sync, subs), 'message_filters'
    pairer = ApproximateTimePairer(2, queue_size, slop, callback)
    subs = tuple(subscribe(node.create_subscription, msg_type, topic, (lambda m, i=i: pairer.add(i, m)), qos,
                           callback_group=callback_group)
                 for i, (msg_type, topic) in enumerate((primary, secondary)))
    return (pairer, subs), 'builtin'
