#!/usr/bin/env bash
# One set-up command for a fresh Debian/Ubuntu machine without ROS:
# a venv in .venv with CPU torch, the ROS 2 Kilted wheels, this package (editable) and its messages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
  echo "setup: installing cmake and g++ (needed to generate the package's ROS messages)"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq cmake g++ >/dev/null
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned: a bare `torch` requirement would pull several GB of CUDA wheels.
"$VENV/bin/python" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
# fleet: Ray, for ppd-bag --ray and its tests (test/test_bag_fleet.py)
"$VENV/bin/python" -m pip install -q -e '.[ros,msgbuild,test,onnx,fleet]' --config-settings editable_mode=compat
# Generate ppd_ros/msg (DepthScale) against the wheels and install it into the venv.
VIRTUAL_ENV=$(cd "$VENV" && pwd)
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p build
cmake -S . -B build/msgs -DPPD_ROS_MESSAGES_ONLY=ON -DCMAKE_PREFIX_PATH="$VIRTUAL_ENV" \
  -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" >build/msgs.log 2>&1 \
  || { cat build/msgs.log; exit 1; }
PATH="$VIRTUAL_ENV/bin:$PATH" cmake --build build/msgs -j2 >>build/msgs.log 2>&1 || { tail -50 build/msgs.log; exit 1; }
cmake --install build/msgs >>build/msgs.log 2>&1 || { tail -50 build/msgs.log; exit 1; }
# The generator writes an empty ppd_ros/__init__.py; remove it so the generated ppd_ros.msg joins
# this source package (ppd_ros/__init__.py extends its __path__) instead of shadowing it. Remove
# its egg-info too: pip would take it for this distribution and delete the messages on the next
# `pip install -e .`.
rm -rf "$SITE/ppd_ros/__init__.py" "$SITE/ppd_ros/__pycache__" "$SITE"/ppd_ros-*.egg-info
"$VENV/bin/python" -c 'import ppd_ros.msg, rclpy, torch; print("setup: ok, torch", torch.__version__)'
