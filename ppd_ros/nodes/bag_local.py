"""ppd-bag on one machine: in this process, or ``--workers N`` processes with one model each.

Workers are the standard library's process pools (spawn), one single-process pool per worker, so a
worker that dies takes only its own bag with it: that bag is retried (``retries`` times) in a fresh
worker, and the bags of the other workers go on. A bag stays on one worker from its first frame
to its last (the video model sees the whole bag as one clip, as without workers).

Interruptions: this process catches SIGINT, SIGTERM and SIGHUP and records the signal in a shared
value; workers ignore SIGINT (a terminal's Ctrl-C reaches the driver) and record SIGTERM/SIGHUP the
same way; each worker stops before its next frame and closes its partial bag.
"""
from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .bag_convert import ConvertOptions, convert
from .bag_jobs import FAILED, INTERRUPTED, NOT_STARTED, BagResult, Job
from .bag_signals import signals_call, signals_raise, signum_of

POLL_S = 0.2


def run_here(jobs: list[Job], options: ConvertOptions, build, progress, on_result) -> list[BagResult]:
    """The bags one after another in this process, with one model (``build()``, called once, at
    the first bag). A signal stops the bag at once (its partial closed) and the run."""
    results, estimator = [], None
    with signals_raise():
        for n, job in enumerate(jobs):
            try:
                if estimator is None:
                    estimator = build()  # EstimatorBuildError, and an interruption here, go to the caller
                progress.handle(('start', job.index, 'main'))
                result = convert(job, options, estimator, report=lambda done, i=job.index: (
                    progress.handle(('frames', i, done)), progress.tick()))
            except KeyboardInterrupt as exc:  # between two bags
                if estimator is None:
                    raise
                results += [BagResult.of(j, status=NOT_STARTED, signum=signum_of(exc)) for j in jobs[n:]]
                break
            progress.finished(result, job.index)
            on_result(result)
            results.append(result)
            if result.status == INTERRUPTED:
                results += [BagResult.of(j, status=NOT_STARTED) for j in jobs[n + 1:]]
                break
    return results


# ---------------------------------------------------------------------------------- workers

_worker: dict = {}   # in each worker process: estimator (or the error line), events queue, stop value


def _start_worker(spec, threads, events, stop) -> None:
    """A worker's initializer: its signals, its threads, its model (once)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ('SIGTERM', 'SIGHUP'):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda signum, _: _request_stop(stop, signum))
    import torch
    torch.set_num_threads(threads)
    _worker.update(events=events, stop=stop, error=None, estimator=None)
    from ppd_ros.model.factory import EstimatorBuildError
    try:
        _worker['estimator'] = spec.build()
    except EstimatorBuildError as exc:
        _worker['error'] = exc.line('ppd-bag')


def _convert_in_worker(job: Job, options: ConvertOptions) -> BagResult:
    events, stop, name = _worker['events'], _worker['stop'], f'pid {os.getpid()}'
    if _worker['error'] is not None:
        return BagResult.of(job, status=FAILED, error=_worker['error'], model_error=True, worker=name)
    if stop.value:
        return BagResult.of(job, status=NOT_STARTED, worker=name, signum=stop.value)
    events.put(('start', job.index, name))
    return convert(job, options, _worker['estimator'], report=lambda done: events.put(('frames', job.index, done)),
                   should_stop=lambda: stop.value, worker=name)


def _request_stop(stop, signum: int) -> None:
    """Record the first stop signal (the workers stop before their next frame)."""
    if not stop.value:
        stop.value = signum


def run_workers(jobs: list[Job], options: ConvertOptions, spec, workers: int, retries: int, progress,
                on_result, say, threads: int | None = None) -> list[BagResult]:
    """The bags on ``workers`` processes (spawned; each builds ``spec`` once). A worker that dies
    mid-bag: the bag is retried in a new worker, up to ``retries`` times."""
    ctx = multiprocessing.get_context('spawn')
    events, stop = ctx.Queue(), ctx.Value('i', 0)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    pools: list[ProcessPoolExecutor | None] = [None] * workers
    pending, running = deque(jobs), {}      # future → (slot, job)
    attempts: dict[int, int] = {}
    results: dict[int, BagResult] = {}

    def drain():
        while True:
            try:
                progress.handle(events.get_nowait())
            except queue_module.Empty:
                return
            except (EOFError, OSError):  # the queue of a dead worker
                return

    def finish(job, result):
        result.attempts = attempts.get(job.index, 1)
        results[job.index] = result
        progress.finished(result, job.index)
        on_result(result)

    try:
        with signals_call(lambda signum: _request_stop(stop, signum)):
            while pending or running:
                busy = {slot for slot, _ in running.values()}
                for slot in range(workers):
                    if not pending or stop.value:
                        break
                    if slot in busy:
                        continue
                    if pools[slot] is None:
                        pools[slot] = ProcessPoolExecutor(1, mp_context=ctx, initializer=_start_worker,
                                                          initargs=(spec, threads, events, stop))
                    job = pending.popleft()
                    attempts[job.index] = attempts.get(job.index, 0) + 1
                    running[pools[slot].submit(_convert_in_worker, job, options)] = (slot, job)
                if not running:
                    break
                done, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
                drain()
                progress.tick()
                for future in done:
                    slot, job = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        pools[slot].shutdown(wait=False, cancel_futures=True)
                        pools[slot] = None
                        tries = attempts[job.index]
                        if tries <= retries and not stop.value:
                            say(f'{job.input}: the worker died (attempt {tries} of {retries + 1}); retrying the bag')
                            pending.appendleft(job)
                            continue
                        result = BagResult.of(job, status=FAILED, error=f'the worker died {tries} time(s)')
                    if result.model_error:
                        _request_stop(stop, signal.SIGINT)
                    finish(job, result)
            drain()
    finally:
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    for job in pending:
        results.setdefault(job.index, BagResult.of(job, status=NOT_STARTED, signum=stop.value))
    return [results[job.index] for job in jobs]
