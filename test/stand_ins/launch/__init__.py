"""Test-only stand-in for the parts of ROS 2 `launch` that launch/depth.launch.py uses (launch is
not installable from PyPI). Same module paths, names and call signatures as upstream; actions do
what upstream's do to a LaunchContext (declare arguments, set the environment, call opaque
functions) and nothing else: no process is started. test/test_launch.py loads it explicitly."""
import os


class LaunchContext:
    """Launch configurations (the `name:=value` arguments) and the environment of the processes."""

    def __init__(self, argv=None):
        self.argv = list(argv or [])
        self.launch_configurations = {}
        self.environment = dict(os.environ)

    def perform_substitution(self, substitution) -> str:
        return substitution.perform(self)


class LaunchDescription:
    """An ordered list of actions, as upstream's (entities, add_action)."""

    def __init__(self, initial_entities=None, *, deprecated_reason=None):
        self.__entities = list(initial_entities or [])

    @property
    def entities(self):
        return self.__entities

    def add_action(self, action) -> None:
        self.__entities.append(action)

    def add_entity(self, entity) -> None:
        self.__entities.append(entity)


__all__ = ['LaunchContext', 'LaunchDescription']
