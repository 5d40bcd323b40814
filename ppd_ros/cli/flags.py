"""One command-line vocabulary for ppd-demo, ppd-depth, ppd-bag, ppd-eval and ppd-export.

A flag has the same name and the same meaning in every command that has it (``FLAG_TABLE``; the
README's flag table is ``flag_table_markdown()``):

  --area WxH            model resolution: the pixel area the model runs at, aspect ratio kept
                        (ppd-export: exactly WxH, multiples of 16 — the graph has one fixed size)
  --camera-size WxH     the synthetic camera's image size (ppd-demo, ppd-eval)
  --steps N             Euler sampling steps
  --seed N              the NOISE seed (default ``DEFAULTS.seed``: 0, reproducible)
  --scene-seed N        the synthetic world's seed (ppd-demo, ppd-eval)
  --quiet, -q           no progress bar (bars are drawn only on a terminal anyway)
  --resolution R        output resolution: inference (the model's) or camera (the input's)
  --near M / --far M    assumed metres at relative depth 0 / 1 (defaults ``DEFAULTS.near/far``)
  --params FILE         a depth_node parameter file (ppd-depth, ppd-bag): its pipeline settings
                        apply as in the node; defaults < --params files (in order) < flags given

Old spellings keep working for one release through ``Deprecated`` (an argparse Action): it stores
into the new flag's destination and prints one line on stderr, once per run,
``PROG: --old is deprecated, use --new``. Pure renames are hidden from --help.

The seed transition (``SEED_TRANSITION``), chosen so that no flag silently changes meaning:
in this release ppd-demo and ppd-eval keep ``--seed`` as the SCENE seed, and every use of it says
so on stderr (use --scene-seed; --seed will be the noise seed). Their noise seed is spelled
``--noise-seed`` meanwhile (visible, no note: it is the only spelling there until the switch).
In the next release ``SEED_TRANSITION`` becomes False: ``--seed`` is the noise seed in every
command and ``--noise-seed`` a deprecated alias of it; FLAG_TABLE's ``SEED_DURING_TRANSITION``
entries then go. ppd-depth, ppd-bag and ppd-export have no scene: ``--seed`` is the noise seed
there already.

--resolution is one concept wherever depth is produced: the resolution of the depth a command
outputs (depth_node's output.resolution) — and so the resolution ppd-eval scores at. ppd-eval's
old ``--at model|camera`` and ppd-depth's old ``--size model|input`` are its deprecated spellings
(model → inference; camera / input → camera).

Every --help states the exit codes (``exit_status({code: meaning})`` as the epilog), progress
bars come from ``progress_bar`` (tqdm, only on a terminal, none with --quiet), and every command
ends with one summary line (``summary_line``).
"""
from __future__ import annotations

import argparse
import sys

from ppd_ros.pipeline.settings import DEFAULTS, RESOLUTIONS, near_far_problem

COMMANDS = ('ppd-demo', 'ppd-depth', 'ppd-bag', 'ppd-eval', 'ppd-export')
#: Where each command's build_parser() lives (the flag-table test reads them all).
PARSERS = {'ppd-demo': 'ppd_ros.nodes.demo', 'ppd-depth': 'ppd_ros.cli.depth', 'ppd-bag': 'ppd_ros.nodes.bag',
           'ppd-eval': 'ppd_ros.cli.evaluate', 'ppd-export': 'ppd_ros.cli.export'}

#: True for this release: --seed is still the scene seed in the commands with a synthetic scene.
SEED_TRANSITION = True
SCENE_COMMANDS = ('ppd-demo', 'ppd-eval')

# The meaning of each flag: a phrase its help text starts with, in every command that has it.
MODEL_RESOLUTION = 'model resolution'
CAMERA_SIZE = "synthetic camera's image size"
STEPS = 'Euler sampling steps'
NOISE_SEED = 'noise seed'
SCENE_SEED = "synthetic world's seed"
QUIET = 'no progress bar'
OUTPUT_RESOLUTION = 'output resolution'
NEAR = 'assumed metres at relative depth 0'
FAR = 'assumed metres at relative depth 1'
PARAMS = 'depth_node parameter file'
SEED_DURING_TRANSITION = 'DEPRECATED here: the scene seed'  # --seed in SCENE_COMMANDS this release

_ALL = COMMANDS
_IMAGE_OUT = ('ppd-demo', 'ppd-depth', 'ppd-bag')  # commands that turn relative depth into metres


def _table(meaning: str, commands) -> dict:
    return {command: meaning for command in commands}


#: {flag: {command: meaning}} — the flags every command shares, and what they mean there.
FLAG_TABLE: dict[str, dict[str, str]] = {
    '--area': _table(MODEL_RESOLUTION, _ALL),
    '--camera-size': _table(CAMERA_SIZE, SCENE_COMMANDS),
    '--steps': _table(STEPS, _ALL),
    '--seed': {**_table(NOISE_SEED, ('ppd-depth', 'ppd-bag', 'ppd-export')),
               **_table(SEED_DURING_TRANSITION if SEED_TRANSITION else NOISE_SEED, SCENE_COMMANDS)},
    '--scene-seed': _table(SCENE_SEED, SCENE_COMMANDS),
    '--quiet': _table(QUIET, ('ppd-demo', 'ppd-depth', 'ppd-bag', 'ppd-eval')),
    '--resolution': _table(OUTPUT_RESOLUTION, ('ppd-demo', 'ppd-depth', 'ppd-bag', 'ppd-eval')),
    '--near': _table(NEAR, _IMAGE_OUT),
    '--far': _table(FAR, _IMAGE_OUT),
    '--params': _table(PARAMS, ('ppd-depth', 'ppd-bag')),
}
if SEED_TRANSITION:
    FLAG_TABLE['--noise-seed'] = _table(NOISE_SEED, SCENE_COMMANDS)

#: Defaults a flag must have wherever it has its table meaning (the pipeline's, as depth_node's).
FLAG_DEFAULTS = {'--seed': DEFAULTS.seed, '--noise-seed': DEFAULTS.seed, '--near': DEFAULTS.near,
                 '--far': DEFAULTS.far, '--resolution': DEFAULTS.resolution}

#: {old spelling: {command: new spelling}} — accepted for one release with a note on stderr.
DEPRECATED_FLAGS = {
    '--target-area W H': {'ppd-demo': '--area WxH'},
    '--width W / --height H': {'ppd-demo': '--camera-size WxH', 'ppd-eval': '--camera-size WxH',
                               'ppd-export': '--area WxH'},
    '--seed N (scene)': _table('--scene-seed N', SCENE_COMMANDS) if SEED_TRANSITION else {},
    '--no-progress': {'ppd-eval': '--quiet'},
    '--at model|camera': {'ppd-eval': '--resolution inference|camera'},
    '--size model|input': {'ppd-depth': '--resolution inference|camera'},
}


# ------------------------------------------------------------------------------ values

def parse_size(text: str) -> tuple[int, int]:
    """'WxH' (e.g. 1024x768) → (width, height), both positive; argparse type for every size flag."""
    try:
        w, h = (int(v) for v in str(text).lower().replace('×', 'x').split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WxH, e.g. 1024x768, got {text!r}') from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f'both sides must be positive, got {text!r}')
    return w, h


def format_size(size) -> str:
    return f'{size[0]}x{size[1]}'


def exit_status(codes: dict[int, str]) -> str:
    """'Exit status: 0 done; 1 …; 2 usage error …' for an epilog (every --help states its codes)."""
    return 'Exit status: ' + '; '.join(f'{code} {meaning}' for code, meaning in sorted(codes.items())) + '.'


def summary_line(prog: str, text: str, file=None) -> None:
    """The one line every command ends with: 'PROG: text' on stdout."""
    print(f'{prog}: {text}', file=file or sys.stdout, flush=True)


def progress_bar(total: int, quiet: bool = False, **options):
    """A tqdm bar on stderr: drawn only when stderr is a terminal (tqdm's disable=None), never
    with --quiet; a pipe or a log gets no bar, just the command's summary line."""
    from tqdm import tqdm
    options.setdefault('file', sys.stderr)
    options.setdefault('dynamic_ncols', True)
    return tqdm(total=total, disable=True if quiet else None, **options)


# ------------------------------------------------------------------------------ deprecation

class Deprecated(argparse.Action):
    """An old spelling: stores into the new flag's ``dest`` and notes once per run on stderr
    ``PROG: --old is deprecated, use NEW`` (or ``note``).

    add_argument options besides the usual (nargs, type, choices, const, help):
      new      the new spelling, for the note ('--area WxH')
      part     store the value as element `part` of the destination's pair (--width → size[0]);
               an unset pair becomes [None, None], so a half-given size can be detected
      convert  a function of the parsed value (a list with nargs) → the stored value
      note     the whole text after 'PROG: ' instead of the standard one
    ``help`` defaults to SUPPRESS: a pure rename does not show in --help.
    """

    def __init__(self, option_strings, dest, new: str, part: int | None = None, convert=None,
                 note: str | None = None, nargs=None, const=None, help=argparse.SUPPRESS,
                 default=argparse.SUPPRESS, **kwargs):
        if const is not None and nargs is None:
            nargs = 0
        # default SUPPRESS: the new flag's default stands, whichever of the two was added first
        super().__init__(option_strings, dest, nargs=nargs, const=const, help=help, default=default, **kwargs)
        self.new, self.part, self.convert, self.note = new, part, convert, note
        self.noted = False

    def __call__(self, parser, namespace, values, option_string=None):
        if not self.noted:
            self.noted = True
            text = self.note or f'{option_string} is deprecated, use {self.new}'
            print(f'{parser.prog}: {text}', file=sys.stderr)
        value = self.const if self.nargs == 0 else values
        if self.convert is not None:
            value = self.convert(value)
        if self.part is not None:
            pair = list(getattr(namespace, self.dest, None) or (None, None))
            pair[self.part] = value
            value = tuple(pair)
        setattr(namespace, self.dest, value)


# ------------------------------------------------------------------------------ adders

def add_sampling_flags(group, *, steps_default: int | None = None, area_help: str | None = None,
                       exact_area: bool = False, scene: bool = False, seed_help: str | None = None) -> None:
    """--steps, --seed (the noise seed, default DEFAULTS.seed) and --area WxH (dest ``area``,
    parsed by parse_size, default None: the model's own) on a parser or group.

    exact_area: ppd-export: --area is the exact graph size, not a pixel area; `area_help`
    replaces the text after the meaning. scene: the command also has a synthetic scene
    (add_scene_flags); while SEED_TRANSITION its noise seed is spelled --noise-seed (dest ``seed``)."""
    steps_text = steps_default if steps_default else "the model's own, 4"
    group.add_argument('--steps', type=int, default=steps_default, metavar='N',
                       help=f'{STEPS} (default: {steps_text}; fewer: faster, coarser)')
    seed_text = seed_help or (f'{NOISE_SEED} of the diffusion sampler (default {DEFAULTS.seed}: the same frame '
                              'gives the same depth every time)')
    if scene and SEED_TRANSITION:
        group.add_argument('--noise-seed', dest='seed', type=int, default=DEFAULTS.seed, metavar='N',
                           help=seed_text + '; --seed takes this meaning in the next release')
    else:
        group.add_argument('--seed', type=int, default=DEFAULTS.seed, metavar='N', help=seed_text)
        if scene:
            group.add_argument('--noise-seed', dest='seed', type=int, action=Deprecated, new='--seed N')
    if exact_area:
        text = f'{MODEL_RESOLUTION}: exactly WxH, both multiples of 16 (the graph has one fixed size)'
    else:
        text = f'{MODEL_RESOLUTION}: the pixel area the model runs at, aspect ratio kept'
    group.add_argument('--area', type=parse_size, metavar='WxH',
                       help=text + ' ' + (area_help or "(default: the model's own: 1024x768 for the released "
                                                       'weights, the demo model\'s training resolution; smaller '
                                                       'is faster and coarser)'))


def add_scene_flags(group, *, camera_size: tuple[int, int], scene_seed_help: str = '') -> None:
    """--camera-size WxH (dest ``camera_size``) and --scene-seed N (dest ``scene_seed``, default 0)
    of a synthetic world; the old --width/--height and (SEED_TRANSITION) --seed meaning the scene
    seed, each with its note."""
    group.add_argument('--camera-size', type=parse_size, default=tuple(camera_size), metavar='WxH',
                       help=f'{CAMERA_SIZE} (default {format_size(camera_size)})')
    group.add_argument('--scene-seed', type=int, default=0, metavar='N',
                       help=f'{SCENE_SEED} (default 0){scene_seed_help}')
    for part, old in enumerate(('--width', '--height')):
        group.add_argument(old, dest='camera_size', type=int, action=Deprecated, part=part,
                           new='--camera-size WxH')
    if SEED_TRANSITION:
        group.add_argument('--seed', dest='scene_seed', type=int, action=Deprecated, new='--scene-seed N',
                           metavar='N', help=f'{SEED_DURING_TRANSITION} in this release (use --scene-seed); '
                                             'in the next release --seed is the noise seed, as in ppd-depth',
                           note='--seed is the scene seed in this release: use --scene-seed N '
                                '(--seed will mean the noise seed, now --noise-seed)')


def add_quiet_flag(group, *, old: tuple[str, ...] = ()) -> None:
    """--quiet/-q (dest ``quiet``), and old spellings of it (e.g. --no-progress) as deprecated."""
    group.add_argument('--quiet', '-q', action='store_true',
                       help=f'{QUIET} (one is drawn only on a terminal anyway); the summary line stays')
    for spelling in old:
        group.add_argument(spelling, dest='quiet', action=Deprecated, const=True, new='--quiet')


def add_resolution_flag(group, *, help_tail: str = '', old: str | None = None, old_choices=None) -> None:
    """--resolution inference|camera (dest ``resolution``, default DEFAULTS.resolution); `old`:
    a deprecated spelling whose choices `old_choices` ({old: new}) map onto inference|camera."""
    group.add_argument('--resolution', choices=RESOLUTIONS, default=DEFAULTS.resolution,
                       help=f'{OUTPUT_RESOLUTION}: camera (the camera\'s / input image\'s size) or inference (the '
                            f'model resolution); default {DEFAULTS.resolution}{help_tail}')
    if old is not None:
        group.add_argument(old, dest='resolution', choices=tuple(old_choices), action=Deprecated,
                           new='--resolution ' + '|'.join(RESOLUTIONS), convert=old_choices.get)


def near_far_flags_problem(args) -> str | None:
    """The pipeline's near/far rule for a command's --near/--far."""
    return near_far_problem(args.near, args.far, ('--near', '--far'))


def add_near_far_flags(group) -> None:
    """--near / --far (dests ``near``, ``far``; defaults DEFAULTS.near / DEFAULTS.far)."""
    group.add_argument('--near', type=float, default=DEFAULTS.near, metavar='M',
                       help=f'{NEAR} (default {DEFAULTS.near:g})')
    group.add_argument('--far', type=float, default=DEFAULTS.far, metavar='M',
                       help=f'{FAR} (default {DEFAULTS.far:g})')


def add_params_flag(group, *, help_tail: str = '') -> None:
    """--params FILE (dest ``params``, repeatable, default none): depth_node parameter files."""
    group.add_argument('--params', action='append', type=str, default=[], metavar='FILE',
                       help=f'{PARAMS} (the YAML that depth_node\'s --params-file takes, e.g. '
                            'config/ppd_costmap.yaml): its pipeline settings (output.*, cloud.*, scan.*, '
                            'temporal.* ...) apply here as in the node; repeatable, later files win; flags '
                            'given on the command line win over the files; model.*, qos.* and topics are '
                            f'ignored (one note line){help_tail}')


_UNSET = object()


def given_dests(parser: argparse.ArgumentParser, argv, dests) -> set[str]:
    """Which of ``dests`` the command line sets explicitly (a flag given, even at its default
    value): argv parsed again into a namespace that holds a marker for each of them."""
    probe = argparse.Namespace(**{dest: _UNSET for dest in dests})
    parser.parse_args(sys.argv[1:] if argv is None else list(argv), namespace=probe)
    return {dest for dest in dests if getattr(probe, dest) is not _UNSET}


def apply_params_files(prog: str, parser: argparse.ArgumentParser, args, argv, dests: dict[str, str]):
    """Read ``args.params`` (nodes.params_file) and set each flag of ``dests`` ({dest: settings
    field}) that the command line did not give to the files' value, so that defaults < files <
    flags given. Prints the files' note line (parameters ignored here) on stderr. Returns the
    FileSettings (None without --params); ParamsFileError (one line) for a file the node would
    refuse — before any model loads."""
    if not args.params:
        return None
    from ppd_ros.nodes.params_file import ignored_note, read
    files = read(args.params)
    note = ignored_note(files)
    if note:
        print(f'{prog}: {note}', file=sys.stderr)
    given = given_dests(parser, argv, dests)
    for dest, field in dests.items():
        if dest not in given:
            setattr(args, dest, getattr(files.settings, field))
    return files


# ------------------------------------------------------------------------------ help texts

def help_of(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    """The action of `flag` in `parser` (None if the parser has no such flag)."""
    for action in parser._actions:  # argparse keeps no public index of its actions
        if flag in action.option_strings:
            return action
    return None


def flag_table_markdown() -> str:
    """FLAG_TABLE as a Markdown table (the README's flag table)."""
    rows = ['| flag | ' + ' | '.join(COMMANDS) + ' |', '|---|' + '---|' * len(COMMANDS)]
    for flag, meanings in FLAG_TABLE.items():
        rows.append(f'| `{flag}` | ' + ' | '.join(meanings.get(c, '') for c in COMMANDS) + ' |')
    return '\n'.join(rows)
