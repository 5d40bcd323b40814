"""A single inference thread fed by a tiny bounded queue where the newest frame wins.

Camera callbacks must never wait for the model: they `submit` and return. When the model is
slower than the camera, waiting frames are replaced by newer ones (the oldest waiting frame is
dropped and counted), so the output is always about the most recent image and memory stays
bounded by `queue_size` frames plus the one being processed.
"""
from __future__ import annotations

import threading
import traceback
from collections import deque
from typing import Callable


class LatestFrameWorker:
    """Runs process(item) on one background thread for the most recent submitted items."""

    def __init__(self, process: Callable[[object], None], queue_size: int = 1,
                 on_error: Callable[[Exception, object], None] | None = None,
                 name: str = 'ppd-inference', prepare: Callable[[], None] | None = None):
        """prepare(): run once on the worker thread before the first item, for work that must
        happen on the thread that infers (a CUDA-graph capture); items submitted meanwhile wait,
        newest wins. Its failure goes to on_error(exc, None) and the worker carries on."""
        if queue_size < 1:
            raise ValueError(f'queue_size must be at least 1, got {queue_size}')
        self._process = process
        self._prepare = prepare
        self._on_error = on_error
        self.queue_size = queue_size
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._running = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.failed = 0
        self.max_pending = 0

    def start(self) -> 'LatestFrameWorker':
        with self._cond:
            self._running = True
        self._thread.start()
        return self

    def submit(self, item) -> bool:
        """Queue item; returns False when an older waiting item had to be dropped for it."""
        with self._cond:
            if not self._running:
                return False
            self.submitted += 1
            dropped_any = False
            while len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
                dropped_any = True
            self._queue.append(item)
            self.max_pending = max(self.max_pending, len(self._queue))
            self._cond.notify_all()
        return not dropped_any

    @property
    def running(self) -> bool:
        """False once stop() was called: a frame failing after that failed because of shutdown."""
        with self._cond:
            return self._running

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def stats(self) -> dict:
        with self._cond:
            return {'submitted': self.submitted, 'dropped': self.dropped,
                    'processed': self.processed, 'failed': self.failed,
                    'pending': len(self._queue), 'busy': self._busy,
                    'max_pending': self.max_pending}

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (tests, shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the item in progress, discard waiting ones, join the thread."""
        with self._cond:
            self._running = False
            self._queue.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _report(self, exc: Exception, item) -> None:
        if self._on_error is not None:
            try:
                self._on_error(exc, item)
            except Exception:  # the error handler itself failed: say so, keep going
                traceback.print_exc()

    def _run(self) -> None:
        if self._prepare is not None:
            with self._cond:
                self._busy = True
            try:
                self._prepare()
            except Exception as exc:
                self._report(exc, None)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or not self._running)
                if not self._running:
                    return
                item = self._queue.popleft()
                self._busy = True
            failed = True
            try:
                self._process(item)
                failed = False
            except Exception as exc:  # one bad frame must not end the thread
                self._report(exc, item)
            finally:
                with self._cond:
                    self._busy = False
                    if failed:
                        self.failed += 1
                    else:
                        self.processed += 1
                    self._cond.notify_all()
