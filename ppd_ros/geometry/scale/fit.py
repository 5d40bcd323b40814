"""Fit the metric scale of PPD's relative depth against sparse or dense metric samples.

Model (the released code's metric recovery): log(d + 1) = a·r + b, with r the relative depth
(larger = farther, so a > 0) and d metres. The released code fits it with sklearn's RANSAC; this is
our own numpy version: 2-point hypotheses (bounded, seeded), scored by MSAC with samples weighted
to balance the range of r, then least squares on the inliers, refined once. A single sample (a range
finder) cannot fix both a and b, so `fit_with_prior` / `fit_offset` / `fit_log_scale` combine it
with a prior (`fit_single_range` picks one by mode). `FitTracker` smooths fits over time, rejects
outliers and holds the last good fit for a bounded time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .depth_scale import near_far_scale

#: Hypotheses scored per vectorised batch; scoring uses at most `max_score_samples` samples.
_BATCH = 64
_CONFIDENCE = 0.999


@dataclass(frozen=True)
class FitConfig:
    """Robust fit settings.

    inlier_threshold is in log(d + 1) units; 0.15 (≈ 16 % in depth) sits above a depth model's
    smooth errors (tighter bands make RANSAC follow the densest cluster of samples instead of
    the trend: 2× the oracle's AbsRel outdoors at 0.05 on the synthetic benchmark) and below the
    gross mismatches (occlusion, parallax, edges) it must reject.
    balance_bins: hypotheses are scored with each of this many bins of r weighted equally (0 or
    1: plain MSAC), so that one densely sampled wall does not outvote the rest of the scene.
    """
    min_points: int = 20
    min_depth: float = 0.1
    max_depth: float = 100.0
    inlier_threshold: float = 0.15
    max_iterations: int = 200
    min_inlier_ratio: float = 0.3
    max_score_samples: int = 4000
    balance_bins: int = 16
    seed: int | None = 0

    def __post_init__(self):
        if self.min_points < 1:
            raise ValueError(f'min_points must be ≥ 1, got {self.min_points}')
        if not (0.0 <= self.min_depth < self.max_depth):
            raise ValueError(f'need 0 ≤ min_depth < max_depth, got {self.min_depth}, {self.max_depth}')
        if not self.inlier_threshold > 0:
            raise ValueError(f'inlier_threshold must be > 0, got {self.inlier_threshold}')
        if self.max_iterations < 1:
            raise ValueError(f'max_iterations must be ≥ 1, got {self.max_iterations}')
        if not 0.0 <= self.min_inlier_ratio <= 1.0:
            raise ValueError(f'min_inlier_ratio must be in [0, 1], got {self.min_inlier_ratio}')


@dataclass(frozen=True)
class ScaleFit:
    """A successful fit. `residual` is the RMS inlier residual in log(d + 1) units;
    `kind` says which parameters were fitted: 'full' (a and b), 'offset' (b) or 'scale' (a, b × k)."""
    a: float
    b: float
    inlier_ratio: float
    num_points: int
    residual: float
    kind: str = 'full'
    ok = True

    def predict_log(self, relative: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(relative, dtype=np.float64) + self.b


@dataclass(frozen=True)
class FitFailure:
    """Why no fit could be made, for diagnostics."""
    reason: str
    num_points: int = 0
    ok = False


def valid_samples(relative, metric, config: FitConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Finite relative values paired with metric depths inside [min_depth, max_depth].

    Returns (r, log(d + 1), summary of what was dropped)."""
    r = np.asarray(relative, dtype=np.float64).ravel()
    d = np.asarray(metric, dtype=np.float64).ravel()
    if r.shape != d.shape:
        raise ValueError(f'relative has {r.size} samples but metric has {d.size}')
    finite = np.isfinite(r) & np.isfinite(d)
    in_range = finite & (d >= config.min_depth) & (d <= config.max_depth)
    dropped = []
    if (n := int((~finite).sum())):
        dropped.append(f'{n} non-finite')
    if (n := int((finite & ~in_range).sum())):
        dropped.append(f'{n} outside [{config.min_depth:g}, {config.max_depth:g}] m')
    summary = f'{int(in_range.sum())} of {r.size} samples usable' + (f' ({", ".join(dropped)})' if dropped else '')
    return r[in_range], np.log1p(d[in_range]), summary


def least_squares(r: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ordinary least squares of y = a·r + b (the oracle fit when y is the full ground truth)."""
    r = np.asarray(r, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rm, ym = r.mean(), y.mean()
    var = np.square(r - rm).sum()
    if var <= 0:
        raise ValueError('relative depth is constant: the scale is undetermined')
    a = float(((r - rm) * (y - ym)).sum() / var)
    return a, float(ym - a * rm)


def _balance_weights(r: np.ndarray, bins: int) -> np.ndarray:
    """Per-sample weights that give each of `bins` equal-width bins of r the same total weight.

    Sensors sample a scene very unevenly (a LiDAR puts most returns on one wall); unweighted,
    the best-scoring line is one that threads the densest cluster, whatever its slope."""
    if bins <= 1:
        return np.ones_like(r)
    idx = np.minimum(((r - r.min()) / max(np.ptp(r), 1e-12) * bins).astype(np.int64), bins - 1)
    counts = np.bincount(idx, minlength=bins)
    return 1.0 / counts[idx]


def _ransac_hypothesis(r, y, config: FitConfig, rng: np.random.Generator):
    """Best 2-point hypothesis (a, b) by MSAC score, or None when no pair gives a > 0."""
    n = r.size
    if n > config.max_score_samples:
        pick = rng.choice(n, config.max_score_samples, replace=False)
        r, y, n = r[pick], y[pick], config.max_score_samples
    thr2 = config.inlier_threshold ** 2
    span = np.ptp(r)
    weights = _balance_weights(r, config.balance_bins)
    best, best_score, best_inliers = None, np.inf, 0
    needed, done = config.max_iterations, 0
    while done < min(needed, config.max_iterations):
        k = min(_BATCH, config.max_iterations - done)
        i = rng.integers(n, size=k)
        j = rng.integers(n, size=k)
        done += k
        dr = r[i] - r[j]
        usable = np.abs(dr) > 1e-6 * span
        a = np.where(usable, (y[i] - y[j]) / np.where(usable, dr, 1.0), 0.0)
        usable &= a > 0
        if not usable.any():
            continue
        a, b = a[usable], y[i][usable] - a[usable] * r[i][usable]
        res2 = np.square(y[None, :] - (a[:, None] * r[None, :] + b[:, None]))
        scores = np.minimum(res2, thr2) @ weights
        h = int(np.argmin(scores))
        if scores[h] < best_score:
            best_score, best = scores[h], (float(a[h]), float(b[h]))
            best_inliers = int((res2[h] < thr2).sum())
            w = best_inliers / n
            if w >= 1.0:
                break
            if w > 0:
                needed = int(np.ceil(np.log(1 - _CONFIDENCE) / np.log(1 - w * w)))
    return best


def fit_scale(relative, metric, config: FitConfig = FitConfig(), rng: np.random.Generator | None = None):
    """Robust fit of log(d + 1) = a·r + b. Returns a `ScaleFit`, or a `FitFailure` saying why not."""
    rng = rng if rng is not None else np.random.default_rng(config.seed)
    r, y, summary = valid_samples(relative, metric, config)
    n = r.size
    if n < max(config.min_points, 2):
        return FitFailure(f'too few samples: {summary}, need {max(config.min_points, 2)}', n)
    if np.ptp(r) <= 1e-9:
        return FitFailure(f'relative depth is the same at all {n} samples: the scale is undetermined', n)
    hypothesis = _ransac_hypothesis(r, y, config, rng)
    if hypothesis is None:
        return FitFailure(f'no sample pair gives a positive scale ({summary}): '
                          'is the metric source registered to this image?', n)
    a, b = hypothesis
    thr = config.inlier_threshold
    for _ in range(2):  # least squares on the inliers, then once more on the refitted inliers
        inliers = np.abs(y - (a * r + b)) < thr
        if inliers.sum() < 2 or np.ptp(r[inliers]) <= 1e-9:
            break
        a, b = least_squares(r[inliers], y[inliers])
    inliers = np.abs(y - (a * r + b)) < thr
    count = int(inliers.sum())
    ratio = count / n
    if a <= 0:
        return FitFailure(f'the fitted scale is not positive (a={a:.3g}): relative and metric depth disagree', n)
    if count < max(config.min_points, 2) or ratio < config.min_inlier_ratio:
        return FitFailure(f'only {count} of {n} samples ({100 * ratio:.0f} %) agree within '
                          f'{thr:g} log units; need {config.min_points} and {100 * config.min_inlier_ratio:.0f} %', n)
    residual = float(np.sqrt(np.mean(np.square(y[inliers] - (a * r[inliers] + b)))))
    return ScaleFit(a, b, ratio, n, residual, 'full')


def _one_parameter_fit(r, y, config: FitConfig, min_points: int, kind: str, estimate, apply):
    """Shared shape of the scale-only fits: median estimate, inliers around it, mean of the inliers."""
    n = r.size
    if n < min_points:
        return FitFailure(f'too few samples for a {kind} fit: {n}, need {min_points}', n)
    values = estimate(r, y)
    ok = np.isfinite(values)
    if not ok.any():
        return FitFailure(f'no sample usable for a {kind} fit', n)
    value = float(np.median(values[ok]))
    inliers = ok & (np.abs(y - apply(value, r)) < config.inlier_threshold)
    if inliers.any():
        value = float(np.mean(values[inliers]))
        inliers = ok & (np.abs(y - apply(value, r)) < config.inlier_threshold)
    count = int(inliers.sum())
    if count < min_points or count / n < config.min_inlier_ratio:
        return FitFailure(f'only {count} of {n} samples agree within {config.inlier_threshold:g} log units', n)
    residual = float(np.sqrt(np.mean(np.square(y[inliers] - apply(value, r[inliers])))))
    return value, count / n, n, residual


def fit_offset(relative, metric, a: float, config: FitConfig = FitConfig(), min_points: int = 1):
    """Keep the scale `a`, fit only the offset b (one range sample is enough).

    In metres this is a multiplicative correction of (d + 1): the depth ordering and the log-depth
    spread come from the prior `a`, the absolute level from the sensor."""
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f'prior scale a must be finite and positive, got {a}')
    r, y, summary = valid_samples(relative, metric, config)
    result = _one_parameter_fit(r, y, config, min_points, 'offset',
                                lambda r, y: y - a * r, lambda b, r: a * r + b)
    if isinstance(result, FitFailure):
        return FitFailure(f'{result.reason} ({summary})', result.num_points)
    b, ratio, n, residual = result
    return ScaleFit(float(a), b, ratio, n, residual, 'offset')


def fit_log_scale(relative, metric, a: float, b: float, config: FitConfig = FitConfig(), min_points: int = 1):
    """Keep the shape of a prior (a, b), fit one factor k: log(d + 1) = k·(a·r + b).

    The pivot is d = 0, so this stretches the whole log-depth range (unlike `fit_offset`)."""
    if not (np.isfinite(a) and np.isfinite(b) and a > 0):
        raise ValueError(f'prior must be finite with a > 0, got a={a} b={b}')
    r, y, summary = valid_samples(relative, metric, config)
    base = a * r + b
    with np.errstate(divide='ignore', invalid='ignore'):
        result = _one_parameter_fit(r, y, config, min_points, 'scale',
                                    lambda r, y: np.where(base > 1e-6, y / base, np.nan),
                                    lambda k, r: k * (a * r + b))
    if isinstance(result, FitFailure):
        return FitFailure(f'{result.reason} ({summary})', result.num_points)
    k, ratio, n, residual = result
    if not k > 0:
        return FitFailure(f'fitted log-scale factor is not positive ({k:.3g})', n)
    return ScaleFit(float(k * a), float(k * b), ratio, n, residual, 'scale')



def fit_with_prior(relative, metric, near: float, far: float, near_sigma: float = 0.2, far_sigma: float = 0.5,
                   sample_sigma: float = 0.05, config: FitConfig = FitConfig(), min_points: int = 1):
    """Few samples (one range reading) + a Gaussian prior on where r = 0 and r = 1 lie.

    Parametrised by the log depths at the two ends, y0 = log(near + 1) at r = 0 and y1 at r = 1
    (PPD normalises each frame so that r = 0 / 1 are its 2 % / 98 % depths), with independent
    priors N(log(near + 1), near_sigma²) and N(log(far + 1), far_sigma²) (log(d + 1) units); each
    sample is a measurement y = (1 − r)·y0 + r·y1 with noise sample_sigma. The MAP estimate moves
    whichever end the prior is less sure of: for a robot the near end (the floor at the bottom of
    the image) is usually well known, the far end (a wall or the open street) is not. With
    near_sigma → 0 this pivots about the near end; with equal sigmas it is close to an offset fit.
    """
    if not (0 < near < far and np.isfinite(far)):
        raise ValueError(f'prior needs 0 < near < far, got near={near} far={far}')
    if not (near_sigma > 0 and far_sigma > 0 and sample_sigma > 0):
        raise ValueError('near_sigma, far_sigma and sample_sigma must be > 0')
    r, y, summary = valid_samples(relative, metric, config)
    n = r.size
    if n < min_points:
        return FitFailure(f'too few samples for a prior fit: {summary}, need {min_points}', n)
    mu = np.log1p([near, far])
    h = np.stack([1.0 - r, r], axis=1)
    precision = np.diag([near_sigma ** -2, far_sigma ** -2])
    lhs = h.T @ h / sample_sigma ** 2 + precision
    rhs = h.T @ y / sample_sigma ** 2 + precision @ mu
    y0, y1 = np.linalg.solve(lhs, rhs)
    a, b = float(y1 - y0), float(y0)
    if not a > 0:
        return FitFailure(f'the range reading puts the far end nearer than the near end (a={a:.3g}): '
                          'check range.near / range.far', n)
    res = y - (a * r + b)
    inliers = np.abs(res) < config.inlier_threshold
    return ScaleFit(a, b, float(inliers.mean()), n, float(np.sqrt(np.mean(np.square(res)))), 'prior')



RANGE_MODES = ('prior', 'offset', 'scale')


def fit_single_range(relative, metric, mode: str, near: float, far: float, near_sigma: float = 0.2,
                     far_sigma: float = 0.5, sample_sigma: float = 0.05, config: FitConfig = FitConfig()):
    """The one-parameter fits for a range finder, by `mode`:

    prior (default, best AbsRel on the synthetic benchmark): `fit_with_prior`;
    offset: a from near/far, fit b (`fit_offset`); scale: k·(a, b) from near/far (`fit_log_scale`).
    """
    if mode == 'prior':
        return fit_with_prior(relative, metric, near, far, near_sigma, far_sigma, sample_sigma, config)
    a, b = near_far_scale(near, far)
    if mode == 'offset':
        return fit_offset(relative, metric, a, config)
    if mode == 'scale':
        return fit_log_scale(relative, metric, a, b, config)
    raise ValueError(f"range mode must be one of {', '.join(RANGE_MODES)}, got '{mode}'")


class FitStatus:
    """Same values as ppd_ros/msg/DepthScale's STATUS_* constants (no ROS import down here)."""
    OK = 0
    HELD = 1
    EXPIRED = 2
    NO_FIT = 3
    NAMES = {0: 'OK', 1: 'HELD', 2: 'EXPIRED', 3: 'NO_FIT'}


@dataclass(frozen=True)
class TrackerConfig:
    """Temporal filtering of per-frame fits.

    smoothing: weight of the previous smoothed fit in [0, 1) (0 = use each frame's fit as is).
      Off by default: PPD normalises every frame by its own 2 %/98 % depths, so (a, b) really
      change from frame to frame and smoothing only adds lag (16-line LiDAR on a synthetic indoor
      sequence: AbsRel 0.038 unsmoothed, 0.039 at 0.5, 0.042 at 0.8).
    max_jump: reject a new fit whose log-depth prediction differs from the smoothed one by more than
      this (median over the frame's samples, log(d + 1) units; 0.2 ≈ 22 %).
    max_scale_change: reject a new fit whose a differs from the smoothed a by more than this fraction.
    max_rejections: after this many consecutive rejections the new fits win (the scene changed).
    max_hold_age: seconds a held fit stays usable; after that the metric output stops (EXPIRED).
    """
    smoothing: float = 0.0
    max_jump: float = 0.2
    max_scale_change: float = 0.5
    max_rejections: int = 3
    max_hold_age: float = 2.0

    def __post_init__(self):
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f'smoothing must be in [0, 1), got {self.smoothing}')
        if not (self.max_jump > 0 and self.max_scale_change > 0):
            raise ValueError('max_jump and max_scale_change must be > 0')
        if self.max_rejections < 1:
            raise ValueError(f'max_rejections must be ≥ 1, got {self.max_rejections}')
        if not self.max_hold_age >= 0:
            raise ValueError(f'max_hold_age must be ≥ 0, got {self.max_hold_age}')


@dataclass(frozen=True)
class TrackedScale:
    """What to publish for one frame: the scale in use (NaN when none), its age and why."""
    status: int
    a: float
    b: float
    age: float
    fit: ScaleFit | None
    message: str

    @property
    def usable(self) -> bool:
        """True when metric depth may be produced with (a, b)."""
        return self.status in (FitStatus.OK, FitStatus.HELD)


class FitTracker:
    """Smooths per-frame fits, rejects sudden outlier fits, and holds the last good fit (with its
    age) when the source stalls or a fit fails, until `max_hold_age` seconds; then EXPIRED.

    Times are the relative depth's stamps in seconds, so it behaves the same with bags and sim time.
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self.reset()

    def reset(self):
        self._a = self._b = float('nan')
        self._fit: ScaleFit | None = None
        self._stamp: float | None = None
        self._rejections = 0

    @property
    def has_fit(self) -> bool:
        return self._stamp is not None

    def update(self, stamp: float, result: ScaleFit | FitFailure | None,
               relative_samples=None, why: str = '') -> TrackedScale:
        """Fold in this frame's fit (or failure, or None when there was no fresh source data, with
        `why`). `relative_samples` are the frame's relative values, used to judge jumps."""
        if self._stamp is not None and stamp < self._stamp:
            self.reset()  # time went backwards (bag loop, sim reset): old fits mean nothing now
            why = f'{why}; time went backwards, fit reset'.lstrip('; ')
        if isinstance(result, ScaleFit):
            rejected = self._rejection(stamp, result, relative_samples)
            if rejected is None:
                self._accept(stamp, result)
                return TrackedScale(FitStatus.OK, self._a, self._b, 0.0, result,
                                    f'fitted on {result.num_points} samples, '
                                    f'{100 * result.inlier_ratio:.0f} % inliers')
            why = rejected
        elif isinstance(result, FitFailure):
            why = f'fit failed: {result.reason}'
        return self._hold(stamp, why or 'no fresh fit')

    def current(self, stamp: float, why: str = 'no fresh fit') -> TrackedScale:
        """The state at `stamp` without new data."""
        return self._hold(stamp, why)

    def _rejection(self, stamp, fit: ScaleFit, relative_samples) -> str | None:
        """Why a new fit is rejected as an outlier against the smoothed one, or None."""
        if not self._fit_is_live(stamp):
            return None
        r = np.asarray(relative_samples, dtype=np.float64).ravel() if relative_samples is not None else None
        r = r[np.isfinite(r)] if r is not None else None
        if r is None or r.size == 0:
            r = np.linspace(0.0, 1.0, 11)
        jump = float(np.median(np.abs((fit.a - self._a) * r + (fit.b - self._b))))
        change = abs(fit.a / self._a - 1.0)
        if jump <= self.config.max_jump and change <= self.config.max_scale_change:
            self._rejections = 0
            return None
        self._rejections += 1
        if self._rejections >= self.config.max_rejections:
            self._rejections = 0
            self._fit = None  # persistent change: restart smoothing from the new fit
            return None
        return (f'new fit rejected ({self._rejections}/{self.config.max_rejections}): prediction jumps '
                f'{jump:.3f} log units (max {self.config.max_jump:g}), a changes {100 * change:.0f} % '
                f'(max {100 * self.config.max_scale_change:.0f} %)')

    def _fit_is_live(self, stamp) -> bool:
        return self._fit is not None and stamp - self._stamp <= self.config.max_hold_age

    def _accept(self, stamp, fit: ScaleFit):
        if self._fit_is_live(stamp) and self.config.smoothing > 0:
            s = self.config.smoothing
            self._a = s * self._a + (1 - s) * fit.a
            self._b = s * self._b + (1 - s) * fit.b
        else:
            self._a, self._b = fit.a, fit.b
        self._fit, self._stamp = fit, stamp

    def _hold(self, stamp, why: str) -> TrackedScale:
        if self._stamp is None:
            return TrackedScale(FitStatus.NO_FIT, float('nan'), float('nan'), 0.0, None, f'no fit yet: {why}')
        age = max(0.0, stamp - self._stamp)
        if age > self.config.max_hold_age:
            return TrackedScale(FitStatus.EXPIRED, self._a, self._b, age, self._fit,
                                f'last good fit is {age:.2f} s old (> max_hold_age {self.config.max_hold_age:g} s), '
                                f'metric output stopped: {why}')
        return TrackedScale(FitStatus.HELD, self._a, self._b, age, self._fit,
                            f'holding fit from {age:.2f} s ago: {why}')
