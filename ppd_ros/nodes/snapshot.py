"""ppd-demo's snapshot: input | colorized depth | the point cloud rendered from a virtual camera
beside the real one, as one PNG (the first picture a user sees)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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


def snapshot_image(rgb: np.ndarray, colorized_bgr: np.ndarray, points: np.ndarray, colors: np.ndarray,
                   focal: float, label: str = '', cloud_title: str = 'depth/points') -> np.ndarray:
    """BGR panel row: input | colorized depth | rendered cloud, each at the input's height."""
    height, width = rgb.shape[:2]
    depth_panel = cv2.resize(colorized_bgr, (width, height), interpolation=cv2.INTER_NEAREST)
    valid = np.isfinite(points.reshape(-1, 3)).all(axis=1)
    if valid.any():
        rotation, position = side_view_pose(points.reshape(-1, 3)[valid])
        cloud = render_point_cloud(points, colors, width, height, focal, rotation, position)
    else:
        cloud = np.full((height, width, 3), 32, np.uint8)
    panels = [cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), depth_panel, cv2.cvtColor(cloud, cv2.COLOR_RGB2BGR)]
    for panel, title in zip(panels, ('input', 'depth/colorized', f'{cloud_title} (side view)')):
        cv2.putText(panel, title, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    row = np.hstack(panels)
    if label:
        banner = np.zeros((22, row.shape[1], 3), np.uint8)
        cv2.putText(banner, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1, cv2.LINE_AA)
        row = np.vstack([banner, row])
    return row


# ------------------------------------------------------------------------------ command line

def write_snapshot(path: Path, snapshot, focal: float, label: str) -> None:
    from .cloud import unpack_rgb
    from .image_codec import image_to_rgb
    image_msg, colorized_msg, cloud_msg, cloud_topic = snapshot
    rgb = image_to_rgb(image_msg)
    colorized = cv2.cvtColor(image_to_rgb(colorized_msg), cv2.COLOR_RGB2BGR)
    raw = np.frombuffer(bytes(cloud_msg.data), np.float32).reshape(cloud_msg.height, cloud_msg.width, -1)
    points = raw[..., :3]
    colors = unpack_rgb(raw[..., 3]) if raw.shape[-1] > 3 else np.full(points.shape, 200, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = snapshot_image(rgb, colorized, points, colors, focal, label, cloud_title=cloud_topic)
    if not cv2.imwrite(str(path), picture):
        raise OSError(f'cannot write {path}')
