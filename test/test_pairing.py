"""Stamp pairing: the built-in pairer behaves like message_filters' ApproximateTimeSynchronizer."""
import importlib.util
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from ppd_ros.nodes.pairing import ApproximateTimePairer, LatestPairer, PairingMonitor, stamp_ns


def msg(t: float, tag: str = ''):
    sec = int(t)
    nanosec = int(round((t - sec) * 1e9))
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec)),
                           tag=tag)


def make(queue_size=10, slop=0.05):
    pairs = []
    pairer = ApproximateTimePairer(2, queue_size, slop, lambda a, b: pairs.append((a.tag, b.tag)))
    return pairer, pairs


def test_stamp_ns():
    assert stamp_ns(msg(12.5)) == 12_500_000_000


def test_stamp_ns_takes_a_message_a_header_or_a_time():
    m = msg(3.000000007)
    assert stamp_ns(m) == stamp_ns(m.header) == stamp_ns(m.header.stamp) == 3_000_000_007


def test_exact_and_approximate_stamps_pair_in_either_arrival_order():
    pairer, pairs = make()
    assert not pairer.add(0, msg(1.00, 'img1'))
    assert pairer.add(1, msg(1.00, 'info1'))
    assert pairer.add(1, msg(2.00, 'info2')) is False
    assert pairer.add(0, msg(2.01, 'img2'))
    assert pairs == [('img1', 'info1'), ('img2', 'info2')]
    assert pairer.pending() == [0, 0]


def test_beyond_slop_never_pairs():
    pairer, pairs = make(slop=0.05)
    pairer.add(0, msg(1.0, 'img'))
    pairer.add(1, msg(1.2, 'info'))
    assert pairs == []
    assert pairer.pending() == [1, 1]


def test_spread_must_be_strictly_below_slop():
    """message_filters keeps a candidate at |Δt| ≤ slop but emits only when the spread < slop."""
    pairer, pairs = make(slop=0.5)
    pairer.add(0, msg(1.0, 'img'))
    pairer.add(1, msg(1.5, 'info'))
    assert pairs == []
    pairer.add(1, msg(1.25, 'info2'))
    assert pairs == [('img', 'info2')]


def test_closest_candidate_wins():
    pairer, pairs = make(slop=0.1)
    pairer.add(1, msg(0.96, 'far'))
    pairer.add(1, msg(1.01, 'near'))
    pairer.add(0, msg(1.0, 'img'))
    assert pairs == [('img', 'near')]
    assert pairer.pending() == [0, 1]  # the unmatched one stays until it ages out


def test_queue_size_drops_oldest_stamp():
    pairer, pairs = make(queue_size=2, slop=0.01)
    for t in (1.0, 2.0, 3.0):
        pairer.add(0, msg(t, f'img{t:.0f}'))
    assert pairer.pending() == [2, 0]
    pairer.add(1, msg(1.0, 'info1'))  # its image was dropped
    assert pairs == []
    pairer.add(1, msg(3.0, 'info3'))
    assert pairs == [('img3', 'info3')]


def test_same_stamp_replaces_queued_message():
    pairer, pairs = make()
    pairer.add(0, msg(1.0, 'old'))
    pairer.add(0, msg(1.0, 'new'))
    pairer.add(1, msg(1.0, 'info'))
    assert pairs == [('new', 'info')]


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match='queue_size'):
        ApproximateTimePairer(2, 0, 0.1, print)
    with pytest.raises(ValueError, match='slop'):
        ApproximateTimePairer(2, 5, 0.0, print)


def test_latest_pairer_uses_most_recent_secondary():
    pairs = []
    pairer = LatestPairer(lambda a, b: pairs.append((a.tag, b.tag)))
    assert not pairer.add_primary(msg(1.0, 'img0'))
    pairer.add_secondary(msg(0.0, 'infoA'))
    pairer.add_secondary(msg(50.0, 'infoB'))
    assert pairer.add_primary(msg(1.0, 'img1'))
    assert pairs == [('img1', 'infoB')]


# ------------------------------------------------------------------ message_filters equivalence

STAND_IN = Path(__file__).resolve().parent / 'stand_ins' / 'message_filters' / '__init__.py'


def reference_module():
    """The test-only message_filters stand-in: upstream's Python algorithm, loaded under another
    name so that it never shadows a real message_filters."""
    pytest.importorskip('rclpy')  # it compares stamps with rclpy Time/Duration like upstream
    spec = importlib.util.spec_from_file_location('message_filters_reference', STAND_IN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_late_image_of_a_trimmed_stamp_does_not_raise():
    """The reported crash: a CameraInfo, then images without CameraInfo until the image queue is
    full, then the late image of the first stamp. It is trimmed from its own full queue at once,
    so — as in message_filters — it pairs with nothing (this raised KeyError)."""
    pairer, pairs = make(queue_size=2, slop=0.05)
    pairer.add(1, msg(1.0, 'info1'))
    pairer.add(0, msg(2.0, 'img2'))
    pairer.add(0, msg(3.0, 'img3'))
    assert pairer.add(0, msg(1.0, 'img1 late')) is False
    assert pairs == []
    assert pairer.pending() == [2, 1]
    pairer.add(1, msg(3.0, 'info3'))
    assert pairs == [('img3', 'info3')]


def random_stream(rng: random.Random) -> list[tuple[int, float]]:
    """(input, stamp in s) events of a camera: image 0 / CameraInfo 1, with drops, a constant
    CameraInfo offset (0, inside or beyond the slop), jitter, duplicates, late arrival and stamps
    that jump backwards (bag loops, sim-time resets). Stamps on a 1 ms grid, so ties are common."""
    period = rng.choice([0.01, 0.02, 0.033, 0.1])
    offset = rng.choice([0.0, 0.0, 0.01, 0.03, 0.05, 0.07, 0.5])
    jitter = rng.choice([0.0, 0.002, 0.02])
    events, t = [], rng.uniform(0.0, 3.0)
    for _ in range(rng.randint(4, 30)):
        t += period * rng.choice([1, 1, 1, 2])
        if rng.random() < 0.05:
            t = max(0.0, t - rng.uniform(0.0, 2.0))  # time goes backwards
        for index, base in ((0, t), (1, t + offset)):
            if rng.random() < 0.85:
                stamp = max(0.0, round(base + rng.uniform(-jitter, jitter), 3))
                for _ in range(2 if rng.random() < 0.05 else 1):  # a duplicated message
                    events.append((index, stamp, len(events) + rng.expovariate(0.3)))
    events.sort(key=lambda e: e[2])  # arrival order: each message late by a random amount
    return [(index, stamp) for index, stamp, _ in events]


def ros_msg(t: float, tag: str):
    """A message whose header.stamp is a real builtin_interfaces Time (rclpy's Time.from_msg)."""
    from builtin_interfaces.msg import Time
    plain = msg(t)
    stamp = Time(sec=plain.header.stamp.sec, nanosec=plain.header.stamp.nanosec)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp), tag=tag)


def run_builtin(messages, queue_size, slop):
    pairs = []
    pairer = ApproximateTimePairer(2, queue_size, slop, lambda a, b: pairs.append((a.tag, b.tag)))
    for index, message in messages:
        pairer.add(index, message)
    return pairs


def run_reference(module, messages, queue_size, slop):
    pairs = []
    inputs = [module.SimpleFilter(), module.SimpleFilter()]
    sync = module.ApproximateTimeSynchronizer(inputs, queue_size, slop)
    sync.registerCallback(lambda a, b: pairs.append((a.tag, b.tag)))
    for index, message in messages:
        inputs[index].signalMessage(message)
    return pairs


PROPERTY_STREAMS = 3000


def test_builtin_pairer_emits_what_message_filters_emits_on_random_streams():
    """Same pairs, same order, never an exception: thousands of random stream orders."""
    module = reference_module()
    rng = random.Random(20251126)
    emitted = 0
    for case in range(PROPERTY_STREAMS):
        messages = [(index, ros_msg(stamp, f'{index}:{n}'))
                    for n, (index, stamp) in enumerate(random_stream(rng))]
        queue_size = rng.choice([1, 1, 2, 2, 3, 5, 10])
        slop = rng.choice([0.005, 0.01, 0.03, 0.05, 0.07, 0.1])
        expected = run_reference(module, messages, queue_size, slop)
        got = run_builtin(messages, queue_size, slop)
        assert got == expected, f'stream {case}: queue_size {queue_size}, slop {slop}'
        emitted += len(got)
    assert emitted > PROPERTY_STREAMS  # the streams do pair, not only fail to


def test_slop_is_truncated_to_whole_nanoseconds_like_rclpy_duration():
    """0.00104 s is 1039999.99… ns as a float: message_filters' Duration(seconds=0.00104) holds
    1039999 ns, so a pair 1039999 ns apart is not strictly inside the slop."""
    pairer, pairs = make(slop=0.00104)
    pairer.add(0, msg(1.0, 'img'))
    pairer.add(1, SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=1_039_999)),
                                  tag='info'))
    assert pairs == []
    pairer.add(1, SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=1_039_998)),
                                  tag='info2'))
    assert pairs == [('img', 'info2')]


# ------------------------------------------------------------------ why nothing pairs

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def feed(monitor, pairer_add, clock, stamps, info_offset=None, seconds=3.0, rate=10.0):
    """`seconds` of camera at `rate` Hz from stamp `stamps`; CameraInfo `info_offset` s off
    (None: no CameraInfo); monitor.check() once a second like the node's timer."""
    for k in range(int(seconds * rate)):
        t = stamps + k / rate
        image = msg(t, f'img{k}')
        monitor.on_primary(image)
        pairer_add(0, image)
        if info_offset is not None:
            info = msg(t + info_offset, f'info{k}')
            monitor.on_secondary(info)
            pairer_add(1, info)
        clock.now += 1.0 / rate
        if k % int(rate) == int(rate) - 1:
            monitor.check()


def monitored(slop=0.05, queue_size=10):
    clock = FakeClock()
    monitor = PairingMonitor('/cam/image', '/cam/camera_info', slop, clock=clock)
    pairer = ApproximateTimePairer(2, queue_size, slop, monitor.on_pair)
    return monitor, pairer.add, clock


def test_monitor_is_quiet_while_images_pair():
    monitor, add, clock = monitored()
    feed(monitor, add, clock, 10.0, info_offset=0.0)
    assert monitor.problem is None and monitor.check() is None
    assert monitor.values()['pairing: unpaired'] == 0


def test_monitor_names_a_missing_camera_info_topic():
    monitor, add, clock = monitored()
    feed(monitor, add, clock, 10.0)
    assert "20 of 20 messages on '/cam/image' in the last 2 s were not paired with a CameraInfo" \
        in monitor.problem
    assert "nothing has arrived on '/cam/camera_info'" in monitor.problem
    assert monitor.values()['pairing: unpaired'] == 30


def test_monitor_measures_the_stamp_offset_and_names_the_fix():
    monitor, add, clock = monitored(slop=0.05)
    feed(monitor, add, clock, 10.0, info_offset=0.6, rate=4.0)  # no image within the slop
    assert 'stamps are -0.600 s apart, more than input.sync_slop (0.05 s)' in monitor.problem
    assert 'input.latest_camera_info: true' in monitor.problem
    assert monitor.values()['pairing: stamp offset to camera_info (s)'] == pytest.approx(-0.6)
    feed(monitor, add, clock, 20.0, info_offset=0.0)  # the driver is fixed: quiet again
    assert monitor.problem is None


def test_monitor_explains_a_stall_after_stamps_jump_back():
    monitor, add, clock = monitored(slop=0.05, queue_size=5)
    # images without CameraInfo fill the queue (CameraInfo starts late) ...
    feed(monitor, add, clock, 100.0)
    # ... and when the bag loops, each new image is older than the full queue and is dropped at
    # once: nothing pairs, with message_filters as with the built-in pairer
    feed(monitor, add, clock, 10.0, info_offset=0.0)
    assert 'jumped back by 92.' in monitor.problem


def test_monitor_with_latest_camera_info():
    clock = FakeClock()
    monitor = PairingMonitor('/cam/image', '/cam/camera_info', None, clock=clock)
    pairer = LatestPairer(monitor.on_pair)
    feed(monitor, lambda i, m: pairer.add_primary(m) if i == 0 else pairer.add_secondary(m), clock, 10.0)
    assert "nothing has arrived on '/cam/camera_info'" in monitor.problem
