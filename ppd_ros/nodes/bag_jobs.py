"""ppd-bag's plan: which bags, which outputs, what is done already, and the run's summary.

Everything here happens in the driver before any model loads: the inputs (bags, folders of bags,
globs) become jobs, impossible output paths are refused, complete outputs are skipped, and at the
end the results become one table on stderr and one JSON file next to the outputs.

A bag is a rosbag2 folder (with metadata.yaml) or a bare .mcap / .db3 file. An output is complete
when it is at its final name: ppd-bag writes OUT.partial/OUT and renames it only at the end.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

BARE_SUFFIXES = {'.mcap': 'mcap', '.db3': 'sqlite3'}
SUMMARY_NAME = 'ppd-bag-summary.json'
GLOB_CHARS = set('*?[')

# a bag's status in the summary
OK, FRAMES_FAILED, FAILED, SKIPPED, INTERRUPTED, NOT_STARTED = (
    'ok', 'frames failed', 'failed', 'skipped', 'interrupted', 'not started')


@dataclass(frozen=True)
class Job:
    """One input bag and the output bag it becomes."""
    index: int
    input: Path
    output: Path

    @property
    def name(self) -> str:
        return self.input.name


@dataclass
class BagResult:
    """What became of one bag (also a row of the summary)."""
    bag: str
    output: str
    status: str = NOT_STARTED
    frames: int = 0          # frames written
    total: int = 0           # image messages the bag lists
    error: str = ''
    lines: list[str] = field(default_factory=list)  # what to say about it, in order (warnings, skips)
    seconds: float = 0.0
    attempts: int = 0
    worker: str = ''
    peak_mb: float = 0.0     # the worker process's peak resident memory so far
    signum: int = 0          # the signal that interrupted it
    model_error: bool = False  # the worker could not build the model: the whole run stops

    @classmethod
    def of(cls, job: Job, **values) -> 'BagResult':
        return cls(str(job.input), str(job.output), **values)


def is_bag(path: Path) -> bool:
    return (path / 'metadata.yaml').is_file() if path.is_dir() else path.suffix in BARE_SUFFIXES and path.is_file()


def input_storage(path: Path) -> str:
    """'mcap' or 'sqlite3': the storage of an input bag (the default of --storage)."""
    if path.is_file():
        return BARE_SUFFIXES.get(path.suffix, 'sqlite3')
    return 'mcap' if any(path.glob('*.mcap')) else 'sqlite3'


def bag_name(path: Path) -> str:
    """The output name of an input bag: the folder's name, a bare file's stem."""
    return path.stem if path.is_file() and path.suffix in BARE_SUFFIXES else path.name


def _bags_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_bag(p))


def plan(inputs: list[Path], output: Path) -> tuple[bool, list[Job]]:
    """(single, jobs). ``single``: one input that is a bag (or is missing) and OUTPUT is its output
    bag, as ppd-bag always did. Otherwise OUTPUT is a folder with one output bag per input bag,
    named as the input: several inputs, a folder of bags (a folder without metadata.yaml), or a
    glob (expanded here too, for shells that did not). Raises ValueError with the reason."""
    is_pattern = [not p.exists() and bool(GLOB_CHARS & set(str(p))) for p in inputs]
    if len(inputs) == 1 and not is_pattern[0] and (is_bag(inputs[0]) or not inputs[0].is_dir()):
        return True, [Job(0, inputs[0], output)]
    bags: list[Path] = []
    for path, pattern in zip(inputs, is_pattern):
        if pattern:
            found = sorted(Path(p) for p in glob.glob(str(path)))
            matched = [p for p in found if is_bag(p)] + [b for p in found if p.is_dir() and not is_bag(p)
                                                        for b in _bags_in(p)]
            if not matched:
                raise ValueError(f'no bags match {path}')
            bags += matched
        elif path.is_dir() and not is_bag(path):
            inside = _bags_in(path)
            if not inside:
                raise ValueError(f'{path} is neither a bag (no metadata.yaml) nor a folder of bags')
            bags += inside
        else:
            bags.append(path)  # a bag, or a missing path: that bag fails and the others go on
    seen: dict[str, Path] = {}
    unique = []
    for bag in bags:
        key = bag_name(bag)
        if key in seen:
            if seen[key].resolve() == bag.resolve():
                continue  # the same bag twice (a glob and a path)
            raise ValueError(f'two inputs would both write {output / key}: {seen[key]} and {bag} '
                             '(give the bags distinct names)')
        seen[key] = bag
        unique.append(bag)
    return False, [Job(i, bag, output / bag_name(bag)) for i, bag in enumerate(unique)]


# ---------------------------------------------------------------------------------- outputs

def _file_above(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (writing under it fails)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def output_problem(path: Path, overwrite: bool, what: str = 'output bag') -> str | None:
    """Why ``path`` cannot be written as an output bag (or folder of bags), before any model loads."""
    above = _file_above(path)
    if above is not None:
        return f'cannot write the {what} {path}: {above} is a file, not a folder'
    if path.exists() and not path.is_dir():
        return f'{path} is a file, not a bag folder: ppd-bag does not replace it' + (
            ' even with --overwrite (remove it yourself)' if overwrite else '')
    existing = next((p for p in [path, *path.absolute().parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK):
        return f'cannot write the {what} {path}: {existing} is not writable'
    return None


def staging_of(output: Path) -> tuple[Path, Path]:
    """(OUT.partial, OUT.partial/OUT): the bag keeps its final name inside, so the file names in
    its metadata.yaml stay right after the rename."""
    staging = output.with_name(output.name + '.partial')
    return staging, staging / output.name


# ---------------------------------------------------------------------------------- summary

def exit_code(results: list[BagResult]) -> int:
    """2 if a bag failed, 128+N if interrupted by signal N, 1 if frames failed, else 0."""
    statuses = {r.status for r in results}
    if FAILED in statuses:
        return 2
    interrupted = [r.signum for r in results if r.status == INTERRUPTED]
    if interrupted or NOT_STARTED in statuses:
        return 128 + (interrupted[0] if interrupted else 2)
    return 1 if FRAMES_FAILED in statuses else 0


def table(results: list[BagResult]) -> str:
    """The summary table: bag, frames, status, error (one line each)."""
    rows = [('bag', 'frames', 'status', 'error')]
    for r in results:
        rows.append((Path(r.bag).name or r.bag, f'{r.frames}/{r.total}' if r.total else str(r.frames),
                     r.status, r.error))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return '\n'.join(('  ' + '  '.join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + '  ' + row[3]).rstrip()
                     for row in rows)


def counts(results: list[BagResult]) -> str:
    """'3 bag(s): 2 ok, 1 failed'."""
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    return f'{len(results)} bag(s): ' + ', '.join(f'{n} {s}' for s, n in by_status.items())


def write_summary(folder: Path, results: list[BagResult], settings: dict) -> Path:
    """The summary as JSON in the output folder (written whole, then renamed)."""
    path = folder / SUMMARY_NAME
    rows = []
    for r in results:
        row = asdict(r)
        for key in ('lines', 'signum', 'model_error'):
            row.pop(key)
        rows.append(row)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps({'settings': settings, 'bags': rows}, indent=1, default=str) + '\n')
    tmp.replace(path)
    return path
