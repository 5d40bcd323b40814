"""Node parameters declared from one table of specs: defaults, docs, validation, live updates.

One table serves three purposes: the parameters a node declares (with their description, visible
in `ros2 param describe`), the check of start-up values (a bad value raises ParameterError with
one clear line, so the node refuses to start), and the check of runtime changes (a bad value is
rejected with the reason; parameters not marked dynamic are read-only). Nodes read the current
values from `NodeParameters` (a mapping) and may register listeners for accepted changes.

ROS reads every value as YAML 1.1, where a bare on/off/yes/no is a boolean: `-p temporal.mode:=off`
arrives as False. `ParamSpec.from_ros` gives such values back the parameter's type (the word 'off'
for a word parameter with on/off among its choices, a boolean for a switch given as a word), at
start and before rclpy checks the type of a runtime change (a pre-set callback).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from .qos import QOS_CHOICES, SUBSCRIPTION_QOS_CHOICES


class ParameterError(ValueError):
    """A parameter has a bad value; the text names the parameter, the value and what is allowed."""


_TYPE_NAMES = {bool: 'boolean', int: 'integer', float: 'double', str: 'string'}
_ARRAY_TYPES = {bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
                float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}
#: Words that ROS reads as booleans (YAML 1.1: `-p`, --params-file, launch, `ros2 param set`),
#: lower-cased, with the boolean each one becomes.
BOOLEAN_WORDS = {'on': True, 'off': False, 'true': True, 'false': False, 'yes': True, 'no': False}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its type is the parameter's type), doc and constraints."""

    name: str
    default: Any
    description: str
    dynamic: bool = False            # may change at runtime; otherwise read-only after start
    choices: tuple = ()              # allowed values (strings usually)
    low: float | None = None         # inclusive bounds for numbers (each element of an array)
    high: float | None = None
    length: int | None = None        # exact length of an array parameter
    check: Callable[[Any], str | None] | None = None  # extra check: returns a reason or None
    array_of: type | None = None     # element type of an array parameter whose default is empty

    @property
    def parameter_type(self) -> Parameter.Type:
        """The ROS type: the default's, or for an empty default ``array_of``'s array (rclpy would
        take an empty list for a byte array)."""
        if self.array_of is not None:
            return _ARRAY_TYPES[self.array_of]
        return Parameter.Type.from_parameter_value(self.default)

    def constraints(self) -> str:
        parts = []
        if self.choices:
            parts.append('one of ' + ', '.join(map(str, self.choices)))
        if self.low is not None or self.high is not None:
            parts.append(f"in [{'-inf' if self.low is None else self.low}, "
                         f"{'inf' if self.high is None else self.high}]")
        if self.length is not None:
            parts.append(f'{self.length} values')
        parts.append('changeable at runtime' if self.dynamic else 'read-only after start')
        return '; '.join(parts)

    def problem(self, value) -> str | None:
        """Why `value` is not acceptable for this parameter, or None."""
        values = list(value) if isinstance(self.default, (list, tuple)) else [value]
        if self.length is not None and len(values) != self.length:
            return f'needs {self.length} values, got {len(values)}'
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                return f'must be finite, got {v}'
            if self.low is not None and v < self.low:
                return f'must be ≥ {self.low}, got {v}'
            if self.high is not None and v > self.high:
                return f'must be ≤ {self.high}, got {v}'
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got '{value}'"
        return self.check(value) if self.check is not None else None

    def from_ros(self, value):
        """`value` as this parameter's type where ROS's YAML 1.1 changed what a user typed: the
        booleans of `on`/`off` (`yes`, `true` …) → 'on'/'off' for a word parameter whose choices
        have them (input.rectify, temporal.mode; `temporal.mode:=on` then fails the choices check
        with its own message), and a word of BOOLEAN_WORDS ('on', 'false' …, quoted or from an old
        configuration) → the boolean for a boolean parameter, and one comma-separated string
        ('a, b'; '' for none) → the list of its parts for a string array. Anything else is returned
        as is."""
        if isinstance(value, str) and self.parameter_type == Parameter.Type.STRING_ARRAY:
            return [part.strip() for part in value.split(',')] if value else []
        if isinstance(self.default, str) and isinstance(value, bool) and {'on', 'off'} & set(self.choices):
            return 'on' if value else 'off'
        if isinstance(self.default, bool) and isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[value.strip().lower()]
        return value


def _plain(value):
    """Parameter values as plain Python (arrays → tuples) so they compare and hash simply."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return value
    return tuple(value)


class NodeParameters(Mapping):
    """Declares `specs` on `node`; a read-only mapping name → current (validated) value.

    cross_check(values) → reason | None checks relations between parameters (near < far …); it
    runs on the start values and on every proposed change, merged with the current values.
    """

    def __init__(self, node, specs: Iterable[ParamSpec],
                 cross_check: Callable[[dict], str | None] | None = None):
        self._node = node
        self._specs = {spec.name: spec for spec in specs}
        self._cross_check = cross_check
        self._listeners: list[Callable[[dict], None]] = []
        self._values: dict[str, Any] = {}
        for spec in self._specs.values():
            descriptor = ParameterDescriptor(description=spec.description,
                                             additional_constraints=spec.constraints(),
                                             read_only=not spec.dynamic)
            given = self.override(spec.name)
            typed = spec.from_ros(given)
            try:
                if given is not None and typed is not given:  # what the user meant, in the right type
                    value = node.declare_parameter(spec.name, _declared(spec, typed), descriptor,
                                                   ignore_override=True).value
                else:
                    value = node.declare_parameter(spec.name, _declared(spec, _plain(spec.default)), descriptor).value
            except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
                raise ParameterError(f"parameter '{spec.name}' must be "
                                     f'{_type_name(spec.default, spec.array_of)}: {exc}') from None
            value = _plain(spec.default if value is None else value)
            reason = spec.problem(value)
            if reason:
                raise ParameterError(f"parameter '{spec.name}' {reason}")
            self._values[spec.name] = value
        reason = cross_check(dict(self._values)) if cross_check else None
        if reason:
            raise ParameterError(reason)
        node.add_pre_set_parameters_callback(self._from_ros)
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    # Mapping
    def __getitem__(self, name):
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def on_change(self, listener: Callable[[dict], None]) -> None:
        """listener({name: new value}) after a change was accepted (runs in the setter's thread)."""
        self._listeners.append(listener)

    def override(self, name: str):
        """The value given at start (YAML, command line) for `name`, declared or not; None if none."""
        overrides = getattr(self._node, '_parameter_overrides', {}) or {}
        return overrides[name].value if name in overrides else None

    def unknown_overrides(self) -> list[str]:
        """Names given at start (YAML, command line) that this node does not declare — typos."""
        overrides = getattr(self._node, '_parameter_overrides', {}) or {}
        return sorted(name for name in overrides
                      if not self._node.has_parameter(name) and not name.startswith('qos_overrides.'))

    def _from_ros(self, parameters) -> list:
        """Before rclpy checks the types of a change (SetParameters, `ros2 param set … off`): the
        booleans YAML made of on/off as the words they were (ParamSpec.from_ros)."""
        converted = []
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            value = spec.from_ros(parameter.value) if spec is not None else parameter.value
            converted.append(parameter if value is parameter.value else
                             Parameter(parameter.name, spec.parameter_type, value))
        return converted

    def _validate(self, parameters) -> SetParametersResult:
        proposed = dict(self._values)
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is None:
                continue
            if not spec.dynamic:
                return SetParametersResult(successful=False,
                                           reason=f"'{spec.name}' can only be set at start")
            value = _plain(parameter.value)
            reason = spec.problem(value)
            if reason:
                return SetParametersResult(successful=False, reason=f"'{spec.name}' {reason}")
            proposed[spec.name] = value
        reason = self._cross_check(proposed) if self._cross_check else None
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _apply(self, parameters) -> None:
        changed = {p.name: _plain(p.value) for p in parameters if p.name in self._specs}
        if not changed:
            return
        self._values.update(changed)
        for listener in self._listeners:
            listener(changed)


def _declared(spec: ParamSpec, value):
    """What declare_parameter takes for ``value``: an empty array as its type (rclpy would take
    the empty list for a byte array); the parameter then stays unset and reads as its default."""
    if spec.array_of is not None and isinstance(value, (list, tuple)) and not value:
        return spec.parameter_type
    return value


def _type_name(default, array_of: type | None = None) -> str:
    if isinstance(default, (list, tuple)):
        return f'an array of {_TYPE_NAMES[array_of or type(default[0])]}s'
    name = _TYPE_NAMES[type(default)]
    return ('an ' if name[0] in 'aeiou' else 'a ') + name


# ---------------------------------------------------------------------------- shared by the nodes

def pairing_specs(image: str, camera_info: str, slop: float) -> tuple[ParamSpec, ...]:
    """input.* of a node that pairs `image` with its `camera_info` (message_filters' meaning)."""
    return (
        ParamSpec('input.latest_camera_info', False,
                  f'Pair each {image} with the latest {camera_info} instead of matching stamps '
                  '(drivers that stamp CameraInfo differently)'),
        ParamSpec('input.sync_queue_size', 10, f'Messages kept per topic while matching {image} and '
                  f'{camera_info} stamps (message_filters queue_size)', low=1, high=1000),
        ParamSpec('input.sync_slop', slop, f'Largest stamp difference in seconds for {image} and '
                  f'{camera_info} to be paired (message_filters slop)', low=1e-6, high=10.0),
    )


def qos_specs(subscriptions: bool = True, auto_subscription: bool = False) -> tuple[ParamSpec, ...]:
    """qos.*: QoS (qos.QOS_CHOICES) and history depth of the publishers (and subscriptions);
    auto_subscription: qos.subscription also offers (and defaults to) 'auto', for a node that
    re-subscribes reliable after losses (depth_node)."""
    subscription = ParamSpec('qos.subscription', 'sensor_data', 'QoS of the subscriptions', choices=QOS_CHOICES)
    if auto_subscription:
        subscription = ParamSpec('qos.subscription', 'auto', 'QoS of the subscriptions; auto: sensor_data '
                                 '(matches every publisher), then reliable once the middleware reports lost '
                                 'messages (too large for best effort) and every publisher offers reliable',
                                 choices=SUBSCRIPTION_QOS_CHOICES)
    specs = (
        subscription,
        ParamSpec('qos.subscription_depth', 5, 'History depth of the subscriptions', low=1, high=1000),
    ) if subscriptions else ()
    return specs + (
        ParamSpec('qos.publisher', 'reliable', 'QoS of the publishers', choices=QOS_CHOICES),
        ParamSpec('qos.publisher_depth', 2, 'History depth of the publishers', low=1, high=1000),
    )


DIAGNOSTICS_SPECS = (
    ParamSpec('diagnostics.period', 1.0, 'Seconds between /diagnostics messages', low=0.05, high=60.0),
)


def parameter_table_markdown(specs: Iterable[ParamSpec]) -> str:
    """The Markdown table of a parameter table (docs/parameters.md shows each node's; a test keeps
    the page equal to the specs)."""
    def default(value) -> str:
        if isinstance(value, bool):
            return 'true' if value else 'false'
        return "''" if value == '' else str(list(value) if isinstance(value, (list, tuple)) else value)
    rows = ['| parameter | default | meaning | allowed |', '| --- | --- | --- | --- |']
    rows += [f"| `{s.name}` | `{default(s.default)}` | {s.description.replace('|', chr(92) + '|')} | "
             f'{s.constraints()} |' for s in specs]
    return '\n'.join(rows)
