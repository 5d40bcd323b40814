"""PointCloud2 packing (organized, x y z [rgb]) and reading x, y, z from any layout."""
import numpy as np
import pytest

pytest.importorskip('sensor_msgs')
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ppd_ros.nodes.cloud import (  # noqa: E402
    CloudDecodeError, cloud_msg_to_xyz, pack_rgb, points_to_cloud_msg, unpack_rgb)


def roundtrip(msg):
    return deserialize_message(serialize_message(msg), PointCloud2)


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-3, 3, (6, 8, 3)).astype(np.float32)
    pts[1, 2] = np.nan
    pts[4, 7] = np.nan
    return pts


def field_layout(msg):
    return [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]


def test_organized_xyz_layout(points):
    msg = roundtrip(points_to_cloud_msg(points, Header(frame_id='cam')))
    assert (msg.height, msg.width) == (6, 8)
    assert field_layout(msg) == [('x', 0, PointField.FLOAT32, 1), ('y', 4, PointField.FLOAT32, 1),
                                 ('z', 8, PointField.FLOAT32, 1)]
    assert (msg.point_step, msg.row_step, msg.is_dense, msg.is_bigendian) == (12, 96, False, False)
    assert len(msg.data) == 6 * 96 and msg.header.frame_id == 'cam'
    grid = np.frombuffer(msg.data, '<f4').reshape(6, 8, 3)
    np.testing.assert_array_equal(grid, points)  # NaN kept in place (organized)


def test_organized_xyzrgb_layout_and_bit_pattern(points):
    rgb = np.random.default_rng(1).integers(0, 256, points.shape, dtype=np.uint8)
    msg = roundtrip(points_to_cloud_msg(points, Header(), rgb))
    assert field_layout(msg)[-1] == ('rgb', 12, PointField.FLOAT32, 1)
    assert (msg.point_step, msg.row_step) == (16, 8 * 16)
    raw = np.frombuffer(msg.data, np.uint8).reshape(6, 8, 16)
    np.testing.assert_array_equal(raw[..., :12].copy().view('<f4'), points)
    packed = raw[..., 12:].copy().view('<u4')[..., 0]
    expected = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    np.testing.assert_array_equal(packed, expected)
    np.testing.assert_array_equal(unpack_rgb(raw[..., 12:].copy().view('<f4')[..., 0]), rgb)


def test_every_colour_value_survives_packing():
    """0x00RRGGBB as float32 is mostly denormal or tiny: the bits must be copied, never computed."""
    values = np.arange(256, dtype=np.uint8)
    rgb = np.stack(list(np.meshgrid(values, values, indexing='ij')) + [np.full((256, 256), 7, np.uint8)], axis=-1)
    rgb = np.concatenate([rgb, rgb[..., [2, 0, 1]], rgb[..., [1, 2, 0]]], axis=0)  # each channel 0..255
    points = np.zeros(rgb.shape, np.float32)
    msg = points_to_cloud_msg(points, Header(), rgb)
    packed = np.frombuffer(msg.data, np.uint8).reshape(rgb.shape[0], rgb.shape[1], 16)[..., 12:]
    np.testing.assert_array_equal(packed[..., :3], rgb[..., ::-1])
    assert not packed[..., 3].any()
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb)), rgb)


def test_round_trip_through_cloud_msg_to_xyz_drops_nan(points):
    for rgb in (None, np.zeros(points.shape, np.uint8)):
        xyz = cloud_msg_to_xyz(roundtrip(points_to_cloud_msg(points, Header(), rgb)))
        flat = points.reshape(-1, 3)
        np.testing.assert_array_equal(xyz, flat[np.isfinite(flat).all(axis=1)])
        assert xyz.dtype == np.float32 and xyz.shape == (46, 3)


def test_packing_checks_shapes(points):
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        points_to_cloud_msg(points[..., :2], Header())
    with pytest.raises(ValueError, match='rgb must be uint8'):
        points_to_cloud_msg(points, Header(), np.zeros((6, 8, 3), np.float32))


def lidar_like_cloud(xyz, big_endian=False, row_padding=0):
    """A hand-made cloud as a LiDAR driver may send it: float64 x, y, z in a shuffled order with
    other fields and padding around them, point_step 40, optional row padding."""
    order = '>' if big_endian else '<'
    dtype = np.dtype({'names': ['intensity', 'z', 'ring', 'x', 'y'],
                      'formats': [order + 'f4', order + 'f8', order + 'u2', order + 'f8', order + 'f8'],
                      'offsets': [0, 4, 12, 16, 28], 'itemsize': 40})
    height, width = xyz.shape[:2]
    records = np.zeros((height, width), dtype)
    records['x'], records['y'], records['z'] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    records['intensity'], records['ring'] = 5.0, 3
    rows = np.zeros((height, width * 40 + row_padding), np.uint8)
    rows[:, :width * 40] = records.view(np.uint8).reshape(height, width * 40)
    fields = [PointField(name='intensity', offset=0, datatype=PointField.FLOAT32, count=1),
              PointField(name='z', offset=4, datatype=PointField.FLOAT64, count=1),
              PointField(name='ring', offset=12, datatype=PointField.UINT16, count=1),
              PointField(name='x', offset=16, datatype=PointField.FLOAT64, count=1),
              PointField(name='y', offset=28, datatype=PointField.FLOAT64, count=1)]
    return PointCloud2(height=height, width=width, fields=fields, is_bigendian=big_endian, point_step=40,
                       row_step=width * 40 + row_padding, data=rows.tobytes(), is_dense=False)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('row_padding', [0, 7])
def test_float64_fields_with_padding_are_read_right(big_endian, row_padding):
    rng = np.random.default_rng(2)
    xyz = rng.uniform(-50, 50, (3, 10, 3))
    xyz[0, 4, 1] = np.nan
    xyz[2, 9, 0] = np.inf
    msg = roundtrip(lidar_like_cloud(xyz, big_endian, row_padding))
    out = cloud_msg_to_xyz(msg)
    flat = xyz.reshape(-1, 3)
    np.testing.assert_array_equal(out, flat[np.isfinite(flat).all(axis=1)].astype(np.float32))


def test_unorganized_cloud_and_empty_cloud():
    xyz = np.arange(15, dtype=np.float32).reshape(1, 5, 3)
    np.testing.assert_array_equal(cloud_msg_to_xyz(points_to_cloud_msg(xyz, Header())), xyz[0])
    empty = PointCloud2(height=1, width=0, fields=points_to_cloud_msg(xyz, Header()).fields, point_step=12)
    assert cloud_msg_to_xyz(empty).shape == (0, 3)


@pytest.mark.parametrize('change, pattern', [
    (dict(fields=[PointField(name='x', offset=0, datatype=7, count=1)]), "no 'y' field"),
    (dict(point_step=8), r"field 'z' \(FLOAT32 at offset 8\) does not fit in point_step 8"),
    (dict(row_step=10), 'row_step 10 is smaller than width 4 × point_step 12 = 48'),
    (dict(data=bytes(95)), 'data has 95 bytes but row_step 48 × height 2 = 96'),
    (dict(fields=[PointField(name=n, offset=4 * i, datatype=99, count=1) for i, n in enumerate('xyz')]),
     'unknown datatype 99'),
])
def test_bad_clouds_raise_with_a_reason(change, pattern):
    msg = points_to_cloud_msg(np.zeros((2, 4, 3), np.float32), Header())
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(CloudDecodeError, match=pattern):
        cloud_msg_to_xyz(msg)


def test_empty_cloud_packs_without_error():
    msg = points_to_cloud_msg(np.zeros((0, 5, 3), np.float32), Header())
    assert (msg.height, msg.width, len(msg.data)) == (0, 5, 0)
