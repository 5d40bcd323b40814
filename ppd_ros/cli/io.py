"""File plumbing for the command lines: find images/videos, read them as RGB, write depth outputs.

Kept free of torch and of the model so it can be tested (and reused by other tools) on its own.

Output formats (see `write_png16` for the 16-bit mapping):
- colour PNG: whatever `colorize_depth` gives, written as 8-bit BGR PNG;
- 16-bit PNG: q = round((r − lo) / (hi − lo) · 65535), lo/hi = finite min/max of the relative
  depth r, stored in the PNG as a tEXt chunk (keyword `ppd_depth`, JSON) so `read_png16` inverts it;
- .npy: float32 relative depth, as predicted;
- .ply: binary little-endian, x y z float32 + red green blue uchar per vertex.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ppd_ros.model.image_header import ImageHeaderError, encoded_image_size
from ppd_ros.model.preprocess import DEFAULT_MAX_PIXELS, ImageSizeError, check_image_size

IMAGE_EXTENSIONS = frozenset({'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.pnm'})
VIDEO_EXTENSIONS = frozenset({'.mp4', '.avi', '.mkv', '.mov'})

PNG16_TEXT_KEY = 'ppd_depth'
PNG16_MAX = 65535


class InputError(Exception):
    """A file that cannot be used as input (unreadable, corrupt, unsupported); the message says why."""


@dataclass(frozen=True)
class InputItem:
    """One thing to process. `name` is the output stem relative to the output folder (no extension);
    `kind` is 'image', 'video' or 'unsupported' (then `problem` says why)."""
    path: Path
    name: str
    kind: str
    problem: str = ''


def _kind_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return 'image'
    if ext in VIDEO_EXTENSIONS:
        return 'video'
    return 'unsupported'


def _unsupported_message(path: Path) -> str:
    ext = path.suffix.lower() or '(no extension)'
    supported = ' '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
    return f'unsupported file type {ext} (supported: {supported})'


def discover_inputs(paths, exclude: Path | None = None) -> list[InputItem]:
    """Expand the command-line paths into items, in a stable order.

    Files are taken as given; folders are walked recursively (sorted, hidden entries skipped,
    `exclude` — normally the output folder — skipped). Files whose type is not supported and paths
    that do not exist become 'unsupported' items, so the caller reports them and carries on.
    Output names keep the sub-folder layout of a walked folder so equal file names cannot clash.
    """
    items: list[InputItem] = []
    exclude = exclude.resolve() if exclude is not None else None
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path, exclude):
                rel = file.relative_to(path).with_suffix('')
                items.append(_item(file, rel.as_posix()))
        elif path.is_file():
            items.append(_item(path, path.stem))
        else:
            items.append(InputItem(path, path.stem, 'unsupported', 'no such file or folder'))
    return _deduplicate_names(items)


def _walk(root: Path, exclude: Path | None) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith('.') and (exclude is None or (here / d).resolve() != exclude))
        files.extend(here / f for f in filenames if not f.startswith('.'))
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _item(path: Path, name: str) -> InputItem:
    kind = _kind_of(path)
    return InputItem(path, name, kind, _unsupported_message(path) if kind == 'unsupported' else '')


def _deduplicate_names(items: list[InputItem]) -> list[InputItem]:
    """a/x.png and b/x.jpg given as files both want the name 'x': the later ones get x_2, x_3…"""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        name = item.name
        count = seen.get(name, 0) + 1
        seen[name] = count
        if count > 1:
            name = f'{name}_{count}'
            seen[name] = seen.get(name, 0) + 1
        out.append(InputItem(item.path, name, item.kind, item.problem))
    return out


# ----------------------------------------------------------------------------------- reading

def read_image_rgb(path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """H×W×3 uint8 RGB. Grey images are expanded, alpha is dropped, 16-bit images scaled to 8 bit.

    Reads the bytes first (np.fromfile + imdecode) so non-ASCII paths work on every platform. A PNG
    or JPEG above max_pixels (or beyond the model's aspect limit) is refused from its header,
    before decoding, as the node refuses a decompression bomb; other formats after decoding.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise InputError(f'cannot read file: {err.strerror or err}') from err
    if data.size == 0:
        raise InputError('file is empty')
    try:
        try:
            kind, width, height = encoded_image_size(data)
            check_image_size(height, width, max_pixels, f'{kind} image')
        except ImageHeaderError:
            pass  # not PNG/JPEG (or a header OpenCV may still read): checked after decoding
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise InputError('cannot decode image (corrupt or not an image)')
        check_image_size(image.shape[0], image.shape[1], max_pixels)
    except ImageSizeError as err:
        raise InputError(str(err)) from None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def video_frame_count(path) -> int | None:
    """Frame count the container claims (may be missing or approximate): for progress bars only."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return count if count > 0 else None
    finally:
        capture.release()


def iter_video_frames(path) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index from 0, H×W×3 uint8 RGB) for every decodable frame, in order."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError('cannot open video (corrupt, or codec not supported by this OpenCV build)')
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise InputError('video has no decodable frames')
    finally:
        capture.release()


# ----------------------------------------------------------------------------------- writing

def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', image)
    if not ok:
        raise OSError('PNG encoding failed')
    return buf.tobytes()


def write_color_png(path, bgr: np.ndarray) -> None:
    """8-bit BGR (OpenCV order) image to PNG."""
    bgr = np.asarray(bgr)
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f'colour image must be H×W×3 uint8, got {bgr.shape} {bgr.dtype}')
    _write_bytes(Path(path), _encode_png(bgr))


def png16_range(depth: np.ndarray) -> tuple[float, float]:
    """Finite min/max of a relative depth map, the range that 0..65535 spans."""
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        raise ValueError('depth has no finite values')
    return float(finite.min()), float(finite.max())


def encode_png16(depth: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint16 image and its (lo, hi): q = round((r − lo)/(hi − lo)·65535); non-finite r → 0.

    A constant map (hi == lo) is all zeros. Quantisation step is (hi − lo)/65535.
    """
    depth = np.asarray(depth, dtype=np.float32)
    lo, hi = png16_range(depth)
    span = hi - lo
    scaled = (depth.astype(np.float64) - lo) * (PNG16_MAX / span) if span > 0 else np.zeros(depth.shape)
    scaled = np.where(np.isfinite(scaled), scaled, 0.0)
    return np.clip(np.rint(scaled), 0, PNG16_MAX).astype(np.uint16), lo, hi


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _insert_text_chunk(png: bytes, keyword: str, text: str) -> bytes:
    """Add a tEXt chunk right after IHDR (PNG signature 8 bytes + IHDR 25 bytes)."""
    ihdr_end = 8 + 25
    if png[12:16] != b'IHDR':
        raise OSError('unexpected PNG layout')
    chunk = _png_chunk(b'tEXt', keyword.encode('latin-1') + b'\0' + text.encode('latin-1'))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def write_png16(path, depth: np.ndarray) -> tuple[float, float]:
    """Write the 16-bit PNG with its (lo, hi) in a tEXt chunk; returns (lo, hi).

    Inverse: r = lo + q / 65535 · (hi − lo)  (see `read_png16`).
    """
    image, lo, hi = encode_png16(depth)
    meta = json.dumps({'min': lo, 'max': hi, 'scale': PNG16_MAX,
                       'mapping': 'relative = min + value / scale * (max - min)',
                       'quantity': 'PPD relative depth (normalised log-depth, larger = farther)'})
    _write_bytes(Path(path), _insert_text_chunk(_encode_png(image), PNG16_TEXT_KEY, meta))
    return lo, hi


def write_png16_millimetres(path, depth_m: np.ndarray) -> None:
    """Metric depth as a 16-bit PNG in millimetres (the RGB-D convention): 0 = invalid, clipped to
    65535 mm; a tEXt chunk says so."""
    depth = np.asarray(depth_m, dtype=np.float64)
    mm = np.where(np.isfinite(depth) & (depth > 0), np.rint(depth * 1000.0), 0)
    image = np.clip(mm, 0, PNG16_MAX).astype(np.uint16)
    meta = json.dumps({'unit': 'mm', 'invalid': 0, 'quantity': 'metric depth (z), millimetres'})
    _write_bytes(Path(path), _insert_text_chunk(_encode_png(image), PNG16_TEXT_KEY, meta))


def read_png_text(path) -> dict[str, str]:
    """All tEXt chunks of a PNG as {keyword: text}."""
    data = Path(path).read_bytes()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise InputError('not a PNG file')
    texts, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        payload = data[pos + 8:pos + 8 + length]
        if kind == b'tEXt' and b'\0' in payload:
            key, text = payload.split(b'\0', 1)
            texts[key.decode('latin-1')] = text.decode('latin-1')
        if kind == b'IEND':
            break
        pos += 12 + length
    return texts


def read_png16(path) -> np.ndarray:
    """float32 relative depth back from a `write_png16` file (exact up to the quantisation step)."""
    meta_text = read_png_text(path).get(PNG16_TEXT_KEY)
    if meta_text is None:
        raise InputError(f'no {PNG16_TEXT_KEY} metadata: not written by ppd-depth --format png16')
    meta = json.loads(meta_text)
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16:
        raise InputError('not a 16-bit PNG')
    lo, hi = float(meta['min']), float(meta['max'])
    return (lo + image.astype(np.float64) * ((hi - lo) / float(meta.get('scale', PNG16_MAX)))).astype(np.float32)


def write_npy(path, depth: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(depth, dtype=np.float32))


PLY_VERTEX_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'),
                             ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')])


def write_ply(path, points: np.ndarray, colors: np.ndarray) -> int:
    """Binary little-endian PLY of the finite points (N×3 float) with colours (N×3 uint8 RGB).

    Points with any non-finite coordinate are dropped; returns the vertex count written.
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colors):
        raise ValueError(f'{len(points)} points but {len(colors)} colours')
    keep = np.isfinite(points).all(axis=1)
    vertices = np.empty(int(keep.sum()), dtype=PLY_VERTEX_DTYPE)
    for i, axis in enumerate('xyz'):
        vertices[axis] = points[keep, i]
    for i, channel in enumerate(('red', 'green', 'blue')):
        vertices[channel] = colors[keep, i]
    header = ('ply\nformat binary_little_endian 1.0\ncomment written by ppd_ros ppd-depth\n'
              f'element vertex {len(vertices)}\n'
              'property float x\nproperty float y\nproperty float z\n'
              'property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n')
    _write_bytes(Path(path), header.encode('ascii') + vertices.tobytes())
    return len(vertices)


def read_ply(path) -> np.ndarray:
    """Vertices of a `write_ply` file as a structured array (fields x y z red green blue)."""
    data = Path(path).read_bytes()
    end = data.find(b'end_header\n')
    if not data.startswith(b'ply\n') or end < 0:
        raise InputError('not a PLY file')
    header = data[:end].decode('ascii').splitlines()
    if 'format binary_little_endian 1.0' not in header:
        raise InputError('only binary little-endian PLY is supported')
    count = next(int(line.split()[2]) for line in header if line.startswith('element vertex'))
    body = data[end + len(b'end_header\n'):]
    return np.frombuffer(body, dtype=PLY_VERTEX_DTYPE, count=count)


# ------------------------------------------------------------------------------ video preview

def video_fps(path, default: float = 30.0) -> float:
    """Frame rate the container claims, else ``default``."""
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else default


class PreviewWriter:
    """An mp4 (MPEG-4 part 2, 'mp4v': available in every OpenCV build) of BGR uint8 frames,
    opened on the first frame; frames of another size are resized to the first one."""

    def __init__(self, path, fps: float = 30.0):
        self.path = Path(path)
        self.fps = fps
        self._writer = None
        self._size = None
        self.frames = 0

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = (bgr.shape[1], bgr.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*'mp4v'), self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise OSError(f'{self.path}: cannot open an mp4 writer (OpenCV build without video writing?)')
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(bgr))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
