"""depth_lifecycle_node: depth_node as a managed (lifecycle) node, for Nav2-style bring-up.

The same node, topics and parameters as depth_node (the node is still named `depth_node`, so the
same parameter file applies), run through the lifecycle transitions instead of all at start:

  configure   load the model (the slow, failure-prone part: a bad parameter or missing weights
              fail the transition with the reason logged) and create the depth publishers
  activate    start the inference worker, subscribe image + camera_info, publish /diagnostics
  deactivate  unsubscribe and stop the worker (the frame in progress finishes)
  cleanup     destroy the publishers and drop the model, handing its GPU memory back
  shutdown    all of the above, from whatever state the node is in

Each transition is logged with the state it leaves the node in. While unconfigured the model.*
parameters can be set (as Nav2 nodes read theirs on configure), and their combination is checked
on configure: a failed configure is fixed with `ros2 param set` and retried without a restart.
Once configured they are read-only until cleanup.

    ros2 run ppd_ros depth_lifecycle_node
    ros2 lifecycle set /depth_node configure && ros2 lifecycle set /depth_node activate
"""
from __future__ import annotations

import dataclasses
import sys

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ppd_ros.model.factory import EstimatorBuildError

from .depth_node import DepthNode
from .depth_node_params import PARAMETERS
from .params import ParameterError
from .runner import run_node


def _set_before_configure(name: str) -> bool:
    """Parameters read only on configure (the model's): settable while unconfigured."""
    return name.startswith('model.')


class DepthLifecycleNode(DepthNode, LifecycleNode):
    """DepthNode whose phases run on the lifecycle transitions (see the module docstring)."""

    STARTED_AS = 'active'

    def __init__(self, estimator=None, node_name: str = 'depth_node', **node_kwargs):
        super().__init__(estimator, node_name, **node_kwargs)

    def _start(self, estimator) -> None:
        self._state_label = 'unconfigured'
        self._declare()  # parameters exist (and can be set) while unconfigured
        self.add_on_set_parameters_callback(self._refuse_model_change_once_configured)
        self._given_estimator = estimator
        self.get_logger().info('depth_node (managed) unconfigured: configure loads the model (model.* '
                               'parameters can be set until then), activate starts the input')

    def _parameter_specs(self):
        return tuple(dataclasses.replace(spec, dynamic=True) if _set_before_configure(spec.name) else spec
                     for spec in super()._parameter_specs())

    def _check_parameters(self, values: dict) -> str | None:
        if self._state_label == 'unconfigured':
            return None  # combinations (model.dit_path with model.encoder_path …) are checked on configure
        return super()._check_parameters(values)

    def _refuse_model_change_once_configured(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            spec = next((s for s in PARAMETERS if s.name == parameter.name), None)
            if (self._state_label != 'unconfigured' and _set_before_configure(parameter.name)
                    and spec is not None and not spec.dynamic):
                return SetParametersResult(successful=False, reason=(
                    f"'{parameter.name}' can only be set while unconfigured (now {self._state_label}: "
                    'deactivate and clean up first)'))
        return SetParametersResult(successful=True)

    def _transition_done(self, label: str, text: str) -> None:
        self._state_label = label
        self.get_logger().info(f'{text}; now {label}')

    def _create_output(self, msg_type, topic: str, qos):
        return self.create_lifecycle_publisher(msg_type, topic, qos)  # silent unless active

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state_label = 'configuring'  # the parameters' combination is checked from here on
        try:
            reason = self._check_parameters(dict(self.params))
            if reason:
                raise ParameterError(reason)
            self._configure(self._given_estimator)
        except (ParameterError, EstimatorBuildError) as exc:
            self._cleanup()
            self._state_label = 'unconfigured'
            self.get_logger().error(f'cannot configure: {exc}; still unconfigured: set the parameters '
                                    '(ros2 param set) and configure again')
            return TransitionCallbackReturn.FAILURE
        describe = self._describe
        self._transition_done('inactive', f"configured: model {describe.get('model', '?')} loaded on "
                              f"{describe.get('device', '?')} ({describe.get('precision', '?')}, "
                              f'{self.estimator.steps} steps); activate to start the input')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        before = self._entities()
        self._state_label = 'active'
        self._activate()  # logs 'depth_node active: model … input …'
        self._activated = self._entities() - before
        return super().on_activate(state)  # activates the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._transition_done('inactive', 'deactivated: input unsubscribed, the model kept')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        self._transition_done('unconfigured', 'cleaned up: model dropped; model.* parameters can be set')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._cleanup()
        self._transition_done('finalized', f'shut down from {state.label}')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error in {state.label}: stopping and dropping the model')
        self._stop()
        self._cleanup()
        self._transition_done('unconfigured', 'recovered from the error')
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured, ready to configure again

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
