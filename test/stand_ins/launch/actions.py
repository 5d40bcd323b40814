"""Stand-in of launch.actions: what each action does to the LaunchContext when executed."""
from .substitutions import SubstitutionFailure
from .utilities import normalize_to_list_of_substitutions, perform_substitutions


class Action:
    def __init__(self, *, condition=None):
        self.condition = condition

    def execute(self, context):
        return None


class DeclareLaunchArgument(Action):
    """Sets the argument's default where the command line did not give it; upstream refuses a value
    outside `choices` and an argument without value or default."""

    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self.default_value = None if default_value is None else normalize_to_list_of_substitutions(default_value)
        self.description = description
        self.choices = choices

    def execute(self, context):
        if self.name not in context.launch_configurations:
            if self.default_value is None:
                raise RuntimeError(f"Required launch argument '{self.name}' was not provided")
            context.launch_configurations[self.name] = perform_substitutions(context, self.default_value)
        if self.choices is not None and context.launch_configurations[self.name] not in self.choices:
            raise RuntimeError(f"Argument '{self.name}' provided value is not one of {self.choices}")


class SetEnvironmentVariable(Action):
    def __init__(self, name, value, **kwargs):
        super().__init__(**kwargs)
        self.name = normalize_to_list_of_substitutions(name)
        self.value = normalize_to_list_of_substitutions(value)

    def execute(self, context):
        context.environment[perform_substitutions(context, self.name)] = perform_substitutions(context, self.value)


class OpaqueFunction(Action):
    """Calls function(context, *args, **kwargs); the actions it returns are executed next."""

    def __init__(self, *, function, args=None, kwargs=None, **left_over_kwargs):
        super().__init__(**left_over_kwargs)
        if not callable(function):
            raise TypeError("OpaqueFunction expected a callable for 'function'")
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context):
        return self.function(context, *self.args, **self.kwargs)


__all__ = ['Action', 'DeclareLaunchArgument', 'OpaqueFunction', 'SetEnvironmentVariable', 'SubstitutionFailure']
