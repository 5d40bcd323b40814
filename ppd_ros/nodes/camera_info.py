"""CameraInfo in the nodes: its topic beside the image topic, and the message ↔ geometry adapters.

Topics follow image_transport (CameraSubscriber / getCameraInfoTopic): the CameraInfo of an image
topic is the sibling `camera_info` in the image topic's namespace, and its compressed transport is
`<image topic>/compressed`. So remapping only `image:=/cam/image_raw` makes a node read
`/cam/camera_info` and `/cam/image_raw/compressed`. An explicit remap of the node's `camera_info`
(or `image/compressed`) name still wins over the derived topic.

The geometry itself (which matrix to trust, rectification) lives in ppd_ros.geometry; here
messages only become its inputs.
"""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo

from ppd_ros.geometry.camera import Intrinsics, resized_camera_matrix
from ppd_ros.geometry.rectify import Calibration

COMPRESSED_SUFFIX = '/compressed'


class CameraInfoError(ValueError):
    """A CameraInfo cannot describe its image; the text says why."""


# ------------------------------------------------------------------ topics

def sibling_camera_info(image_topic: str) -> str:
    """image_transport's rule: '/cam/image_raw' → '/cam/camera_info' (fully qualified names)."""
    return image_topic.rsplit('/', 1)[0] + '/camera_info'


def _explicitly_remapped(node, name: str) -> str | None:
    """The remapped topic when a remap rule names `name`, else None."""
    resolved = node.resolve_topic_name(name)
    return resolved if resolved != node.resolve_topic_name(name, only_expand=True) else None


def camera_topics(node, image: str, camera_info: str, transport: str = 'raw') -> tuple[str, str, str]:
    """(topic to subscribe for the image, CameraInfo topic, base image topic), fully qualified.

    `image` and `camera_info` are the node's own names (remappable). The CameraInfo is the
    sibling of the resolved image topic unless `camera_info` itself is remapped; transport
    'compressed' reads `<image>/compressed` unless `image/compressed` is remapped.
    """
    base = node.resolve_topic_name(image)
    info = _explicitly_remapped(node, camera_info) or sibling_camera_info(base)
    if transport == 'raw':
        return base, info, base
    if transport == 'compressed':
        return _explicitly_remapped(node, image + COMPRESSED_SUFFIX) or base + COMPRESSED_SUFFIX, info, base
    raise ValueError(f"image transport must be raw or compressed, got '{transport}'")


def looks_rectified(image_topic: str) -> bool:
    """image_proc's naming: image_rect, image_rect_color (and RealSense image_rect_raw) are
    rectified; image_raw, image, image_color are not."""
    return 'rect' in image_topic.rstrip('/').rsplit('/', 1)[-1]


# ------------------------------------------------------------------ message ↔ geometry

def camera_intrinsics(info: CameraInfo) -> Intrinsics:
    """The pinhole geometry of the image `info` describes (Intrinsics.from_calibration: P, or K
    when P is unset); CameraInfoError when neither is usable."""
    try:
        return Intrinsics.from_calibration(info.k, info.p, info.width, info.height)
    except ValueError as exc:
        raise CameraInfoError(f'CameraInfo {exc}') from None


def calibration_of(info: CameraInfo) -> Calibration:
    return Calibration.of(info.width, info.height, info.distortion_model, info.d, info.k, info.r, info.p)


def rectified_camera_info(info: CameraInfo) -> CameraInfo:
    """The CameraInfo of `info`'s image after rectification: no distortion (D zero), K = P's 3×3,
    R = I, P kept (or [K | 0] when it was unset) — true for any consumer, K- or P-based."""
    new_k = camera_intrinsics(info).K
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
    if not p.any():
        p = np.hstack([new_k, np.zeros((3, 1))])
    out = copy_camera_info(info)
    out.distortion_model = 'plumb_bob'
    out.d = [0.0] * 5
    out.k = new_k.ravel().tolist()
    out.r = np.eye(3).ravel().tolist()
    out.p = p.ravel().tolist()
    return out


def copy_camera_info(info: CameraInfo, header=None) -> CameraInfo:
    out = CameraInfo()
    for field in info.get_fields_and_field_types():
        setattr(out, field, getattr(info, field))
    out.d = list(info.d)
    if header is not None:
        out.header = header
    return out


def scaled_camera_info(info: CameraInfo, width: int, height: int, header) -> CameraInfo:
    """CameraInfo of the same camera resampled to width×height: K and P scaled per axis with the
    pixel-centre rule of geometry.camera (resized_camera_matrix, as Intrinsics.scaled); D and R
    unchanged."""
    sx, sy = width / info.width, height / info.height
    k = resized_camera_matrix(info.k, sx, sy)
    p = resized_camera_matrix(info.p, sx, sy)
    out = CameraInfo(header=header, width=int(width), height=int(height),
                     distortion_model=info.distortion_model, d=list(info.d), r=info.r,
                     k=k.ravel().tolist(), p=p.ravel().tolist())
    roi = info.roi
    if roi.width or roi.height or roi.x_offset or roi.y_offset:
        out.roi.x_offset, out.roi.width = int(round(roi.x_offset * sx)), int(round(roi.width * sx))
        out.roi.y_offset, out.roi.height = int(round(roi.y_offset * sy)), int(round(roi.height * sy))
        out.roi.do_rectify = roi.do_rectify
    return out
