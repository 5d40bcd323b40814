"""Soak: 300 frames at 30 Hz into a deliberately slow model (0.2 s per frame), ~10 s.

The camera must never wait for the model: frames are dropped (and counted), only recent frames
are processed, no queue grows, and memory stays flat.
"""
import gc
import os
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ppd_ros.geometry.camera import Intrinsics  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from test_depth_node_harness import Collector, Feeder, RosGraph, overrides, pattern_image, wait_for  # noqa: E402

FRAMES, RATE_HZ, MODEL_SECONDS = 300, 30.0, 0.2
SUBSCRIPTION_DEPTH = 5
PAIRING_QUEUE = 10  # input.sync_queue_size default
INTR = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)


class Control:
    """A trivial subscriber with the node's input QoS in the same executor: the yardstick. What it
    misses or gets late is the shared machine's doing (rclpy's executor on 2 cores), not the node's."""

    def __init__(self):
        self.received = 0
        self.newest = -1

    def on_image(self, msg):
        self.received += 1
        self.newest = max(self.newest, msg.data[1] * 256 + msg.data[2])  # index in the first pixel


class SlowEstimator:
    """Sleeps like a heavy model; records which frame it got and the newest frame the control
    subscriber had received by then."""

    def __init__(self, control):
        self.steps = 4
        self.control = control
        self.seen = []  # (frame index, newest index received by the control when inference started)

    def predict(self, rgb):
        index = int(rgb[0, 0, 1]) * 256 + int(rgb[0, 0, 2])
        self.seen.append((index, self.control.newest))
        time.sleep(MODEL_SECONDS)
        return np.ones((24, 32), np.float32) * 0.5

    def describe(self):
        return {'model': 'slow-fake', 'device': 'cpu', 'precision': 'fp32', 'steps': self.steps}


def _rss_bytes() -> int:
    with open(f'/proc/{os.getpid()}/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def test_slow_model_drops_old_frames_and_memory_stays_flat(ros_context):
    control = Control()
    estimator = SlowEstimator(control)
    base = pattern_image()
    with RosGraph(ros_context) as graph:
        # every output is counted, so the node keeps enough reliable history for a test executor
        # stalled by the shared machine (the default depth 2 can replace an unacknowledged sample)
        node = graph.add(DepthNode(estimator=estimator, context=ros_context,
                                   parameter_overrides=overrides(qos__publisher_depth=FRAMES)))
        feeder = graph.add(Feeder(ros_context))
        collector = graph.add(Collector(ros_context, topics=['depth/relative']))
        rosout = []
        listener = graph.add(rclpy.create_node('rosout_listener', context=ros_context))
        listener.create_subscription(Log, '/rosout', rosout.append, 100)
        listener.create_subscription(Image, 'image', control.on_image, qos_profile_sensor_data)
        assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == {'relative'})

        started = time.monotonic()
        for i in range(FRAMES):
            if i == 60:  # after warm-up: every buffer and statistics window is in use
                gc.collect()
                baseline_blocks = sys.getallocatedblocks()
                baseline_rss = _rss_bytes()
            rgb = base.copy()
            rgb[0, 0, 1], rgb[0, 0, 2] = divmod(i, 256)
            feeder.send(i, rgb, INTR)
            delay = started + (i + 1) / RATE_HZ - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        feeding_time = time.monotonic() - started
        assert node.worker.wait_idle(10.0)
        gc.collect()
        block_growth = sys.getallocatedblocks() - baseline_blocks
        rss_growth = _rss_bytes() - baseline_rss
        status = node.diagnostics.publish().status[0]
        processed = node.worker.stats()['processed']
        wait_for(lambda: collector.count('depth/relative') >= processed, timeout=15.0)  # in transit
        published = collector.count('depth/relative')
        wait_for(lambda: any('cannot keep up' in log.msg for log in rosout), timeout=2.0)
    warnings = [log.msg for log in rosout if 'cannot keep up' in log.msg]

    stats = node.worker.stats()
    received = node.input_rate.total
    print(f'\nsoak: {received} frames received (control subscriber {control.received}) in '
          f'{feeding_time:.1f} s, {stats["processed"]} processed, '
          f'{stats["dropped"]} dropped, {published} published; Python memory blocks growth '
          f'{block_growth}, RSS growth {rss_growth / 1e6:.1f} MB')

    assert received >= 0.9 * control.received            # the callbacks kept up with the camera
    assert stats['processed'] == len(estimator.seen) == published
    # each inference sleeps MODEL_SECONDS, so no more frames than that can have been processed
    assert stats['processed'] <= (feeding_time + 10.0) / MODEL_SECONDS + 1
    assert stats['dropped'] == received - stats['processed']  # every frame: processed or dropped
    assert stats['dropped'] > received / 2
    assert stats['max_pending'] == 1                      # no queue beyond latest-frame-wins
    assert max(node._subscriptions_handle.pending()) <= PAIRING_QUEUE  # bounded by queue_size
    # only recent frames: what the model starts on is at most the frames in flight behind
    # (subscription history + pairing + worker slot), never an old backlog. A stall of the shared
    # machine between taking a frame and starting on it shows as one late start (lags of 5-18 were
    # seen on a quiet machine); a backlog would show on consecutive frames
    lags = [newest - index for index, newest in estimator.seen]
    late = [n for n, lag in enumerate(lags) if lag > SUBSCRIPTION_DEPTH + 3]
    assert not any(b == a + 1 for a, b in zip(late, late[1:])), lags
    assert np.median(lags) <= 2, lags
    assert [i for i, _ in estimator.seen] == sorted(i for i, _ in estimator.seen)
    # ~2 MB of small objects (tracemalloc, used before, slowed every allocation so much that the
    # executor dropped frames); a per-frame leak of the 240 frames after warm-up shows here
    assert block_growth < 30000, f'Python memory grew by {block_growth} blocks'
    assert rss_growth < 50e6, f'RSS grew by {rss_growth / 1e6:.1f} MB'
    values = {v.key: v.value for v in status.values}
    assert values['frames dropped (model busy)'] == str(stats['dropped'])
    # the warning is throttled (every 10 s at most), not one line per dropped frame
    assert 1 <= len(warnings) <= feeding_time / 10.0 + 2, warnings
    assert 'latest frame wins' in warnings[0]
