"""Same frame, same depth: one recorded bag through depth_node over real topics, ppd-bag, and
ppd-depth on the bag's frames, each with its default settings. depth/relative, depth/image and the
cloud agree to 1e-6, for the bundled demo model and a random-weight video model (PPVD)."""
import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('rosbags')

from rosbags.rosbag2 import Reader  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from ppd_ros.cli import depth as depth_cli, io  # noqa: E402
from ppd_ros.model.factory import build_estimator  # noqa: E402
from ppd_ros.nodes import bag  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.image_codec import rgb_to_image_msg  # noqa: E402
from ppd_ros.pipeline import DEFAULTS  # noqa: E402
from ppd_ros.synthetic import camera_sequence  # noqa: E402
from test_depth_node_harness import (Collector, Feeder, RosGraph, camera_info, cloud_grid, float_image,  # noqa: E402
                                     header, overrides, stamp, wait_for)

FRAMES = 9          # the video model: a window of 3 keyframes + 5 new frames, then the rest
TOLERANCE = 1e-6


@pytest.fixture(scope='module')
def frames():
    return camera_sequence(11, FRAMES, width=64, height=48)


def record(path, frames):
    with bag.BagRecorder(path) as rec:
        for i, frame in enumerate(frames):
            sec, nanosec = stamp(i)
            t = sec * 10**9 + nanosec
            rec.write('/camera/camera_info', camera_info(frame.intrinsics, header(i)), t)
            rec.write('/camera/image_raw', rgb_to_image_msg(frame.rgb, header(i)), t)
    return path


def from_bag(path) -> dict:
    """{topic: [message, ...]} of a ppd-bag output."""
    types = {'/depth/relative': Image, '/depth/image': Image, '/depth/points': PointCloud2,
             '/depth/camera_info': CameraInfo}
    out = {}
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(deserialize_message(bytes(raw), types[conn.topic]))
    return out


def from_node(context, frames, estimator, **params) -> dict:
    """{frame index: (relative, metres, cloud xyz)} published by depth_node for the frames."""
    with RosGraph(context) as graph:
        node = graph.add(DepthNode(estimator=estimator, context=context,
                                   parameter_overrides=overrides(worker__queue_size=16, **params)))
        feeder = graph.add(Feeder(context))
        collector = graph.add(Collector(context, topics=['depth/relative', 'depth/image', 'depth/points']))
        assert wait_for(lambda: feeder.connected() and len(node.wanted_outputs()) == 3), 'discovery timed out'
        for i, frame in enumerate(frames):
            feeder.send(i, frame.rgb, frame.intrinsics)
            sec, nanosec = stamp(i)  # wait until the node has taken the frame (none dropped)
            assert wait_for(lambda: node.pipeline.temporal.last_stamp == sec * 10**9 + nanosec, timeout=60), i
        # every frame is out, but the video model's last ones, which wait for a window (a live
        # stream has no end; ppd-bag and ppd-depth flush them at the end of the bag or clip)
        assert wait_for(lambda: node.pipeline.temporal.pending + collector.count('depth/points') == len(frames),
                        timeout=120)
        assert wait_for(lambda: len({collector.count(t) for t in collector.topics}) == 1)
        return {i: (float_image(collector.by_stamp('depth/relative', i)),
                    float_image(collector.by_stamp('depth/image', i)),
                    cloud_grid(collector.by_stamp('depth/points', i))[0])
                for i in range(len(frames)) if collector.by_stamp('depth/points', i) is not None}


def assert_same(a, b, what):
    assert a.shape == b.shape, what
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=what)
    np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=0, atol=TOLERANCE, err_msg=what)


@pytest.mark.parametrize('model', ['demo', 'random-ppvd'])
def test_node_bag_and_depth_cli_give_the_same_depth(model, frames, tmp_path, ros_context):
    from test_bag import organised_xyz
    from test_depth_node_harness import float_image as image_array
    in_bag = record(tmp_path / 'in', frames)
    video = model == 'random-ppvd'
    # a random-weight model cannot be named by a node parameter: each entry point gets its own copy
    estimator = (lambda: build_estimator('random-ppvd', device='cpu', seed=DEFAULTS.seed)) if video else (lambda: None)

    # depth_node, default parameters (the video model needs its temporal mode)
    node = from_node(ros_context, frames, estimator(), **({'temporal__mode': 'video'} if video else {}))
    assert len(node) >= (FRAMES - DEFAULTS.video_new_frames if video else FRAMES)

    # ppd-bag, default flags
    assert bag.main([str(in_bag), str(tmp_path / 'out'), '--quiet', '--model', model], estimator=estimator()) == 0
    written = from_bag(tmp_path / 'out')

    # ppd-depth on the frames as PNG files (one folder: one clip for the video model)
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i, frame in enumerate(frames):
        io.write_color_png(folder / f'frame_{i:03d}.png', frame.rgb[..., ::-1])
    intr = frames[0].intrinsics
    camera = ['--ply', '--fx', str(intr.fx), '--fy', str(intr.fy), '--cx', str(intr.cx), '--cy', str(intr.cy)]
    assert depth_cli.main([str(folder), '--out', str(tmp_path / 'files'), '--format', 'npy', '--quiet',
                           '--model', model] + camera, estimator=estimator()) == 0

    for i, (relative, metres, xyz) in node.items():
        assert_same(relative, image_array(written['/depth/relative'][i]), f'bag relative {i}')
        assert_same(metres, image_array(written['/depth/image'][i]), f'bag metres {i}')
        assert_same(xyz, organised_xyz(written['/depth/points'][i]).astype(np.float32), f'bag cloud {i}')
        assert_same(relative, np.load(tmp_path / 'files' / f'frame_{i:03d}_depth.npy'), f'ppd-depth relative {i}')
        ply = io.read_ply(tmp_path / 'files' / f'frame_{i:03d}_points.ply')
        finite = xyz[np.isfinite(xyz).all(axis=-1)]
        np.testing.assert_allclose(np.stack([ply[c] for c in 'xyz'], -1), finite, rtol=0, atol=TOLERANCE,
                                   err_msg=f'ppd-depth cloud {i}')
