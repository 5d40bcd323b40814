"""Stand-in of launch.substitutions: LaunchConfiguration, PathJoinSubstitution, TextSubstitution."""
import os

from .utilities import normalize_to_list_of_substitutions, perform_substitutions


class SubstitutionFailure(RuntimeError):
    pass


class Substitution:
    def perform(self, context) -> str:
        raise NotImplementedError


class TextSubstitution(Substitution):
    def __init__(self, *, text: str):
        self.text = text

    def perform(self, context) -> str:
        return self.text


class LaunchConfiguration(Substitution):
    """The value of a launch argument; upstream raises SubstitutionFailure for an undeclared one."""

    def __init__(self, variable_name, *, default=None):
        self.variable_name = variable_name
        self.default = default

    def perform(self, context) -> str:
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is None:
            raise SubstitutionFailure(f"launch configuration '{self.variable_name}' does not exist")
        return perform_substitutions(context, self.default)


class PathJoinSubstitution(Substitution):
    """os.path.join of the performed parts."""

    def __init__(self, substitutions):
        self.substitutions = [normalize_to_list_of_substitutions(part) for part in substitutions]

    def perform(self, context) -> str:
        return os.path.join(*(perform_substitutions(context, part) for part in self.substitutions))
