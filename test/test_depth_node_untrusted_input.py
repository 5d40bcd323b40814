"""depth_node against what outside attacks sent it (issue 22), over real topics: absurd or NaN
distortion, no input at all, all-NaN output, frames lost before the node, video frames of two
sizes. Each must be said (a reason in /diagnostics, one log line), never silent, never flooding."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from ppd_ros.geometry.rectify import Calibration, Rectifier  # noqa: E402
from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from test_depth_node import INTR, start  # noqa: E402
from test_depth_node_harness import (Feeder, RecordingEstimator, RosGraph, camera_info, float_image,  # noqa: E402
                                     header, overrides, pattern_image, wait_for)


class Listener:
    """/rosout and /diagnostics of one node, recorded by a node of the graph."""

    def __init__(self, graph, context, node_name: str):
        self.node_name = node_name
        self.logs, self.diagnostics = [], []
        listener = graph.add(rclpy.create_node('untrusted_listener', context=context))
        listener.create_subscription(Log, '/rosout', self.logs.append, 100)
        listener.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 100)

    def lines(self, text: str) -> list[str]:
        logger = self.node_name.strip('/').replace('/', '.')
        return [log.msg for log in list(self.logs) if text in log.msg and log.name == logger]

    def status(self):
        statuses = [s for array in list(self.diagnostics) for s in array.status if s.name == self.node_name]
        return statuses[-1] if statuses else None

    def status_says(self, level, text: str) -> bool:
        status = self.status()
        return status is not None and status.level == level and text in status.message


def distorted_info(i: int, model: str, d: list):
    info = camera_info(INTR, header(i))
    info.distortion_model, info.d = model, list(d)
    return info


# ------------------------------------------------------------------ item 1: absurd distortion

@pytest.mark.parametrize('model, d', [('plumb_bob', [1e9, 0, 0, 0, 0]), ('plumb_bob', [-1e9, 0, 0, 0, 0]),
                                      ('equidistant', [1e9] * 4)])
def test_absurd_distortion_is_refused_with_a_reason_not_all_nan(ros_context, model, d):
    """It gave 0 % finite depth/relative, no log, and /diagnostics 'rectified (plumb_bob, maps built 1x)'."""
    name = 'absurd_' + model
    with RosGraph(ros_context) as graph:
        listener = Listener(graph, ros_context, f'/{name}/depth_node')
        node, feeder, collector = start(graph, ros_context, RecordingEstimator(nan_corner=False),
                                        topics=['depth/relative'], namespace=name, diagnostics__period=0.2)
        for i in range(3):
            feeder.send(i, pattern_image(), INTR, info=distorted_info(i, model, d))
            assert wait_for(lambda: collector.has_frame(i)), i
        relative = float_image(collector.by_stamp('depth/relative', 2))
        assert np.isfinite(relative).all(), 'the refused calibration must not blank the depth'
        assert wait_for(lambda: listener.status_says(DiagnosticStatus.WARN, 'cannot rectify'))
        assert wait_for(lambda: listener.lines('cannot rectify'))
        assert len(listener.lines('cannot rectify')) == 1  # once for this calibration
        message = listener.status().message
        assert 'absurd' in message and '0%' in message and 'rectified (' not in message
        assert node.pipeline.rectification.state.startswith('failed: cannot rectify')


def test_a_realistic_distortion_still_rectifies():
    k = INTR.K.ravel().tolist()
    p = np.hstack([INTR.K, np.zeros((3, 1))]).ravel().tolist()
    calibration = Calibration.of(64, 48, 'plumb_bob', [-0.3, 0.1, 0, 0, 0], k, [0.0] * 9, p)
    assert Rectifier().valid(calibration).mean() > 0.9


# ------------------------------------------------------------------ item 7: NaN in D, once

def test_nan_in_d_is_said_once_not_on_every_frame(ros_context):
    """'cannot rectify: D has non-finite coefficients' was logged on every frame (NaN != NaN)."""
    with RosGraph(ros_context) as graph:
        listener = Listener(graph, ros_context, '/nan_d/depth_node')
        node, feeder, collector = start(graph, ros_context, RecordingEstimator(), topics=['depth/relative'],
                                        namespace='nan_d')
        for i in range(5):
            feeder.send(i, pattern_image(), INTR, info=distorted_info(i, 'plumb_bob', [float('nan'), 0, 0, 0, 0]))
            assert wait_for(lambda: collector.has_frame(i)), i
        assert wait_for(lambda: listener.lines('non-finite coefficients'))
        time.sleep(0.3)
        assert len(listener.lines('non-finite coefficients')) == 1, listener.lines('non-finite')


def test_calibration_key_compares_equal_with_nan():
    def nan_calibration():
        return Calibration.of(4, 3, 'plumb_bob', [float('nan')] * 5, [1.0] * 9, [0.0] * 9, [0.0] * 12)
    assert nan_calibration() != nan_calibration()  # why the key exists
    assert nan_calibration().key == nan_calibration().key


# ------------------------------------------------------------------ item 6: no input, all-NaN output

def test_no_input_is_a_warning_with_the_reason_logged_once(ros_context):
    """After a minute with nothing on the image topic the node had logged only 'ready', and
    /diagnostics said OK 'running' at 0 Hz."""
    with RosGraph(ros_context) as graph:
        listener = Listener(graph, ros_context, '/silent/depth_node')
        graph.add(DepthNode(estimator=RecordingEstimator(), context=ros_context, namespace='silent',
                            parameter_overrides=overrides(diagnostics__period=0.1,
                                                          diagnostics__no_input_timeout=0.3)))
        expected = "no image on '/silent/image'"
        assert wait_for(lambda: listener.status_says(DiagnosticStatus.WARN, expected), timeout=5.0)
        assert 'nothing publishes there' in listener.status().message
        assert wait_for(lambda: listener.lines(expected))
        time.sleep(0.5)  # five more reports: still one line
        assert len(listener.lines(expected)) == 1
        values = {v.key: v.value for v in listener.status().values}
        assert float(values['seconds since the last image']) >= 0.3

        feeder = graph.add(Feeder(ros_context, namespace='silent'))  # a camera starts: the warning ends
        assert wait_for(feeder.connected)
        for i in range(3):
            feeder.send(i, pattern_image(), INTR)
            time.sleep(0.05)
        assert wait_for(lambda: listener.status() is not None and expected not in listener.status().message)


class NanEstimator(RecordingEstimator):
    def predict(self, rgb, init_depth=None, init_strength=None):
        return np.full_like(super().predict(rgb), np.nan)


def test_all_nan_output_is_a_warning_logged_once(ros_context):
    with RosGraph(ros_context) as graph:
        listener = Listener(graph, ros_context, '/blank/depth_node')
        node, feeder, collector = start(graph, ros_context, NanEstimator(), topics=['depth/relative'],
                                        namespace='blank', diagnostics__period=0.1)
        for i in range(4):
            feeder.send(i, pattern_image(), INTR)
            assert wait_for(lambda: collector.has_frame(i)), i
        text = 'published with no valid depth (all NaN)'
        assert wait_for(lambda: listener.status_says(DiagnosticStatus.WARN, text))
        assert 'the model gave no finite depth' in listener.status().message
        assert wait_for(lambda: listener.lines(text))
        time.sleep(0.3)
        assert len(listener.lines(text)) == 1
        assert {v.key: v.value for v in listener.status().values}['frames published all NaN'] == '4'


# ------------------------------------------------------------------ item 5: frames lost before the node

def test_frames_lost_before_the_node_are_counted_from_sequence_gaps(ros_context):
    """A 144 MB frame was lost in transport with no word: the message-lost event did not fire.
    Here frames are lost in the subscription's history (depth 1, not taken in time), which fires
    no event either; the publisher's sequence numbers show the gap."""
    node = DepthNode(estimator=RecordingEstimator(), context=ros_context, namespace='gaps',
                     parameter_overrides=overrides(qos__subscription_depth=1))
    feeder = Feeder(ros_context, namespace='gaps')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(feeder)
    monitor = node._subscriptions_handle.monitor

    def spin_until(condition, timeout=5.0):
        end = time.monotonic() + timeout
        while not condition() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.02)
        return condition()
    try:
        assert spin_until(feeder.connected)
        feeder.send(0, pattern_image(), INTR)
        assert spin_until(lambda: monitor.primaries == 1)
        for i in range(1, 5):  # the node does not spin: its depth-1 history keeps only frame 4
            feeder.send(i, pattern_image(), INTR)
        time.sleep(0.5)
        assert spin_until(lambda: monitor.primaries == 2)
        assert node.lost_messages.by_topic()['/gaps/image'] == 3
        level, message, values = node._diagnostics_status()
        assert level == DiagnosticStatus.WARN and 'lost in transport before reaching the node' in message
        assert values['messages lost in transport'] >= 3
    finally:
        executor.shutdown()
        feeder.destroy_node()
        node.destroy_node()


def test_sequence_gaps_are_counted_per_publisher():
    from ppd_ros.nodes.diagnostics import LostMessages
    lost = LostMessages()

    def info(sequence, gid):
        return {'publication_sequence_number': sequence, 'publisher_gid': {'data': bytes([gid])}}
    for sequence, gid in [(1, 1), (2, 1), (7, 1), (1, 2), (2, 2), (9, 1)]:  # two publishers interleaved
        lost.on_message_info('/image', info(sequence, gid))
    lost.on_message_info('/image', {'publication_sequence_number': 0})  # unsupported: ignored
    assert lost.by_topic() == {'/image': 4 + 1}
    assert lost.new_since_last_call() == 5 and lost.new_since_last_call() == 0


# ------------------------------------------------------------------ item 8: video restarts, throttled

def test_video_frames_of_two_sizes_do_not_log_a_restart_per_frame(ros_context):
    from ppd_ros.geometry.camera import Intrinsics
    from ppd_ros.model.video import VideoDepthEstimator
    small = Intrinsics(40.0, 40.0, 23.5, 15.5, 48, 32)
    estimator = VideoDepthEstimator.from_config(device='cpu', steps=1, seed=3)
    with RosGraph(ros_context) as graph:
        listener = Listener(graph, ros_context, '/two_sizes/depth_node')
        node, feeder, _ = start(graph, ros_context, estimator, topics=['depth/relative'], namespace='two_sizes',
                                temporal__mode='video', model__steps=1)
        for i in range(10):
            intr = INTR if i % 2 == 0 else small
            feeder.send(i, pattern_image(intr.height, intr.width, seed=i), intr)
            stamp_ns = header(i).stamp.sec * 10**9 + header(i).stamp.nanosec
            assert wait_for(lambda: node.pipeline.temporal.last_stamp == stamp_ns), i
        assert wait_for(lambda: listener.lines('video stream restarted'))
        time.sleep(0.3)
        assert len(listener.lines('video stream restarted')) == 1, listener.lines('video stream restarted')


def test_video_restart_log_summarises_what_it_held_back():
    from ppd_ros.pipeline.temporal import RESTART_LOG_PERIOD_S, _RestartLog
    lines, now = [], [0.0]
    log = _RestartLog(lines.append, clock=lambda: now[0])
    for _ in range(5):
        log.note(1)
        now[0] += 1.0
    now[0] = RESTART_LOG_PERIOD_S + 0.5
    log.note(2)
    assert len(lines) == 2 and lines[0].endswith('1 frame(s) waiting for their window dropped')
    assert '5 restarts in the last 10 s, 6 frame(s)' in lines[1]


def test_a_calibration_that_changes_every_frame_does_not_flood():
    from ppd_ros.pipeline.rectification import WARN_PERIOD_S, Rectification
    lines, now = [], [0.0]
    rectification = Rectification('auto', lines.append, clock=lambda: now[0])
    rgb = np.zeros((48, 64, 3), np.uint8)
    k = INTR.K.ravel().tolist()
    for i in range(20):  # a NaN and a new coefficient on every frame
        calibration = Calibration.of(64, 48, 'plumb_bob', [float('nan'), i, 0, 0, 0], k, [0.0] * 9, [0.0] * 12)
        assert rectification.apply(rgb, calibration)[1] is False
        now[0] += 0.1
    assert len(lines) == 1 and rectification.failed
    now[0] += WARN_PERIOD_S
    rectification.apply(rgb, Calibration.of(64, 48, 'plumb_bob', [1e9, 0, 0, 0, 0], k, [0.0] * 9, [0.0] * 12))
    assert len(lines) == 2 and '19 other calibration(s) with a problem' in lines[1]
