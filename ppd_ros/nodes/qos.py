"""QoS profiles chosen by name from a parameter, and the Fast DDS profile for large messages.

Defaults follow ROS practice for camera pipelines: subscriptions use the SensorData profile
(best effort, keep last — it accepts reliable and best-effort publishers alike), publishers are
reliable (rviz, rosbag and best-effort subscribers all connect to them).

Fast DDS' default shared-memory segment (~512 KB) is smaller than one camera image, so most
frames are lost between processes; config/fastdds_shm.xml enlarges it. Processes this package
starts select that profile unless the user chose another one.
"""
from __future__ import annotations

import os
from pathlib import Path

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data, qos_profile_system_default)

QOS_CHOICES = ('sensor_data', 'reliable', 'best_effort', 'system_default')
# 'auto' (subscriptions only): SensorData, re-subscribed reliable by the node once the middleware
# reports lost input messages and every publisher offers reliable (see `all_publishers_reliable`)
SUBSCRIPTION_QOS_CHOICES = ('auto', *QOS_CHOICES)
FASTDDS_PROFILE_NAME = 'fastdds_shm.xml'


def qos_profile(kind: str, depth: int) -> QoSProfile:
    """A keep-last profile of `depth` messages for one of SUBSCRIPTION_QOS_CHOICES ('auto' starts as
    'sensor_data')."""
    if kind not in SUBSCRIPTION_QOS_CHOICES:
        raise ValueError(f"QoS must be one of {', '.join(SUBSCRIPTION_QOS_CHOICES)}, got '{kind}'")
    if depth < 1:
        raise ValueError(f'QoS depth must be at least 1, got {depth}')
    if kind in ('sensor_data', 'auto'):
        base = qos_profile_sensor_data
    elif kind == 'system_default':
        base = qos_profile_system_default
    else:
        reliability = ReliabilityPolicy.RELIABLE if kind == 'reliable' else ReliabilityPolicy.BEST_EFFORT
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                          durability=DurabilityPolicy.VOLATILE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=base.reliability,
                      durability=base.durability)


def all_publishers_reliable(node, topics) -> tuple[bool, str]:
    """(every publisher of every topic offers reliable, why not): a reliable subscription would
    then still receive from all of them (it cannot match a best-effort publisher)."""
    for topic in topics:
        name = node.resolve_topic_name(topic)
        infos = node.get_publishers_info_by_topic(name)
        if not infos:
            return False, f"no publisher on '{name}'"
        for info in infos:
            if info.qos_profile.reliability != ReliabilityPolicy.RELIABLE:
                return False, f"node '{info.node_name}' publishes '{name}' best effort only"
    return True, ''


class AutoReliable:
    """qos.subscription auto for one group of inputs: once the middleware reports messages lost on
    them (too large to arrive whole over best effort), `resubscribe(reliable profile)` is called,
    if every publisher of the group offers reliable (a reliable subscription cannot receive from a
    best-effort one); otherwise they stay best effort and a warning says why. Checked once a
    second until it switched; `state` says where it stands (for /diagnostics)."""

    def __init__(self, node, lost_messages, topics, resubscribe, depth: int, callback_group=None):
        self.node, self.lost_messages, self.topics = node, lost_messages, tuple(topics)
        self.resubscribe, self.depth = resubscribe, depth
        self.state = 'auto: best effort'
        self._timer = node.create_timer(1.0, self.check, callback_group=callback_group)

    def check(self) -> None:
        lost = self.lost_messages.total(self.topics)
        if lost == 0 or self._timer is None:
            return
        ok, why = all_publishers_reliable(self.node, self.topics)
        if not ok:
            self.state = f'auto: best effort ({lost} lost; stays: {why})'
            self.node.get_logger().warning(
                f'{lost} input message(s) lost in transport over best effort, and the subscription cannot '
                f"become reliable: {why}. See the README, 'Large messages over Fast DDS'",
                throttle_duration_sec=30.0)
            return
        self.resubscribe(qos_profile('reliable', self.depth))
        self.close()
        self.state = f'auto: reliable (after {lost} lost over best effort)'
        self.node.get_logger().info(
            f'{lost} input message(s) lost in transport over best effort (messages too large for it): '
            f'{" and ".join(self.topics)} are now subscribed reliable (every publisher offers it)')

    def close(self) -> None:
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None


def configured_qos(params, kind: str) -> QoSProfile:
    """The profile the parameters qos.<kind> and qos.<kind>_depth ask for (subscription, publisher)."""
    return qos_profile(params[f'qos.{kind}'], params[f'qos.{kind}_depth'])


def package_config_dir() -> Path | None:
    """config/ of the installed package (colcon share/ppd_ros/config) or of the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        candidate = Path(get_package_share_directory('ppd_ros', print_warning=False)) / 'config'
        if candidate.is_dir():
            return candidate
    except Exception:  # not installed with colcon: PackageNotFoundError, ImportError, ...
        pass
    candidate = Path(__file__).resolve().parents[2] / 'config'
    return candidate if candidate.is_dir() else None


def use_package_fastdds_profile() -> str | None:
    """Set FASTDDS_DEFAULT_PROFILES_FILE to the package's profile unless already set, or unless
    FASTDDS_BUILTIN_TRANSPORTS chooses Fast DDS's builtin transports (e.g. LARGE_DATA, which the
    profile would replace); call before rclpy.init. Returns the profile in effect."""
    if os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        return os.environ['FASTDDS_DEFAULT_PROFILES_FILE']
    if os.environ.get('FASTDDS_BUILTIN_TRANSPORTS'):
        return None
    config = package_config_dir()
    if config is not None and (config / FASTDDS_PROFILE_NAME).is_file():
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(config / FASTDDS_PROFILE_NAME)
        return os.environ['FASTDDS_DEFAULT_PROFILES_FILE']
    return None
