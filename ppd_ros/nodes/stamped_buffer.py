"""Metric-source messages kept for pairing by stamp, bounded by time and bytes, not by count.

The fusion node pairs each relative-depth frame with the source message closest in stamp. A
count bound (the former ``deque(maxlen=100)``) holds 10 s of a 10 Hz LiDAR: 630 MB of 128-line
clouds, while pairing only ever looks about one depth latency back. So this buffer keeps

* only the last ``window`` seconds of stamps (relative to the newest message),
* at most ``max_bytes`` (oldest dropped first; one message above it alone is refused, not kept),
* at most ``max_count`` messages,
* nothing that pairing can no longer use: depth frames come in stamp order, so once a frame at
  t has been paired, messages older than t − tolerance are released (``release_before``).

A message more than ``window`` older than the newest one means time went back (a bag restarted,
a clock reset): the buffer starts again from it.

Counters say what was dropped and why, for diagnostics.

``closest`` is the one rule for "the message closest in stamp, within a tolerance" (the fusion
node's source and model scale, ppd-bag's CameraInfo): on a tie the later stamp wins. Stamps are
seconds (float) in StampedBuffer, as the fusion node's fit tracker counts them; the plain function
takes any unit, as long as stamp, entries and tolerance share it (ppd-bag: integer nanoseconds).
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


def closest(entries: Sequence[tuple], stamp, tolerance=math.inf) -> tuple | None:
    """The (stamp, item) of `entries` (sorted by stamp, ascending) whose stamp is closest to
    `stamp`, if at most `tolerance` away; on a tie the later one (of equal stamps, the last).
    None when `entries` is empty or nothing is within `tolerance`."""
    if not entries:
        return None

    def key(entry):
        return entry[0]
    before = bisect.bisect_right(entries, stamp, key=key) - 1   # the last at or before stamp
    candidates = [entries[before]] if before >= 0 else []
    if before + 1 < len(entries):  # the last of the equal stamps just after
        candidates.append(entries[bisect.bisect_right(entries, key(entries[before + 1]), key=key) - 1])
    best = min(reversed(candidates), key=lambda entry: abs(entry[0] - stamp))  # reversed: ties → later
    return best if abs(best[0] - stamp) <= tolerance else None


@dataclass
class BufferCounts:
    """Messages dropped so far, by reason."""
    window: int = 0      # older than the time window
    budget: int = 0      # pushed out by the byte budget or the count limit
    used: int = 0        # older than what pairing can still use
    too_large: int = 0   # refused: larger than the whole byte budget
    restarts: int = 0    # time went back by more than the window: started again


class StampedBuffer:
    """(stamp seconds, item, size bytes) in stamp order, bounded as the module docstring says."""

    def __init__(self, window: float, max_bytes: int, max_count: int):
        self.configure(window, max_bytes, max_count)
        self._items: deque = deque()  # (stamp, item, nbytes), stamps ascending
        self.held_bytes = 0
        self.newest_stamp: float | None = None  # of any message accepted, even if released since
        self.newest_evicted: float | None = None  # newest stamp dropped by the window or the budget
        self.counts = BufferCounts()

    def configure(self, window: float, max_bytes: int, max_count: int) -> None:
        if not window > 0 or max_bytes < 1 or max_count < 1:
            raise ValueError(f'need window > 0, max_bytes >= 1, max_count >= 1; got {window}, '
                             f'{max_bytes}, {max_count}')
        self.window, self.max_bytes, self.max_count = float(window), int(max_bytes), int(max_count)
        if hasattr(self, '_items'):
            self._trim()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        """(stamp, item) pairs, oldest first."""
        return ((stamp, item) for stamp, item, _ in self._items)

    def closest(self, stamp: float, tolerance: float = math.inf) -> tuple | None:
        """The kept (stamp, item) closest to `stamp` (seconds) within `tolerance` (seconds), or None
        (module function `closest`: on a tie the later one)."""
        return closest([(s, item) for s, item, _ in self._items], stamp, tolerance)

    def add(self, stamp: float, item, nbytes: int) -> str | None:
        """Keep item; returns why it was not kept, or None."""
        if nbytes > self.max_bytes:
            self.counts.too_large += 1
            return (f'{nbytes / 2**20:.1f} MB is more than the whole buffer budget of '
                    f'{self.max_bytes / 2**20:.1f} MB')
        if self.newest_stamp is not None and stamp < self.newest_stamp - self.window:
            self.clear()
            self.counts.restarts += 1
        index = len(self._items)
        while index > 0 and self._items[index - 1][0] > stamp:  # keep stamp order (rarely not last)
            index -= 1
        self._items.insert(index, (stamp, item, int(nbytes)))
        self.held_bytes += int(nbytes)
        self.newest_stamp = stamp if self.newest_stamp is None else max(self.newest_stamp, stamp)
        self._trim()
        return None

    def release_before(self, stamp: float) -> None:
        """Drop messages older than stamp (pairing will never look there again)."""
        while self._items and self._items[0][0] < stamp:
            self._pop()
            self.counts.used += 1

    def clear(self) -> None:
        self._items.clear()
        self.held_bytes = 0
        self.newest_stamp = None
        self.newest_evicted = None

    def _pop(self) -> float:
        stamp, _, nbytes = self._items.popleft()
        self.held_bytes -= nbytes
        return stamp

    def _evict(self) -> None:
        stamp = self._pop()
        self.newest_evicted = stamp if self.newest_evicted is None else max(self.newest_evicted, stamp)

    def _trim(self) -> None:
        if self.newest_stamp is not None:
            while self._items and self._items[0][0] < self.newest_stamp - self.window:
                self._evict()
                self.counts.window += 1
        while self._items and (self.held_bytes > self.max_bytes or len(self._items) > self.max_count):
            self._evict()
            self.counts.budget += 1


__all__ = ['BufferCounts', 'StampedBuffer', 'closest']
