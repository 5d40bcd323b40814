"""Step 3 of the frame pipeline: what carries from frame to frame (``temporal_mode``).

off: every frame alone. align: each frame fitted onto a running reference (TemporalAligner).
warm_start: sampling starts from the previous depth, noised (fewer steps). video: the video model's
causal window stream; a frame's depth comes back when its window has run.
Any discontinuity resets the state: a settings change, another image size, or time going
backwards (a bag restarted); a video stream restart is logged, at most once per 10 s.
"""
from __future__ import annotations

import inspect
import time
from typing import Callable

import numpy as np

from ppd_ros.geometry.temporal import TemporalAligner


def is_video_estimator(estimator) -> bool:
    return getattr(estimator, 'is_video', False) and callable(getattr(estimator, 'stream', None))


def supports_warm_start(estimator) -> bool:
    try:
        parameters = inspect.signature(estimator.predict).parameters
    except (TypeError, ValueError):
        return False
    return 'init_depth' in parameters and 'init_strength' in parameters


def _as_depth(depth) -> np.ndarray:
    if hasattr(depth, 'cpu'):  # a torch tensor from the video stream
        depth = depth.cpu().numpy()
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2 or depth.size == 0:
        raise RuntimeError(f'the estimator returned an array of shape {depth.shape}, expected (h, w)')
    return depth


RESTART_LOG_PERIOD_S = 10.0


class _RestartLog:
    """'video stream restarted' at most once per RESTART_LOG_PERIOD_S: frames that alternate
    between two sizes restart the stream on every frame, and must not log on every frame."""

    def __init__(self, log: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self._log, self._clock = log, clock
        self._logged_at: float | None = None
        self.restarts = self.dropped = 0          # all so far
        self._quiet_restarts = self._quiet_dropped = 0  # since the last line

    def note(self, dropped: int) -> None:
        self.restarts += 1
        self.dropped += dropped
        self._quiet_restarts += 1
        self._quiet_dropped += dropped
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < RESTART_LOG_PERIOD_S:
            return
        if self._quiet_restarts == 1:
            text = f'{dropped} frame(s) waiting for their window dropped'
        else:
            text = (f'{self._quiet_restarts} restarts in the last {now - self._logged_at:.0f} s, '
                    f'{self._quiet_dropped} frame(s) waiting for their window dropped (frames of changing size?)')
        self._log(f'video stream restarted (size, time or settings change): {text}')
        self._logged_at, self._quiet_restarts, self._quiet_dropped = now, 0, 0


class TemporalStep:
    """Relative depth of each frame with the temporal mode of ``settings``."""

    def __init__(self, estimator, settings, log: Callable[[str], None] | None = None):
        self.estimator = estimator
        self.settings = settings
        self._log = log or (lambda line: None)
        self._restarts = _RestartLog(self._log)
        self.reset()

    def reset(self, size=None) -> None:
        self.size = size
        self.previous: np.ndarray | None = None
        self.aligner = TemporalAligner(smoothing=self.settings.align_smoothing)
        self.last_stamp = -1
        self.stream = None            # video: the causal window stream
        self.waiting: dict = {}       # video: frames waiting for their window, key → context
        self._next_key = 0

    def _check_continuity(self, size, stamp_ns: int) -> None:
        if self.size != size or stamp_ns < self.last_stamp:
            if self.waiting:
                self._restarts.note(len(self.waiting))
            self.reset(size)
        self.last_stamp = stamp_ns

    def push(self, rgb: np.ndarray, stamp_ns: int, context) -> list[tuple[object, np.ndarray]]:
        """(context, relative depth) of every frame that is done: this one, or for the video
        model those whose window just ran (none while it fills)."""
        if self.settings.temporal_mode == 'video':
            self._check_continuity(rgb.shape[:2], stamp_ns)
            return self._push_video(rgb, context)
        return [(context, self.complete(self.predict(rgb, self.request(rgb, stamp_ns))))]

    def predict(self, rgb: np.ndarray, init_depth: np.ndarray | None):
        """The model's depth for a ``request``'s input (warm start when ``init_depth`` is given)."""
        if init_depth is not None:
            return self.estimator.predict(rgb, init_depth=init_depth,
                                          init_strength=self.settings.warm_start_strength)
        return self.estimator.predict(rgb)

    def request(self, rgb: np.ndarray, stamp_ns: int) -> np.ndarray | None:
        """A single-frame mode's model input: the init depth of a warm start (its strength is
        settings.warm_start_strength), or None for a cold start. With ``predict`` and ``complete``
        the three steps of ``push``, so that pipeline.batch can run the model of several cameras'
        frames at once."""
        self._check_continuity(rgb.shape[:2], stamp_ns)
        if self.settings.temporal_mode == 'warm_start' and self.previous is not None:
            return self.previous
        return None

    def complete(self, relative) -> np.ndarray:
        """The model's depth for the frame of the last ``request``, after this mode's step."""
        mode = self.settings.temporal_mode
        relative = _as_depth(relative)
        if mode == 'align':
            relative = self.aligner.update(relative)
        # a non-finite start would make every following warm start fail: start cold instead
        self.previous = relative if mode == 'warm_start' and np.isfinite(relative).all() else None
        return relative

    def _push_video(self, rgb: np.ndarray, context) -> list:
        if self.stream is None:
            self.stream = self.estimator.stream(new_frames=self.settings.video_new_frames)
        key, self._next_key = self._next_key, self._next_key + 1
        self.waiting[key] = context
        try:
            results = self.stream.push_rgb(rgb, key)
        except ValueError:
            self.waiting.pop(key, None)
            raise
        return self._done(results)

    def flush(self) -> list[tuple[object, np.ndarray]]:
        """The video model's frames still waiting for a window (end of a clip or bag)."""
        if self.stream is None:
            return []
        return self._done(self.stream.flush())

    def _done(self, results) -> list:
        return [(self.waiting.pop(key), _as_depth(depth)) for key, depth in results]

    @property
    def pending(self) -> int:
        return self.stream.pending if self.stream is not None else 0

    @property
    def windows_run(self) -> int:
        return self.stream.windows_run if self.stream is not None else 0
