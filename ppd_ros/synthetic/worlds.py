"""Seeded procedural worlds: a furnished room ('indoor') or a street-like scene ('outdoor').

Indoor: a closed box room (far wall 4.5–9.5 m ahead, walls/floor/ceiling each textured), boxes,
tables on thin legs, spheres, bins/columns, floor lamps (thin poles) and cables (wires); depths
~0.5–10 m, every pixel valid.
Outdoor: ground plane, a horizon wall (an open cylinder of radius 40–75 m around the camera: hills /
tree line), buildings, cars, trees, street-light poles with wires between them, a fence of thin
posts, boulders; depths ~1–80 m; rays above the horizon wall see the sky (invalid depth).

Depth cues real scenes have: a floor and (outdoor) a horizon, Lambertian shading from a sun /
window light, indoors a ceiling lamp whose light falls off with the inverse square of distance,
outdoors aerial perspective (haze towards the horizon colour), and object sizes drawn independently
of their distance (size priors), on solid textures that stay perspective-consistent.

Objects are placed mostly inside a ±40° cone ahead of the camera, at log-uniform distances, and
kept at least `clearance` (+ a margin) away from the camera so trajectories never enter them.
"""
from __future__ import annotations

import colorsys

import numpy as np

from .primitives import Box, Cylinder, Plane, Sphere, rotation_z
from .pose import camera_pose
from .scene import Scene
from .shading import Material

KINDS = ('indoor', 'outdoor')
Z = np.array([0.0, 0.0, 1.0])


class _Builder:
    def __init__(self, rng: np.random.Generator, camera: np.ndarray, clearance: float, min_gap: float):
        self.rng = rng
        self.camera = camera
        self.clearance = clearance
        self.min_gap = min_gap
        self.primitives = []
        self.materials = []

    def color(self, hue=None, sat=(0.15, 0.7), val=(0.25, 0.9)):
        rng = self.rng
        h = rng.uniform(0, 1) if hue is None else (hue + rng.normal(0, 0.03)) % 1.0
        return colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))

    def material(self, pattern=None, color1=None, color2=None, scale=None, axis=None, grain=None) -> int:
        rng = self.rng
        pattern = pattern or str(rng.choice(['noise', 'stripes', 'checker', 'gradient'], p=[0.4, 0.2, 0.2, 0.2]))
        c1 = color1 if color1 is not None else self.color()
        c2 = color2 if color2 is not None else tuple(np.clip(np.asarray(c1) * rng.uniform(0.4, 1.6, 3), 0, 1))
        if axis is None:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
        self.materials.append(Material(pattern, tuple(c1), tuple(c2),
                                       scale=float(scale if scale is not None else rng.uniform(0.08, 0.6)),
                                       axis=tuple(float(a) for a in axis),
                                       grain=float(grain if grain is not None else rng.uniform(0.05, 0.3)),
                                       phase=float(rng.uniform(0, 100))))
        return len(self.materials) - 1

    def clear_of_camera(self, prim) -> bool:
        return prim.distance(self.camera) >= self.min_gap + self.clearance

    def add(self, *prims) -> bool:
        """Add a group of primitives (one object) only if all of it stays clear of the camera."""
        if not all(self.clear_of_camera(p) for p in prims):
            return False
        self.primitives.extend(prims)
        return True

    def ground_spot(self, near, far, cone_deg=40.0):
        """(x, y) on the ground: bearing within ±cone of +x, log-uniform distance."""
        rng = self.rng
        bearing = np.radians(rng.uniform(-cone_deg, cone_deg))
        dist = float(np.exp(rng.uniform(np.log(near), np.log(far))))
        return self.camera[0] + dist * np.cos(bearing), self.camera[1] + dist * np.sin(bearing), dist


def _vertical_cylinder(x, y, z0, height, radius, mat, caps=True):
    return Cylinder(center=(x, y, z0 + height / 2), axis=Z, half_length=height / 2, radius=radius,
                    caps=caps, materials=(mat,))


def _segment(p, q, radius, mat):
    """Thin cylinder from p to q (wires, rails, slanted legs)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    return Cylinder(center=(p + q) / 2, axis=q - p, half_length=float(np.linalg.norm(q - p)) / 2,
                    radius=radius, materials=(mat,))


# ----------------------------------------------------------------------------------------- indoor

def _indoor(rng: np.random.Generator, clearance: float):
    far = rng.uniform(4.5, 9.5)
    back = rng.uniform(0.4, 1.2) + clearance
    width = rng.uniform(4.0, 8.0)
    y_mid = rng.uniform(-0.25, 0.25) * (width - 2 * (0.6 + clearance))
    height = rng.uniform(2.5, 3.2)
    cam_h = rng.uniform(1.0, 1.6)
    camera = np.array([0.0, 0.0, cam_h])
    b = _Builder(rng, camera, clearance, min_gap=0.35)

    wall_hue = rng.uniform(0, 1)
    walls = [b.material(pattern=str(rng.choice(['noise', 'gradient', 'stripes'])), color1=b.color(wall_hue, (0.05, 0.4), (0.5, 0.95)),
                        scale=rng.uniform(0.2, 1.2), axis=(0.0, 0.0, 1.0) if rng.random() < 0.5 else None)
             for _ in range(2)]
    floor_pattern = str(rng.choice(['checker', 'stripes', 'noise']))
    floor = b.material(pattern=floor_pattern, color1=b.color(None, (0.1, 0.6), (0.2, 0.7)),
                       scale=rng.uniform(0.25, 0.8) if floor_pattern != 'stripes' else rng.uniform(0.12, 0.3),
                       axis=(1.0, 0.0, 0.0) if rng.random() < 0.5 else (0.0, 1.0, 0.0))
    ceiling = b.material(pattern='noise', color1=b.color(None, (0.0, 0.1), (0.75, 0.95)), scale=1.0, grain=0.05)
    # faces: 0 back (−x), 1 far (+x), 2 right (−y), 3 left (+y), 4 floor, 5 ceiling
    room = Box(center=((far - back) / 2, y_mid, height / 2), half=((far + back) / 2, width / 2, height / 2),
               materials=(walls[0], walls[1], walls[0], walls[1], floor, ceiling))
    b.primitives.append(room)
    x_max, y_lo, y_hi = far, y_mid - width / 2, y_mid + width / 2

    def inside(x, y, r):
        return x + r < x_max - 0.02 and y_lo + r + 0.02 < y < y_hi - r - 0.02 and x - r > -back

    makers = [_box, _table, _ball, _bin, _lamp, _cable]
    weights = np.array([0.25, 0.17, 0.15, 0.15, 0.14, 0.14])
    count = int(rng.integers(6, 12))
    placed = tries = 0
    while placed < count and tries < count * 20:
        tries += 1
        maker = makers[rng.choice(len(makers), p=weights)]
        x, y, dist = b.ground_spot(0.7 + clearance, far - 0.2)
        if maker(b, x, y, dist, inside, height, (y_lo, y_hi)):
            placed += 1
    pose = camera_pose(camera, yaw=np.radians(rng.uniform(-15, 15)), pitch=np.radians(rng.uniform(-20, 2)),
                       roll=np.radians(rng.uniform(-2, 2)))
    light = _light(rng, (35, 80))
    ambient, noise_seed = float(rng.uniform(0.3, 0.45)), int(rng.integers(2**31))
    # A ceiling lamp (inverse-square falloff), drawn last so the room itself does not depend on it.
    lamp = ((rng.uniform(0.3, 0.8) * far, y_mid + rng.uniform(-0.3, 0.3) * width, height - 0.15),
            float(rng.uniform(1.0, 2.5)))
    return Scene(b.primitives, b.materials, light_dir=light, ambient=ambient - 0.1, lamp=lamp,
                 has_sky=False, max_depth=np.inf, kind='indoor', noise_seed=noise_seed), pose


def _box(b, x, y, dist, inside, room_h, span):
    rng = b.rng
    # Real-world size prior: how big a box is does not depend on how far away it stands.
    half = np.array([rng.uniform(0.15, 0.7), rng.uniform(0.15, 0.6), rng.uniform(0.15, 1.0)]) * 0.8
    r = float(np.hypot(half[0], half[1]))
    if not inside(x, y, r):
        return False
    on_floor = rng.random() < 0.8
    z = half[2] if on_floor else rng.uniform(half[2] + 0.3, room_h - half[2] - 0.1)
    return b.add(Box(center=(x, y, z), half=half, rotation=rotation_z(rng.uniform(0, np.pi)), materials=(b.material(),)))


def _table(b, x, y, dist, inside, room_h, span):
    rng = b.rng
    hx, hy = rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.6)
    top_h, thick = rng.uniform(0.68, 0.8), rng.uniform(0.015, 0.03)
    if not inside(x, y, float(np.hypot(hx, hy))):
        return False
    yaw = rng.uniform(0, np.pi)
    R = rotation_z(yaw)
    wood = b.material(pattern=str(rng.choice(['stripes', 'noise'])), color1=b.color(0.08, (0.3, 0.7), (0.25, 0.7)),
                      scale=rng.uniform(0.03, 0.12))
    legs_mat = b.material(pattern='noise', color1=b.color(None, (0.0, 0.3), (0.1, 0.5)), scale=0.2)
    parts = [Box(center=(x, y, top_h - thick), half=(hx, hy, thick), rotation=R, materials=(wood,))]
    leg_r = rng.uniform(0.012, 0.03)
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly, _ = R @ np.array([sx * (hx - 0.06), sy * (hy - 0.06), 0.0])
            parts.append(_vertical_cylinder(x + lx, y + ly, 0.0, top_h - 2 * thick, leg_r, legs_mat))
    if rng.random() < 0.6:  # something on the table
        r = rng.uniform(0.05, 0.15)
        parts.append(Sphere(center=(x + rng.uniform(-0.5, 0.5) * hx, y + rng.uniform(-0.5, 0.5) * hy, top_h + r),
                            radius=r, materials=(b.material(),)))
    return b.add(*parts)


def _ball(b, x, y, dist, inside, room_h, span):
    rng = b.rng
    r = rng.uniform(0.1, 0.35)  # size independent of distance (a size prior)
    if not inside(x, y, r):
        return False
    z = r if rng.random() < 0.6 else rng.uniform(r + 0.3, room_h - r - 0.2)
    return b.add(Sphere(center=(x, y, z), radius=r, materials=(b.material(),)))


def _bin(b, x, y, dist, inside, room_h, span):
    rng = b.rng
    if rng.random() < 0.3:  # column, floor to ceiling
        r, h = rng.uniform(0.1, 0.25), room_h
    else:
        r, h = rng.uniform(0.1, 0.35), rng.uniform(0.3, 1.2)
    if not inside(x, y, r):
        return False
    return b.add(_vertical_cylinder(x, y, 0.0, h, r, b.material(axis=(0.0, 0.0, 1.0))))


def _lamp(b, x, y, dist, inside, room_h, span):
    rng = b.rng
    if not inside(x, y, 0.2):
        return False
    h = rng.uniform(1.3, min(1.9, room_h - 0.4))
    metal = b.material(pattern='noise', color1=b.color(None, (0.0, 0.2), (0.1, 0.6)), scale=0.3, grain=0.05)
    shade_r = rng.uniform(0.12, 0.22)
    return b.add(_vertical_cylinder(x, y, 0.0, 0.02, 0.15, metal),
                 _vertical_cylinder(x, y, 0.02, h, rng.uniform(0.01, 0.022), metal),
                 _vertical_cylinder(x, y, h, shade_r * 1.1, shade_r, b.material(pattern='noise', color1=b.color(0.12, (0.1, 0.5), (0.7, 1.0)))))


def _cable(b, x, y, dist, inside, room_h, span):
    rng = b.rng
    mat = b.material(pattern='noise', color1=b.color(None, (0.0, 0.4), (0.05, 0.35)), scale=0.5, grain=0.05)
    r = rng.uniform(0.003, 0.008)
    if rng.random() < 0.5:  # a cable across the room under the ceiling, slightly slanted
        z0, z1 = room_h - rng.uniform(0.1, 0.6), room_h - rng.uniform(0.1, 0.6)
        return b.add(_segment((x, span[0] + 0.01, z0), (x + rng.uniform(-1, 1), span[1] - 0.01, z1), r, mat))
    if not inside(x, y, 0.2):  # a pendant: wire from the ceiling and a bulb
        return False
    bulb = rng.uniform(0.05, 0.14)
    z = rng.uniform(1.6, room_h - 0.4)
    return b.add(_segment((x, y, room_h), (x, y, z + bulb * 0.5), r, mat),
                 Sphere(center=(x, y, z), radius=bulb, materials=(b.material(pattern='noise', color1=(0.95, 0.9, 0.7)),)))


# ---------------------------------------------------------------------------------------- outdoor

def _outdoor(rng: np.random.Generator, clearance: float):
    cam_h = rng.uniform(1.2, 2.0)
    camera = np.array([0.0, 0.0, cam_h])
    b = _Builder(rng, camera, clearance, min_gap=0.6)
    ground_kind = str(rng.choice(['asphalt', 'grass', 'tiles']))
    if ground_kind == 'asphalt':
        ground = b.material(pattern='noise', color1=b.color(None, (0.0, 0.1), (0.2, 0.4)), scale=rng.uniform(0.5, 2.0))
    elif ground_kind == 'grass':
        ground = b.material(pattern='noise', color1=b.color(0.27, (0.4, 0.7), (0.2, 0.5)), scale=rng.uniform(0.3, 1.5))
    else:
        ground = b.material(pattern='checker', color1=b.color(None, (0.05, 0.3), (0.3, 0.7)), scale=rng.uniform(0.4, 1.2))
    b.primitives.append(Plane(normal=Z, offset=0.0, materials=(ground,)))
    radius = rng.uniform(40.0, 75.0)
    wall_h = rng.uniform(5.0, 25.0)
    horizon = b.material(pattern='noise', color1=b.color(rng.uniform(0.2, 0.4), (0.2, 0.6), (0.15, 0.45)),
                         scale=rng.uniform(2.0, 8.0))
    b.primitives.append(Cylinder(center=(0.0, 0.0, wall_h / 2), axis=Z, half_length=wall_h / 2, radius=radius,
                                 caps=False, materials=(horizon,)))
    reach = radius - 2.0

    for _ in range(int(rng.integers(2, 7))):  # buildings
        for _ in range(10):
            half = np.array([rng.uniform(3, 10), rng.uniform(3, 10), rng.uniform(3, 12)])
            x, y, dist = b.ground_spot(15.0, reach - 12.0, cone_deg=55)
            facade = b.material(pattern=str(rng.choice(['stripes', 'checker', 'noise'])),
                                color1=b.color(None, (0.05, 0.4), (0.3, 0.85)), scale=rng.uniform(1.0, 3.5),
                                axis=(0.0, 0.0, 1.0) if rng.random() < 0.6 else (1.0, 0.0, 0.0))
            if np.hypot(x, y) + np.linalg.norm(half[:2]) < radius - 1 and b.add(
                    Box(center=(x, y, half[2]), half=half, rotation=rotation_z(rng.uniform(0, np.pi)), materials=(facade,))):
                break
    for _ in range(int(rng.integers(0, 4))):  # cars
        x, y, _ = b.ground_spot(4.0, 30.0)
        R = rotation_z(rng.uniform(0, np.pi))
        paint = b.material(pattern='gradient', color1=b.color(None, (0.4, 0.9), (0.3, 0.9)), scale=2.0, axis=(0.0, 0.0, 1.0))
        glass = b.material(pattern='noise', color1=(0.1, 0.12, 0.15), scale=0.5, grain=0.05)
        b.add(Box(center=(x, y, 0.75), half=(2.1, 0.9, 0.45), rotation=R, materials=(paint,)),
              Box(center=(x, y, 1.5), half=(1.1, 0.8, 0.32), rotation=R, materials=(glass,)))
    for _ in range(int(rng.integers(1, 5))):  # trees
        x, y, _ = b.ground_spot(5.0, 40.0, cone_deg=50)
        trunk_h, crown = rng.uniform(2.0, 4.0), rng.uniform(1.2, 3.0)
        bark = b.material(pattern='stripes', color1=b.color(0.07, (0.3, 0.6), (0.15, 0.4)), scale=0.15, axis=(0.0, 0.0, 1.0))
        leaves = b.material(pattern='noise', color1=b.color(0.3, (0.4, 0.8), (0.15, 0.55)), scale=rng.uniform(0.3, 1.0))
        b.add(_vertical_cylinder(x, y, 0.0, trunk_h + crown * 0.5, rng.uniform(0.12, 0.35), bark),
              Sphere(center=(x, y, trunk_h + crown), radius=crown, materials=(leaves,)))
    _street_lights(b, rng)
    if rng.random() < 0.5:
        _fence(b, rng)
    for _ in range(int(rng.integers(1, 5))):  # boulders / bollards, some close
        r = rng.uniform(0.25, 0.8)
        x, y, _ = b.ground_spot(1.5 + r, 15.0)
        b.add(Sphere(center=(x, y, r * 0.8), radius=r, materials=(b.material(),)))
    if rng.random() < 0.7:  # a sign post close to the camera
        x, y, _ = b.ground_spot(1.2, 3.5, cone_deg=30)
        post = b.material(pattern='noise', color1=b.color(None, (0.0, 0.2), (0.3, 0.7)), scale=0.3)
        b.add(_vertical_cylinder(x, y, 0.0, 2.3, rng.uniform(0.025, 0.05), post),
              Box(center=(x, y, 2.55), half=(0.03, 0.35, 0.25), rotation=rotation_z(rng.uniform(-0.5, 0.5)),
                  materials=(b.material(pattern='stripes', scale=0.2),)))
    pose = camera_pose(camera, yaw=np.radians(rng.uniform(-10, 10)), pitch=np.radians(rng.uniform(-12, 3)),
                       roll=np.radians(rng.uniform(-2, 2)))
    light = _light(rng, (25, 70))
    ambient, noise_seed = float(rng.uniform(0.3, 0.45)), int(rng.integers(2**31))
    return Scene(b.primitives, b.materials, light_dir=light, ambient=ambient, has_sky=True, max_depth=80.0,
                 kind='outdoor', noise_seed=noise_seed, haze_distance=float(rng.uniform(150.0, 500.0))), pose


def _street_lights(b, rng):
    """A row of poles beside the view with two wires between consecutive pole tops."""
    side = rng.choice([-1.0, 1.0]) * rng.uniform(2.5, 8.0)
    start, spacing = rng.uniform(3.0, 12.0), rng.uniform(8.0, 15.0)
    height = rng.uniform(6.0, 9.0)
    metal = b.material(pattern='noise', color1=b.color(None, (0.0, 0.15), (0.25, 0.6)), scale=0.4, grain=0.05)
    wire_mat = b.material(pattern='noise', color1=(0.05, 0.05, 0.06), scale=1.0, grain=0.02)
    tops = []
    for i in range(int(rng.integers(2, 5))):
        x = start + i * spacing
        pole = _vertical_cylinder(x, side, 0.0, height, rng.uniform(0.07, 0.14), metal)
        if b.add(pole):
            tops.append((x, side))
    for (x0, y0), (x1, y1) in zip(tops[:-1], tops[1:]):
        for dz in (-0.3, -0.8):
            b.add(_segment((x0, y0, height + dz), (x1, y1, height + dz + rng.uniform(-0.1, 0.1)),
                           rng.uniform(0.008, 0.015), wire_mat))


def _fence(b, rng):
    """Thin posts with two rails, across the view."""
    x0 = rng.uniform(3.0, 10.0)
    y_start, length = rng.uniform(-6.0, -1.0), rng.uniform(4.0, 10.0)
    gap = rng.uniform(0.3, 0.7)
    wood = b.material(pattern='stripes', color1=b.color(0.08, (0.2, 0.5), (0.3, 0.7)), scale=0.1, axis=(0.0, 0.0, 1.0))
    post_h = rng.uniform(0.8, 1.3)
    slope = rng.uniform(-0.3, 0.3)
    parts = []
    for y in np.arange(y_start, y_start + length, gap):
        parts.append(Box(center=(x0 + slope * (y - y_start), y, post_h / 2), half=(0.025, 0.025, post_h / 2), materials=(wood,)))
    y1 = y_start + length
    for z in (post_h * 0.35, post_h * 0.85):
        parts.append(_segment((x0, y_start, z), (x0 + slope * length, y1, z), 0.02, wood))
    b.add(*parts)


def _light(rng, elevation_deg):
    el = np.radians(rng.uniform(*elevation_deg))
    az = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def build_world(rng: np.random.Generator, kind: str = 'indoor', clearance: float = 0.0):
    """(Scene, T_world_cam) for a seeded world; `clearance` (m) keeps objects that far from the camera."""
    if kind == 'indoor':
        return _indoor(rng, float(clearance))
    if kind == 'outdoor':
        return _outdoor(rng, float(clearance))
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


__all__ = ['KINDS', 'build_world']
