"""Progress of a ppd-bag run over many bags, wherever they run: frames done, per bag, and an
estimate of the time left.

Workers report events (``('start', index, worker)``, ``('frames', index, done)``); the driver feeds
them to ``FleetProgress``, which draws a tqdm bar on a terminal, or prints a progress line every
``interval`` seconds into a log (never with --quiet).
"""
from __future__ import annotations

import sys
import time

from ppd_ros.cli import flags

from .bag_jobs import BagResult, Job


def duration(seconds: float) -> str:
    """'42 s', '3 min 5 s', '2 h 10 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f'{seconds} s'
    if seconds < 3600:
        return f'{seconds // 60} min {seconds % 60} s'
    return f'{seconds // 3600} h {seconds % 3600 // 60} min'


class FleetProgress:
    """Frames done per bag (a retried bag starts again from 0) and the time left at the rate so far."""

    def __init__(self, jobs: list[Job], totals: dict[int, int], quiet: bool = False, interval: float = 30.0,
                 out=None, clock=time.monotonic):
        self.names = {job.index: job.name for job in jobs}
        self.totals = dict(totals)
        self.done: dict[int, int] = {}
        self.running: dict[int, str] = {}   # index → worker
        self.attempts: dict[int, int] = {}
        self.finished_frames = 0            # frames of finished bags (kept when a bag is retried)
        self.clock = clock
        self.start = clock()
        self.interval = interval
        self.quiet = quiet
        self.out = out or sys.stderr
        self._last_line = self.start
        self._bar = flags.progress_bar(sum(self.totals.values()), quiet, unit='frame') if totals else None
        self._computed = 0                  # frames computed (retried frames too): the rate

    # events
    def handle(self, event) -> None:
        kind, index, value = event
        if kind == 'start':
            self.running[index] = str(value)
            self.attempts[index] = self.attempts.get(index, 0) + 1
            self.done[index] = 0
        elif kind == 'frames':
            self._computed += max(0, value - self.done.get(index, 0))
            self.done[index] = value
            if self._bar is not None:
                self._bar.n = self.frames_done()
                self._bar.set_postfix_str(self.running_text(), refresh=False)
                self._bar.refresh()

    def finished(self, result: BagResult, index: int) -> None:
        self.running.pop(index, None)
        self.done[index] = self.totals.get(index, result.total)  # a bag that ends counts as whole
        if self._bar is not None:
            self._bar.n = self.frames_done()
            self._bar.refresh()

    # figures
    def frames_done(self) -> int:
        return sum(self.done.values())

    def frames_total(self) -> int:
        return sum(self.totals.values())

    def rate(self) -> float:
        elapsed = self.clock() - self.start
        return self._computed / elapsed if elapsed > 0 else 0.0

    def seconds_left(self) -> float | None:
        rate = self.rate()
        return (self.frames_total() - self.frames_done()) / rate if rate > 0 else None

    def running_text(self) -> str:
        return ', '.join(f'{self.names[i]} {self.done.get(i, 0)}/{self.totals.get(i, "?")}'
                         for i in sorted(self.running))

    def line(self) -> str:
        total = self.frames_total()
        done = self.frames_done()
        text = f'frames {done}/{total}' + (f' ({100 * done // total} %)' if total else '')
        text += f', {self.rate():.2f} frame/s'
        left = self.seconds_left()
        if left is not None:
            text += f', about {duration(left)} left'
        running = self.running_text()
        return text + (f'; running: {running}' if running else '')

    def tick(self) -> None:
        """A progress line into a log now and then (a terminal has the bar)."""
        if self.quiet or (self._bar is not None and not self._bar.disable):
            return
        now = self.clock()
        if now - self._last_line >= self.interval:
            self._last_line = now
            print(f'ppd-bag: progress: {self.line()}', file=self.out, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
