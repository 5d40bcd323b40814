"""The scale a node publishes, as ppd_ros/msg/DepthScale: one function for depth_node (and ppd-bag)
and scale_fusion_node.

depth_node publishes the frame pipeline's ScaleInUse (MoGe-2's tracked scale, source `model`, or
the assumed range near..far with the reason: pipeline.scale). scale_fusion_node publishes its
sensor's TrackedScale (source `sensor`) and, while that is not usable, depth_node's model scale for
the same stamp (a DepthScale it received), with the reason. A TrackedScale becomes the message's
fields through ScaleInUse.from_tracked, the rule the pipeline uses.
"""
from __future__ import annotations

from ppd_ros.geometry.scale.fit import FitStatus, TrackedScale
from ppd_ros.msg import DepthScale
from ppd_ros.pipeline.scale import ScaleInUse

USABLE = (FitStatus.OK, FitStatus.HELD)  # metric depth may be produced with (a, b)


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


__all__ = ['USABLE', 'depth_scale_message']
