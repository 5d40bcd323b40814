"""Test isolation: each pytest run gets its own ROS domain, discovery stays on this machine,
and Fast DDS uses the package's large-message profile. Torch stays on few threads (2-core CI)."""
import os
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'

os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(REPO / 'config' / 'fastdds_shm.xml'))
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '1')

# The source tree comes first, except under `colcon test` (CMakeLists.txt sets PPD_ROS_TEST_INSTALLED):
# there the installed ppd_ros is tested, and the source tree only provides ppd_dev and test helpers.
if str(REPO) not in sys.path:
    if os.environ.get('PPD_ROS_TEST_INSTALLED'):
        sys.path.append(str(REPO))
    else:
        sys.path.insert(0, str(REPO))

import pytest  # noqa: E402


def pytest_configure(config):
    try:
        import torch
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except ImportError:
        pass


@pytest.fixture(scope='session')
def parity_file():
    path = SHARED / 'parity' / 'ppd_official_tiny.pt'
    if not path.exists():
        pytest.skip(f'parity vectors not found at {path}')
    return path


@pytest.fixture
def ros_context():
    """A fresh rclpy context per test; shut down afterwards even when the test fails."""
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    if context.ok():
        rclpy.shutdown(context=context)
