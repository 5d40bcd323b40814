"""Which cameras' frames the one model runs next: the latest frame of each camera waits in its
slot (a newer one replaces it, counted as a drop of that camera), and ``take`` hands out the
waiting frames in round-robin order, so when the model cannot keep up every camera still gets
its turn and none starves. A camera that stops sending simply has no frame waiting: it never
holds the others back. Pure Python; the depth node's inference thread is its one consumer.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Hashable, Iterable


class CameraSlots:
    """Latest frame per camera, handed out round robin (see the module docstring)."""

    def __init__(self, cameras: Iterable[Hashable], clock: Callable[[], float] = time.monotonic):
        self.cameras = list(cameras)
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f'cameras named twice: {self.cameras}')
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: dict = {}              # camera → (item, arrival time)
        self._next = 0                        # index of the camera served first by the next take
        self._running = True
        self._stats = {cam: {'submitted': 0, 'dropped': 0, 'taken': 0, 'max_wait': 0.0}
                       for cam in self.cameras}

    def submit(self, camera: Hashable, item) -> bool:
        """Put ``item`` in ``camera``'s slot; False when it replaced a waiting frame (a drop) or
        after ``stop``. KeyError for a camera that is not one of ``cameras``."""
        stats = self._stats[camera]
        with self._cond:
            if not self._running:
                return False
            stats['submitted'] += 1
            replaced = camera in self._waiting
            if replaced:
                stats['dropped'] += 1
            self._waiting[camera] = (item, self._clock())
            self._cond.notify_all()
        return not replaced

    def take(self, max_batch: int | None = None, timeout: float | None = None) -> list[tuple]:
        """[(camera, item, seconds it waited)] for up to ``max_batch`` cameras with a frame waiting,
        in round-robin order from where the last take stopped; waits up to ``timeout`` seconds
        (None: until a frame comes or ``stop``) and returns [] when none came."""
        with self._cond:
            self._cond.wait_for(lambda: self._waiting or not self._running, timeout)
            if not self._running:
                return []
            now, taken = self._clock(), []
            count = len(self.cameras)
            for offset in range(count):
                index = (self._next + offset) % count
                camera = self.cameras[index]
                if camera not in self._waiting:
                    continue
                item, arrived = self._waiting.pop(camera)
                stats = self._stats[camera]
                stats['taken'] += 1
                stats['max_wait'] = max(stats['max_wait'], now - arrived)
                taken.append((camera, item, now - arrived))
                if max_batch is not None and len(taken) >= max_batch:
                    self._next = (index + 1) % count
                    break
            return taken

    def stats(self, camera: Hashable) -> dict:
        """submitted, dropped (replaced while waiting), taken, max_wait (s), pending (0 or 1)."""
        with self._cond:
            return {**self._stats[camera], 'pending': int(camera in self._waiting)}

    @property
    def running(self) -> bool:
        """False once ``stop`` was called."""
        with self._cond:
            return self._running

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._waiting)

    def clear(self) -> None:
        with self._cond:
            self._waiting.clear()

    def stop(self) -> None:
        """Refuse new frames, drop the waiting ones, wake a waiting ``take``."""
        with self._cond:
            self._running = False
            self._waiting.clear()
            self._cond.notify_all()
