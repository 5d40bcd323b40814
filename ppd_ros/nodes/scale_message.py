"""The scale a node publishes, as ppd_ros/msg/DepthScale: one function for depth_node (and ppd-bag)
and scale_fusion_node.

depth_node publishes the frame pipeline's ScaleInUse (MoGe-2's tracked scale, source `model`, or
the assumed range near..far with the reason: pipeline.scale). scale_fusion_node publishes its
sensor's TrackedScale (source `sensor`) and, while that is not usable, depth_node's model scale for
the same stamp (a DepthScale it received), with the reason. A TrackedScale becomes the message's
fields through ScaleInUse.from_tracked, the rule the pipeline uses.

A scale that comes in over a topic is checked with `scale_problem` before it is used: a NaN,
infinite, non-positive or absurdly large (a, b) would turn every metric pixel into garbage.
"""
from __future__ import annotations

import math

from ppd_ros.geometry.scale.fit import FitStatus, TrackedScale
from ppd_ros.msg import DepthScale
from ppd_ros.pipeline.scale import ScaleInUse

USABLE = (FitStatus.OK, FitStatus.HELD)  # metric depth may be produced with (a, b)
MAX_SCALE_DEPTH_M = 1e5  # relative 1 (the scene's 98 % depth) farther than 100 km: not a camera's scene


def scale_problem(a: float, b: float) -> str | None:
    """Why log(d + 1) = a·r + b cannot be a scene's scale, or None: a and b finite, a > 0, and the
    scene's far end (r = 1) between 0 and MAX_SCALE_DEPTH_M metres."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return f'a={a:g} b={b:g} is not finite'
    if not a > 0:
        return f'a={a:g} must be positive (larger relative depth is farther)'
    far = a + b  # log(d + 1) at r = 1
    if not 0 < far <= math.log1p(MAX_SCALE_DEPTH_M):
        metres = f'{math.expm1(far):.3g}' if far < 700 else 'an overflowing'
        return f'a={a:g} b={b:g} puts relative depth 1 at {metres} m, outside (0, {MAX_SCALE_DEPTH_M:g}] m'
    return None


def depth_scale_message(header, scale, source: str | None = None, message: str | None = None, *,
                        fallback=None, fallback_source: str | None = None, why: str | None = None) -> DepthScale:
    """ppd_ros/DepthScale for `header` of `scale`: a TrackedScale, or anything with DepthScale's
    fields (the pipeline's ScaleInUse, a received DepthScale). `source` and `message` replace its
    own when given (a TrackedScale has no source: give one).

    With `fallback` (a ScaleInUse or DepthScale), a `scale` that is not usable (status neither OK
    nor HELD) gives way to it, with `fallback_source` and `why` replacing its source and message.
    """
    if fallback is not None and int(scale.status) not in USABLE:
        scale, source, message = fallback, fallback_source, why
    if isinstance(scale, TrackedScale):
        scale = ScaleInUse.from_tracked(scale, source or '')
    return DepthScale(header=header, a=float(scale.a), b=float(scale.b), age=float(scale.age),
                      inlier_ratio=float(scale.inlier_ratio), num_points=int(scale.num_points),
                      residual=float(scale.residual), source=scale.source if source is None else source,
                      status=int(scale.status), message=scale.message if message is None else message)


__all__ = ['MAX_SCALE_DEPTH_M', 'USABLE', 'depth_scale_message', 'scale_problem']
