"""Messages the middleware loses (large frames over best effort) are reported, not silent (issue 13).

The DDS "message lost" event is subscribed on every input of both nodes; a loss becomes a WARN in
/diagnostics with the count. A real loss needs two processes and large frames (that is measured
by ppd_dev/transport_bench.py, which counts the same events); here the event is delivered to the
handler the node registered.
"""
from types import SimpleNamespace

import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.event_handler import QoSSubscriptionEventType  # noqa: E402

from ppd_ros.nodes.depth_node import DepthNode  # noqa: E402
from ppd_ros.nodes.diagnostics import LostMessages  # noqa: E402
from ppd_ros.nodes.scale_fusion_node import ScaleFusionNode  # noqa: E402
from test_depth_node_harness import RecordingEstimator  # noqa: E402

LOST = QoSSubscriptionEventType.RCL_SUBSCRIPTION_MESSAGE_LOST


def lost_handlers(node):
    """topic → the message-lost EventHandler of its subscription."""
    return {sub.topic_name: handler for sub in node.subscriptions for handler in sub.event_handlers
            if handler.event_type == LOST}


def deliver(handler, total):
    handler.callback(SimpleNamespace(total_count=total, total_count_change=1))


def test_depth_node_reports_messages_lost_in_transport(ros_context):
    node = DepthNode(estimator=RecordingEstimator(), context=ros_context)
    try:
        handlers = lost_handlers(node)
        assert {'/image', '/camera_info'} <= set(handlers)
        level, message, values = node._diagnostics_status()
        assert level == DiagnosticStatus.OK and values['messages lost in transport'] == 0
        deliver(handlers['/image'], 3)
        deliver(handlers['/image'], 5)  # total_count is cumulative
        level, message, values = node._diagnostics_status()
        assert level == DiagnosticStatus.WARN and values['messages lost in transport'] == 5
        assert message.startswith('5 message(s) lost in transport before reaching the node')
        level, message, values = node._diagnostics_status()  # nothing new: OK again, total kept
        assert level == DiagnosticStatus.OK and values['messages lost in transport'] == 5
    finally:
        node.destroy_node()


def test_fusion_node_reports_messages_lost_in_transport(ros_context):
    node = ScaleFusionNode(context=ros_context)
    try:
        handlers = lost_handlers(node)
        assert {'/metric_source/points', '/depth/relative', '/depth/camera_info'} <= set(handlers)
        deliver(handlers['/metric_source/points'], 2)
        level, message, values = node._diagnostics_status()
        assert values['messages lost in transport'] == 2
        assert '2 message(s) lost in transport' in message and level == DiagnosticStatus.WARN
    finally:
        node.destroy_node()


def test_a_middleware_without_the_event_still_subscribes(ros_context):
    from rclpy.event_handler import UnsupportedEventTypeError
    lost = LostMessages()
    calls = []

    def create(*args, **kwargs):
        calls.append(kwargs)
        if 'event_callbacks' in kwargs:
            raise UnsupportedEventTypeError('message lost')
        return 'subscription'

    assert lost.subscribe(create, 'image', 'type', 'image') == 'subscription'
    assert not lost.supported and len(calls) == 2 and lost.total() == 0


# ------------------------------------------------------------------ qos.subscription auto

def _reliability(node, topic):
    return next(sub.qos_profile.reliability for sub in node.subscriptions if sub.topic_name == topic)


def test_auto_subscription_becomes_reliable_after_losses_when_every_publisher_offers_it(ros_context):
    from rclpy.qos import ReliabilityPolicy
    from test_depth_node_harness import Collector, Feeder, RosGraph, pattern_image, wait_for
    from test_depth_node import INTR

    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=RecordingEstimator(), context=ros_context))
        feeder = graph.add(Feeder(ros_context))  # reliable, like most camera drivers
        collector = graph.add(Collector(ros_context, topics=['depth/relative']))
        assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == {'relative'})
        assert _reliability(node, '/image') == ReliabilityPolicy.BEST_EFFORT  # matches every publisher
        assert node.input_reliability == 'auto: best effort'
        deliver(lost_handlers(node)['/image'], 2)
        assert wait_for(lambda: node.input_reliability.startswith('auto: reliable'), timeout=5.0)
        assert node.input_reliability == 'auto: reliable (after 2 lost over best effort)'
        assert _reliability(node, '/image') == ReliabilityPolicy.RELIABLE
        assert _reliability(node, '/camera_info') == ReliabilityPolicy.RELIABLE
        assert len([s for s in node.subscriptions if s.topic_name == '/image']) == 1
        assert wait_for(feeder.connected)
        feeder.send(7, pattern_image(), INTR)
        assert wait_for(lambda: collector.has_frame(7))


def test_auto_subscription_stays_best_effort_with_a_best_effort_publisher(ros_context):
    from rclpy.qos import ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from test_depth_node_harness import RosGraph, wait_for

    with RosGraph(ros_context) as graph:
        node = graph.add(DepthNode(estimator=RecordingEstimator(), context=ros_context))
        driver = graph.add(rclpy.create_node('best_effort_driver', context=ros_context))
        driver.create_publisher(Image, 'image', qos_profile_sensor_data)
        assert wait_for(lambda: node.count_publishers('image') == 1)
        deliver(lost_handlers(node)['/image'], 1)
        assert wait_for(lambda: 'stays' in node.input_reliability, timeout=5.0)
        assert "publishes '/image' best effort only" in node.input_reliability
        assert _reliability(node, '/image') == ReliabilityPolicy.BEST_EFFORT


def test_package_profile_is_not_forced_over_a_chosen_builtin_transport(monkeypatch):
    from ppd_ros.nodes.qos import use_package_fastdds_profile
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    monkeypatch.setenv('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
    assert use_package_fastdds_profile() is None
    import os
    assert 'FASTDDS_DEFAULT_PROFILES_FILE' not in os.environ
    monkeypatch.delenv('FASTDDS_BUILTIN_TRANSPORTS')
    assert use_package_fastdds_profile().endswith('fastdds_shm.xml')


def test_fusion_node_switches_each_input_group_on_its_own(ros_context):
    """A best-effort LiDAR keeps the source best effort; the depth pair still turns reliable."""
    from rclpy.qos import ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from test_depth_node_harness import RosGraph, wait_for

    with RosGraph(ros_context) as graph:
        node = graph.add(ScaleFusionNode(context=ros_context))
        driver = graph.add(rclpy.create_node('drivers', context=ros_context))
        driver.create_publisher(Image, 'depth/relative', 5)  # reliable, like depth_node
        driver.create_publisher(CameraInfo, 'depth/camera_info', 5)
        driver.create_publisher(PointCloud2, 'metric_source/points', qos_profile_sensor_data)
        assert wait_for(lambda: node.count_publishers('metric_source/points') == 1
                        and node.count_publishers('depth/relative') == 1)
        assert node.input_reliability == 'depth/relative: auto: best effort; pointcloud: auto: best effort'
        deliver(lost_handlers(node)['/metric_source/points'], 1)
        deliver(lost_handlers(node)['/depth/relative'], 2)
        assert wait_for(lambda: 'stays' in node.input_reliability and 'reliable (' in node.input_reliability,
                        timeout=5.0), node.input_reliability
        assert node.input_reliability == ("depth/relative: auto: reliable (after 2 lost over best effort); pointcloud: "
                                          "auto: best effort (1 lost; stays: node 'drivers' publishes "
                                          "'/metric_source/points' best effort only)")
        assert _reliability(node, '/depth/relative') == ReliabilityPolicy.RELIABLE
        assert _reliability(node, '/depth/camera_info') == ReliabilityPolicy.RELIABLE
        assert _reliability(node, '/metric_source/points') == ReliabilityPolicy.BEST_EFFORT
        assert len([s for s in node.subscriptions if s.topic_name == '/depth/relative']) == 1
        assert node._diagnostics_status()[2]['input reliability'] == node.input_reliability
