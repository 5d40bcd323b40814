"""No import cycle among the modules of ``ppd_ros``.

Every module is parsed with ``ast`` (nothing is imported), and every ``import``/``from … import``
counts, at module level and inside functions alike: a function-level import that closes a cycle
only fails later, at the first call, instead of at import time.

An import of ``a.b.c`` is an edge to ``a.b.c``; ``from a.b import name`` is an edge to ``a.b.name``
where ``name`` is a submodule of ``a.b``, else to ``a.b`` (the package's ``__init__``). Python also
runs the ``__init__`` of every package above the target first, so ``a`` and ``a.b`` are edges too,
unless they are packages above the importing module itself (those ran before it did).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'ppd_ros'


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name → source file, for every .py file under the package."""
    modules = {}
    for path in sorted((root / package).rglob('*.py')):
        parts = list(path.relative_to(root).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        modules['.'.join(parts)] = path
    return modules


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return name in modules and modules[name].name == '__init__.py'


def _resolve_relative(module: str, level: int, target: str | None, modules: dict[str, Path]) -> str:
    """Absolute name of ``from <level dots><target> import …`` inside ``module``."""
    base = module.split('.')
    if not _is_package(module, modules):
        base = base[:-1]  # a plain module's imports are relative to its package
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return '.'.join(base + ([target] if target else []))


def imported_modules(module: str, modules: dict[str, Path]) -> set[str]:
    """Every module of ``modules`` that ``module`` imports, anywhere in its source."""
    tree = ast.parse(modules[module].read_text(encoding='utf-8'), filename=str(modules[module]))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(module, node.level, node.module, modules) if node.level else node.module
            targets.add(base)
            for alias in node.names:
                if f'{base}.{alias.name}' in modules:
                    targets.add(f'{base}.{alias.name}')
    ancestors = {'.'.join(module.split('.')[:i]) for i in range(1, module.count('.') + 1)}
    if _is_package(module, modules):
        ancestors.add(module)
    edges = set()
    for target in targets:
        parts = target.split('.')
        for i in range(1, len(parts) + 1):  # the target and the packages Python runs before it
            name = '.'.join(parts[:i])
            if name in modules and name not in ancestors and name != module:
                edges.add(name)
    return edges


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    modules = modules or module_files()
    return {name: imported_modules(name, modules) for name in modules}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan, then a path inside it)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                components.append(set(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(component, graph) for component in components]


def _cycle_in(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A closed path start → … → start inside one strongly connected component."""
    start = min(component)
    parents, frontier = {start: None}, [start]
    while frontier:  # breadth first, so the cycle printed is a short one
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return path[::-1] + [start]
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f'no cycle through {start}')  # not reached for a strongly connected component


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / 'pkg'
    (package / 'sub').mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'sub' / '__init__.py').write_text('from .b import thing\n')
    (package / 'a.py').write_text('def f():\n    from .sub import b\n')
    (package / 'sub' / 'b.py').write_text('from .. import a\nthing = 1\n')
    (package / 'c.py').write_text('from pkg.sub import thing\n')
    graph = import_graph(module_files(tmp_path, 'pkg'))
    assert graph['pkg.a'] == {'pkg.sub', 'pkg.sub.b'}
    assert graph['pkg.sub.b'] == {'pkg.a'}            # pkg itself ran before pkg.sub.b
    assert graph['pkg.sub'] == {'pkg.sub.b'}
    assert graph['pkg.c'] == {'pkg.sub'}
    assert find_cycles(graph) == [['pkg.a', 'pkg.sub.b', 'pkg.a']]


def test_ppd_ros_has_no_import_cycle():
    cycles = find_cycles(import_graph())
    if cycles:
        pytest.fail('import cycles in ppd_ros:\n' + '\n'.join(' → '.join(cycle) for cycle in cycles))
