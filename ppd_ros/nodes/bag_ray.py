"""ppd-bag on a Ray cluster (``--ray auto|ADDRESS``): bags on Ray actors that each hold the model.

The only module that imports Ray (an optional extra: pip install 'ppd_ros[fleet]'). Ray places the
actors (``num_gpus`` each when the model runs on CUDA) and restarts one that dies: its bag is
retried on the restarted actor (Ray's ``max_restarts`` / ``max_task_retries``), the conversion
starting over from the bag's first frame. A bag stays on one actor, so the video model sees it as
one clip, as without Ray. Actors report frames to a small progress actor, which also carries the
stop request of an interrupted driver.

Bags are read and written by the actors at the paths the driver gives: on a cluster, inputs and
outputs must be on a filesystem that every node mounts at the same path (the object store carries
only progress and results, never bag data).
"""
from __future__ import annotations

import os
import signal
import time

from .bag_convert import ConvertOptions, convert
from .bag_jobs import FAILED, NOT_STARTED, BagResult, Job
from .bag_signals import signals_call

INSTALL = "--ray needs Ray: pip install 'ppd_ros[fleet]'"
POLL_S = 0.2
STOP_WAIT_S = 600.0


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached (one line)."""


def _ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(INSTALL) from None
    return ray


_classes: dict = {}


def _actor_classes():
    """(BagActor, Progress), defined once Ray is imported."""
    if _classes:
        return _classes['actor'], _classes['progress']
    ray = _ray()

    @ray.remote(num_cpus=0)
    class Progress:
        """Events from the actors, taken by the driver; the driver's stop request."""

        def __init__(self):
            self.events, self.stopped = [], 0

        def put(self, event):
            self.events.append(event)

        def take(self):
            events, self.events = self.events, []
            return events

        def stop(self, signum):
            self.stopped = self.stopped or signum

        def should_stop(self):
            return self.stopped

    class BagActor:
        """Holds one model; converts one bag per call."""

        def __init__(self, spec, threads):
            from ppd_ros.model.factory import EstimatorBuildError
            if threads:
                import torch
                torch.set_num_threads(threads)
            self.error, self.estimator = None, None
            try:
                self.estimator = spec.build()
            except EstimatorBuildError as exc:
                self.error = exc.line('ppd-bag')

        def convert(self, job: Job, options: ConvertOptions, progress) -> BagResult:
            name = f'{ray.util.get_node_ip_address()} pid {os.getpid()}'
            if self.error is not None:
                return BagResult.of(job, status=FAILED, error=self.error, model_error=True, worker=name)
            progress.put.remote(('start', job.index, name))
            return convert(job, options, self.estimator,
                           report=lambda done: progress.put.remote(('frames', job.index, done)),
                           should_stop=lambda: ray.get(progress.should_stop.remote()), worker=name)

    _classes.update(actor=ray.remote(BagActor), progress=Progress)
    return _classes['actor'], _classes['progress']


def connect(address: str):
    """Ray, connected: to ADDRESS, or with 'auto' to the running cluster (RAY_ADDRESS, or the last
    `ray start` on this machine), else a new local one. Returns (ray, started_here)."""
    ray = _ray()
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(address=None if address == 'auto' else address, include_dashboard=False,
                 logging_level='WARNING', log_to_driver=True)
    except Exception as exc:  # noqa: BLE001 — ConnectionError, ValueError, … for an unreachable address
        raise RayUnavailable(f'cannot reach the Ray cluster at {address}: {type(exc).__name__}: {exc}') from exc
    return ray, True


def uses_gpu(device: str, cluster_gpus: float) -> bool:
    """Actors ask for a GPU when the model is to run on CUDA and the cluster has GPUs."""
    return cluster_gpus > 0 and (device == 'auto' or device.startswith('cuda'))


def run_ray(jobs: list[Job], options: ConvertOptions, spec, address: str, workers: int | None, retries: int,
            progress, on_result, say, cpus_per_worker: float = 1, gpus_per_worker: float = 1) -> list[BagResult]:
    """The bags on Ray actors (``workers``; default one per GPU the cluster has, else one per node)."""
    ray, started = connect(address)
    created: list = []   # the actors and the progress actor, ended here when the run ends
    try:
        return _run(ray, jobs, options, spec, workers, retries, progress, on_result, say, cpus_per_worker,
                    gpus_per_worker, created)
    finally:
        for actor in created:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _run(ray, jobs, options, spec, workers, retries, progress, on_result, say, cpus, gpus_each, created):
    from ray.exceptions import RayActorError
    BagActor, Progress = _actor_classes()
    cluster_gpus = ray.cluster_resources().get('GPU', 0)
    gpus = gpus_each if uses_gpu(spec.device, cluster_gpus) else 0
    if workers is None:
        workers = max(1, int(cluster_gpus / gpus) if gpus else len([n for n in ray.nodes() if n.get('Alive')]))
    workers = min(workers, len(jobs))
    say(f'Ray: {workers} actor(s), {cpus:g} CPU' + (f' and {gpus:g} GPU' if gpus else '') + ' each; cluster: '
        + ', '.join(f'{v:g} {k}' for k, v in sorted(ray.cluster_resources().items()) if k in ('CPU', 'GPU')))
    tracker = Progress.remote()
    options_of_actor = BagActor.options(num_cpus=cpus, num_gpus=gpus, max_restarts=retries, max_task_retries=retries)
    threads = max(1, int(cpus)) if not gpus else None

    def new_actor():
        created.append(options_of_actor.remote(spec, threads))
        return created[-1]
    created.append(tracker)
    actors = [new_actor() for _ in range(workers)]
    pending, running = list(reversed(jobs)), {}     # ref → (actor, job)
    idle = list(actors)
    results: dict[int, BagResult] = {}
    attempts: dict[int, int] = {}
    stop_requested: list[int] = []   # the signals received

    def request_stop(signum):
        if not stop_requested:
            tracker.stop.remote(signum)
        stop_requested.append(signum)

    def drain():
        for event in ray.get(tracker.take.remote()):
            if event[0] == 'start':
                attempts[event[1]] = attempts.get(event[1], 0) + 1
                if attempts[event[1]] > 1:
                    say(f'{jobs_by_index[event[1]].input}: the actor died; retrying the bag '
                        f'(attempt {attempts[event[1]]} of {retries + 1})')
            progress.handle(event)

    jobs_by_index = {job.index: job for job in jobs}
    deadline = None
    with signals_call(request_stop):  # after ray.init, which sets its own SIGTERM handler
        while pending or running:
            while pending and idle and not stop_requested:
                actor, job = idle.pop(), pending.pop()
                running[actor.convert.remote(job, options, tracker)] = (actor, job)
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            drain()
            progress.tick()
            if stop_requested and deadline is None:
                deadline = time.monotonic() + STOP_WAIT_S
            for ref in done:
                actor, job = running.pop(ref)
                try:
                    result = ray.get(ref)
                    idle.append(actor)
                except RayActorError as exc:  # died more often than Ray restarts it
                    tries = attempts.get(job.index, 1)
                    result = BagResult.of(job, status=FAILED, error=f'the actor died {tries} time(s) '
                                          f'({type(exc).__name__})')
                    if pending:
                        idle.append(new_actor())
                result.attempts = max(1, attempts.get(job.index, 1))
                if result.model_error:
                    request_stop(signal.SIGINT)
                results[job.index] = result
                progress.finished(result, job.index)
                on_result(result)
            if deadline is not None and time.monotonic() > deadline:
                break
        drain()
    for job in jobs:
        results.setdefault(job.index, BagResult.of(job, status=NOT_STARTED,
                                                   signum=stop_requested[0] if stop_requested else 0))
    return [results[job.index] for job in jobs]
