"""Delivery rate and latency of raw camera frames between two processes, per Fast DDS transport.

    python -m ppd_dev.transport_bench                       # every candidate, every size
    python -m ppd_dev.transport_bench --configs shipped reliable --sizes 3840x2160 --frames 5

Starts one publisher process and one subscriber process per candidate (a fresh ROS domain each),
sends `--frames` rgb8 Images of each size (timestamped just before publish) and counts what
arrives. Latency is receive time − header stamp (one machine, one clock): serialisation,
transport and deserialisation into the subscriber's Python message. The publisher is reliable,
keep-last 5 (as camera drivers usually publish); the candidate decides the subscriber's QoS and
the Fast DDS transports:

  default         Fast DDS's builtin transports (SHM with a ~512 KB segment + UDP), best effort
  shm32           SHM with a 32 MB segment + UDP (the profile shipped before issue 13), best effort
  shm256          SHM with a 256 MB segment + UDP, best effort
  shipped         config/fastdds_shm.xml (what the package ships), best effort
  shm_only        SHM only, 256 MB segment, 8192-slot port queue (no UDP: no fragmentation, but
                  nothing reaches other machines), best effort
  large_data      FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (SHM + TCP, UDP discovery), best effort
  reliable        config/fastdds_shm.xml, reliable subscription (what depth_node's
                  qos.subscription auto switches to after losses)
  large_data_rel  LARGE_DATA, reliable subscription

With UDP beside SHM, Fast DDS fragments every sample to UDP's ~64 KB, so an 8K frame is ~1500
fragments: the reader's shared-memory port queue (512 descriptors by default) and the writer's
segment both bound what best effort can deliver whole.

Also counts the subscription's "message lost" events (rclpy SubscriptionEventCallbacks), i.e.
whether the middleware says anything about the frames that did not arrive. Run it niced on a
shared machine: an 8K rgb8 frame is 100 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ('default', 'shm32', 'shm256', 'shipped', 'shm_only', 'large_data', 'reliable', 'large_data_rel')
SHM_CANDIDATES = {'shm32': (32, None, True), 'shm256': (256, None, True), 'shm_only': (256, 8192, False)}
SIZES = ('640x480', '1920x1080', '3840x2160', '7680x4320')
TOPIC = 'bench/image'
DONE_TOPIC = 'bench/done'
REPO = Path(__file__).resolve().parents[1]

SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors><transport_descriptor>
    <transport_id>bench_shm</transport_id><type>SHM</type>
    <segment_size>{size}</segment_size><maxMessageSize>{size}</maxMessageSize>{queue}
  </transport_descriptor><transport_descriptor>
    <transport_id>bench_udp</transport_id><type>UDPv4</type>
  </transport_descriptor></transport_descriptors>
  <participant profile_name="bench" is_default_profile="true"><rtps>
    <useBuiltinTransports>false</useBuiltinTransports>
    <userTransports><transport_id>bench_shm</transport_id>{udp}</userTransports>
  </rtps></participant>
</profiles></dds>
"""


def _rate_for(width: int, height: int) -> float:
    """Frames per second sent: camera-like for small frames, gentle for huge ones (2 shared cores)."""
    pixels = width * height
    return 30.0 if pixels <= 640 * 480 else 10.0 if pixels <= 1920 * 1080 else 5.0 if pixels <= 3840 * 2160 else 2.0


def config_env(config: str, workdir: Path) -> tuple[dict, bool]:
    """(environment changes, reliable subscription) for one candidate."""
    env = {'FASTDDS_DEFAULT_PROFILES_FILE': '', 'FASTDDS_BUILTIN_TRANSPORTS': '',
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    if config in ('shipped', 'reliable'):
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds_shm.xml')
    elif config in SHM_CANDIDATES:
        megabytes, queue, with_udp = SHM_CANDIDATES[config]
        profile = workdir / f'{config}.xml'
        queue = f'<port_queue_capacity>{queue}</port_queue_capacity>' if queue else ''
        udp = '<transport_id>bench_udp</transport_id>' if with_udp else ''
        profile.write_text(SHM_PROFILE.format(size=megabytes << 20, queue=queue, udp=udp))
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    elif config in ('large_data', 'large_data_rel'):
        env['FASTDDS_BUILTIN_TRANSPORTS'] = 'LARGE_DATA'
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'SUBNET'  # LARGE_DATA is ignored with LOCALHOST
    return env, config in ('reliable', 'large_data_rel')


# ---------------------------------------------------------------------------------- processes

def _qos(reliable: bool, depth: int = 5):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


def run_publisher(sizes: list[str], frames: int) -> None:
    import array

    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node('bench_publisher')
    pub = node.create_publisher(Image, TOPIC, _qos(True))
    done = node.create_publisher(String, DONE_TOPIC, _qos(True, 10))
    deadline = time.monotonic() + 20
    while (pub.get_subscription_count() == 0 or done.get_subscription_count() == 0) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(1.0)  # let both sides finish discovery
    sent = {}
    for size in sizes:
        width, height = map(int, size.split('x'))
        msg = Image(width=width, height=height, encoding='rgb8', step=3 * width)
        data = array.array('B')
        data.frombytes(os.urandom(1 << 16) * ((3 * width * height) >> 16) + bytes((3 * width * height) & 0xFFFF))
        msg.data = data
        period = 1.0 / _rate_for(width, height)
        start = time.monotonic()
        for i in range(frames):
            while time.monotonic() < start + i * period:
                time.sleep(0.001)
            msg.header.frame_id = f'{size}:{i}'
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
        sent[size] = frames
        time.sleep(1.0 + 3 * width * height / 50e6)  # stragglers; then the next size
        del msg, data
    for _ in range(5):
        done.publish(String(data=json.dumps(sent)))
        time.sleep(0.2)
    node.destroy_node()
    rclpy.try_shutdown()


def run_subscriber(reliable: bool, timeout: float) -> None:
    import rclpy
    from rclpy.event_handler import SubscriptionEventCallbacks
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node('bench_subscriber')
    received: dict[str, list[float]] = {}
    seen: set[str] = set()
    lost = {'events': 0, 'total': 0}
    state = {'sent': None}

    def on_image(msg):
        latency = (node.get_clock().now() - rclpy.time.Time.from_msg(msg.header.stamp)).nanoseconds * 1e-9
        if msg.header.frame_id in seen:
            return
        seen.add(msg.header.frame_id)
        received.setdefault(msg.header.frame_id.split(':')[0], []).append(latency)

    def on_lost(info):
        lost['events'] += 1
        lost['total'] = int(info.total_count)

    def on_done(msg):
        if state['sent'] is None:
            state['sent'] = json.loads(msg.data)
            state['at'] = time.monotonic()

    node.create_subscription(Image, TOPIC, on_image, _qos(reliable),
                             event_callbacks=SubscriptionEventCallbacks(message_lost=on_lost))
    node.create_subscription(String, DONE_TOPIC, on_done, _qos(True, 10))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
        if state['sent'] is not None and time.monotonic() > state['at'] + 1.0:
            break
    print(json.dumps({'sent': state['sent'], 'received': received, 'lost_events': lost}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


# ---------------------------------------------------------------------------------- driver

def _child_env(changes: dict, domain: int) -> dict:
    env = dict(os.environ)
    for name, value in changes.items():
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    env['ROS_DOMAIN_ID'] = str(domain)
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def measure(config: str, sizes: list[str], frames: int, workdir: Path) -> dict:
    changes, reliable = config_env(config, workdir)
    env = _child_env(changes, random.randint(100, 199))
    timeout = 30 + sum(frames / _rate_for(*map(int, s.split('x'))) + 4 for s in sizes) * 3
    me = [sys.executable, '-m', 'ppd_dev.transport_bench']
    sub = subprocess.Popen(me + ['--role', 'sub', '--timeout', str(timeout)] + (['--reliable'] if reliable else []),
                           env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    pub = subprocess.Popen(me + ['--role', 'pub', '--frames', str(frames), '--sizes', *sizes],
                           env=env, cwd=REPO)
    try:
        out, _ = sub.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:  # a machine too busy to finish: report what is known
        sub.kill()
        out, _ = sub.communicate()
    for process in (pub, sub):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    lines = [line for line in (out or '').splitlines() if line.startswith('{')]
    return json.loads(lines[-1]) if lines else {'sent': None, 'received': {}, 'lost_events': {}, 'timed_out': True}


def _percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def report(config: str, result: dict, sizes: list[str], frames: int) -> list[str]:
    rows = []
    for size in sizes:
        got = result['received'].get(size, [])
        sent = (result['sent'] or {}).get(size, frames)
        latency = (f'{1e3 * _percentile(got, 50):7.1f} / {1e3 * max(got):7.1f}' if got else f"{'-':>7} / {'-':>7}")
        rows.append(f'{config:15s} {size:>10s} {len(got):3d}/{sent:<3d} {100 * len(got) / max(sent, 1):5.0f} %  '
                    f'{latency} ms')
    lost = result.get('lost_events') or {}
    rows.append(f"{config:15s} message_lost events: {lost.get('events', 0)} (total_count {lost.get('total', 0)})"
                + (' — TIMED OUT, nothing reported' if result.get('timed_out') else ''))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configs', nargs='+', choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), help='WIDTHxHEIGHT rgb8')
    parser.add_argument('--frames', type=int, default=10, help='frames sent per size')
    parser.add_argument('--json', help='also write the raw results here')
    parser.add_argument('--role', choices=('pub', 'sub'), help=argparse.SUPPRESS)
    parser.add_argument('--reliable', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--timeout', type=float, default=120, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == 'pub':
        run_publisher(args.sizes, args.frames)
        return 0
    if args.role == 'sub':
        run_subscriber(args.reliable, args.timeout)
        return 0
    print(f'{"candidate":15s} {"size":>10s} received   rate  median / max latency')
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            results[config] = measure(config, args.sizes, args.frames, Path(tmp))
            for row in report(config, results[config], args.sizes, args.frames):
                print(row, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
