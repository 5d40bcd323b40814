"""Pair an image with its CameraInfo: by stamp (approximate time) or with the latest one.

message_filters is not installable from PyPI, so ApproximateTimePairer re-implements the matching
of message_filters' Python ApproximateTimeSynchronizer (same `queue_size` / `slop` meaning, same
pairs in the same order; test/test_pairing.py checks this against a reference on random streams):

* each input keeps its messages keyed by stamp (a repeated stamp replaces the older message),
  at most `queue_size` of them — the oldest stamp is dropped first, even when that is the message
  that just arrived (a late one behind a full queue: it can then pair with nothing);
* when a message arrives, each other input offers the stamps within `slop` of it, closest first;
  the first combination (new message included) whose spread is strictly below `slop` is emitted
  and all its messages are removed from their queues. Nothing is emitted otherwise.
* `slop` is compared in whole nanoseconds, truncated as rclpy's Duration(seconds=slop) does.

Stamps going backwards (bag loops, sim-time resets) are handled like everything else: such a
message is older than a full queue and is dropped at once, so, exactly as with message_filters,
nothing pairs until the new stamps pass the queued ones (PairingMonitor reports it).

`subscribe_pair` uses the real message_filters when it is importable, this otherwise, or
LatestPairer for drivers that stamp CameraInfo differently from the image.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Callable


def stamp_ns(stamped) -> int:
    """Integer nanoseconds of a stamp, the one conversion every node and tool uses: `stamped` is a
    message with a header, a std_msgs/Header or a builtin_interfaces/Time."""
    stamp = getattr(stamped, 'header', stamped)
    stamp = getattr(stamp, 'stamp', stamp)
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
        self._slop_ns = int(slop * 1_000_000_000)  # as rclpy Duration(seconds=slop)
        self._callback = callback
        self._lock = threading.Lock()

    def add(self, index: int, msg) -> bool:
        """Offer a message from input `index`; True when it completed a set (callback called).

        The callback runs under the lock, as message_filters signals under its lock: sets are
        delivered in the order they were matched even when inputs arrive on several threads."""
        stamp = stamp_ns(msg)
        with self._lock:
            queue = self._queues[index]
            queue[stamp] = msg
            while len(queue) > self._queue_size:
                del queue[min(queue)]
            if stamp not in queue:  # older than everything in a full queue: trimmed at once
                return False
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
                    self._callback(*matched)
                    return True
            return False

    def pending(self) -> list[int]:
        """How many messages wait in each input's queue."""
        with self._lock:
            return [len(q) for q in self._queues]


class LatestPairer:
    """Pairs each primary message with the most recent secondary one (stamps ignored)."""

    def __init__(self, callback: Callable):
        self._callback = callback
        self._latest = None
        self._lock = threading.Lock()

    def add_secondary(self, msg) -> None:
        with self._lock:
            self._latest = msg

    def add_primary(self, msg) -> bool:
        with self._lock:
            latest = self._latest
        if latest is None:
            return False
        self._callback(msg, latest)
        return True


JUMP_BACK_NS = 1_000_000_000  # stamps this much older than the newest: a bag loop, a sim-time reset


class PairingMonitor:
    """Says why primary messages (images) find no secondary (CameraInfo): counts and a cause.

    It watches from outside, so it works the same whatever pairs — message_filters' synchronizer
    cannot be looked into: it counts primaries received and pairs emitted, and keeps the recent
    secondary stamps itself to measure the stamp offset (between the last primary and the
    secondary that arrived closest in time to it: a driver publishes the two together). `check()` (1 Hz) judges the last
    `window` seconds: when fewer than half of the primaries received in it were paired, `problem`
    names the likely cause and its fix; otherwise it is None.
    """

    def __init__(self, primary_topic: str, secondary_topic: str, slop: float | None,
                 window: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.primary_topic, self.secondary_topic = primary_topic, secondary_topic
        self.slop = slop  # None: paired with the latest secondary, stamps ignored
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self.primaries = self.secondaries = self.pairs = 0
        self._recent_secondary = deque(maxlen=32)   # (arrival time, stamp ns) of the latest secondaries
        self._last_primary: tuple[float, int] | None = None
        self._newest_primary: int | None = None
        self._jump_back_ns = 0                      # last backwards jump of the primary stamps
        self._history: deque = deque([(clock(), 0, 0)])  # (time, primaries, pairs)
        self.problem: str | None = None

    def on_primary(self, msg) -> None:
        stamp = stamp_ns(msg)
        with self._lock:
            self.primaries += 1
            newest = self._newest_primary
            if newest is not None and stamp < newest - JUMP_BACK_NS:
                self._jump_back_ns = newest - stamp
                newest = None  # a new timeline starts here
            self._newest_primary = stamp if newest is None else max(newest, stamp)
            self._last_primary = (self._clock(), stamp)

    def on_secondary(self, msg) -> None:
        with self._lock:
            self.secondaries += 1
            self._recent_secondary.append((self._clock(), stamp_ns(msg)))

    def on_pair(self, *_msgs) -> None:
        with self._lock:
            self.pairs += 1

    def offset(self) -> float | None:
        """Seconds from the last primary's stamp to that of the secondary that arrived closest in
        time to it (stamps of a periodic stream are ambiguous; arrival is not)."""
        with self._lock:
            if self._last_primary is None or not self._recent_secondary:
                return None
            arrived, stamp = self._last_primary
            _, nearest = min(self._recent_secondary, key=lambda entry: abs(entry[0] - arrived))
            return (stamp - nearest) * 1e-9

    def check(self, now: float | None = None) -> str | None:
        """Update and return `problem` from the counts of the last `window` seconds."""
        now = self._clock() if now is None else now
        with self._lock:
            primaries, pairs = self.primaries, self.pairs
            self._history.append((now, primaries, pairs))
            span = 0.9 * self.window  # a timer's ticks jitter: about `window` seconds is enough
            while len(self._history) > 1 and self._history[1][0] <= now - span:
                self._history.popleft()
            since, primaries_then, pairs_then = self._history[0]
        if now - since < span:
            return self.problem  # not a full window yet
        received, paired = primaries - primaries_then, pairs - pairs_then
        if received == 0 or 2 * paired >= received:
            self.problem = None
        else:
            self.problem = (f"{received - paired} of {received} messages on '{self.primary_topic}' in the "
                            f'last {now - since:.0f} s were not paired with a CameraInfo: {self._cause()}')
        return self.problem

    def _cause(self) -> str:
        if self.secondaries == 0:
            return (f"nothing has arrived on '{self.secondary_topic}' — check that the camera driver "
                    'publishes CameraInfo on that topic')
        offset = self.offset()
        with self._lock:
            jump_back = self._jump_back_ns * 1e-9
        if self.slop is None:  # latest CameraInfo: only images before the first one stay unpaired
            return f"the first CameraInfo on '{self.secondary_topic}' arrived only now"
        latest_hint = 'set input.latest_camera_info: true to pair each image with the latest CameraInfo'
        if offset is not None and abs(offset) >= self.slop:
            return (f'image and CameraInfo stamps are {offset:+.3f} s apart, more than input.sync_slop '
                    f'({self.slop:g} s): the driver stamps CameraInfo differently or on another clock — '
                    f'{latest_hint} (or raise input.sync_slop)')
        if jump_back > 0:
            return (f'the stamps jumped back by {jump_back:.3f} s (bag loop or sim-time reset?): the pairing '
                    'queues hold the newer stamps and nothing older pairs until the stream passes them — '
                    f'restart the node, or {latest_hint}')
        offset_text = '' if offset is None else f', the nearest {offset:+.3f} s from the image'
        return (f'CameraInfo arrives ({self.secondaries} so far{offset_text}) but not for every image within '
                f'input.sync_slop ({self.slop:g} s) — check its rate and stamps, or {latest_hint}')

    def values(self) -> dict:
        """Counts for /diagnostics."""
        offset = self.offset()
        with self._lock:
            return {'pairing: received': self.primaries, 'pairing: paired': self.pairs,
                    'pairing: unpaired': max(0, self.primaries - self.pairs),
                    'pairing: camera_info received': self.secondaries,
                    'pairing: stamp offset to camera_info (s)': float('nan') if offset is None else offset}


class PairedInput:
    """What subscribe_pair made: keep it alive. `mode` is 'latest', 'message_filters' or 'builtin'."""

    def __init__(self, mode: str, pairer, subscriptions: tuple, monitor: PairingMonitor, timer):
        self.mode, self.pairer, self.subscriptions = mode, pairer, subscriptions
        self.monitor, self.timer = monitor, timer

    def close(self, node) -> None:
        """Destroy the subscriptions and the monitor's timer (a managed node deactivating)."""
        for subscription in self.subscriptions:
            node.destroy_subscription(getattr(subscription, 'sub', subscription))  # message_filters: .sub
        node.destroy_timer(self.timer)
        self.subscriptions = ()

    def pending(self) -> list[int]:
        """Messages waiting in each input's pairing queue."""
        if self.mode == 'latest':
            return [0, 0]
        if self.mode == 'message_filters':
            return [len(q) for q in self.pairer.queues]
        return self.pairer.pending()


def _message_filters():
    try:
        import message_filters
        return message_filters
    except ImportError:
        return None


UNPAIRED_WARNING_PERIOD_S = 10.0


def subscribe_pair(node, primary: tuple, secondary: tuple, qos, callback: Callable, *,
                   queue_size: int, slop: float, latest_secondary: bool = False,
                   callback_group=None, lost_messages=None) -> tuple[PairedInput, str]:
    """Subscribe (type, topic) pairs and call callback(primary_msg, secondary_msg) for each pair.

    Returns (handle to keep alive, how pairing is done: 'latest', 'message_filters' or 'builtin').
    Every path is watched by a PairingMonitor (handle.monitor): while primaries stay unpaired a
    throttled warning names the cause, and the node's /diagnostics reads `monitor.problem`.
    lost_messages (diagnostics.LostMessages) counts what the middleware reports lost on them.
    """
    def subscribe(create, msg_type, topic, *args, **kwargs):
        if lost_messages is None:
            return create(msg_type, topic, *args, **kwargs)
        return lost_messages.subscribe(create, topic, msg_type, topic, *args, **kwargs)

    monitor = PairingMonitor(node.resolve_topic_name(primary[1]), node.resolve_topic_name(secondary[1]),
                             None if latest_secondary else slop)

    def emit(primary_msg, secondary_msg):
        monitor.on_pair()
        callback(primary_msg, secondary_msg)

    def check():
        problem = monitor.check()
        if problem:
            node.get_logger().warning(problem, throttle_duration_sec=UNPAIRED_WARNING_PERIOD_S)

    timer = node.create_timer(1.0, check, callback_group=callback_group)
    if latest_secondary:
        pairer = LatestPairer(emit)

        def on_primary(msg):
            monitor.on_primary(msg)
            pairer.add_primary(msg)

        def on_secondary(msg):
            monitor.on_secondary(msg)
            pairer.add_secondary(msg)
        subs = tuple(subscribe(node.create_subscription, msg_type, topic, handler, qos,
                               callback_group=callback_group)
                     for (msg_type, topic), handler in ((primary, on_primary), (secondary, on_secondary)))
        return PairedInput('latest', pairer, subs, monitor, timer), 'latest'
    message_filters = _message_filters()
    if message_filters is not None:
        subs = tuple(subscribe(lambda *a, **k: message_filters.Subscriber(node, *a, **k), msg_type, topic,
                               qos_profile=qos, callback_group=callback_group)
                     for msg_type, topic in (primary, secondary))
        # registered before the synchronizer: a message is counted before the pair it completes
        subs[0].registerCallback(monitor.on_primary)
        subs[1].registerCallback(monitor.on_secondary)
        sync = message_filters.ApproximateTimeSynchronizer(list(subs), queue_size, slop)
        sync.registerCallback(emit)
        return PairedInput('message_filters', sync, subs, monitor, timer), 'message_filters'
    pairer = ApproximateTimePairer(2, queue_size, slop, emit)
    counters = (monitor.on_primary, monitor.on_secondary)

    def handler(index):
        def on_message(msg):
            counters[index](msg)
            pairer.add(index, msg)
        return on_message
    subs = tuple(subscribe(node.create_subscription, msg_type, topic, handler(i), qos,
                           callback_group=callback_group)
                 for i, (msg_type, topic) in enumerate((primary, secondary)))
    return PairedInput('builtin', pairer, subs, monitor, timer), 'builtin'
