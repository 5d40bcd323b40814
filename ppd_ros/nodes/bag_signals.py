"""Every interruption of ppd-bag (SIGINT, SIGTERM, SIGHUP) ends the same way: the bag being written
is closed where it stands (a readable OUT.partial) and the run says so.

In the process that converts (ppd-bag itself, or without workers), a signal raises ``Interrupted``
at once, except while one frame's messages are being written (``whole_frame``): they are written
whole first. A driver of workers only records the signal (``signals_call``); the workers see it
before their next frame.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ('SIGINT', 'SIGTERM', 'SIGHUP') if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which (exit status 128 + signum)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def signum_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (SIGINT for a plain one)."""
    return int(getattr(exc, 'signum', signal.SIGINT))


def signal_name(exc: BaseException) -> str:
    return signal.Signals(signum_of(exc)).name


_deferred: list[int] = []   # signals that arrived inside whole_frame
_deferring = [False]


def _raise(signum, _frame):
    if _deferring[0]:
        _deferred.append(signum)
        return
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def signals_raise():
    """Inside: SIGINT, SIGTERM and SIGHUP raise Interrupted (main thread only; the previous
    handlers come back after)."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def whole_frame():
    """A signal during this block raises at its end: a frame's messages are written together."""
    _deferring[0] = True
    try:
        yield
    finally:
        _deferring[0] = False
        if _deferred:
            signum = _deferred[0]
            _deferred.clear()
            raise Interrupted(signum)


@contextmanager
def signals_call(on_signal):
    """Inside: SIGINT, SIGTERM and SIGHUP call ``on_signal(signum)`` (any number of times)."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda signum, _frame: on_signal(signum)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
