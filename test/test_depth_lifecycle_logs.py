"""depth_lifecycle_node says where it stands (issue 22, item 17): it logged nothing before configure,
'ready' at configure while inactive, and no other transition; the model paths could not be set
while unconfigured, so a failed configure needed a restart. Now each transition is logged with the
state it leaves, and model.* can be set until configure (as Nav2 nodes do)."""
import pytest

rclpy = pytest.importorskip('rclpy')

from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from ppd_ros.nodes import depth_node as depth_node_module  # noqa: E402
from ppd_ros.nodes.depth_lifecycle_node import DepthLifecycleNode  # noqa: E402
from test_depth_node_harness import RecordingEstimator, RosGraph, wait_for  # noqa: E402

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def test_each_transition_is_logged_and_model_paths_can_be_fixed_while_unconfigured(ros_context, monkeypatch):
    monkeypatch.setattr(depth_node_module, 'build_estimator', lambda **options: RecordingEstimator())
    logs = []
    with RosGraph(ros_context) as graph:
        listener = graph.add(rclpy.create_node('lifecycle_log_listener', context=ros_context))
        rosout = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)  # lines logged before discovery too
        listener.create_subscription(Log, '/rosout', logs.append, rosout)
        node = graph.add(DepthLifecycleNode(context=ros_context, namespace='told'))

        def said(text):
            return wait_for(lambda: any(text in log.msg for log in logs if log.name == 'told.depth_node'),
                            timeout=5.0)

        def set_dit(path):
            return node.set_parameters([Parameter('model.dit_path', value=path)])[0]

        assert said('unconfigured: configure loads the model')
        assert set_dit('/nonexistent/ppd.pth').successful  # was: read-only, a restart needed
        assert node.trigger_configure() == FAILURE
        assert said('must be given together') and said('still unconfigured')
        assert set_dit('').successful  # fixed without a restart
        assert node.trigger_configure() == SUCCESS
        assert said('configured: model recording-fake loaded on cpu') and said('now inactive')
        assert not any('ready' in log.msg for log in logs if log.name == 'told.depth_node')
        refused = set_dit('/other/ppd.pth')
        assert not refused.successful and 'only be set while unconfigured (now inactive' in refused.reason
        assert node.set_parameters([Parameter('model.steps', value=2)])[0].successful  # runtime ones still are

        assert node.trigger_activate() == SUCCESS
        assert said('depth_node active: model recording-fake')
        assert node.trigger_deactivate() == SUCCESS
        assert said('deactivated: input unsubscribed, the model kept; now inactive')
        assert node.trigger_cleanup() == SUCCESS
        assert said('cleaned up: model dropped')
        assert set_dit('/nonexistent/ppd.pth').successful  # unconfigured again: settable again
        assert node.trigger_shutdown() == SUCCESS
        assert said('shut down from unconfigured; now finalized')
