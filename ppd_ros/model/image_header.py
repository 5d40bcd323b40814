"""Width and height of a PNG or JPEG from its header, without decoding it (pure Python).

A compressed image says how large it will be before a single pixel is decoded: PNG in its IHDR
chunk, JPEG in its start-of-frame (SOFn) marker segment. Reading them first lets a caller refuse a
decompression bomb (a 0.7 MB PNG that decodes to 16000×16000 = 768 MB of RGB) at the cost of a few
bytes, where OpenCV's ``imdecode`` allows up to 2^30 pixels. Decoders take the size from exactly
these fields (libpng from IHDR; libjpeg from the first SOF), so the check and the decoder agree.
"""
from __future__ import annotations

import struct

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_SOI = b'\xff\xd8'
# SOF0–SOF15 carry the frame size; C4 (DHT), C8 (JPG extension) and CC (DAC) share the range
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0–7: markers without a segment
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9


class ImageHeaderError(ValueError):
    """The bytes are not a PNG or JPEG whose size can be read; the text says what was found."""


def encoded_image_size(data: bytes) -> tuple[str, int, int]:
    """(format 'png' | 'jpeg', width, height) read from the header of an encoded image."""
    data = memoryview(data).cast('B') if not isinstance(data, bytes) else data
    if bytes(data[:8]) == PNG_SIGNATURE:
        return ('png', *_png_size(data))
    if bytes(data[:2]) == JPEG_SOI:
        return ('jpeg', *_jpeg_size(data))
    raise ImageHeaderError(f'not a PNG or JPEG (starts with {bytes(data[:8]).hex() or "nothing"})')


def _png_size(data) -> tuple[int, int]:
    if len(data) < 24 or bytes(data[12:16]) != b'IHDR':
        raise ImageHeaderError(f'PNG without an IHDR chunk first ({len(data)} bytes)')
    width, height = struct.unpack('>II', bytes(data[16:24]))
    return width, height


def _jpeg_size(data) -> tuple[int, int]:
    """Walk the marker segments after SOI up to the first SOFn (or fail at SOS/EOI/the end)."""
    pos, size = 2, len(data)
    while pos < size:
        if data[pos] != 0xFF:
            raise ImageHeaderError(f'JPEG marker expected at byte {pos}, found 0x{data[pos]:02x}')
        while pos < size and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= size:
            break
        marker = data[pos]
        pos += 1
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker in (_JPEG_SOS, _JPEG_EOI):
            raise ImageHeaderError(f'JPEG has no frame header (SOFn) before its scan data (marker 0x{marker:02x})')
        if pos + 2 > size:
            break
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            raise ImageHeaderError(f'JPEG segment 0x{marker:02x} at byte {pos - 2} has a bad length {length}')
        if marker in _JPEG_SOF:
            if pos + 7 > size:
                break
            height = (data[pos + 3] << 8) | data[pos + 4]
            width = (data[pos + 5] << 8) | data[pos + 6]
            if height == 0:  # the height would come later in a DNL marker, which decoders reject
                raise ImageHeaderError(f'JPEG frame header gives height 0 (width {width})')
            return width, height
        pos += length
    raise ImageHeaderError(f'JPEG ends after {size} bytes before its frame header (SOFn)')


__all__ = ['ImageHeaderError', 'encoded_image_size']
