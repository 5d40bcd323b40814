"""Step 1 of the frame pipeline: rectify distorted raw images (``rectify`` auto | on | off).

The remap tables are built once per calibration (geometry.rectify.Rectifier). What cannot be
rectified (a bad D, or one so absurd that its maps leave no valid pixel) is used as it is, with
one warning per calibration, never one per frame, and ``state`` saying why.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ppd_ros.geometry.rectify import Calibration, Rectifier


WARN_PERIOD_S = 10.0


class Rectification:
    """(image, rectified?, valid mask) for each frame; ``state`` says what happens, for diagnostics."""

    def __init__(self, mode: str, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.mode = mode
        self.rectifier = Rectifier()
        self.state = 'no frame yet'
        self._log = log or (lambda line: None)
        self._clock = clock
        self._warned: set = set()
        self._warned_at: float | None = None
        self._held_back = 0

    def apply(self, rgb: np.ndarray, calibration: Calibration, input_rectified: bool = False):
        """(image, whether it was rectified, valid mask or None) for the model and the outputs.
        ``input_rectified``: the source names its images rectified (image_rect...)."""
        if not calibration.distorted:
            self.state = 'not needed (D is zero)'
            return rgb, False, None
        if self.mode == 'off' or (self.mode == 'auto' and input_rectified):
            self.state = 'off' if self.mode == 'off' else 'input topic is rectified (image_rect)'
            if not input_rectified:
                self._warn_once(calibration, f'CameraInfo has {calibration.distortion_model} distortion '
                                'but input.rectify is off: depth and points assume a rectified image and '
                                'are bent towards the edges (feed image_rect, or set input.rectify auto)')
            return rgb, False, None
        try:
            rectified = self.rectifier.rectify(rgb, calibration)
        except ValueError as exc:
            self.state = f'failed: {exc}'
            self._warn_once(calibration, f'{exc}; images are used unrectified, so depth and points are '
                            'bent towards the edges')
            return rgb, False, None
        self.state = f'rectified ({calibration.distortion_model}, maps built {self.rectifier.maps_built}x)'
        valid = self.rectifier.valid(calibration)
        return rectified, True, None if valid.all() else valid

    @property
    def failed(self) -> bool:
        """The last frame's calibration could not be used to rectify (state says why)."""
        return self.state.startswith('failed')

    def _warn_once(self, calibration: Calibration, text: str) -> None:
        """Once per calibration, and at most once per WARN_PERIOD_S for calibrations that change
        on every frame (the ones held back are counted in the next line)."""
        key = calibration.key  # not the Calibration: with NaN in D it never equals itself
        if key in self._warned:
            return
        if len(self._warned) >= 64:  # a driver whose calibration never repeats: stay bounded
            self._warned.clear()
        self._warned.add(key)
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < WARN_PERIOD_S:
            self._held_back += 1
            return
        if self._held_back:
            text += f' ({self._held_back} other calibration(s) with a problem since the last warning)'
        self._warned_at, self._held_back = now, 0
        self._log(text)
