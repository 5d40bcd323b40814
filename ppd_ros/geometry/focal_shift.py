"""Camera focal length and depth shift of an affine point map (MoGe's ``recover_focal_shift``).

MoGe predicts points (x, y, z) known up to a shift of z. With the optical centre at the image
centre, a pixel at view-plane position uv sees the point where f·xy/(z + s) = uv. The shift s
minimises Σ|f(s)·xy/(z + s) − uv|², where f(s) is the closed-form best focal for that shift;
then focal = f(s). Focal is relative to half the image diagonal (the view plane spans
[−a/d, a/d] × [−1/d, 1/d], d = √(1 + a²), a = width/height).

The solver is SciPy's MINPACK Levenberg-Marquardt started at s = 0 with ``ftol=1e-3``, as the
released code: that loose tolerance stops a few 1e-3 short of the true minimum, and matching the
released depth maps needs the same stop. ``converged=True`` solves to full precision instead.
"""
from __future__ import annotations

import numpy as np

#: MINPACK's relative cost tolerance in the released code.
RELEASED_FTOL = 1e-3


def view_plane_uv(width: int, height: int, aspect: float | None = None) -> np.ndarray:
    """(height, width, 2) float32 (u, v) at pixel centres of the view-plane rectangle."""
    aspect = width / height if aspect is None else aspect
    diagonal = (1 + aspect ** 2) ** 0.5
    span_u, span_v = aspect / diagonal, 1 / diagonal
    u = np.linspace(-span_u * (width - 1) / width, span_u * (width - 1) / width, width, dtype=np.float32)
    v = np.linspace(-span_v * (height - 1) / height, span_v * (height - 1) / height, height, dtype=np.float32)
    return np.stack(np.meshgrid(u, v, indexing='xy'), axis=-1)


def _projected(xy: np.ndarray, z: np.ndarray, shift) -> np.ndarray:
    return xy / (z + shift)[:, None]


def best_focal(uv: np.ndarray, xy: np.ndarray, z: np.ndarray, shift) -> float:
    """Closed-form least-squares focal for a given shift."""
    proj = _projected(xy, z, shift)
    return (proj * uv).sum() / np.square(proj).sum()


def solve_focal_shift(uv: np.ndarray, points: np.ndarray, converged: bool = False) -> tuple[float, float]:
    """(focal, shift) for view-plane positions uv (N, 2) and affine points (N, 3), float32.

    The shift is rounded to float32 and the focal evaluated at it in float32, as released."""
    from scipy.optimize import least_squares
    uv = np.asarray(uv).reshape(-1, 2)
    xy, z = np.asarray(points)[..., :2].reshape(-1, 2), np.asarray(points)[..., 2].reshape(-1)

    def residuals(shift):
        return (best_focal(uv, xy, z, shift) * _projected(xy, z, shift) - uv).ravel()

    options = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15) if converged else dict(ftol=RELEASED_FTOL)
    shift = np.float32(least_squares(residuals, x0=0, method='lm', **options).x.squeeze())
    return float(best_focal(uv, xy, z, shift)), float(shift)


__all__ = ['RELEASED_FTOL', 'view_plane_uv', 'best_focal', 'solve_focal_shift']
