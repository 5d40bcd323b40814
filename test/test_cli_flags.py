"""One command-line vocabulary (ppd_ros/cli/flags.py): every flag of FLAG_TABLE appears in each
command's --help with the table's meaning (and the pipeline's default), every --help states the exit
codes, old spellings store into the new flag with one note, progress bars only on a terminal, and
every node executable answers --help with its parameters without starting."""
import argparse
import importlib
import io
import re
import subprocess
import sys

import pytest

from ppd_ros.cli import flags
from ppd_ros.cli.flags import (COMMANDS, FLAG_DEFAULTS, FLAG_TABLE, PARSERS, SEED_DURING_TRANSITION, Deprecated,
                               exit_status, parse_size)


#: the argparse type each size flag must use
TYPES = {'--area': parse_size, '--camera-size': parse_size}


def _parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(PARSERS[command])
    return module.build_parser()


def _plain(text: str) -> str:
    return re.sub(r'\s+', ' ', text or '').strip()


def _problems(command: str, flag: str) -> list[str]:
    """What is wrong with `flag` in `command`'s parser and --help (empty: as the table says)."""
    parser = _parser(command)
    meaning = FLAG_TABLE[flag][command]
    action = flags.help_of(parser, flag)
    if action is None:
        return [f'{command} has no {flag}']
    problems = []
    if action.help == argparse.SUPPRESS or not re.search(rf'(^|\s|\[){re.escape(flag)}\b', parser.format_help()):
        problems.append(f'{flag} is not in {command} --help')
    if not _plain(action.help).startswith(meaning):
        problems.append(f'{command} {flag}: help {action.help!r} does not start with {meaning!r}')
    if meaning != SEED_DURING_TRANSITION and flag in FLAG_DEFAULTS and action.default != FLAG_DEFAULTS[flag]:
        problems.append(f'{command} {flag}: default {action.default!r}, the pipeline\'s is {FLAG_DEFAULTS[flag]!r}')
    if flag in TYPES and action.type is not TYPES[flag]:
        problems.append(f'{command} {flag}: type {action.type!r}, not {TYPES[flag].__name__}')
    return problems


def _check(key, problems):
    assert not problems, f'{key}: ' + '; '.join(problems)


@pytest.mark.parametrize('command, flag', [(c, f) for f, table in FLAG_TABLE.items() for c in table])
def test_flag_table_holds_in_every_help(command, flag):
    _check((command, flag), _problems(command, flag))


@pytest.mark.parametrize('command', COMMANDS)
def test_every_help_states_the_exit_codes(command):
    text = _plain(_parser(command).format_help())
    problems = [] if re.search(r'Exit status: 0 \w', text) and re.search(r'\b2 usage error', text) else \
        [f'{command} --help does not state its exit codes ("Exit status: 0 …; 2 usage error …")']
    _check((command, 'exit status'), problems)


@pytest.mark.parametrize('command', COMMANDS)
def test_old_spellings_are_hidden_or_marked_deprecated(command):
    parser = _parser(command)
    for action in parser._actions:
        if isinstance(action, Deprecated):
            assert action.help == argparse.SUPPRESS or 'DEPRECATED' in action.help, action.option_strings


def test_the_table_says_one_meaning_per_flag():
    for flag, table in FLAG_TABLE.items():
        meanings = {m for m in table.values() if m != SEED_DURING_TRANSITION}
        assert len(meanings) == 1, (flag, table)
    assert set(PARSERS) == set(COMMANDS)
    assert '| `--area` |' in flags.flag_table_markdown()


# ---------------------------------------------------------------------------- the mechanism

def _toy():
    p = argparse.ArgumentParser(prog='ppd-toy', epilog=exit_status({0: 'done', 2: 'usage error'}))
    p.add_argument('--old-size', dest='size', type=int, nargs=2, action=Deprecated, new='--size WxH', convert=tuple)
    p.add_argument('--size', type=parse_size, default=(4, 3), metavar='WxH', help='a size')
    p.add_argument('--width', dest='size', type=int, action=Deprecated, part=0, new='--size WxH')
    p.add_argument('--no-bar', dest='quiet', action=Deprecated, const=True, new='--quiet')
    p.add_argument('--quiet', action='store_true')
    return p


def test_deprecated_stores_into_the_new_flag_with_one_note(capsys):
    p = _toy()
    assert p.parse_args([]).size == (4, 3)                       # the new flag's default stands
    args = p.parse_args(['--old-size', '8', '6', '--old-size', '10', '6', '--no-bar'])
    assert (args.size, args.quiet) == ((10, 6), True)
    assert capsys.readouterr().err.splitlines() == ['ppd-toy: --old-size is deprecated, use --size WxH',
                                                    'ppd-toy: --no-bar is deprecated, use --quiet']
    assert _toy().parse_args(['--width', '7']).size == (7, 3)    # one part of a pair
    help_text = p.format_help()
    assert '--old-size' not in help_text and '--no-bar' not in help_text
    assert 'Exit status: 0 done; 2 usage error.' in help_text


@pytest.mark.parametrize('text, size', [('1024x768', (1024, 768)), ('64X48', (64, 48)), (' 32x16', (32, 16))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize('text', ['1024', '0x10', '10x-1', 'axb', '1x2x3'])
def test_parse_size_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match='WxH|positive'):
        parse_size(text)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_only_on_a_terminal():
    pytest.importorskip('tqdm')
    assert flags.progress_bar(3, file=io.StringIO()).disable               # a pipe or a log: no bar
    terminal = _Terminal()
    bar = flags.progress_bar(3, file=terminal)
    assert not bar.disable
    bar.update(1)
    bar.close()
    assert '1/3' in terminal.getvalue()
    assert flags.progress_bar(3, quiet=True, file=_Terminal()).disable      # --quiet


# ---------------------------------------------------------------------------- node executables

NODES = {'synthetic_camera_node': 'lidar_lines', 'depth_node': 'model.steps',
         'depth_lifecycle_node': 'model.steps', 'scale_fusion_node': 'source'}


class _Started(Exception):
    pass


@pytest.mark.parametrize('node', sorted(NODES))
def test_node_help_lists_parameters_and_does_not_start(node, monkeypatch, capsys):
    pytest.importorskip('rclpy')
    from ppd_ros.nodes import runner
    module = importlib.import_module(f'ppd_ros.nodes.{node}')

    def no_start(*args, **kwargs):
        raise _Started('rclpy.init was called')
    seen = []
    real_help = runner.node_help

    def spy(name, text, specs):
        seen.append((name, list(specs)))
        return real_help(name, text, specs)
    monkeypatch.setattr(runner.rclpy, 'init', no_start)
    monkeypatch.setattr(runner, 'use_package_fastdds_profile', no_start)
    monkeypatch.setattr(runner, 'node_help', spy)
    code = module.main(['--help'])  # _Started if it starts
    out = capsys.readouterr().out
    assert code == 0
    (name, specs), = seen
    assert name == node and NODES[node] in {s.name for s in specs}
    for spec in specs:
        assert f'  {spec.name}  (' in out
    assert out.startswith(f'usage: {node} ') and 'Exit status: 0' in out


def test_node_help_is_read_before_ros_args_only():
    pytest.importorskip('rclpy')
    from ppd_ros.nodes.runner import wants_help
    assert wants_help(['-h']) and wants_help(['prog', '--help', '--ros-args', '-p', 'a:=1'])
    assert wants_help(['--ros-args', '-p', 'a:=1', '--', '-h'])
    assert not wants_help(['--ros-args', '-p', 'help:=1', '-h'])
    assert not wants_help(['--ros-args', '--params-file', '--help'])
    assert not wants_help([])


def test_node_executable_help_exits_0_in_a_process():
    pytest.importorskip('rclpy')
    result = subprocess.run([sys.executable, '-m', 'ppd_ros.nodes.synthetic_camera_node', '--help'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'image_raw' in result.stdout and 'lidar_lines' in result.stdout and 'num_frames' in result.stdout


def test_the_readme_shows_the_flag_table():
    from pathlib import Path
    from ppd_ros.cli.flags import flag_table_markdown
    readme = (Path(__file__).resolve().parents[1] / 'README.md').read_text()
    assert flag_table_markdown().strip() in readme, 'README: paste ppd_ros.cli.flags.flag_table_markdown()'
