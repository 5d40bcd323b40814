"""ppd-demo's snapshot: input | depth with a colour bar | the point cloud rendered from a virtual
camera beside the real one, with the real camera's axes, as one PNG (the first picture a user
sees, so it explains itself: titles above the panels, metres where a scale is known)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ppd_ros.geometry.colorize import colorize_depth, depth_range


def look_at(position, target) -> np.ndarray:
    """R (3×3, columns = camera x, y, z in the optical frame of the data) of a camera at
    `position` looking at `target`, image y pointing as close to +y (down) as possible."""
    z = np.asarray(target, float) - np.asarray(position, float)
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    if np.linalg.norm(x) < 1e-9:  # looking straight up or down
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def side_view_pose(points: np.ndarray, yaw_deg: float = 35.0, pitch_deg: float = 20.0,
                   pull_back: float = 1.5):
    """(R, position): a virtual camera orbiting the cloud's median point, starting from the real
    camera (origin) moved `pull_back` times farther away, turned by yaw about the vertical and
    raised by pitch."""
    target = np.median(points, axis=0)
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    offset = -target * pull_back  # from the target back to (beyond) the real camera
    rot_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]])
    position = target + rot_x @ rot_y @ offset
    return look_at(position, target), position


def render_point_cloud(points: np.ndarray, colors: np.ndarray, width: int, height: int,
                       focal: float, rotation: np.ndarray, position, splat: int = 2,
                       background=(32, 32, 32)) -> np.ndarray:
    """(height, width, 3) uint8 RGB view of coloured points from a pinhole camera (R, position):
    perspective projection, `splat`×`splat` pixel squares, nearest point wins (z-buffer)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = background
    keep = np.isfinite(points).all(axis=1)
    cam = (points[keep] - np.asarray(position, float)) @ np.asarray(rotation, float)  # R^T (p − c)
    colors = colors[keep]
    front = cam[:, 2] > 1e-3
    cam, colors = cam[front], colors[front]
    if cam.shape[0] == 0:
        return image
    u = np.floor(focal * cam[:, 0] / cam[:, 2] + (width - 1) / 2.0 + 0.5).astype(np.int64)
    v = np.floor(focal * cam[:, 1] / cam[:, 2] + (height - 1) / 2.0 + 0.5).astype(np.int64)
    offsets = [(du, dv) for du in range(splat) for dv in range(splat)]
    u = np.concatenate([u + du for du, _ in offsets])
    v = np.concatenate([v + dv for _, dv in offsets])
    z = np.tile(cam[:, 2], len(offsets))
    rgb = np.tile(colors, (len(offsets), 1))
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    pixel, z, rgb = (v * width + u)[inside], z[inside], rgb[inside]
    order = np.lexsort((z, pixel))  # by pixel, nearest first
    first = np.ones(order.size, dtype=bool)
    first[1:] = pixel[order[1:]] != pixel[order[:-1]]
    winners = order[first]
    image.reshape(-1, 3)[pixel[winners]] = rgb[winners]
    return image


TITLE_HEIGHT = 20   # a strip above each panel: titles never cover the data
BAR_WIDTH = 58      # the colour bar beside the depth panel
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _GREY = (255, 255, 255), (160, 160, 160)


def nice_step(span: float, count: int = 4) -> float:
    """A 1-2-5 step that cuts `span` into about `count` intervals (tick spacing, axis length)."""
    raw = max(span, 1e-9) / count
    power = 10.0 ** np.floor(np.log10(raw))
    return float(next(m for m in (1, 2, 5, 10) if m * power >= raw) * power)


def nice_floor(value: float) -> float:
    """The largest 1-2-5 number not above `value` (a round length for the axes)."""
    power = 10.0 ** np.floor(np.log10(max(value, 1e-9)))
    return float(max(m for m in (1, 2, 5) if m * power <= max(value, power)) * power)


def _text(image, text, org, color=_WHITE, scale=0.4) -> None:
    cv2.putText(image, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    strip = np.full((TITLE_HEIGHT, panel.shape[1], 3), 24, np.uint8)
    _text(strip, title, (4, 14))
    return np.vstack([strip, panel])


def depth_panel(z: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, float]:
    """(BGR panel at width×height, lo, hi): the cloud's depth (z, metres) coloured over its 2..98 %
    range, near red — the same colours as the bar beside it."""
    lo, hi = depth_range(z)
    if hi <= lo:
        hi = lo + 1e-6
    bgr = colorize_depth(z, 'fixed', lo, hi)
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_NEAREST), lo, hi


def colour_bar(height: int, lo: float, hi: float, metric: bool) -> np.ndarray:
    """BGR strip: the colour map from far (top) to near (bottom), ticked in metres, or marked
    far/near when the scale is only assumed (relative depth: the metres mean nothing)."""
    strip = np.full((height, BAR_WIDTH, 3), 24, np.uint8)
    top, bottom, left, right = 6, height - 6, 4, 14
    if bottom - top < 4:
        return strip
    values = np.linspace(hi, lo, bottom - top, dtype=np.float32).reshape(-1, 1)
    strip[top:bottom, left:right] = colorize_depth(values, 'fixed', lo, hi)
    if not metric:
        _text(strip, 'far', (right + 3, top + 9), scale=0.35)
        _text(strip, 'near', (right + 3, bottom), scale=0.35)
        return strip
    step = nice_step(hi - lo)
    digits = max(0, -int(np.floor(np.log10(step))))
    for tick in np.arange(np.ceil(lo / step) * step, hi + 1e-9, step):
        y = int(round(top + (hi - tick) / (hi - lo) * (bottom - top - 1)))
        cv2.line(strip, (right, y), (right + 3, y), _WHITE, 1)
        _text(strip, f'{tick:.{digits}f}', (right + 5, min(max(y + 4, 10), height - 2)), scale=0.35)
    return strip


def project(points, focal: float, width: int, height: int, rotation, position):
    """Pixel (u, v) of 3-D points in the view of render_point_cloud's camera; None behind it."""
    cam = (np.asarray(points, float).reshape(-1, 3) - np.asarray(position, float)) @ np.asarray(rotation, float)
    return [None if c[2] <= 1e-3 else (int(round(focal * c[0] / c[2] + (width - 1) / 2.0)),
                                       int(round(focal * c[1] / c[2] + (height - 1) / 2.0))) for c in cam]


def draw_axes(image: np.ndarray, focal: float, rotation, position, anchor, length: float, unit: str) -> None:
    """The real camera's axes (x red, y green, z blue; `length` long) drawn at `anchor`, the middle
    of the cloud, and a legend giving their length: the scale of the cloud view."""
    height, width = image.shape[:2]
    ends = project(np.asarray(anchor, float) + np.vstack([np.zeros(3), np.eye(3) * length]), focal, width, height,
                   rotation, position)
    origin = ends[0]
    if origin is not None:
        for end, name, colour in zip(ends[1:], 'xyz', ((255, 60, 60), (60, 220, 60), (80, 120, 255))):
            if end is not None:
                cv2.line(image, origin, end, colour, 2, cv2.LINE_AA)
                _text(image, name, (end[0] + 2, end[1] - 2), colour, 0.35)
    _text(image, f'axes {length:g} {unit} (camera x y z)', (4, height - 5), _WHITE, 0.35)


def snapshot_image(rgb: np.ndarray, points: np.ndarray, colors: np.ndarray, focal: float, label: str = '',
                   cloud_title: str = 'depth/points', metric: bool = False) -> np.ndarray:
    """BGR picture: input | depth with its colour bar | the cloud from a virtual camera beside the
    real one, with the real camera's axes. Each panel is the input's size under a title strip.
    `metric`: the cloud is in true metres (a fused or MoGe-2 scale); else the bar is relative."""
    height, width = rgb.shape[:2]
    z = np.asarray(points, np.float32)[..., 2]
    depth, lo, hi = depth_panel(z, width, height)
    valid = np.isfinite(points.reshape(-1, 3)).all(axis=1)
    if valid.any():
        rotation, position = side_view_pose(points.reshape(-1, 3)[valid])
        cloud = render_point_cloud(points, colors, width, height, focal, rotation, position)
        draw_axes(cloud, focal, rotation, position, np.median(points.reshape(-1, 3)[valid], axis=0),
                  nice_floor((hi - lo) / 5), 'm' if metric else 'm, assumed')
    else:
        cloud = np.full((height, width, 3), 32, np.uint8)
    depth_title = 'depth, m' if metric else 'depth, relative'
    panels = [_titled(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 'input'),
              _titled(np.hstack([depth, colour_bar(height, lo, hi, metric)]), depth_title),
              _titled(cv2.cvtColor(cloud, cv2.COLOR_RGB2BGR), f'{cloud_title}, side view')]
    row = np.hstack(panels)
    if label:
        banner = np.zeros((22, row.shape[1], 3), np.uint8)
        cv2.putText(banner, label, (6, 16), _FONT, 0.45, (0, 0, 255), 1, cv2.LINE_AA)
        row = np.vstack([banner, row])
    return row


# ------------------------------------------------------------------------------ command line

def write_snapshot(path: Path, snapshot, focal: float, label: str, metric: bool = False) -> None:
    """The snapshot of (image, colorized, cloud, cloud topic) messages; `metric`: depth_node's
    metres are true ones (MoGe-2); metric/points (fusion) always are."""
    from .cloud import unpack_rgb
    from .image_codec import image_to_rgb
    image_msg, _colorized_msg, cloud_msg, cloud_topic = snapshot
    rgb = image_to_rgb(image_msg)
    raw = np.frombuffer(bytes(cloud_msg.data), np.float32).reshape(cloud_msg.height, cloud_msg.width, -1)
    points = raw[..., :3]
    colors = unpack_rgb(raw[..., 3]) if raw.shape[-1] > 3 else np.full(points.shape, 200, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = snapshot_image(rgb, points, colors, focal, label, cloud_title=cloud_topic,
                             metric=metric or cloud_topic.startswith('metric/'))
    if not cv2.imwrite(str(path), picture):
        raise OSError(f'cannot write {path}')
