"""sensor_msgs Image / CompressedImage ↔ numpy, without cv_bridge (not installable from PyPI).

Decoding validates the message (encoding, size, step, data length) and raises ImageDecodeError
with the numbers in the text, so a node can log one clear line and drop the frame instead of
publishing garbage. Decoded arrays are always fresh, contiguous copies: they never alias the
message buffer.

Colour decoding bounds its work before touching the pixels: frames above `max_pixels`
(default 7680×4320; the depth node's `input.max_pixels`) or beyond the model's aspect limit
(8:1, `ppd_ros.model.preprocess`) are refused from the Image's width/height, or from the PNG/JPEG
header of a CompressedImage (`ppd_ros.model.image_header`), never decoded; other compressed formats
are refused because their size cannot be read first.

Encoding fills `msg.data` with an `array.array('B')` built by one `frombytes` memcpy. That is the
fastest way measured here (~0.05 ms for 640×480 rgb8, ~0.15 ms for 1024×768 32FC1) and it stays
fast when ROS_PYTHON_CHECK_FIELDS=1, where the generated setter would iterate over a bytes object
element by element; assigning a memoryview is ~700× slower (the setter iterates over it).
"""
from __future__ import annotations

import array
import ctypes
import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ppd_ros.model.image_header import ImageHeaderError, encoded_image_size
from ppd_ros.model.preprocess import DEFAULT_MAX_PIXELS, ImageSizeError, check_image_size

# encoding → (channels, bytes per channel)
_COLOR_LAYOUTS = {
    'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1),
    'mono8': (1, 1), 'mono16': (1, 2),
}
_DEPTH_LAYOUTS = {'32FC1': (1, 4), '16UC1': (1, 2), 'mono16': (1, 2)}
_TO_RGB = {'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB, 'bgra8': cv2.COLOR_BGRA2RGB,
           'mono8': cv2.COLOR_GRAY2RGB}
_HOST_BIGENDIAN = int(sys.byteorder == 'big')

MONO16_MODES = ('shift', 'percentile')


class ImageDecodeError(ValueError):
    """The message cannot be turned into an image; the text says which field is wrong."""


# ---------------------------------------------------------------------------------- helpers

def retain_freed_memory(max_block_bytes: int = 32 << 20, keep_free_bytes: int = 512 << 20) -> bool:
    """Keep freed large buffers inside the process (glibc malloc); call once at node start.

    By default glibc serves blocks above a (dynamic) threshold with mmap and hands them back to
    the OS on free, and trims the heap top; every frame's fresh 1–13 MB buffers (message data,
    point arrays, temporaries) then page-fault in again. In the VMs measured here that costs more
    than the copies themselves (bench_pipeline, 1024×768 inference-mode output: the x y z rgb
    cloud 22 → 5 ms, the whole data path 33 → 16 ms median).
    Blocks up to max_block_bytes (glibc caps it at 32 MiB) then come from the heap, and up to
    keep_free_bytes of free heap top is kept. Returns False (and changes nothing) without glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(m_mmap_threshold, int(max_block_bytes)) and mallopt(m_trim_threshold, int(keep_free_bytes)))


def fill_data(msg, array_like: np.ndarray) -> None:
    """Set msg.data (uint8[]) from the raw bytes of a numpy array with one memcpy."""
    buf = array.array('B')
    contiguous = np.ascontiguousarray(array_like)
    if contiguous.size:  # memoryview cannot cast an empty (zero-length axis) array
        buf.frombytes(memoryview(contiguous).cast('B'))
    msg.data = buf


def _header(header):
    return header if header is not None else Header()


def message_bytes(data) -> np.ndarray:
    """msg.data (array.array, bytes, list …) as a flat uint8 array, zero-copy when possible."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def message_rows(data, height: int, step: int, used: int, error: type, step_name: str,
                 used_text: str) -> np.ndarray:
    """(height, used) uint8 view of a message buffer of `height` rows of `step` bytes, of which
    the first `used` carry values (Image step, PointCloud2 row_step). `error` names the field at
    fault: step smaller than what a row needs (`used_text`), or data not step × height bytes."""
    if step < used:
        raise error(f'{step_name} {step} is smaller than {used_text} = {used}')
    data = message_bytes(data)
    if data.size != step * height:
        raise error(f'data has {data.size} bytes but {step_name} {step} × height {height} = {step * height}')
    return data.reshape(height, step)[:, :used]


def _raw_pixels(msg: Image, layouts: dict, what: str) -> np.ndarray:
    """(H, W, C) view of the pixel values, honouring step (row padding) and is_bigendian."""
    encoding = msg.encoding
    if encoding not in layouts:
        hint = ''
        if encoding in ('32FC1', '16UC1', '64FC1') and layouts is _COLOR_LAYOUTS:
            hint = ' (this is a depth/float encoding, not a colour image)'
        raise ImageDecodeError(f"unsupported {what} encoding '{encoding}'{hint}; "
                               f"supported: {', '.join(layouts)}")
    channels, depth_bytes = layouts[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f'image has zero size: width={width} height={height}')
    row_bytes = width * channels * depth_bytes
    rows = message_rows(msg.data, height, step, row_bytes, ImageDecodeError, 'step',
                        f"width {width} × {channels * depth_bytes} bytes per pixel of '{encoding}'")
    if depth_bytes == 1:
        return rows.reshape(height, width, channels)
    kind = 'f' if encoding.startswith('32F') else 'u'
    dtype = np.dtype(f"{'>' if msg.is_bigendian else '<'}{kind}{depth_bytes}")
    if step % depth_bytes == 0:
        return rows.view(dtype).reshape(height, width, channels)
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)


def _mono16_to_8(mono16: np.ndarray, mode: str) -> np.ndarray:
    if mode == 'shift':
        return (mono16 >> 8).astype(np.uint8)
    if mode == 'percentile':
        sample = mono16[::4, ::4]
        lo, hi = np.percentile(sample, (1.0, 99.0))
        if hi <= lo:
            hi = lo + 1.0
        scaled = (mono16.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
        return np.clip(scaled, 0, 255).astype(np.uint8)
    raise ValueError(f"mono16 must be one of {MONO16_MODES}, got '{mode}'")


# ---------------------------------------------------------------------------------- decoding

def _check_size(height: int, width: int, max_pixels: int | None, what: str) -> None:
    try:
        check_image_size(height, width, max_pixels, what)
    except ImageSizeError as exc:
        raise ImageDecodeError(f'{exc}; frame refused') from None


def image_to_rgb(msg: Image, mono16: str = 'shift', max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an Image (rgb8, bgr8, rgba8, bgra8, mono8, mono16).

    Frames above max_pixels (None: no cap) or beyond the model's aspect limit are refused before
    any pixel is read.

    mono16 → 8 bit: 'shift' (default) keeps the top byte (value >> 8): deterministic and the same
    for every frame, so the model sees no brightness flicker; 'percentile' stretches the 1st–99th
    percentile of each frame to 0–255, for 10/12-bit sensors that leave the top bits empty.
    """
    if int(msg.width) > 0 and int(msg.height) > 0:  # zero sizes: _raw_pixels says which field
        _check_size(msg.height, msg.width, max_pixels, 'image')
    pixels = _raw_pixels(msg, _COLOR_LAYOUTS, 'colour')
    encoding = msg.encoding
    if encoding == 'rgb8':
        return np.ascontiguousarray(pixels) if not pixels.flags.c_contiguous else pixels.copy()
    if encoding == 'mono16':
        gray = _mono16_to_8(pixels[..., 0], mono16)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    src = pixels[..., 0] if encoding == 'mono8' else pixels
    return cv2.cvtColor(np.ascontiguousarray(src), _TO_RGB[encoding])


def compressed_to_rgb(msg: CompressedImage, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a CompressedImage (jpeg/png, as image_transport's 'compressed').

    The size is read from the PNG/JPEG header first: an image above max_pixels (None: no cap) or
    beyond the model's aspect limit is refused without being decoded.
    """
    fmt = (msg.format or '').lower()
    if 'compresseddepth' in fmt:
        raise ImageDecodeError(f"'{msg.format}' is a compressedDepth image, not a colour image")
    data = message_bytes(msg.data)
    if data.size == 0:
        raise ImageDecodeError(f"compressed image (format '{msg.format}') has no data")
    try:
        kind, width, height = encoded_image_size(data)
    except ImageHeaderError as exc:
        raise ImageDecodeError(f"cannot decode compressed image (format '{msg.format}', {data.size} "
                               f'bytes): {exc}') from None
    _check_size(height, width, max_pixels, f'{kind} image')
    try:
        rgb = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)
    except cv2.error as exc:  # pragma: no cover - OpenCV usually returns None instead
        raise ImageDecodeError(f"cannot decode compressed image (format '{msg.format}', "
                               f'{data.size} bytes): {exc}') from exc
    if rgb is None:
        raise ImageDecodeError(f"cannot decode compressed image (format '{msg.format}', {data.size} "
                               f"bytes, starts with {bytes(data[:4]).hex()}): corrupt or not jpeg/png")
    _check_size(rgb.shape[0], rgb.shape[1], max_pixels, f'decoded {kind} image')
    return rgb


def rgb_from_any(msg, mono16: str = 'shift', max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB from either an Image or a CompressedImage (frames above max_pixels refused)."""
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg, max_pixels)
    if isinstance(msg, Image):
        return image_to_rgb(msg, mono16=mono16, max_pixels=max_pixels)
    raise ImageDecodeError(f'expected sensor_msgs/Image or CompressedImage, got {type(msg).__name__}')


def image_msg_to_depth(msg: Image, depth_unit: float = 0.001) -> np.ndarray:
    """(H, W) float32 metres from a depth Image; NaN where invalid.

    32FC1: metres as is; non-finite and ≤ 0 become NaN (REP 118 uses NaN/±inf for no return,
    some drivers use 0). 16UC1 (and mono16, which some drivers use for depth): integer
    millimetres (× depth_unit), 0 → NaN.
    """
    pixels = _raw_pixels(msg, _DEPTH_LAYOUTS, 'depth')[..., 0]
    if msg.encoding == '32FC1':
        depth = pixels.astype(np.float32)  # native byte order, fresh copy
        depth[~((depth > 0) & np.isfinite(depth))] = np.nan
        return depth
    depth = pixels.astype(np.float32) * np.float32(depth_unit)
    depth[pixels == 0] = np.nan
    return depth


def float_image_to_array(msg: Image) -> np.ndarray:
    """(H, W) float32 of a 32FC1 Image with its values kept (≤ 0 included); non-finite → NaN.

    For relative depth, where 0 or negative values are legitimate, unlike metric depth.
    """
    pixels = _raw_pixels(msg, {'32FC1': (1, 4)}, 'float')[..., 0]
    values = pixels.astype(np.float32)
    values[~np.isfinite(values)] = np.nan
    return values


# ---------------------------------------------------------------------------------- encoding

def array_to_image_msg(pixels: np.ndarray, header, encoding: str, *, step: int | None = None,
                       is_bigendian: bool | None = None) -> Image:
    """Image from raw pixel values in `encoding`'s layout (no colour conversion).

    step > width·bpp pads each row with zeros; is_bigendian=True writes multi-byte values big-
    endian (default: host order). Used by the encoders below and by tests for odd layouts.
    """
    layouts = {**_COLOR_LAYOUTS, **_DEPTH_LAYOUTS}
    if encoding not in layouts:
        raise ValueError(f"cannot encode '{encoding}'; supported: {', '.join(layouts)}")
    channels, depth_bytes = layouts[encoding]
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] != channels:
        raise ValueError(f"'{encoding}' needs {channels} channel(s), got an array of shape {pixels.shape}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f'cannot encode an empty image ({width}x{height})')
    big = _HOST_BIGENDIAN if is_bigendian is None else int(bool(is_bigendian))
    kind = 'f' if encoding.startswith('32F') else 'u'
    dtype = np.dtype(f"{'>' if big else '<'}{kind}{depth_bytes}")
    if kind == 'u' and pixels.dtype.kind == 'f':
        raise ValueError(f"'{encoding}' needs integer pixels, got {pixels.dtype}")
    values = np.ascontiguousarray(pixels, dtype=dtype)
    row_bytes = width * channels * depth_bytes
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ValueError(f'step {step} < width × bytes per pixel = {row_bytes}')
    if step > row_bytes:
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :row_bytes] = values.view(np.uint8).reshape(height, row_bytes)
        values = padded
    msg = Image(header=_header(header), height=height, width=width, encoding=encoding,
                is_bigendian=big, step=step)
    fill_data(msg, values)
    return msg


def depth_to_image_msg(depth: np.ndarray, header) -> Image:
    """32FC1 Image (metres, NaN = invalid) from an (H, W) array."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f'depth must be (H, W), got shape {depth.shape}')
    return array_to_image_msg(depth.astype(np.float32, copy=False), header, '32FC1')


def bgr_to_image_msg(bgr: np.ndarray, header) -> Image:
    """bgr8 Image from an (H, W, 3) uint8 array (e.g. a colourised depth)."""
    bgr = np.asarray(bgr)
    if bgr.dtype != np.uint8:
        raise ValueError(f'bgr image must be uint8, got {bgr.dtype}')
    return array_to_image_msg(bgr, header, 'bgr8')


def rgb_to_image_msg(rgb: np.ndarray, header, encoding: str = 'rgb8') -> Image:
    """Image in `encoding` from an (H, W, 3) uint8 RGB array (converting colour as needed).

    mono8 is the luma (cv2 RGB→GRAY); mono16 is that luma × 257 (so `>> 8` gives it back).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'rgb must be (H, W, 3) uint8, got shape {rgb.shape} dtype {rgb.dtype}')
    rgb = np.ascontiguousarray(rgb)
    if encoding == 'rgb8':
        pixels = rgb
    elif encoding == 'bgr8':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding == 'rgba8':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    elif encoding == 'bgra8':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    elif encoding == 'mono8':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif encoding == 'mono16':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * np.uint16(257)
    else:
        raise ValueError(f"cannot encode RGB as '{encoding}'; supported: {', '.join(_COLOR_LAYOUTS)}")
    return array_to_image_msg(pixels, header, encoding)


def rgb_to_compressed_msg(rgb: np.ndarray, header, fmt: str = 'jpeg', quality: int = 90) -> CompressedImage:
    """CompressedImage (jpeg or png) from RGB, as image_transport's compressed plugin names it."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    if fmt == 'jpeg':
        ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == 'png':
        ok, buf = cv2.imencode('.png', bgr)
    else:
        raise ValueError(f"format must be 'jpeg' or 'png', got '{fmt}'")
    if not ok:
        raise ValueError(f'OpenCV could not encode a {rgb.shape} image as {fmt}')
    msg = CompressedImage(header=_header(header), format=f'rgb8; {fmt} compressed bgr8')
    fill_data(msg, buf)
    return msg
