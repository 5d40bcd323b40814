"""Stamp pairing: the built-in pairer behaves like message_filters' ApproximateTimeSynchronizer."""
from types import SimpleNamespace

import pytest

from ppd_ros.nodes.pairing import ApproximateTimePairer, LatestPairer, stamp_ns


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
    pairs, missing = [], []
    pairer = LatestPairer(lambda a, b: pairs.append((a.tag, b.tag)), lambda: missing.append(1))
    assert not pairer.add_primary(msg(1.0, 'img0'))
    assert missing == [1]
    pairer.add_secondary(msg(0.0, 'infoA'))
    pairer.add_secondary(msg(50.0, 'infoB'))
    assert pairer.add_primary(msg(1.0, 'img1'))
    assert pairs == [('img1', 'infoB')]
