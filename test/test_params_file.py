"""--params FILE in ppd-bag and ppd-depth: depth_node's parameter files offline.

config/ppd_costmap.yaml through ppd-bag gives the depth/image and depth/points that the frame
pipeline gives with depth_node's own mapping (depth_node_params.pipeline_settings) of the same
values; flags given on the command line win over the files, later files over earlier ones; a bad
file, an unknown parameter or a bad value is one line naming the file and the parameter, before
any model loads; ppd-depth filters its metres (the PLY) and never its relative depth."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('rosbags')
yaml = pytest.importorskip('yaml')

from ppd_ros.cli import depth as depth_cli, flags, io  # noqa: E402
from ppd_ros.nodes import bag, depth_node_params, params_file  # noqa: E402
from ppd_ros.nodes.bag_convert import ModelSpec  # noqa: E402
from ppd_ros.nodes.camera_info import calibration_of  # noqa: E402
from ppd_ros.nodes.image_codec import float_image_to_array  # noqa: E402
from ppd_ros.nodes.synthetic_camera_node import camera_info_msg  # noqa: E402
from ppd_ros.pipeline import FrameInput, FramePipeline, settings_for  # noqa: E402
from ppd_ros.pipeline.settings import DEFAULTS  # noqa: E402
from ppd_ros.synthetic import camera_sequence  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from test_bag import T0, DT, read_bag, write_camera_bag  # noqa: E402
from test_depth_cli import FakeEstimator, _png  # noqa: E402

COSTMAP = Path(__file__).resolve().parents[1] / 'config' / 'ppd_costmap.yaml'
PPD = COSTMAP.with_name('ppd.yaml')
DEMO = ['--model', 'demo', '--area', '64x48', '-q']


def pixels(msg) -> np.ndarray:
    """A 32FC1 image's values as written (float_image_to_array makes ±Inf NaN)."""
    assert msg.encoding == '32FC1' and not msg.is_bigendian
    return np.frombuffer(bytes(msg.data), '<f4').reshape(msg.height, msg.width)


def params(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def node_values(*paths) -> dict:
    """depth_node's values for these files, as ROS would merge them (later wins) — read here with
    plain PyYAML, not through params_file."""
    values = {spec.name: spec.default for spec in depth_node_params.PARAMETERS}

    def walk(tree, prefix=''):
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value, f'{prefix}{key}.')
            else:
                values[prefix + key] = value
    for path in paths:
        walk(yaml.safe_load(Path(path).read_text())['/**/depth_node']['ros__parameters'])
    return values


@pytest.fixture(scope='module')
def frames():
    return camera_sequence(5, 3, width=64, height=48)


@pytest.fixture(scope='module')
def estimator():
    return ModelSpec('demo', area=(64, 48)).build()


def test_costmap_params_give_the_nodes_filtered_depth_image_and_cloud(frames, estimator, tmp_path, capsys):
    camera = write_camera_bag(tmp_path / 'in', frames)
    assert bag.main([str(camera), str(tmp_path / 'plain')] + DEMO, estimator=estimator) == 0
    assert bag.main([str(camera), str(tmp_path / 'costmap'), '--params', str(PPD), '--params', str(COSTMAP)] + DEMO,
                    estimator=estimator) == 0
    assert 'note' not in capsys.readouterr().err  # ppd.yaml lists model.*, qos.* at their defaults: no note
    plain, costmap = read_bag(tmp_path / 'plain'), read_bag(tmp_path / 'costmap')

    settings = settings_for(estimator, depth_node_params.pipeline_settings(node_values(PPD, COSTMAP)))
    assert (settings.max_range, settings.cloud_stride, settings.cloud_organized) == (8.0, 2, False)
    pipeline = FramePipeline(estimator, settings)
    for i, frame in enumerate(frames):
        info = camera_info_msg(frame.intrinsics, Header())
        (depth,) = pipeline.process(FrameInput(frame.rgb, T0 + i * DT, calibration_of(info), None), True)
        image = pixels(costmap['/depth/image'][i][1])
        np.testing.assert_allclose(image, depth.output_depth, rtol=1e-6)
        assert np.isposinf(image).any() and not (image[np.isfinite(image)] > 8.0).any()  # +Inf beyond 8 m
        assert np.isneginf(image).sum() == np.sum(depth.metric < 0.3)
        unfiltered = pixels(plain['/depth/image'][i][1])
        assert np.isfinite(unfiltered).all() and (unfiltered > 8.0).any()
        cloud, before = costmap['/depth/points'][i][1], plain['/depth/points'][i][1]
        assert cloud.height == 1 and cloud.is_dense  # unorganized: only the valid points, none NaN
        assert cloud.width == np.isfinite(image[::2, ::2]).sum() < before.height * before.width == 64 * 48
        np.testing.assert_array_equal(float_image_to_array(costmap['/depth/relative'][i][1]),
                                      float_image_to_array(plain['/depth/relative'][i][1]))  # never filtered


def test_the_settings_travel_to_workers_in_the_picklable_options(tmp_path):
    parser = bag.build_parser()
    argv = ['in', 'out', '--params', str(COSTMAP)]
    args = parser.parse_args(argv)
    args.params_settings = flags.apply_params_files('ppd-bag', parser, args, argv, bag.PARAMS_FLAGS)
    options = bag._convert_options(args)
    import pickle
    assert pickle.loads(pickle.dumps(options)) == options
    assert dict(options.settings) == {'min_range': 0.3, 'max_range': 8.0, 'edge_filter': 0.05, 'cloud_stride': 2,
                                      'cloud_organized': False, 'scan_height': 9, 'scan_range_min': 0.3,
                                      'scan_range_max': 8.0}


def _bag_args(argv):
    parser = bag.build_parser()
    args = parser.parse_args(argv)
    flags.apply_params_files('ppd-bag', parser, args, argv, bag.PARAMS_FLAGS)
    return args


def test_flags_given_win_over_files_and_later_files_win(tmp_path):
    far20 = params(tmp_path / 'far20.yaml', '/**/depth_node:\n  ros__parameters:\n    output:\n'
                                            '      far: 20.0\n      near: 2\n      resolution: inference\n')
    far30 = params(tmp_path / 'far30.yaml', 'depth_node:\n  ros__parameters:\n    output: {far: 30.0}\n'
                                            '    temporal: {video_new_frames: 7}\n')
    args = _bag_args(['in', 'out', '--params', far20])
    assert (args.near, args.far, args.resolution, args.points_rgb) == (2.0, 20.0, 'inference', True)
    args = _bag_args(['in', 'out', '--params', far20, '--params', far30])
    assert (args.near, args.far, args.video_new_frames) == (2.0, 30.0, 7)
    # given on the command line, even at the default value: the flag wins
    args = _bag_args(['in', 'out', '--far', str(DEFAULTS.far), '--params', far20, '--resolution', 'camera',
                      '--no-points-rgb'])
    assert (args.near, args.far, args.resolution, args.points_rgb) == (2.0, DEFAULTS.far, 'camera', False)
    args = _bag_args(['in', 'out'])  # no --params: the parser's defaults
    assert (args.near, args.far, args.resolution) == (DEFAULTS.near, DEFAULTS.far, DEFAULTS.resolution)


def test_bare_on_off_and_sections_as_ros_reads_them(tmp_path):
    path = params(tmp_path / 'p.yaml', '/camera/depth_node:\n  ros__parameters:\n    input: {rectify: off}\n'
                                       '    cloud: {organized: off, stride: 3}\n'
                                       'scale_fusion_node:\n  ros__parameters: {bogus: 1}\n'
                                       '/**:\n  ros__parameters:\n    use_sim_time: true\n'
                                       '    output: {max_range: 6}\n')
    files = params_file.read([path])
    assert (files.settings.rectify, files.settings.cloud_organized, files.settings.cloud_stride) == ('off', False, 3)
    assert files.settings.max_range == 6.0 and isinstance(files.settings.max_range, float)  # an integer for a double
    assert files.ignored == ('use_sim_time',)


@pytest.mark.parametrize('text, words', [
    ('/**/depth_node:\n  ros__parameters:\n    output: {max_rnage: 8.0}\n', ["unknown parameter 'output.max_rnage'"]),
    ('/**/depth_node:\n  ros__parameters:\n    output: {max_range: -1.0}\n', ["'output.max_range'", '-1.0']),
    ('/**/depth_node:\n  ros__parameters:\n    output: {max_range: far}\n', ["'output.max_range'", 'double']),
    ('/**/depth_node:\n  ros__parameters:\n    output: {resolution: huge}\n', ["'output.resolution'", 'huge']),
    ('/**/depth_node:\n  ros__parameters:\n    output: {near: 5.0, far: 2.0}\n', ['output.near', 'output.far']),
    ('other_node:\n  ros__parameters: {a: 1}\n', ['no parameters for depth_node']),
    ('/**/depth_node:\n  ros__parameters: [\n', ['not YAML']),
    (None, ['cannot read']),
])
def test_a_bad_file_is_one_line_before_any_model_loads(tmp_path, capsys, monkeypatch, text, words):
    monkeypatch.setattr(ModelSpec, 'build', lambda self: pytest.fail('the model was loaded'))
    monkeypatch.setattr(depth_cli, 'build_estimator', lambda *a, **k: pytest.fail('the model was loaded'))
    path = tmp_path / 'bad.yaml'
    if text is not None:
        path.write_text(text)
    _png(tmp_path / 'one.png')
    camera = write_camera_bag(tmp_path / 'in', camera_sequence(1, 1, width=32, height=24))
    for main, argv in ((bag.main, [str(camera), str(tmp_path / 'out')]),
                       (depth_cli.main, [str(tmp_path / 'one.png'), '--out', str(tmp_path / 'out')])):
        assert main(argv + ['--params', str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and all(w in err[0] for w in words), err
    assert not (tmp_path / 'out').exists()


def test_parameters_that_are_not_pipeline_settings_are_noted_once(tmp_path, capsys):
    path = params(tmp_path / 'p.yaml', '/**/depth_node:\n  ros__parameters:\n    model: {dit_path: ppd.pth, steps: 4}\n'
                                       '    qos: {subscription: reliable}\n    output: {max_range: 8.0}\n')
    argv = ['in', 'out', '--params', path]
    parser = bag.build_parser()
    args = parser.parse_args(argv)
    files = flags.apply_params_files('ppd-bag', parser, args, argv, bag.PARAMS_FLAGS)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'model.dit_path, qos.subscription (1 more at their defaults)' in err[0]
    assert files.changes() == {'max_range': 8.0}


def test_ppd_depth_filters_the_ply_and_never_the_relative_depth(tmp_path, capsys):
    _png(tmp_path / 'cam.png', width=64, height=48)
    base = [str(tmp_path / 'cam.png'), '--ply', '--hfov', '90', '--format', 'npy', '--resolution', 'inference']
    assert depth_cli.main(base + ['--out', str(tmp_path / 'plain')], estimator=FakeEstimator()) == 0
    five = params(tmp_path / 'p.yaml', '/**/depth_node:\n  ros__parameters:\n    output: {max_range: 5.0, '
                                       'resolution: camera}\n    cloud: {stride: 2}\n')
    assert depth_cli.main(base + ['--out', str(tmp_path / 'five'), '--params', five], estimator=FakeEstimator()) == 0
    plain = io.read_ply(tmp_path / 'plain' / 'cam_points.ply')
    filtered = io.read_ply(tmp_path / 'five' / 'cam_points.ply')
    assert len(plain) == 32 * 24 and plain['z'].max() > 5.0  # --resolution inference (the flag) won over the file
    assert 0 < len(filtered) < 16 * 12 and filtered['z'].max() <= 5.0  # stride 2, beyond 5 m dropped
    np.testing.assert_allclose(np.sort(filtered['z']), np.sort(plain['z'].reshape(24, 32)[::2, ::2][
        plain['z'].reshape(24, 32)[::2, ::2] <= 5.0]), rtol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / 'five' / 'cam_depth.npy'),
                                  np.load(tmp_path / 'plain' / 'cam_depth.npy'))


def test_settings_from_a_file_give_the_same_bytes_on_workers(tmp_path):
    from test_bag_fleet import same_bytes
    bags = tmp_path / 'bags'
    bags.mkdir()
    sequence = camera_sequence(7, 2, width=64, height=48)
    write_camera_bag(bags / 'a', sequence)
    write_camera_bag(bags / 'b', sequence[::-1], storage='sqlite3')
    costmap = ['--params', str(COSTMAP)] + DEMO
    for name in 'ab':
        assert bag.main([str(bags / name), str(tmp_path / 'single' / name)] + costmap) == 0
    assert bag.main([str(bags), str(tmp_path / 'workers'), '--workers', '2'] + costmap) == 0
    assert all(same_bytes(tmp_path / 'single' / name, tmp_path / 'workers' / name) for name in 'ab')
    assert read_bag(tmp_path / 'workers' / 'b')['/depth/points'][0][1].height == 1  # the file's cloud.organized
