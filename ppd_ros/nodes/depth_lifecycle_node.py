"""depth_lifecycle_node: depth_node as a managed (lifecycle) node, for Nav2-style bring-up.

The same node, topics and parameters as depth_node (the node is still named `depth_node`, so the
same parameter file applies), run through the lifecycle transitions instead of all at start:

  configure   load the model (the slow, failure-prone part: a bad parameter or missing weights
              fail the transition with the reason logged) and create the depth publishers
  activate    start the inference worker, subscribe image + camera_info, publish /diagnostics
  deactivate  unsubscribe and stop the worker (the frame in progress finishes)
  cleanup     destroy the publishers and drop the model, handing its GPU memory back
  shutdown    all of the above, from whatever state the node is in

    ros2 run ppd_ros depth_lifecycle_node
    ros2 lifecycle set /depth_node configure && ros2 lifecycle set /depth_node activate
"""
from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ppd_ros.model.factory import EstimatorBuildError

from .depth_node import DepthNode
from .depth_node_params import PARAMETERS
from .params import ParameterError
from .runner import run_node


class DepthLifecycleNode(DepthNode, LifecycleNode):
    """DepthNode whose phases run on the lifecycle transitions (see the module docstring)."""

    def __init__(self, estimator=None, node_name: str = 'depth_node', **node_kwargs):
        super().__init__(estimator, node_name, **node_kwargs)

    def _start(self, estimator) -> None:
        self._declare()  # parameters exist (and can be set) while unconfigured
        self._given_estimator = estimator

    def _create_output(self, msg_type, topic: str, qos):
        return self.create_lifecycle_publisher(msg_type, topic, qos)  # silent unless active

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure(self._given_estimator)
        except (ParameterError, EstimatorBuildError) as exc:
            self.get_logger().error(f'cannot configure: {exc}')
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        before = self._entities()
        self._activate()
        self._activated = self._entities() - before
        return super().on_activate(state)  # activates the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error in {state.label}: stopping and dropping the model')
        return self.on_shutdown(state)  # back to unconfigured, ready to configure again

    def _entities(self) -> set:
        return {*self.timers, *self.subscriptions, *self.publishers}

    def _stop(self) -> None:
        """Undo activate: DepthNode's deactivation, then whatever else activate created (timers,
        subscriptions, publishers) so that nothing of an active node keeps running."""
        self._deactivate()
        for entity in getattr(self, '_activated', ()):
            if entity in set(self.timers):
                self.destroy_timer(entity)
            elif entity in set(self.subscriptions):
                self.destroy_subscription(entity)
            elif entity in set(self.publishers):
                self.destroy_publisher(entity)
        self._activated = set()

    def _cleanup(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        super()._cleanup()


def main(args=None) -> int:
    return run_node(DepthLifecycleNode, 'depth_lifecycle_node', args, startup_errors=(EstimatorBuildError,),
                    help=(__doc__ + '\nTopics and parameters: those of depth_node.\n', PARAMETERS))


if __name__ == '__main__':
    sys.exit(main())
