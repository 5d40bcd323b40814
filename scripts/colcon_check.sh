#!/usr/bin/env bash
# The colcon path, checked on a machine without ROS: colcon (from PyPI, in a venv of its own)
# builds this package in a scratch workspace against the ROS 2 wheels of $VENV (default .venv,
# made by scripts/setup_venv.sh), checks what the install holds (the user commands on PATH, the
# nodes under lib/ppd_ros, no ppd_dev), and runs `colcon test` (the pytest suite).
#   bash scripts/colcon_check.sh [WORKSPACE]    (default: a temporary folder, removed afterwards)
#   COLCON_TEST=0 skips `colcon test`; PYTEST_ADDOPTS (e.g. "-k launch") narrows the suite it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=$(cd "${VENV:-.venv}" && pwd)
COLCON_VENV=${COLCON_VENV:-$REPO/build/colcon-venv}
if [ ! -x "$COLCON_VENV/bin/colcon" ]; then
  python3 -m venv "$COLCON_VENV"
  "$COLCON_VENV/bin/pip" install -q colcon-core colcon-cmake colcon-ros colcon-library-path colcon-test-result \
    colcon-package-selection
fi
if [ $# -ge 1 ]; then WS=$1; else WS=$(mktemp -d); trap 'rm -rf "$WS"' EXIT; fi
mkdir -p "$WS/src/ppd_ros"
# What git tracks or would track: the package as a user clones it (no .venv, build/, caches).
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$WS/src/ppd_ros" -xf -
cd "$WS"
# The venv is the ROS prefix (ament_cmake, rosidl, rclpy wheels) and its python runs the build.
export PATH="$VENV/bin:$PATH" CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
COLCON="$COLCON_VENV/bin/colcon"
if ! "$COLCON" build --packages-select ppd_ros --event-handlers console_direct-; then
  tail -60 log/latest_build/ppd_ros/stdout_stderr.log; exit 1
fi
set +u
# shellcheck disable=SC1091
. install/setup.sh
set -u
PREFIX=$WS/install/ppd_ros
echo "colcon_check: executables in lib/ppd_ros: $(ls "$PREFIX/lib/ppd_ros" | tr '\n' ' ')"
echo "colcon_check: commands in bin: $(ls "$PREFIX/bin" | tr '\n' ' ')"
for command in $(ls "$PREFIX/bin"); do
  [ "$(command -v "$command")" = "$PREFIX/bin/$command" ] || { echo "colcon_check: $command not on PATH"; exit 1; }
  "$command" --help >/dev/null || { echo "colcon_check: $command --help failed"; exit 1; }
done
if find "$PREFIX" -name ppd_dev | grep -q .; then echo "colcon_check: ppd_dev was installed"; exit 1; fi
python -c 'import ppd_ros.cli.depth as m, ppd_ros.msg; print("colcon_check: ppd_ros from", m.__file__)'
if [ "${COLCON_TEST:-1}" != 0 ]; then
  "$COLCON" test --packages-select ppd_ros
  "$COLCON" test-result --test-result-base build/ppd_ros
fi
echo "colcon_check: ok"
