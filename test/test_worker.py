"""Latest-frame-wins worker: bounded queue, drops counted, errors survive, callers never wait."""
import threading
import time

import pytest

from ppd_ros.nodes.worker import LatestFrameWorker


def test_processes_items_in_background():
    seen = []
    worker = LatestFrameWorker(seen.append).start()
    try:
        for i in range(3):
            worker.submit(i)
            assert worker.wait_idle(5.0)
        assert seen == [0, 1, 2]
        assert worker.stats()['processed'] == 3
        assert worker.stats()['dropped'] == 0
    finally:
        worker.stop()


def test_slow_consumer_keeps_only_newest_and_counts_drops():
    gate = threading.Event()
    seen = []

    def process(item):
        gate.wait(5.0)
        seen.append(item)

    worker = LatestFrameWorker(process, queue_size=1).start()
    try:
        worker.submit(0)
        deadline = time.monotonic() + 5.0
        while not worker.stats()['busy'] and time.monotonic() < deadline:
            time.sleep(0.001)
        accepted = [worker.submit(i) for i in range(1, 11)]
        assert accepted[0] is True and not any(accepted[1:])
        assert worker.pending == 1
        gate.set()
        assert worker.wait_idle(5.0)
        assert seen == [0, 10]
        stats = worker.stats()
        assert stats['dropped'] == 9
        assert stats['max_pending'] == 1
        assert stats['submitted'] == stats['processed'] + stats['dropped']
    finally:
        gate.set()
        worker.stop()


def test_queue_size_bounds_waiting_items():
    gate = threading.Event()
    seen = []
    worker = LatestFrameWorker(lambda item: (gate.wait(5.0), seen.append(item)), queue_size=3).start()
    try:
        for i in range(20):
            worker.submit(i)
        assert worker.pending <= 3
        gate.set()
        assert worker.wait_idle(5.0)
        assert seen[-3:] == [17, 18, 19]
        assert worker.stats()['max_pending'] == 3
    finally:
        gate.set()
        worker.stop()


def test_errors_are_reported_and_the_thread_keeps_going():
    errors = []

    def process(item):
        if item == 'bad':
            raise ValueError('broken frame')

    worker = LatestFrameWorker(process, on_error=lambda exc, item: errors.append((str(exc), item))).start()
    try:
        worker.submit('bad')
        assert worker.wait_idle(5.0)
        worker.submit('good')
        assert worker.wait_idle(5.0)
        assert errors == [('broken frame', 'bad')]
        assert worker.stats()['failed'] == 1 and worker.stats()['processed'] == 1
    finally:
        worker.stop()


def test_stop_joins_and_refuses_new_items():
    worker = LatestFrameWorker(lambda item: None).start()
    worker.stop()
    assert not worker._thread.is_alive()
    assert worker.submit(1) is False


def test_queue_size_must_be_positive():
    with pytest.raises(ValueError, match='queue_size'):
        LatestFrameWorker(print, queue_size=0)


def test_prepare_runs_on_the_worker_thread_before_the_first_item():
    """A model warm-up that must happen on the inference thread (CUDA graphs are per thread):
    items submitted while it runs wait, newest wins."""
    events, gate = [], threading.Event()

    def prepare():
        gate.wait(5.0)
        events.append(('prepare', threading.current_thread().name))

    worker = LatestFrameWorker(lambda item: events.append((item, threading.current_thread().name)),
                               prepare=prepare, name='ppd-inference').start()
    try:
        worker.submit(1)
        worker.submit(2)
        assert not worker.wait_idle(0.1)  # busy preparing
        gate.set()
        assert worker.wait_idle(5.0)
        assert events == [('prepare', 'ppd-inference'), (2, 'ppd-inference')]
        assert worker.stats()['dropped'] == 1
    finally:
        gate.set()
        worker.stop()


def test_a_failing_prepare_is_reported_and_items_still_run():
    errors, seen = [], []

    def prepare():
        raise RuntimeError('out of memory')

    worker = LatestFrameWorker(seen.append, prepare=prepare,
                               on_error=lambda exc, item: errors.append((str(exc), item))).start()
    try:
        worker.submit('frame')
        assert worker.wait_idle(5.0)
        assert errors == [('out of memory', None)] and seen == ['frame']
        assert worker.stats()['failed'] == 0
    finally:
        worker.stop()
