"""Materials: solid (3-D) procedural textures and Lambertian shading, vectorised over hit points.

Textures are evaluated at the world hit point, so they stick to surfaces as the camera moves.
Each pattern is band-limited by the pixel footprint (range · pixel angle / |cos incidence|): detail
finer than a pixel fades to its mean instead of aliasing, which keeps distant floors moiré-free
without supersampling every pixel (only object boundaries are supersampled, see render.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ('noise', 'stripes', 'checker', 'gradient')
LATTICE = 32  # value-noise lattice period (cells)


@dataclass(frozen=True)
class Material:
    pattern: str                 # one of PATTERNS
    color1: tuple                # linear RGB in [0, 1]
    color2: tuple
    scale: float = 0.5           # pattern period in metres
    axis: tuple = (1.0, 0.0, 0.0)  # stripes / gradient direction (world)
    grain: float = 0.15          # amplitude of the fine noise on top of every pattern
    phase: float = 0.0           # offsets the noise lattice so equal materials still differ

    def __post_init__(self):
        if self.pattern not in PATTERNS:
            raise ValueError(f'unknown pattern {self.pattern!r}; expected one of {PATTERNS}')
        if not self.scale > 0:
            raise ValueError(f'pattern scale must be > 0, got {self.scale}')


class ValueNoise:
    """Smooth 3-D value noise in [0, 1] from a seeded random lattice (period LATTICE cells).

    The lattice is stored padded by one cell per axis (wrapped), so the 8 corners of a cell are
    fixed offsets from one base index.
    """

    def __init__(self, rng: np.random.Generator):
        lattice = rng.random((LATTICE,) * 3, dtype=np.float32)
        self.table = np.pad(lattice, ((0, 1), (0, 1), (0, 1)), mode='wrap').ravel()
        s = LATTICE + 1
        self.offsets = [0, 1, s, s + 1, s * s, s * s + 1, s * s + s, s * s + s + 1]
        self.stride = s

    def __call__(self, x, y, z):
        m, s = LATTICE - 1, self.stride
        fx, fy, fz = np.floor(x), np.floor(y), np.floor(z)
        base = ((fx.astype(np.int64) & m) * s + (fy.astype(np.int64) & m)) * s + (fz.astype(np.int64) & m)
        ux, uy, uz = (x - fx), (y - fy), (z - fz)
        ux, uy, uz = ux * ux * (3 - 2 * ux), uy * uy * (3 - 2 * uy), uz * uz * (3 - 2 * uz)
        c = [self.table[base + o] for o in self.offsets]  # corner (i, j, k) at offsets[4k + 2j + i]
        x00 = c[0] + ux * (c[1] - c[0])
        x10 = c[2] + ux * (c[3] - c[2])
        x01 = c[4] + ux * (c[5] - c[4])
        x11 = c[6] + ux * (c[7] - c[6])
        y0 = x00 + uy * (x10 - x00)
        y1 = x01 + uy * (x11 - x01)
        return y0 + uz * (y1 - y0)


def _fade(period, footprint):
    """Weight of a pattern with this period (m): 1 when well resolved, 0 below ~1 pixel per period."""
    return np.clip(2.0 - 2.0 * footprint / period, 0.0, 1.0)


def _fbm(noise, p, period, footprint, octaves=2):
    """Fractal noise in ~[0, 1], each octave faded by the footprint (skipped when fully faded)."""
    total = np.zeros(p[0].shape, np.float32)
    amplitude, norm = 0.5, 0.0
    for k in range(octaves):
        per = period / (2 ** k)
        w = _fade(per, footprint)
        norm += amplitude
        if w.max(initial=0.0) > 0:
            n = noise(p[0] / per, p[1] / per, p[2] / per)
            total += (w * amplitude) * (n - 0.5)
        amplitude *= 0.5
    return 0.5 + total / norm * 1.6


def _soft_square(phase_sin, period, footprint):
    """A square wave from a sine, edges about one footprint wide; contrast fades when unresolved."""
    sharp = np.clip(period / (np.pi * np.maximum(footprint, 1e-6)), 1.0, 12.0)
    return 0.5 + 0.5 * np.clip(phase_sin * sharp, -1.0, 1.0) * _fade(period, footprint)


def texture(material: Material, noise: ValueNoise, p, n, footprint) -> np.ndarray:
    """Albedo (N, 3) float32 at world points p (3 arrays) with normals n, for the given footprints."""
    p = tuple(np.asarray(c, np.float32) + np.float32(material.phase) for c in p)
    footprint = np.asarray(footprint, np.float32)
    s = material.scale
    grain_octave = True
    if material.pattern == 'noise':
        mix = _fbm(noise, p, s, footprint, octaves=3)
        grain_octave = False  # the noise carries its own fine detail
    elif material.pattern == 'stripes':
        ax = np.asarray(material.axis, np.float32)
        coord = p[0] * ax[0] + p[1] * ax[1] + p[2] * ax[2]
        mix = _soft_square(np.sin(2 * np.pi * coord / s), s, footprint)
    elif material.pattern == 'checker':
        # Tri-planar: use the two world axes across the dominant normal axis.
        dominant = np.argmax(np.abs(np.stack(n)), axis=0)
        u = np.where(dominant == 0, p[1], p[0])
        v = np.where(dominant == 2, p[1], p[2])
        mix = _soft_square(np.sin(2 * np.pi * u / s) * np.sin(2 * np.pi * v / s), s, footprint)
    else:  # gradient
        ax = np.asarray(material.axis, np.float32)
        coord = p[0] * ax[0] + p[1] * ax[1] + p[2] * ax[2]
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * coord / (4 * s))
    mix = np.clip(mix, 0.0, 1.0)
    c1 = np.asarray(material.color1, np.float32)
    c2 = np.asarray(material.color2, np.float32)
    albedo = c1[None, :] + mix[:, None] * (c2 - c1)[None, :]
    if material.grain > 0 and grain_octave:
        grain = _fbm(noise, tuple(c * 7.31 for c in p), 0.6, footprint * 7.31, octaves=1)
        albedo *= (1.0 + material.grain * (grain - 0.5) * 2.0)[:, None]
    return albedo


def lambert(albedo: np.ndarray, n, light_dir: np.ndarray, ambient: float) -> np.ndarray:
    """Lambertian shading with one directional light; n must already face the viewer."""
    light_dir = np.asarray(light_dir, np.float32)
    cos = n[0] * light_dir[0] + n[1] * light_dir[1] + n[2] * light_dir[2]
    intensity = np.float32(ambient) + np.float32(1.0 - ambient) * np.maximum(cos, np.float32(0.0))
    return albedo * intensity.astype(np.float32)[:, None]


def point_light(albedo: np.ndarray, n, p, light_pos, strength: float) -> np.ndarray:
    """Diffuse light of a point lamp (inverse-square falloff) at hit points p: a lamp near the ceiling
    lights the floor and walls more the closer they are to it, a depth cue real rooms have."""
    to = [np.float32(light_pos[i]) - np.asarray(p[i], np.float32) for i in range(3)]
    dist2 = np.maximum(to[0] * to[0] + to[1] * to[1] + to[2] * to[2], np.float32(0.05))
    cos = (n[0] * to[0] + n[1] * to[1] + n[2] * to[2]) / np.sqrt(dist2)
    return albedo * (np.float32(strength) * np.maximum(cos, np.float32(0.0)) / dist2)[:, None]


def haze(rgb: np.ndarray, distance, haze_distance: float, color) -> np.ndarray:
    """Aerial perspective: contrast fades towards the horizon colour as exp(−distance / haze_distance)."""
    keep = np.exp(-np.asarray(distance, np.float32) / np.float32(haze_distance))[:, None]
    return rgb * keep + np.asarray(color, np.float32)[None, :] * (1.0 - keep)


HORIZON_COLOR = (0.80, 0.85, 0.92)


def sky_color(dx, dy, dz, noise: ValueNoise) -> np.ndarray:
    """Blue gradient with soft clouds, from the (any-length) ray direction."""
    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
    ux, uy, uz = (dx / norm).astype(np.float32), (dy / norm).astype(np.float32), (dz / norm).astype(np.float32)
    up = np.clip(uz, 0.0, 1.0)
    horizon = np.array(HORIZON_COLOR, np.float32)
    zenith = np.array([0.25, 0.45, 0.85], np.float32)
    col = horizon[None, :] + (np.sqrt(up)[:, None]) * (zenith - horizon)[None, :]
    cloud = noise(ux * 6.0, uy * 6.0, uz * 6.0 + 3.0)
    cloud = np.clip((cloud - 0.55) * 3.0, 0.0, 1.0) * (up > 0.02)
    return col + cloud[:, None] * (np.float32(0.95) - col)


_GAMMA_LEVELS = 65535
_GAMMA_LUT = np.round((np.arange(_GAMMA_LEVELS + 1) / _GAMMA_LEVELS) ** (1 / 2.2) * 255.0).astype(np.uint8)


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] → 8-bit with a 1/2.2 gamma (through a 16-bit lookup table: no per-pixel pow)."""
    index = (np.clip(linear, 0.0, 1.0) * np.float32(_GAMMA_LEVELS) + np.float32(0.5)).astype(np.int32)
    return _GAMMA_LUT[index]


__all__ = ['PATTERNS', 'HORIZON_COLOR', 'Material', 'ValueNoise', 'texture', 'lambert', 'point_light', 'haze',
           'sky_color', 'to_srgb8']
