"""depth_lifecycle_node with real rclpy, driven through its transitions: the model is loaded on
configure, input and output flow only while active, and cleanup drops the model."""
import gc
import weakref

import pytest

rclpy = pytest.importorskip('rclpy')

from lifecycle_msgs.srv import GetState  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402

from ppd_ros.nodes import depth_node as depth_node_module  # noqa: E402
from ppd_ros.nodes.depth_lifecycle_node import DepthLifecycleNode  # noqa: E402
from test_depth_node import INTR  # noqa: E402
from test_depth_node_harness import (Collector, Feeder, RecordingEstimator, RosGraph,  # noqa: E402
                                     overrides, pattern_image, wait_for)

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def lifecycle_state(graph, context, node_name: str) -> str:
    """The state as `ros2 lifecycle get` sees it: through the node's get_state service."""
    client_node = graph.add(rclpy.create_node('lifecycle_client', context=context))
    client = client_node.create_client(GetState, f'{node_name}/get_state')
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(GetState.Request())
    assert wait_for(future.done, timeout=5.0)
    return future.result().current_state.label


def test_transitions_load_run_stop_and_free_the_model(ros_context, monkeypatch):
    built = []

    def build_estimator(**options):  # the model the node loads, watched through a weak reference
        estimator = RecordingEstimator()
        built.append(weakref.ref(estimator))
        return estimator
    monkeypatch.setattr(depth_node_module, 'build_estimator', build_estimator)

    with RosGraph(ros_context) as graph:
        node = graph.add(DepthLifecycleNode(context=ros_context, namespace='managed'))
        feeder = graph.add(Feeder(ros_context, namespace='managed'))
        collector = graph.add(Collector(ros_context, namespace='managed', topics=['depth/relative']))
        assert node.get_name() == 'depth_node'  # the same parameter file as depth_node applies
        assert lifecycle_state(graph, ros_context, '/managed/depth_node') == 'unconfigured'
        assert built == [] and node.estimator is None

        assert node.trigger_configure() == SUCCESS
        assert len(built) == 1 and node.estimator is built[0]()
        assert not wait_for(feeder.connected, timeout=0.5)  # no input before activate

        assert node.trigger_activate() == SUCCESS
        assert lifecycle_state(graph, ros_context, '/managed/depth_node') == 'active'
        assert wait_for(lambda: feeder.connected() and node.wanted_outputs() == {'relative'})
        feeder.send(1, pattern_image(), INTR)
        assert wait_for(lambda: collector.has_frame(1)), 'no output while active'

        assert node.trigger_deactivate() == SUCCESS
        assert list(node.timers) == [] and list(node.subscriptions) == []  # nothing keeps running
        assert wait_for(lambda: not feeder.connected())
        feeder.send(2, pattern_image(), INTR)
        assert not wait_for(lambda: collector.has_frame(2), timeout=1.0), 'output while inactive'

        assert node.trigger_cleanup() == SUCCESS
        gc.collect()
        assert node.estimator is None and built[0]() is None, 'the model outlived cleanup'

        assert node.trigger_configure() == SUCCESS  # a fresh model, and it runs again
        assert node.trigger_activate() == SUCCESS
        assert wait_for(feeder.connected)
        assert wait_for(lambda: (feeder.send(3, pattern_image(), INTR), collector.has_frame(3))[1], timeout=5.0)
        assert len(built) == 2

        assert node.trigger_shutdown() == SUCCESS
        assert lifecycle_state(graph, ros_context, '/managed/depth_node') == 'finalized'
        gc.collect()
        assert node.estimator is None and built[1]() is None and not feeder.connected()


def test_configure_fails_with_the_reason_and_can_be_retried(ros_context):
    with RosGraph(ros_context) as graph:
        node = graph.add(DepthLifecycleNode(context=ros_context, namespace='bad_weights', parameter_overrides=overrides(
            model__dit_path='/nonexistent/ppd.pth', model__encoder_path='/nonexistent/vitl.pth')))
        assert node.trigger_configure() == FAILURE
        assert lifecycle_state(graph, ros_context, '/bad_weights/depth_node') == 'unconfigured'
        assert node.estimator is None and node._outputs == {}
