"""package.xml declares exactly what the installed code imports (ppd_ros/ and launch/; ppd_dev/ is
not installed by colcon), and what the tests import as test dependencies."""
import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Python modules whose rosdep key is not their name (keys from rosdistro's rosdep/python.yaml).
ROSDEP_KEYS = {'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'torch': 'python3-torch',
               'tqdm': 'python3-tqdm', 'yaml': 'python3-yaml', 'scipy': 'python3-scipy',
               'pytest': 'python3-pytest'}
#: Imported, but with no rosdep key (nor a Debian/Ubuntu package): package.xml says so in a
#: comment and the README installs them with pip.
PIP_ONLY = {'safetensors', 'rosbags', 'onnx', 'onnxruntime', 'ray'}  # optional: onnx, onnxruntime
#                                          (ppd-export, ONNX backends), ray (ppd-bag --ray)
#: Declared although no Python file imports them, and why.
NOT_IMPORTED = {'rosidl_default_runtime': 'runtime of the generated ppd_ros/msg',
                'rviz2': 'executable the launch file starts with rviz:=true'}
#: Imported by tests, provided by this source tree.
OWN = {'ppd_ros', 'ppd_dev', 'conftest', 'test_depth_node_harness'}


def _declared(*tags) -> set:
    root = ET.parse(REPO / 'package.xml').getroot()
    return {element.text.strip() for tag in tags for element in root.findall(tag)}


def _imports(files) -> dict:
    """rosdep key or ROS package → the files importing it (standard library and own code left out)."""
    found = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split('.')[0]
                if top in sys.stdlib_module_names or top in OWN or top.startswith('test_'):
                    continue
                found.setdefault(ROSDEP_KEYS.get(top, top), set()).add(str(path.relative_to(REPO)))
    return found


def _installed_python_files():
    files = sorted((REPO / 'ppd_ros').rglob('*.py')) + sorted((REPO / 'launch').glob('*.py'))
    assert files and not any('ppd_dev' in f.parts for f in files)
    return files


def test_exec_dependencies_are_exactly_the_imports_of_the_installed_code():
    imported = _imports(_installed_python_files())
    declared = _declared('depend', 'exec_depend')
    missing = {key: sorted(files)[:3] for key, files in imported.items() if key not in declared | PIP_ONLY}
    assert not missing, (f'imported but not in package.xml (add <exec_depend>, or a key to ROSDEP_KEYS / '
                         f'PIP_ONLY here): {missing}')
    unused = declared - set(imported) - set(NOT_IMPORTED)
    assert not unused, f'declared in package.xml but imported nowhere in ppd_ros/ or launch/: {sorted(unused)}'
    text = (REPO / 'package.xml').read_text()
    readme = (REPO / 'README.md').read_text()
    for module in PIP_ONLY & set(imported):
        assert module in text and 'pip install' in readme and module in readme, module


def test_test_dependencies_cover_what_the_tests_import():
    imported = _imports(sorted((REPO / 'test').rglob('*.py')))
    stand_ins = {path.name for path in (REPO / 'test' / 'stand_ins').iterdir()} \
        if (REPO / 'test' / 'stand_ins').is_dir() else set()
    available = _declared('depend', 'exec_depend', 'test_depend') | PIP_ONLY | stand_ins
    missing = {key: sorted(files)[:3] for key, files in imported.items() if key not in available}
    assert not missing, f'imported by tests but not a dependency of ppd_ros: {missing}'
    # ament_cmake_pytest runs the suite (CMakeLists.txt), pytest-timeout is pytest.ini's `timeout`
    unused = _declared('test_depend') - set(imported) - {'ament_cmake_pytest', 'python3-pytest-timeout'}
    assert not unused, f'test_depend in package.xml but imported by no test: {sorted(unused)}'


def test_colcon_test_runs_the_installed_package():
    """Under `colcon test` the installed ppd_ros is the one tested, and ppd_dev is not installed."""
    import os
    if not os.environ.get('PPD_ROS_TEST_INSTALLED'):
        pytest.skip('not under colcon test')
    import ppd_ros
    import ppd_ros.msg
    prefixes = [Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    assert any(Path(ppd_ros.__file__).is_relative_to(prefix) for prefix in prefixes), ppd_ros.__file__
    installed = Path(ppd_ros.__file__).parent
    assert (installed / 'weights' / 'demo_ppd.safetensors').is_file()
    assert not (installed / 'weights' / 'baseline_head.safetensors').exists()  # ppd_dev's evaluation only
    assert not (installed.parent / 'ppd_dev').exists()


def test_colcon_installs_every_console_script_of_ppd_ros_and_no_other():
    """CMakeLists.txt reads setup.py's lines with a regular expression: it must see exactly the
    entries that point into ppd_ros (so a new command is one line in setup.py)."""
    import re
    setup_text = (REPO / 'setup.py').read_text()
    entries = {}
    for node in ast.walk(ast.parse(setup_text)):
        if isinstance(node, ast.keyword) and node.arg == 'entry_points':
            for line in ast.literal_eval(node.value)['console_scripts']:
                name, target = (part.strip() for part in line.split('='))
                entries[name] = target
    wanted = {name for name, target in entries.items() if target.startswith('ppd_ros.')}
    assert {'depth_node', 'scale_fusion_node', 'ppd-demo', 'ppd-depth', 'ppd-eval'} <= wanted
    assert not any(target.startswith('ppd_ros.') for name, target in entries.items()
                   if name in ('ppd-bench', 'ppd-parity'))
    cmake = (REPO / 'CMakeLists.txt').read_text()
    pattern = re.search(r'file\(STRINGS setup\.py \S+ REGEX "(.*)"\)', cmake).group(1).replace('\\\\', '\\')
    matched = {re.search(r"'([A-Za-z0-9_-]+) = ", line).group(1)
               for line in setup_text.splitlines() if re.search(pattern, line)}
    assert matched == wanted
