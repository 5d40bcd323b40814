"""ppd-bag --camera: several camera topics of one bag through one model, batched as the multi-camera
depth_node; each camera's outputs (under its namespace) equal a ppd-bag run of that camera alone."""
import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('rosbags')

from builtin_interfaces.msg import Time  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ppd_ros.nodes import bag  # noqa: E402
from ppd_ros.nodes.bag_convert import camera_namespace  # noqa: E402
from ppd_ros.nodes.image_codec import float_image_to_array, rgb_to_image_msg  # noqa: E402
from ppd_ros.nodes.synthetic_camera_node import camera_info_msg  # noqa: E402
from ppd_ros.synthetic import camera_sequence  # noqa: E402

from test_bag import DT, T0, read_bag  # noqa: E402

FRAMES = 3
MODEL = ['--model', 'random-tiny', '--area', '64x48', '-q']
CAMERAS = {'/front/image_raw': (64, 48), '/side/image_raw': (96, 72)}  # two sizes, one model resolution


@pytest.fixture(scope='module')
def two_camera_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('cams') / 'two'
    sequences = {topic: camera_sequence(i + 3, FRAMES, width=w, height=h)
                 for i, (topic, (w, h)) in enumerate(CAMERAS.items())}
    with bag.BagRecorder(path) as rec:
        for i in range(FRAMES):
            for k, (topic, frames) in enumerate(sequences.items()):
                t = T0 + i * DT + k * 1000
                name = topic.split('/')[1]
                header = Header(frame_id=f'{name}_optical_frame', stamp=Time(sec=t // 10**9, nanosec=t % 10**9))
                rec.write(f'/{name}/camera_info', camera_info_msg(frames[i].intrinsics, header), t)
                rec.write(topic, rgb_to_image_msg(frames[i].rgb, header), t + 100)
    return path


def depths(topics, topic):
    return [float_image_to_array(m).astype(np.float64) for _, m in topics[topic]]


def test_each_camera_equals_a_run_of_that_camera_alone(two_camera_bag, tmp_path, capsys, monkeypatch):
    from ppd_ros.model.estimator import PPDEstimator
    batches = []
    predict_batch = PPDEstimator.predict_batch

    def counted(self, rgbs, *args, **kwargs):
        batches.append(len(rgbs))
        return predict_batch(self, rgbs, *args, **kwargs)
    monkeypatch.setattr(PPDEstimator, 'predict_batch', counted)
    assert bag.main([str(two_camera_bag), str(tmp_path / 'both'), '--camera', '/front/image_raw',
                     '--camera', '/side/image_raw', *MODEL]) == 0
    both = read_bag(tmp_path / 'both')
    assert sorted(both) == sorted(f'/{cam}/depth/{n}' for cam in ('front', 'side')
                                  for n in ('camera_info', 'image', 'points', 'relative'))
    assert f'{2 * FRAMES} of {2 * FRAMES} frame(s)' in capsys.readouterr().err
    assert batches == [2] * FRAMES  # each front/side pair ran as one batch (one model resolution)
    monkeypatch.setattr(PPDEstimator, 'predict_batch', predict_batch)
    for topic, (width, height) in CAMERAS.items():
        space = camera_namespace(topic)
        alone = tmp_path / space.strip('/')
        assert bag.main([str(two_camera_bag), str(alone), '--image-topic', topic, *MODEL]) == 0
        single = read_bag(alone)
        assert sorted(single) == ['/depth/camera_info', '/depth/image', '/depth/points', '/depth/relative']
        ours, theirs = depths(both, f'{space}/depth/image'), depths(single, '/depth/image')
        assert len(ours) == len(theirs) == FRAMES and ours[0].shape == (height, width)
        for a, b in zip(ours, theirs):  # the random model's depth reaches hundreds of metres: relative 1e-5
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        for a, b in zip(depths(both, f'{space}/depth/relative'), depths(single, '/depth/relative')):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        assert [t for t, _ in both[f'{space}/depth/image']] == [t for t, _ in single['/depth/image']]
        assert both[f'{space}/depth/image'][0][1].header.frame_id == f'{space[1:]}_optical_frame'
    assert bag.main([str(two_camera_bag), str(tmp_path / 'all'), '--camera', 'all', *MODEL]) == 0
    every = read_bag(tmp_path / 'all')
    assert sorted(every) == sorted(both)
    for a, b in zip(depths(every, '/side/depth/image'), depths(both, '/side/depth/image')):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('camera, expected', [
    ('/nope/image_raw', '--camera /nope/image_raw is not in the bag'),
    ('/front/camera_info', '--camera /front/camera_info is a sensor_msgs/msg/CameraInfo, not an Image'),
])
def test_a_bad_camera_is_refused_in_one_line_before_the_model_loads(two_camera_bag, tmp_path, capsys, monkeypatch,
                                                                    camera, expected):
    from ppd_ros.model import factory

    def no_model(*_, **__):
        pytest.fail('the model was loaded')
    monkeypatch.setattr(factory, 'build_estimator', no_model)
    assert bag.main([str(two_camera_bag), str(tmp_path / 'out'), '--camera', '/front/image_raw',
                     '--camera', camera, '-q']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and err[0].startswith('ppd-bag: error:')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('argv, expected', [
    (['--camera', '/front/image_raw', '--image-topic', '/front/image_raw'], '--camera replaces --image-topic'),
    (['--camera', '/front/image_raw', '--camera', '/front/image_raw'], 'names a topic twice'),
    (['--camera', 'all', '--camera', '/front/image_raw'], 'give it alone'),
])
def test_contradictory_camera_flags_are_refused(two_camera_bag, tmp_path, capsys, argv, expected):
    assert bag.main([str(two_camera_bag), str(tmp_path / 'out'), *argv, '-q']) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize('image, expected', [('/front/image_raw', '/front'), ('/front/image_raw/compressed', '/front'),
                                             ('/robot/head/image', '/robot/head'), ('/image_raw', '')])
def test_camera_namespace(image, expected):
    assert camera_namespace(image) == expected
