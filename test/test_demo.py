"""ppd-demo: the numpy cloud renderer, and short offline runs of the whole pipeline in-process."""
import cv2
import numpy as np
import pytest

from ppd_ros.nodes.demo import EXIT_OK, EXIT_USAGE, RANDOM_TINY_LABEL, main
from ppd_ros.nodes.snapshot import look_at, render_point_cloud, side_view_pose


def test_z_buffer_keeps_the_nearest_point_per_pixel():
    points = np.array([[0, 0, 2.0], [0, 0, 1.0], [0, 0, 3.0], [0, 0, -1.0]])
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    image = render_point_cloud(points, colors, 9, 9, focal=10.0, rotation=np.eye(3), position=[0, 0, 0],
                               splat=1, background=(0, 0, 0))
    assert image[4, 4].tolist() == [0, 255, 0]          # nearest of three on the optical axis
    assert np.count_nonzero(image.any(axis=2)) == 1     # the point behind the camera is not drawn


def test_splat_and_perspective():
    points = np.array([[1.0, 0.0, 10.0], [1.0, 0.0, 5.0], [np.nan, 0, 1]])
    colors = np.full((3, 3), 200, np.uint8)
    image = render_point_cloud(points, colors, 21, 21, focal=10.0, rotation=np.eye(3), position=[0, 0, 0],
                               splat=2, background=(0, 0, 0))
    lit = np.argwhere(image.any(axis=2))
    assert {tuple(p) for p in lit} == {(10, 11), (10, 12), (11, 11), (11, 12),   # u = 10 + 1 at z 10
                                       (10, 12), (10, 13), (11, 12), (11, 13)}   # u = 10 + 2 at z 5


def test_side_view_looks_at_the_cloud():
    rng = np.random.default_rng(0)
    points = rng.normal([0.5, 0.2, 4.0], 0.5, size=(500, 3))
    rotation, position = side_view_pose(points)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    target = np.median(points, axis=0)
    in_view = rotation.T @ (target - position)
    assert in_view[0] == pytest.approx(0, abs=1e-9) and in_view[1] == pytest.approx(0, abs=1e-9)
    assert in_view[2] > 0
    assert not np.allclose(position, 0)                   # beside the real camera, not at it
    np.testing.assert_allclose(look_at([0, 0, 0], [0, 0, 1]), np.eye(3), atol=1e-12)


@pytest.mark.parametrize('fusion', [False, True])
def test_offline_run_with_random_tiny_model_writes_a_labelled_snapshot(tmp_path, capsys, fusion):
    pytest.importorskip('rclpy')
    snapshot = tmp_path / 'snap.png'
    args = ['--model', 'random-tiny', '--frames', '2', '--camera-size', '64x48', '--rate', '10',
            '--area', '64x48', '--snapshot', str(snapshot), '--timeout', '60']
    assert main(args + (['--metric-fusion'] if fusion else [])) == EXIT_OK
    captured = capsys.readouterr()
    out = captured.out
    assert RANDOM_TINY_LABEL in out
    assert 'frames    2/2' not in out                   # no live status line off a terminal
    last = out.splitlines()[-1]                          # one summary line ends the run
    assert last.startswith('ppd-demo: 2 depth frames in ') and 'latency' in last
    assert last.endswith(f'snapshot {snapshot}')
    assert 'deprecated' not in captured.err
    image = cv2.imread(str(snapshot))
    from ppd_ros.nodes.snapshot import BAR_WIDTH, TITLE_HEIGHT
    # banner + titles above the panels (never over the data) + input | depth, colour bar | cloud
    assert image.shape == (22 + TITLE_HEIGHT + 48, 3 * 64 + BAR_WIDTH, 3)
    assert image[22 + TITLE_HEIGHT:, 64:128].std() > 0   # the depth panel is not empty


def test_demo_model_without_weights_says_what_to_do(capsys):
    from ppd_ros.model.estimator import WEIGHTS_DIR
    if list(WEIGHTS_DIR.glob('demo_*.safetensors')):
        pytest.skip('demo weights are bundled: the demo model loads')
    assert main(['--frames', '1']) == EXIT_USAGE
    assert 'try --model random-tiny' in capsys.readouterr().err


def test_usage_errors():
    with pytest.raises(SystemExit) as exit_info:
        main(['--frames', '0'])
    assert exit_info.value.code == EXIT_USAGE
    with pytest.raises(SystemExit):
        main(['--dit', 'ppd.pth'])
    for bad in (['--near', '5', '--far', '2'], ['--camera-size', '8x8'], ['--area', '64']):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == EXIT_USAGE


def test_flags_and_their_old_spellings(capsys):
    """--area, --camera-size, --scene-seed and --noise-seed; the old --target-area W H,
    --width/--height and --seed (still the scene seed) store the same, with one note each."""
    from ppd_ros.nodes.demo import build_parser
    parser = build_parser()
    new = parser.parse_args(['--area', '64x48', '--camera-size', '80x60', '--scene-seed', '3',
                             '--noise-seed', '9'])
    assert capsys.readouterr().err == ''
    old = parser.parse_args(['--target-area', '64', '48', '--width', '80', '--height', '60', '--seed', '3',
                             '--noise-seed', '9'])
    for name in ('area', 'camera_size', 'scene_seed', 'seed'):
        assert getattr(old, name) == getattr(new, name), name
    assert (new.area, new.camera_size, new.scene_seed, new.seed) == ((64, 48), (80, 60), 3, 9)
    err = capsys.readouterr().err.splitlines()
    assert err[:3] == ['ppd-demo: --target-area is deprecated, use --area WxH',
                       'ppd-demo: --width is deprecated, use --camera-size WxH',
                       'ppd-demo: --height is deprecated, use --camera-size WxH']
    assert len(err) == 4 and err[3].startswith('ppd-demo: --seed is the scene seed in this release')
    defaults = parser.parse_args([])
    assert (defaults.seed, defaults.scene_seed, defaults.near, defaults.far, defaults.resolution) == \
        (0, 0, 0.5, 10.0, 'camera')  # depth at the camera's size, as depth_node's default


def test_synthetic_camera_publishes_one_stamp_per_frame_on_all_topics(ros_context):
    rclpy = pytest.importorskip('rclpy')
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from ppd_ros import synthetic
    from ppd_ros.nodes.cloud import cloud_msg_to_xyz
    from ppd_ros.nodes.image_codec import image_msg_to_depth, image_to_rgb
    from ppd_ros.nodes.synthetic_camera_node import SyntheticCameraNode
    from test_depth_node_harness import RosGraph, wait_for

    frames = synthetic.camera_sequence(2, 2, 64, 48, kind='outdoor')
    received = {'image_raw': [], 'camera_info': [], 'ground_truth/depth': [], 'lidar/points': []}
    with RosGraph(ros_context) as graph:
        camera = graph.add(SyntheticCameraNode(frames=frames, context=ros_context, parameter_overrides=[
            Parameter('rate', value=20.0), Parameter('lidar_lines', value=4)]))
        listener = graph.add(rclpy.create_node('camera_listener', context=ros_context))
        for topic, msg_type in (('image_raw', Image), ('camera_info', CameraInfo),
                                ('ground_truth/depth', Image), ('lidar/points', PointCloud2)):
            listener.create_subscription(msg_type, topic, received[topic].append, 10)
        assert wait_for(lambda: all(len(v) >= 3 for v in received.values()))
    def by_stamp(topic):
        return {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in received[topic]}

    common = set.intersection(*(set(by_stamp(topic)) for topic in received))
    assert common                                         # every topic carries the same stamps
    key = max(common)
    image, info, depth, cloud = (by_stamp(topic)[key] for topic in received)
    assert image.header.frame_id == info.header.frame_id == depth.header.frame_id == 'camera_optical_frame'
    assert cloud.header.frame_id == 'lidar_link' and cloud_msg_to_xyz(cloud).shape[0] > 0
    rgb = image_to_rgb(image)
    shown = [k for k, frame in enumerate(frames) if np.array_equal(rgb, frame.rgb)]
    assert len(shown) == 1
    frame = frames[shown[0]]
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), frame.intrinsics.K)
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], frame.intrinsics.K)
    truth = np.where(frame.valid, frame.depth, np.nan)
    np.testing.assert_allclose(image_msg_to_depth(depth), truth, equal_nan=True)  # sky: inf → NaN
    assert camera.T_cam_lidar.shape == (4, 4)



def test_record_onto_an_existing_path_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys):
    """Issue 22 item 13: --record onto an existing folder (or under a regular file) is a usage
    error found before the model loads, not after it."""
    from ppd_ros.nodes import demo

    def no_model(*args, **kwargs):
        raise AssertionError('the model was loaded before --record was checked')

    monkeypatch.setattr(demo, 'build_estimator', no_model)
    (tmp_path / 'file').write_text('x')
    for bag, reason in ((tmp_path, f'--record: {tmp_path} exists (choose a new bag name)'),
                        (tmp_path / 'file' / 'bag', f'--record: {tmp_path / "file"} is not a folder')):
        with pytest.raises(SystemExit) as exit_info:
            main(['--frames', '1', '--record', str(bag)])
        assert exit_info.value.code == EXIT_USAGE
        assert reason in capsys.readouterr().err
