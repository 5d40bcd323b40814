"""depth_node parameter files (``--params-file``) read by the offline commands (``--params FILE``).

ppd-bag and ppd-depth run the frame pipeline that depth_node runs; with ``--params`` they take its
settings from the same YAML the node takes, so a costmap configuration (config/ppd_costmap.yaml)
gives the same depth/image offline. The mapping is the node's own: the values are checked by its
table (``depth_node_params.PARAMETERS``: ``ParamSpec.from_ros`` for bare on/off, ``problem`` for
the value) and become settings through ``depth_node_params.pipeline_settings``.

A file holds sections keyed by node name (``/**/depth_node``, ``/ns/depth_node``, ``depth_node``
or ``/**``), each with ``ros__parameters`` as nested mappings (``output: {max_range: 8.0}`` is
``output.max_range``); sections of other nodes are skipped. Several files apply in order, later
wins, as ROS does. Parameters that are not pipeline settings (model.*, qos.*, topics, input.*
other than rectify …) are reported by ``ignored`` — the commands give the model with their own
flags (--dit, --encoder, --steps, --seed …). Unknown names and bad values raise
``ParamsFileError``, whose text is one line naming the file and the parameter.

Needs PyYAML (``python3-yaml`` in a ROS install; ``pip install pyyaml``), imported only here.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

NODE = 'depth_node'
#: Names every ROS node accepts, which no table of ours lists: not errors, not settings.
ROS_NAMES = ('use_sim_time', 'start_type_description_service')
ROS_PREFIXES = ('qos_overrides.',)


class ParamsFileError(ValueError):
    """A parameter file cannot be used; the text (one line) names the file and the parameter."""


@dataclass(frozen=True)
class FileSettings:
    """What the files say: ``settings`` (the pipeline's, as depth_node would run them), the
    pipeline parameters the files set (``given``), and the other parameters they set to a value
    other than the default (``ignored``: name → value) or to the default (``ignored_defaults``)."""
    settings: object
    given: tuple = ()
    ignored: tuple = ()
    ignored_defaults: int = 0

    def changes(self) -> dict:
        """The settings the files change from the pipeline's DEFAULTS (field → value)."""
        from ppd_ros.pipeline.settings import DEFAULTS
        return {f.name: getattr(self.settings, f.name) for f in fields(self.settings)
                if getattr(self.settings, f.name) != getattr(DEFAULTS, f.name)}


def _yaml():
    try:
        import yaml
    except ImportError:
        raise ParamsFileError('--params needs PyYAML: pip install pyyaml (in a ROS install: python3-yaml)') from None
    return yaml


def _node_tables():
    """depth_node's table; it lives in the node layer, which needs the ROS 2 Python messages."""
    try:
        from . import depth_node_params
    except ImportError as exc:
        raise ParamsFileError(f'--params reads depth_node\'s parameter table, which needs the ROS 2 Python '
                              f'packages (a ROS 2 install, or pip install "ppd_ros[ros]"): {exc}') from None
    return depth_node_params


def _matches(key) -> bool:
    """A section key that applies to depth_node (any namespace) as ROS matches it."""
    parts = [p for p in str(key).split('/') if p]
    return parts in (['**'], [NODE]) or (len(parts) > 1 and parts[-1] == NODE)


def _flatten(tree, prefix: str = '') -> dict:
    flat = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def read_values(path) -> dict:
    """{parameter name: value as YAML gave it} for depth_node from one file (sections in order)."""
    path = Path(path)
    try:
        document = _yaml().safe_load(path.read_text())
    except OSError as exc:
        raise ParamsFileError(f'{path}: cannot read the parameter file: {exc.strerror or exc}') from None
    except _yaml().YAMLError as exc:
        raise ParamsFileError(f'{path}: not YAML: {" ".join(str(exc).split())}') from None
    if not isinstance(document, dict):
        raise ParamsFileError(f'{path}: not a parameter file (expected "/**/depth_node: ros__parameters: ...")')
    values: dict = {}
    sections = 0
    for key, section in document.items():
        if not _matches(key):
            continue
        if not isinstance(section, dict) or not isinstance(section.get('ros__parameters'), dict):
            raise ParamsFileError(f'{path}: {key}: expected "ros__parameters:" with the parameters under it')
        sections += 1
        values.update(_flatten(section['ros__parameters']))
    if not sections:
        raise ParamsFileError(f'{path}: no parameters for {NODE} (expected a "/**/{NODE}:", "{NODE}:" or "/**:" '
                              f'section with ros__parameters; found: {", ".join(map(str, document)) or "nothing"})')
    return values


def _typed(spec, value):
    """(value in the parameter's type, None) — ROS's rules: an integer may stand for a double,
    arrays as tuples — or (None, the reason it is not)."""
    from .params import _type_name
    value = spec.from_ros(value)
    default = spec.default
    kind = spec.array_of or (type(default[0]) if isinstance(default, (list, tuple)) and default else type(default))
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    items = [float(v) if kind is float and type(v) is int else v for v in items]
    array = isinstance(default, (list, tuple))
    if isinstance(value, (list, tuple)) != array or any(type(v) is not kind for v in items):
        return None, f'must be {_type_name(default, spec.array_of)}, got {value!r}'
    return (tuple(items) if array else items[0]), None


def pipeline_names() -> frozenset:
    """The parameters that are pipeline settings: those ``pipeline_settings`` reads, except the
    model's (model.seed: the commands' --seed is the noise seed)."""
    tables = _node_tables()
    read = set()

    class Reads(dict):
        def __getitem__(self, name):
            read.add(name)
            return super().__getitem__(name)

    tables.pipeline_settings(Reads({spec.name: spec.default for spec in tables.PARAMETERS}))
    return frozenset(name for name in read if not name.startswith('model.'))


def read(paths) -> FileSettings:
    """The pipeline settings of depth_node parameter files applied in order (later wins);
    ParamsFileError (one line) for a file, a name or a value the node would refuse."""
    tables = _node_tables()
    specs = {spec.name: spec for spec in tables.PARAMETERS}
    values = {name: (tuple(spec.default) if isinstance(spec.default, list) else spec.default)
              for name, spec in specs.items()}
    pipeline = pipeline_names()
    given, ignored = {}, {}
    for path in paths:
        for name, raw in read_values(path).items():
            if name in ROS_NAMES or name.startswith(ROS_PREFIXES) or name in tables.DEPRECATED_PARAMETERS:
                ignored[name] = raw
                continue
            spec = specs.get(name)
            if spec is None:
                raise ParamsFileError(f"{path}: unknown parameter '{name}' (depth_node has no such parameter; "
                                      'see docs/parameters.md)')
            value, problem = _typed(spec, raw)
            problem = problem or spec.problem(value)
            if problem:
                raise ParamsFileError(f"{path}: parameter '{name}' {problem}")
            if name in pipeline:
                values[name] = value
                given[name] = value
            else:
                ignored[name] = value
    problem = tables.check_parameters(values)
    if problem:
        raise ParamsFileError(f'{", ".join(map(str, paths))}: {problem}')
    changed = tuple(sorted(n for n, v in ignored.items() if n not in specs or _differs(v, specs[n].default)))
    return FileSettings(tables.pipeline_settings(values), tuple(sorted(given)), changed,
                        len(ignored) - len(changed))


def _differs(value, default) -> bool:
    return (tuple(value) if isinstance(value, (list, tuple)) else value) != \
        (tuple(default) if isinstance(default, (list, tuple)) else default)


def ignored_note(file_settings: FileSettings) -> str | None:
    """The one line saying which parameters of the files the command does not use, or None."""
    names = file_settings.ignored
    if not names:
        return None
    more = f' ({file_settings.ignored_defaults} more at their defaults)' if file_settings.ignored_defaults else ''
    return (f'note: --params: not pipeline settings, ignored here: {", ".join(names)}{more} '
            '(the model comes from this command\'s flags: --dit, --encoder, --steps, --seed, ...)')
