"""ppd-bag on bags the tests write from the synthetic camera (mcap and sqlite3): the demo model and
a tiny random PPVD; output bags open, keep stamps/frame ids/bag times, and their clouds match their
depth images; clear errors and an honest partial bag when interrupted."""
import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('rosbags')

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ppd_ros.nodes import bag  # noqa: E402
from ppd_ros.nodes.cloud import _field_dtype  # noqa: E402
from ppd_ros.nodes.image_codec import float_image_to_array, rgb_to_image_msg  # noqa: E402
from ppd_ros.nodes.synthetic_camera_node import camera_info_msg  # noqa: E402
from ppd_ros.synthetic import camera_sequence  # noqa: E402

FRAMES = 17
T0 = 1_700_000_000_000_000_000
DT = 33_333_333


@pytest.fixture(scope='module')
def sequence():
    return camera_sequence(5, FRAMES, width=64, height=48)


def write_camera_bag(path, frames, storage='mcap', encoding='rgb8', distortion=None):
    with bag.BagRecorder(path, storage) as rec:
        for i, frame in enumerate(frames):
            t = T0 + i * DT
            header = Header(frame_id='camera_optical_frame', stamp=Time(sec=t // 10**9, nanosec=t % 10**9))
            info = camera_info_msg(frame.intrinsics, header)
            if distortion is not None:
                info.d = list(distortion)
            rec.write('/camera/camera_info', info, t)
            msg = rgb_to_image_msg(frame.rgb, header)
            if encoding != 'rgb8':
                msg.encoding = encoding
            rec.write('/camera/image_raw', msg, t + 1000)  # bag time slightly after the stamp
    return path


def read_bag(path):
    out = {}
    types = {'sensor_msgs/msg/Image': Image, 'sensor_msgs/msg/CameraInfo': CameraInfo,
             'sensor_msgs/msg/PointCloud2': PointCloud2}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, deserialize_message(bytes(raw), types[conn.msgtype])))
    return out


def organised_xyz(cloud):
    records = np.frombuffer(bytes(cloud.data), dtype=_field_dtype(cloud)).reshape(cloud.height, cloud.width)
    return np.stack([records[c] for c in 'xyz'], axis=-1).astype(np.float64)


def check_output(out_bag, frames):
    topics = read_bag(out_bag)
    assert sorted(topics) == ['/depth/camera_info', '/depth/image', '/depth/points', '/depth/relative']
    assert all(len(msgs) == len(frames) for msgs in topics.values())
    for i in range(len(frames)):
        t = T0 + i * DT
        bag_time, depth_msg = topics['/depth/image'][i]
        assert bag_time == t + 1000
        assert depth_msg.header.frame_id == 'camera_optical_frame'
        assert depth_msg.header.stamp.sec * 10**9 + depth_msg.header.stamp.nanosec == t
        info = topics['/depth/camera_info'][i][1]
        cloud = topics['/depth/points'][i][1]
        depth = float_image_to_array(depth_msg).astype(np.float64)
        assert (info.height, info.width) == depth.shape == (cloud.height, cloud.width)
        xyz = organised_xyz(cloud)
        fx, cx, fy, cy = info.p[0], info.p[2], info.p[5], info.p[6]
        v, u = np.mgrid[:depth.shape[0], :depth.shape[1]]
        finite = np.isfinite(depth)
        assert finite.any() and np.isnan(xyz[..., 2][~finite]).all()
        np.testing.assert_allclose(xyz[..., 2][finite], depth[finite], rtol=1e-6)
        np.testing.assert_allclose(xyz[..., 0][finite], ((u - cx) / fx * depth)[finite], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(xyz[..., 1][finite], ((v - cy) / fy * depth)[finite], rtol=1e-5, atol=1e-6)
    return topics


def test_demo_model_on_a_synthetic_mcap_bag(sequence, tmp_path, capsys):
    src = write_camera_bag(tmp_path / 'cam', sequence[:4])
    assert bag.main([str(src), str(tmp_path / 'depth'), '--model', 'demo', '--area', '32x24', '-q']) == 0
    topics = check_output(tmp_path / 'depth', sequence[:4])
    info = topics['/depth/camera_info'][0][1]  # by default the camera's size, though the model ran at 32x24
    assert (info.width, info.height) == (64, 48) and topics['/depth/points'][0][1].width == 64
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), sequence[0].intrinsics.K)
    assert list((tmp_path / 'depth').glob('*.mcap')) and not (tmp_path / 'depth.partial').exists()
    assert '4 of 4 frame(s)' in capsys.readouterr().err


def test_random_ppvd_on_a_sqlite3_bag_gives_camera_size_depth(sequence, tmp_path):
    src = write_camera_bag(tmp_path / 'cam', sequence, storage='sqlite3')
    assert bag.main([str(src), str(tmp_path / 'depth'), '--model', 'random-ppvd', '--steps', '1', '-q']) == 0
    topics = check_output(tmp_path / 'depth', sequence)
    assert list((tmp_path / 'depth').glob('*.db3'))
    assert topics['/depth/image'][0][1].height == 48  # the video model answers at the camera size


def test_clear_errors(sequence, tmp_path, capsys):
    src = write_camera_bag(tmp_path / 'cam', sequence[:3])
    assert bag.main([str(src), str(tmp_path / 'o1'), '--image-topic', '/nope', '--model', 'random-tiny', '--area', '64x48']) == 2
    err = capsys.readouterr().err
    assert '/nope is not in the bag' in err and '/camera/image_raw (Image)' in err
    assert bag.main([str(tmp_path / 'absent'), str(tmp_path / 'o2'), '--model', 'random-tiny', '--area', '64x48']) == 2
    assert 'cannot open the bag' in capsys.readouterr().err
    corrupt = tmp_path / 'corrupt'
    corrupt.mkdir()
    (corrupt / 'metadata.yaml').write_text((src / 'metadata.yaml').read_text())
    mcap = next(src.glob('*.mcap'))
    (corrupt / mcap.name).write_bytes(mcap.read_bytes()[:200])
    assert bag.main([str(corrupt), str(tmp_path / 'o3'), '--model', 'random-tiny', '--area', '64x48', '-q']) == 2
    assert 'error' in capsys.readouterr().err
    assert not (tmp_path / 'o3').exists()
    (tmp_path / 'exists').mkdir()
    assert bag.main([str(src), str(tmp_path / 'exists'), '--model', 'random-tiny', '--area', '64x48']) == 2
    assert 'exists' in capsys.readouterr().err


def test_distorted_raw_images_are_rectified_as_the_node_does(sequence, tmp_path):
    src = write_camera_bag(tmp_path / 'cam', sequence[:2], distortion=[-0.2, 0.05, 0.0, 0.0, 0.0])
    assert bag.main([str(src), str(tmp_path / 'out'), '--model', 'random-tiny', '--area', '64x48', '-q']) == 0
    info = read_bag(tmp_path / 'out')['/depth/camera_info'][0][1]
    assert not any(info.d)  # the outputs describe the rectified image


def test_unknown_encoding_is_counted_and_skipped(sequence, tmp_path, capsys):
    src = write_camera_bag(tmp_path / 'cam', sequence[:2], encoding='yuv422')
    assert bag.main([str(src), str(tmp_path / 'out'), '--model', 'random-tiny', '--area', '64x48', '-q']) == 1
    err = capsys.readouterr().err
    assert '2 frame(s) skipped' in err and 'yuv422' in err


class _Interrupting:
    """Stands in for the estimator: Ctrl-C on the third frame."""
    steps = 1

    def __init__(self):
        self.calls = 0

    def predict(self, rgb):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return np.full(rgb.shape[:2], 0.5, np.float32)


def test_interrupted_run_says_so_and_a_rerun_starts_over(sequence, tmp_path, capsys):
    src = write_camera_bag(tmp_path / 'cam', sequence[:5])
    out = tmp_path / 'out'
    assert bag.main([str(src), str(out), '-q'], estimator=_Interrupting()) == 130
    err = capsys.readouterr().err
    assert 'interrupted (SIGINT): 2 of 5 frame(s)' in err and 'incomplete' in err
    assert not out.exists()
    partial = tmp_path / 'out.partial' / 'out'
    assert len(read_bag(partial)['/depth/image']) == 2  # closed, readable
    assert bag.main([str(src), str(out), '--model', 'random-tiny', '--area', '64x48', '-q']) == 0
    assert 'starting over' in capsys.readouterr().err
    assert len(read_bag(out)['/depth/image']) == 5 and not (tmp_path / 'out.partial').exists()


@pytest.mark.parametrize('image, expected', [('/cam/image_raw', '/cam/camera_info'),
                                             ('/cam/image_raw/compressed', '/cam/camera_info'),
                                             ('image', 'camera_info')])
def test_default_camera_info_topic(image, expected):
    assert bag.default_info_topic(image) == expected


def test_ppd_demo_record_then_ppd_bag_as_a_user_would(tmp_path, capsys):
    """ppd-demo --record writes camera + depth topics; ppd-bag picks the camera image (not the
    recorded depth outputs) by itself and processes the bag again, with an image and the video model."""
    from ppd_ros.nodes import demo
    recorded = tmp_path / 'run1'
    assert demo.main(['--model', 'random-tiny', '--frames', '3', '--width', '64', '--height', '48', '--rate', '10',
                      '--target-area', '64', '48', '--timeout', '60', '--record', str(recorded)]) == 0
    assert 'recorded' in capsys.readouterr().out
    topics = read_bag(recorded)
    assert {'/image_raw', '/camera_info', '/depth/image', '/depth/points'} <= set(topics)
    assert bag.main([str(recorded), str(tmp_path / 'run1_depth'), '--model', 'random-tiny', '--area', '64x48',
                     '-q']) == 0
    out = read_bag(tmp_path / 'run1_depth')
    assert len(out['/depth/image']) == len(topics['/image_raw'])
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in topics['/image_raw']}
    assert {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in out['/depth/points']} == stamps
    assert bag.main([str(recorded), str(tmp_path / 'run1_video'), '--model', 'random-ppvd', '--steps', '1',
                     '-q']) == 0  # the video model: the recorded frames are one (padded) window
    video = read_bag(tmp_path / 'run1_video')
    assert {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in video['/depth/image']} == stamps


# ---------------------------------------------------------------------------------- hardening (issue 22)

def test_frames_lost_in_a_bag_corrupted_mid_file_are_counted_and_said(sequence, tmp_path, capsys):
    """Two image records whose times were overwritten: the reader drops them silently; ppd-bag
    compares with the bag's index, says so and exits 1 (the output has the readable frames)."""
    import struct
    src = write_camera_bag(tmp_path / 'cam', sequence[:6])
    mcap = next(src.glob('*.mcap'))
    data = bytearray(mcap.read_bytes())
    for i in (2, 4):  # the image records' log and publish times (t + 1000, twice)
        t = T0 + i * DT + 1000
        at = data.index(struct.pack('<QQ', t, t))
        data[at:at + 8] = bytes(8)
    mcap.write_bytes(bytes(data))
    out = tmp_path / 'out'
    assert bag.main([str(src), str(out), '--model', 'random-tiny', '--area', '64x48', '-q']) == 1
    err = capsys.readouterr().err
    assert '2 frame(s) lost' in err and 'lists 6 image message(s), only 4 could be read' in err
    assert '4 of 6 frame(s)' in err and len(read_bag(out)['/depth/image']) == 4


class _Signalling(_Interrupting):
    """Stands in for the estimator: this process gets `signum` at the third frame."""

    def __init__(self, signum):
        super().__init__()
        self.signum = signum

    def predict(self, rgb):
        self.calls += 1
        if self.calls == 3:
            import signal
            signal.raise_signal(self.signum)
        return np.full(rgb.shape[:2], 0.5, np.float32)


@pytest.mark.parametrize('name', ['SIGTERM', 'SIGHUP'])
def test_sigterm_and_sighup_close_a_readable_partial_bag(sequence, tmp_path, capsys, name):
    import signal
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    src = write_camera_bag(tmp_path / 'cam', sequence[:5])
    assert bag.main([str(src), str(tmp_path / 'out'), '-q'], estimator=_Signalling(signum)) == 128 + signum
    err = capsys.readouterr().err
    assert f'interrupted ({name}): 2 of 5 frame(s)' in err and 'incomplete' in err
    assert len(read_bag(tmp_path / 'out.partial' / 'out')['/depth/image']) == 2  # closed, readable
    assert signal.getsignal(signum) == before  # the handler is ppd-bag's only while it runs


def test_impossible_output_paths_are_refused_before_the_model_loads(sequence, tmp_path, capsys, monkeypatch):
    from ppd_ros.model import factory

    def no_model(*_, **__):
        pytest.fail('the model was loaded')
    monkeypatch.setattr(factory, 'build_estimator', no_model)
    monkeypatch.setattr(bag, 'build_estimator', no_model, raising=False)  # where bag.py once imported it
    src = write_camera_bag(tmp_path / 'cam', sequence[:2])
    (tmp_path / 'file').write_text('keep me')
    assert bag.main([str(src), str(tmp_path / 'file' / 'out'), '-q']) == 2
    assert 'is a file, not a folder' in capsys.readouterr().err
    assert bag.main([str(src), str(tmp_path / 'file'), '--overwrite', '-q']) == 2
    assert 'is a file, not a bag folder' in capsys.readouterr().err
    assert (tmp_path / 'file').read_text() == 'keep me' and not (tmp_path / 'file.partial').exists()


def test_a_bare_mcap_input_writes_mcap(sequence, tmp_path, capsys):
    src = write_camera_bag(tmp_path / 'cam', sequence[:2])
    bare = tmp_path / 'bare.mcap'
    bare.write_bytes(next(src.glob('*.mcap')).read_bytes())
    assert bag.main([str(bare), str(tmp_path / 'out'), '--model', 'random-tiny', '--area', '64x48', '-q']) == 0
    assert '(mcap;' in capsys.readouterr().err
    assert list((tmp_path / 'out').glob('*.mcap')) and not list((tmp_path / 'out').glob('*.db3'))
    assert len(read_bag(tmp_path / 'out')['/depth/image']) == 2
