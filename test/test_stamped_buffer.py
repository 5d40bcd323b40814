"""The fusion node's source buffer: bounded by time window and bytes, not by count (issue 13)."""
import pytest

from ppd_ros.nodes.stamped_buffer import StampedBuffer, closest

MB = 2**20
CLOUD = 6_291_456  # a 128-line LiDAR: 131072 points × 48 B


def test_a_10hz_lidar_for_60s_holds_at_most_the_byte_budget():
    buffer = StampedBuffer(window=2.0, max_bytes=64 * MB, max_count=100)
    peak = 0
    for i in range(600):
        assert buffer.add(1000.0 + 0.1 * i, f'cloud {i}', CLOUD) is None
        peak = max(peak, buffer.held_bytes)
    assert peak <= 64 * MB and len(buffer) == 10  # 1 s of clouds, not 100 (630 MB)
    assert [item for _, item in buffer][-1] == 'cloud 599'
    assert buffer.counts.budget == 590 and buffer.newest_evicted == pytest.approx(1058.9)


def test_small_messages_are_bounded_by_the_time_window():
    buffer = StampedBuffer(window=2.0, max_bytes=64 * MB, max_count=1000)
    for i in range(300):
        buffer.add(0.1 * i, i, 500_000)
    stamps = [s for s, _ in buffer]
    assert stamps[-1] - stamps[0] <= 2.0 + 1e-9 and len(buffer) == 21
    assert buffer.counts.window == 279


def test_count_limit_still_applies():
    buffer = StampedBuffer(window=100.0, max_bytes=64 * MB, max_count=5)
    for i in range(20):
        buffer.add(0.01 * i, i, 10)
    assert [item for _, item in buffer] == [15, 16, 17, 18, 19]


def test_a_message_larger_than_the_whole_budget_is_refused_and_nothing_else_is_lost():
    buffer = StampedBuffer(window=2.0, max_bytes=64 * MB, max_count=100)
    buffer.add(1.0, 'small', MB)
    reason = buffer.add(1.1, '10M points', 160 * MB)
    assert reason == '160.0 MB is more than the whole buffer budget of 64.0 MB'
    assert [item for _, item in buffer] == ['small'] and buffer.held_bytes == MB
    assert buffer.counts.too_large == 1


def test_release_before_drops_what_pairing_can_no_longer_use():
    buffer = StampedBuffer(window=10.0, max_bytes=64 * MB, max_count=100)
    for i in range(10):
        buffer.add(float(i), i, 100)
    buffer.release_before(6.5)
    assert [item for _, item in buffer] == [7, 8, 9] and buffer.held_bytes == 300
    assert buffer.counts.used == 7 and buffer.newest_evicted is None  # released, not evicted
    assert buffer.newest_stamp == 9.0
    buffer.release_before(100.0)
    assert len(buffer) == 0 and buffer.held_bytes == 0 and buffer.newest_stamp == 9.0


def test_out_of_order_messages_are_kept_in_stamp_order_and_time_going_back_restarts():
    buffer = StampedBuffer(window=2.0, max_bytes=64 * MB, max_count=100)
    for stamp in (1.0, 1.2, 1.1):
        buffer.add(stamp, stamp, 1)
    assert [s for s, _ in buffer] == [1.0, 1.1, 1.2]
    buffer.add(0.5, 0.5, 1)  # a little late: still within the window
    assert [s for s, _ in buffer][0] == 0.5
    buffer.add(-100.0, 'bag restarted', 1)
    assert [item for _, item in buffer] == ['bag restarted'] and buffer.counts.restarts == 1


def test_shrinking_the_limits_trims_at_once_and_bad_limits_raise():
    buffer = StampedBuffer(window=10.0, max_bytes=64 * MB, max_count=100)
    for i in range(10):
        buffer.add(float(i), i, MB)
    buffer.configure(window=10.0, max_bytes=3 * MB, max_count=100)
    assert [item for _, item in buffer] == [7, 8, 9]
    with pytest.raises(ValueError):
        buffer.configure(window=0.0, max_bytes=1, max_count=1)


# ------------------------------------------------------------------ closest stamp within a tolerance

def test_closest_picks_the_nearest_within_the_tolerance_and_the_later_on_a_tie():
    entries = [(1.0, 'a'), (2.0, 'b'), (2.0, 'b2'), (3.0, 'c'), (3.0, 'c2')]
    assert closest(entries, 2.2) == (2.0, 'b2')  # of equal stamps, the last
    assert closest(entries, 2.5) == (3.0, 'c2')  # tie between 2.0 and 3.0: the later
    assert closest(entries, 2.8, tolerance=0.1) is None
    assert closest(entries, 2.8, tolerance=0.25) == (3.0, 'c2')
    assert closest(entries, -5.0) == (1.0, 'a') and closest(entries, 50.0) == (3.0, 'c2')
    assert closest([], 1.0) is None


def test_closest_works_on_integer_nanoseconds():
    infos = [(1_000_000_000, 'first'), (2_000_000_000, 'second')]
    assert closest(infos, 2_000_000_000, 0) == (2_000_000_000, 'second')  # ppd-bag: the image's own stamp
    assert closest(infos, 1_400_000_000) == (1_000_000_000, 'first')
    assert closest(infos, 1_500_000_000, 499_999_999) is None


def test_closest_agrees_with_the_former_argmin_rule_on_random_stamps():
    """The fusion node's former pick: argmin of |offset|, the most recent on ties."""
    import numpy as np
    rng = np.random.default_rng(0)
    for _ in range(500):
        stamps = np.sort(rng.integers(0, 20, rng.integers(1, 8))) * 0.05
        entries = [(float(s), i) for i, s in enumerate(stamps)]
        stamp, tolerance = float(rng.integers(-5, 25) * 0.05), float(rng.choice([0.0, 0.05, 0.1, np.inf]))
        offsets = np.abs(stamps - stamp)
        best = len(stamps) - 1 - int(np.argmin(offsets[::-1]))
        expected = entries[best] if offsets[best] <= tolerance else None
        assert closest(entries, stamp, tolerance) == expected


def test_buffer_closest_uses_seconds_and_sees_only_what_is_kept():
    buffer = StampedBuffer(window=10.0, max_bytes=64 * MB, max_count=100)
    assert buffer.closest(1.0) is None
    for i in range(5):
        buffer.add(1.0 + 0.1 * i, i, 10)
    assert buffer.closest(1.26, 0.05) == (pytest.approx(1.3), 3)
    assert buffer.closest(1.25) == (pytest.approx(1.3), 3)  # a tie: the later
    assert buffer.closest(2.0, 0.1) is None and buffer.closest(2.0) == (pytest.approx(1.4), 4)
    buffer.release_before(1.35)
    assert buffer.closest(1.0) == (pytest.approx(1.4), 4)
