"""Both nodes as real processes, frames flowing: Ctrl-C (SIGINT), and the double SIGINT that
`ros2 launch` delivers (the terminal's and its own), end them quietly — exit code 0, no
traceback, no ERROR line (was: `ERROR frame failed: RCLError ... publisher's context is invalid`,
and a KeyboardInterrupt traceback with exit -2 or an abort)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from ppd_ros.geometry.backproject import depth_to_points  # noqa: E402
from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.msg import DepthScale  # noqa: E402
from ppd_ros.nodes.cloud import points_to_cloud_msg  # noqa: E402
from ppd_ros.nodes.image_codec import depth_to_image_msg, rgb_to_image_msg  # noqa: E402
from test_depth_node_harness import camera_info, header  # noqa: E402

TEST_DIR = Path(__file__).resolve().parent
REPO = TEST_DIR.parent
INTR = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)

# The depth node's real main loop (ppd_ros.nodes.runner.run_node) with a fake model that takes
# 0.2 s per frame, so that a frame is being inferred or published when the signal arrives.
DEPTH_NODE = '''
import sys, time
from ppd_ros.nodes.depth_node import DepthNode
from ppd_ros.nodes.runner import run_node
from test_depth_node_harness import RecordingEstimator

class Slow(RecordingEstimator):
    def predict(self, rgb, **kwargs):
        time.sleep(0.2)
        return super().predict(rgb, **kwargs)

sys.exit(run_node(lambda: DepthNode(estimator=Slow()), 'depth_node'))
'''
FUSION_NODE = 'import sys; from ppd_ros.nodes.scale_fusion_node import main; sys.exit(main())'


def start(program: str, *ros_args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TEST_DIR), os.environ.get('PYTHONPATH', '')]))
    return subprocess.Popen([sys.executable, '-c', program, '--ros-args', *ros_args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Driver:
    """Feeds both nodes at 20 Hz and counts what they publish."""

    def __init__(self, context):
        self.node = rclpy.create_node('shutdown_driver', context=context)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image = self.node.create_publisher(Image, 'image', qos)
        self.info = self.node.create_publisher(CameraInfo, 'camera_info', qos)
        self.relative = self.node.create_publisher(Image, 'fusion_in/depth/relative', qos)
        self.relative_info = self.node.create_publisher(CameraInfo, 'fusion_in/depth/camera_info', qos)
        self.points = self.node.create_publisher(PointCloud2, 'fusion_in/metric_source/points', qos)
        self.outputs = {'depth': 0, 'scale': 0}
        self.node.create_subscription(Image, 'depth/relative', lambda _: self._count('depth'), qos)
        self.node.create_subscription(DepthScale, 'fusion_in/metric/scale', lambda _: self._count('scale'), qos)
        self.rgb = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
        v = np.mgrid[0:48, 0:64][0].astype(np.float32)
        self.rel = 1.0 - v / 47.0
        self.points_xyz = depth_to_points(np.expm1(2.0 * self.rel + 0.5), INTR)[::3, ::3].reshape(1, -1, 3)
        self.i = 0
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def _count(self, key):
        self.outputs[key] += 1

    def send(self):
        h = header(self.i)
        self.i += 1
        self.info.publish(camera_info(INTR, h))
        self.image.publish(rgb_to_image_msg(self.rgb, h))
        self.points.publish(points_to_cloud_msg(self.points_xyz, h))
        self.relative_info.publish(camera_info(INTR, h))
        self.relative.publish(depth_to_image_msg(self.rel, h))
        self.executor.spin_once(timeout_sec=0.05)

    def run(self, seconds, until=lambda: False):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            self.send()


@pytest.mark.parametrize('sigints', [1, 2], ids=['ctrl-c', 'launch-double-sigint'])
def test_nodes_stop_quietly_on_sigint_while_frames_flow(ros_context, sigints):
    driver = Driver(ros_context)
    depth = start(DEPTH_NODE)
    fusion = start(FUSION_NODE, '-r', '__ns:=/fusion_in', '-p', 'source:=pointcloud')
    try:
        driver.run(60.0, until=lambda: driver.outputs['depth'] >= 2 and driver.outputs['scale'] >= 2)
        assert driver.outputs['depth'] >= 2 and driver.outputs['scale'] >= 2, driver.outputs
        for _ in range(sigints):
            depth.send_signal(signal.SIGINT)
            fusion.send_signal(signal.SIGINT)
            driver.run(0.05)
        driver.run(0.5)  # frames keep coming while they stop
        results = {}
        for name, process in (('depth_node', depth), ('scale_fusion_node', fusion)):
            _, stderr = process.communicate(timeout=20)
            results[name] = (process.returncode, stderr)
    finally:
        for process in (depth, fusion):
            if process.poll() is None:
                process.kill()
                process.communicate()
        driver.executor.shutdown()
        driver.node.destroy_node()
    for name, (returncode, stderr) in results.items():
        assert returncode == 0, (name, returncode, stderr)
        for bad in ('ERROR', 'Traceback', 'KeyboardInterrupt', 'never retrieved', 'terminate called'):
            assert bad not in stderr, (name, stderr)
