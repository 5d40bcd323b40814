"""PNG/JPEG size from the header without decoding (decode-bomb guard, issue 13)."""
import cv2
import numpy as np
import pytest

from ppd_dev.hardening_bench import bomb_png
from ppd_ros.model.image_header import ImageHeaderError, encoded_image_size


def encode(ext, height, width, channels=3, params=()):
    rng = np.random.default_rng(height * 7 + width)
    shape = (height, width, channels) if channels > 1 else (height, width)
    ok, buf = cv2.imencode(ext, rng.integers(0, 256, shape, dtype=np.uint8), list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize('height, width', [(48, 64), (1, 1), (1080, 1920), (37, 5)])
@pytest.mark.parametrize('channels', [1, 3])
def test_sizes_of_real_png_and_jpeg(height, width, channels):
    assert encoded_image_size(encode('.png', height, width, channels)) == ('png', width, height)
    assert encoded_image_size(encode('.jpg', height, width, channels)) == ('jpeg', width, height)


def test_progressive_jpeg_and_segments_before_the_frame_header():
    progressive = encode('.jpg', 30, 50, params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    assert b'\xff\xc2' in progressive
    assert encoded_image_size(progressive) == ('jpeg', 50, 30)
    # an APP1 segment (as EXIF) and fill bytes between segments are skipped
    plain = encode('.jpg', 30, 50)
    app1 = b'\xff\xe1' + (2 + 1000).to_bytes(2, 'big') + bytes(1000)
    assert encoded_image_size(plain[:2] + app1 + b'\xff\xff' + plain[2:]) == ('jpeg', 50, 30)
    assert encoded_image_size(memoryview(plain)) == ('jpeg', 50, 30)


def test_bomb_sizes_are_read_without_decoding():
    png = bomb_png(16000)[:200]  # the header is enough: a truncated bomb still says its size
    assert encoded_image_size(png) == ('png', 16000, 16000)
    jpeg = bytearray(encode('.jpg', 48, 64))
    sof = jpeg.index(b'\xff\xc0')
    jpeg[sof + 5:sof + 9] = (60000).to_bytes(2, 'big') + (50000).to_bytes(2, 'big')
    assert encoded_image_size(bytes(jpeg)) == ('jpeg', 50000, 60000)


@pytest.mark.parametrize('data, pattern', [
    (b'', 'not a PNG or JPEG'),
    (b'BM' + bytes(60), r'not a PNG or JPEG \(starts with 424d'),
    (b'\x89PNG\r\n\x1a\n' + bytes(4) + b'IDAT', 'PNG without an IHDR'),
    (b'\xff\xd8\x00garbage', 'JPEG marker expected at byte 2'),
    (b'\xff\xd8\xff\xda\x00\x08' + bytes(20), r'no frame header \(SOFn\) before its scan'),
    (b'\xff\xd8\xff\xe0\x00\x10JFIF', 'ends after 10 bytes'),
    (b'\xff\xd8\xff\xe0\x00\x01', 'bad length 1'),
    (b'\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x40', 'height 0'),
])
def test_unreadable_headers_raise_with_what_was_found(data, pattern):
    with pytest.raises(ImageHeaderError, match=pattern):
        encoded_image_size(data)
    assert issubclass(ImageHeaderError, ValueError)
