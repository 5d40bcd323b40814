"""Image / CompressedImage ↔ numpy: every encoding, odd layouts, bad input, the serialized path."""
import array

import cv2
import numpy as np
import pytest

pytest.importorskip('sensor_msgs')
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ppd_ros.nodes.image_codec import (  # noqa: E402
    ImageDecodeError, array_to_image_msg, bgr_to_image_msg, compressed_to_rgb, depth_to_image_msg,
    float_image_to_array, image_msg_to_depth, image_to_rgb, rgb_from_any, rgb_to_compressed_msg,
    rgb_to_image_msg)

COLOR_ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8']


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def gray_of(rgb):
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def roundtrip(msg):
    """Through the real serialized form, as a subscriber receives it."""
    return deserialize_message(serialize_message(msg), type(msg))


@pytest.mark.parametrize('encoding', COLOR_ENCODINGS)
def test_color_encodings_round_trip_exactly(rgb, encoding):
    msg = rgb_to_image_msg(rgb, Header(frame_id='cam'), encoding)
    assert msg.encoding == encoding and (msg.height, msg.width) == rgb.shape[:2]
    assert isinstance(msg.data, array.array)
    out = image_to_rgb(roundtrip(msg))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_bgr8_really_is_swapped(rgb):
    msg = rgb_to_image_msg(rgb, Header(), 'bgr8')
    raw = np.frombuffer(msg.data, np.uint8).reshape(rgb.shape)
    np.testing.assert_array_equal(raw, rgb[..., ::-1])


@pytest.mark.parametrize('encoding', ['mono8', 'mono16'])
def test_mono_encodings_give_gray_rgb(rgb, encoding):
    out = image_to_rgb(roundtrip(rgb_to_image_msg(rgb, Header(), encoding)))
    gray = gray_of(rgb)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_mono16_shift_keeps_the_top_byte_and_percentile_stretches():
    values = np.array([[0, 255, 256, 4095], [40000, 65535, 1000, 2000]], dtype=np.uint16)
    msg = array_to_image_msg(values, Header(), 'mono16')
    np.testing.assert_array_equal(image_to_rgb(msg)[..., 0], values >> 8)
    # A 12-bit sensor: the shift leaves it dark, the percentile stretch uses the full range.
    twelve_bit = np.random.default_rng(1).integers(0, 4096, (40, 40), dtype=np.uint16)
    msg = array_to_image_msg(twelve_bit, Header(), 'mono16')
    assert image_to_rgb(msg).max() <= 15
    stretched = image_to_rgb(msg, mono16='percentile')[..., 0]
    assert stretched.min() == 0 and stretched.max() == 255
    with pytest.raises(ValueError, match='mono16'):
        image_to_rgb(msg, mono16='gamma')


@pytest.mark.parametrize('encoding', COLOR_ENCODINGS + ['mono8', 'mono16'])
def test_padded_step_is_honoured(rgb, encoding):
    reference = image_to_rgb(rgb_to_image_msg(rgb, Header(), encoding))
    tight = rgb_to_image_msg(rgb, Header(), encoding)
    pixels = np.frombuffer(tight.data, np.uint8).reshape(tight.height, tight.step)
    padding = 13  # odd on purpose: rows no longer start on an aligned address
    padded = np.full((tight.height, tight.step + padding), 0xAB, dtype=np.uint8)
    padded[:, :tight.step] = pixels
    msg = Image(header=Header(), height=tight.height, width=tight.width, encoding=encoding,
                is_bigendian=tight.is_bigendian, step=tight.step + padding, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_rgb(roundtrip(msg)), reference)


def test_big_endian_mono16_hand_made():
    values = np.array([[1, 256, 0x1234], [0xFF00, 0xABCD, 0x8000]], dtype=np.uint16)
    msg = Image(height=2, width=3, encoding='mono16', is_bigendian=1, step=6,
                data=values.astype('>u2').tobytes())
    np.testing.assert_array_equal(image_to_rgb(roundtrip(msg))[..., 0], values >> 8)
    # the same bytes read as little-endian give a different image: the flag matters
    msg.is_bigendian = 0
    assert not np.array_equal(image_to_rgb(msg)[..., 0], values >> 8)


def test_big_endian_encoder_with_padding():
    values = np.random.default_rng(2).integers(0, 65536, (9, 11), dtype=np.uint16)
    msg = array_to_image_msg(values, Header(), 'mono16', step=30, is_bigendian=True)
    assert msg.is_bigendian == 1 and msg.step == 30 and len(msg.data) == 30 * 9
    np.testing.assert_array_equal(image_to_rgb(msg)[..., 0], values >> 8)


def bad(**fields):
    base = dict(height=4, width=5, encoding='rgb8', step=15, data=bytes(60))
    base.update(fields)
    return Image(**base)


@pytest.mark.parametrize('msg, pattern', [
    (bad(encoding='yuv422'), r"unsupported colour encoding 'yuv422'.*rgb8"),
    (bad(encoding='32FC1', step=20, data=bytes(80)), r"'32FC1'.*depth/float encoding"),
    (bad(encoding=''), r"unsupported colour encoding ''"),
    (bad(width=0, step=0, data=b''), r'zero size: width=0 height=4'),
    (bad(height=0, data=b''), r'zero size: width=5 height=0'),
    (bad(step=14, data=bytes(56)), r'step 14 is smaller than width 5 × 3 .* = 15'),
    (bad(data=bytes(59)), r'data has 59 bytes but step 15 × height 4 = 60'),
    (bad(data=bytes(75)), r'data has 75 bytes but step 15 × height 4 = 60'),
    (bad(encoding='mono16', step=10, data=bytes(30)), r'data has 30 bytes but step 10 × height 4 = 40'),
])
def test_bad_images_raise_with_the_numbers(msg, pattern):
    with pytest.raises(ImageDecodeError, match=pattern):
        image_to_rgb(msg)
    assert issubclass(ImageDecodeError, ValueError)


@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
def test_compressed_round_trip(fmt):
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, 255 - xx * 2], axis=-1).astype(np.uint8)  # smooth: jpeg-friendly
    msg = roundtrip(rgb_to_compressed_msg(rgb, Header(), fmt))
    assert fmt in msg.format
    out = compressed_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if fmt == 'png':
        np.testing.assert_array_equal(out, rgb)
    else:  # lossy, but the channel order must be right (a swap would be off by ~100)
        assert np.abs(out.astype(int) - rgb).mean() < 3
    np.testing.assert_array_equal(rgb_from_any(msg), out)


@pytest.mark.parametrize('data, fmt, pattern', [
    (b'', 'jpeg', 'has no data'),
    (b'\x00\x01garbage' * 20, 'jpeg', r'cannot decode compressed image .*180 bytes'),
    (None, 'png', 'cannot decode'),  # truncated png
    (b'\x89PNG....', '16UC1; compressedDepth png', 'compressedDepth'),
])
def test_corrupt_compressed_images_raise(data, fmt, pattern):
    if data is None:
        ok, buf = cv2.imencode('.png', np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8))
        data = buf.tobytes()[: len(buf) // 2]
    msg = CompressedImage(format=fmt, data=data)
    with pytest.raises(ImageDecodeError, match=pattern):
        compressed_to_rgb(msg)


def test_truncated_jpeg_raises():
    rgb = cv2.GaussianBlur(np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8), (7, 7), 2)
    full = rgb_to_compressed_msg(rgb, Header(), 'jpeg')
    msg = CompressedImage(format=full.format, data=bytes(full.data)[: len(full.data) * 9 // 10])
    with pytest.raises(ImageDecodeError):
        compressed_to_rgb(msg)


def test_rgb_from_any_rejects_other_types():
    with pytest.raises(ImageDecodeError, match='Header'):
        rgb_from_any(Header())


def test_depth_image_round_trip_keeps_nan_and_header():
    depth = np.random.default_rng(5).uniform(0.3, 9.0, (24, 32)).astype(np.float32)
    depth[3, 4] = np.nan
    header = Header(frame_id='camera_optical')
    header.stamp.sec = 12
    msg = roundtrip(depth_to_image_msg(depth, header))
    assert (msg.encoding, msg.step, msg.is_bigendian) == ('32FC1', 32 * 4, 0)
    assert msg.header.frame_id == 'camera_optical' and msg.header.stamp.sec == 12
    np.testing.assert_array_equal(image_msg_to_depth(msg), depth)
    np.testing.assert_array_equal(float_image_to_array(msg), depth)
    # float64 input is converted, not misread
    np.testing.assert_array_equal(image_msg_to_depth(depth_to_image_msg(depth.astype(np.float64), header)), depth)
    with pytest.raises(ValueError, match='shape'):
        depth_to_image_msg(np.zeros((2, 3, 1), np.float32), header)


def test_depth_32fc1_invalid_values_become_nan_but_float_image_keeps_them():
    depth = np.array([[1.5, 0.0, -2.0], [np.inf, -np.inf, np.nan]], dtype=np.float32)
    out = image_msg_to_depth(depth_to_image_msg(depth, Header()))
    np.testing.assert_array_equal(np.isnan(out), [[False, True, True], [True, True, True]])
    assert out[0, 0] == np.float32(1.5)
    raw = float_image_to_array(depth_to_image_msg(depth, Header()))
    np.testing.assert_array_equal(raw[0], [1.5, 0.0, -2.0])
    assert np.isnan(raw[1]).all()


def test_depth_16uc1_is_millimetres_with_zero_invalid():
    mm = np.array([[0, 1, 1500], [65535, 250, 0]], dtype=np.uint16)
    for big in (False, True):
        msg = array_to_image_msg(mm, Header(), '16UC1', step=8, is_bigendian=big)
        depth = image_msg_to_depth(roundtrip(msg))
        expected = mm.astype(np.float32) * np.float32(0.001)
        expected[mm == 0] = np.nan
        np.testing.assert_array_equal(depth, expected)


def test_depth_decode_rejects_colour_and_bad_layout():
    with pytest.raises(ImageDecodeError, match="unsupported depth encoding 'rgb8'"):
        image_msg_to_depth(rgb_to_image_msg(np.zeros((2, 2, 3), np.uint8), Header()))
    msg = depth_to_image_msg(np.ones((3, 4), np.float32), Header())
    msg.step = 12
    with pytest.raises(ImageDecodeError, match='step 12 is smaller than width 4'):
        image_msg_to_depth(msg)


def test_big_endian_32fc1():
    depth = np.array([[1.25, 2.5], [np.nan, 7.0]], dtype=np.float32)
    msg = Image(height=2, width=2, encoding='32FC1', is_bigendian=1, step=8, data=depth.astype('>f4').tobytes())
    np.testing.assert_array_equal(image_msg_to_depth(msg), depth)


def test_bgr_message(rgb):
    bgr = rgb[..., ::-1].copy()
    msg = roundtrip(bgr_to_image_msg(bgr, Header()))
    assert msg.encoding == 'bgr8'
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    with pytest.raises(ValueError, match='uint8'):
        bgr_to_image_msg(bgr.astype(np.float32), Header())


def test_decoded_arrays_do_not_alias_the_message(rgb):
    msg = rgb_to_image_msg(rgb, Header())
    out = image_to_rgb(msg)
    out[:] = 0
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_encoder_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8'):
        rgb_to_image_msg(np.zeros((4, 4), np.uint8), Header())
    with pytest.raises(ValueError, match="cannot encode RGB as 'yuv422'"):
        rgb_to_image_msg(np.zeros((4, 4, 3), np.uint8), Header(), 'yuv422')
    with pytest.raises(ValueError, match='needs 3 channel'):
        array_to_image_msg(np.zeros((4, 4, 4), np.uint8), Header(), 'rgb8')


# ------------------------------------------------------------------ bounded work (issue 13)

def test_png_decode_bomb_is_refused_from_its_header_without_decoding():
    """A 0.03 MB PNG that decodes to 6000×6000 (108 MB RGB): refused in well under a decode's time."""
    import time

    from ppd_dev.hardening_bench import bomb_png
    msg = CompressedImage(format='png', data=bomb_png(6000))
    started = time.perf_counter()
    with pytest.raises(ImageDecodeError, match=r'png image 6000x6000 has 36.0 MP, more than the limit of '
                                               r'33.2 MP \(input.max_pixels = 33177600\); frame refused'):
        compressed_to_rgb(msg)
    assert time.perf_counter() - started < 0.05


def test_jpeg_header_size_is_checked_before_decoding():
    rgb = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = rgb_to_compressed_msg(rgb, Header(), 'jpeg')
    data = bytearray(bytes(msg.data))
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = (6000).to_bytes(2, 'big') + (6000).to_bytes(2, 'big')
    with pytest.raises(ImageDecodeError, match=r'jpeg image 6000x6000 has 36.0 MP'):
        compressed_to_rgb(CompressedImage(format=msg.format, data=bytes(data)))
    with pytest.raises(ImageDecodeError, match=r'jpeg image 64x48 has 3072 pixels, more than the limit of 1000 pixels'):
        compressed_to_rgb(msg, max_pixels=1000)
    assert compressed_to_rgb(msg, max_pixels=64 * 48).shape == (48, 64, 3)


def test_formats_whose_size_cannot_be_read_first_are_refused():
    ok, bmp = cv2.imencode('.bmp', np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match=r'not a PNG or JPEG \(starts with 424d'):
        compressed_to_rgb(CompressedImage(format='bmp', data=bmp.tobytes()))


def test_raw_frames_above_max_pixels_or_the_aspect_limit_are_refused_before_reading():
    claimed = Image(height=16000, width=16000, encoding='rgb8', step=48000, data=bytes(10))
    with pytest.raises(ImageDecodeError, match=r'image 16000x16000 has 256.0 MP, more than the limit of 33.2 MP'):
        image_to_rgb(claimed)
    line = array_to_image_msg(np.zeros((1, 60000), np.uint8), Header(), 'mono8')
    with pytest.raises(ImageDecodeError, match=r'image 60000x1 has an aspect ratio of 60000.0:1, more than the 8:1'):
        rgb_from_any(line)
    small = rgb_to_image_msg(np.zeros((30, 40, 3), np.uint8), Header())
    with pytest.raises(ImageDecodeError, match=r'input.max_pixels = 1000'):
        rgb_from_any(small, max_pixels=1000)
    assert rgb_from_any(small, max_pixels=1200).shape == (30, 40, 3)
