"""Several cameras' frames through one model: each camera keeps its own ``FramePipeline``
(temporal state, scale, rectification maps), and the model step of frames that share a model
resolution runs as one batch (``estimator.predict_batch``: the encoder and every Euler step).

A frame goes through ``FramePipeline.prepare`` (checks, rectification, the temporal step's model
input) → model → ``temporal.complete`` → ``FramePipeline.finish`` (scale, output geometry), the
same steps ``FramePipeline.process`` runs one frame at a time. The noise of every frame comes
from the model's seed, as in a single-camera run, so a camera's depth equals what
``FramePipeline.process`` gives for the same frames (to float rounding of a batched matrix
product, well under 1e-5).

Run one after another instead (``FramePipeline.process``): the video model (PPVD samples windows
per camera), frames whose confidence is asked for (the sampler's per-frame signals), and
estimators without ``predict_batch``. MoGe-2's metric passes due for frames of one model
resolution run as one batch too (``estimator.metric_geometry_batch``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Iterator, Mapping

from .frame_pipeline import FrameInput, FramePipeline, PreparedFrame


@dataclass
class CameraFrame:
    """One camera's frame for ``process_cameras``, and what is wanted of it."""
    frame: FrameInput
    want_metric: bool = True
    want_confidence: bool = False


@dataclass
class _Prepared:
    camera: Hashable
    pipeline: FramePipeline
    waiting: PreparedFrame
    want_metric: bool


def batch_problem(estimator) -> str | None:
    """Why this estimator runs the frames of several cameras one after another, or None."""
    if getattr(estimator, 'is_video', False):
        return 'the video model (PPVD) samples windows of frames per camera'
    if not callable(getattr(estimator, 'predict_batch', None)):
        return 'this estimator has no predict_batch'
    acceleration = str(getattr(estimator, 'acceleration', 'eager'))
    if 'onnxruntime' in acceleration or 'tensorrt' in acceleration:
        return None if getattr(getattr(estimator, '_frame', None), 'batch', 1) > 1 else \
            f'{acceleration} was exported for batch 1 (ppd-export --batch N)'
    return None


def _one_by_one(pipeline: FramePipeline, item: CameraFrame, settings) -> bool:
    return settings.temporal_mode == 'video' or pipeline.samples_confidence(item.want_metric, item.want_confidence)


def process_cameras(pipelines: Mapping[Hashable, FramePipeline], frames: Mapping[Hashable, CameraFrame],
                    estimator=None, batching: bool = True,
                    on_batch: Callable[[int, tuple], None] | None = None) -> dict:
    """One frame per camera → {camera: list of FrameDepth, or the Exception of that camera's frame}.

    ``pipelines`` share ``estimator`` (default: the first pipeline's). Frames of the same model
    resolution (and warm-start or cold) run as one ``predict_batch``; ``batching`` False runs
    them one after another (the benchmark's baseline). A failing frame fails only its camera:
    a batch that raises is run again frame by frame. ``on_batch(size, what)`` is told of
    every model call: what is the model size (None: a frame run alone), 'metric' for MoGe-2's."""
    results: dict = {}
    prepared: list[_Prepared] = []
    for camera, item in frames.items():
        pipeline = pipelines[camera]
        estimator = estimator or pipeline.estimator
        settings = pipeline.settings
        try:
            if not batching or _one_by_one(pipeline, item, settings) or batch_problem(estimator):
                results[camera] = pipeline.process(item.frame, item.want_metric, item.want_confidence)
                if on_batch is not None and settings.temporal_mode != 'video':
                    on_batch(1, None)
                continue
            waiting = pipeline.prepare(item.frame, item.want_metric, item.want_confidence)
            prepared.append(_Prepared(camera, pipeline, waiting, item.want_metric))
        except Exception as exc:  # noqa: BLE001 — this camera's frame only
            results[camera] = exc
    groups: dict[tuple, list[_Prepared]] = {}
    for p in prepared:
        size = estimator.infer_size(*p.waiting.rgb.shape[:2])
        strength = p.pipeline.settings.warm_start_strength if p.waiting.init_depth is not None else None
        groups.setdefault((size, strength), []).append(p)
    for (size, strength), group in groups.items():
        done = []
        for p, relative in zip(group, _run_group(estimator, group, strength, size, on_batch)):
            try:
                if isinstance(relative, Exception):
                    raise relative
                done.append((p, p.pipeline.temporal.complete(relative)))
            except Exception as exc:  # noqa: BLE001
                results[p.camera] = exc
        _metric_passes(estimator, done, on_batch)
        for p, relative in done:
            try:
                results[p.camera] = [p.pipeline.finish(p.waiting, relative, p.want_metric)]
            except Exception as exc:  # noqa: BLE001
                results[p.camera] = exc
    return results


def _metric_passes(estimator, done: list, on_batch) -> None:
    """MoGe-2's metric passes due for these frames (one model resolution) as one batch; each
    frame's ScaleStep then uses its result. When the batch fails, every frame runs its own pass
    in finish (and reports its own error)."""
    if not callable(getattr(estimator, 'metric_geometry_batch', None)):
        return
    levels: dict[int, list[_Prepared]] = {}
    for p, relative in done:
        s = p.pipeline.settings
        need_geometry = p.pipeline.needs_model_geometry(p.waiting.frame)
        if p.pipeline.scale.metric_pass_due(relative.shape, p.waiting.frame.stamp_ns, p.want_metric, need_geometry):
            levels.setdefault(s.metric_resolution_level, []).append(p)
    for level, members in levels.items():
        if len(members) < 2:
            continue
        try:
            geometries = estimator.metric_geometry_batch([p.waiting.rgb for p in members], level)
        except Exception:  # noqa: BLE001
            continue
        if on_batch is not None:
            on_batch(len(members), 'metric')
        for p, geometry in zip(members, geometries):
            p.pipeline.scale.ready_geometry = geometry


def _run_group(estimator, group: list[_Prepared], strength, size, on_batch) -> list:
    """The model's depth for each frame of one group (an Exception where its frame failed)."""
    def run(members):
        rgbs = [p.waiting.rgb for p in members]
        inits = None if strength is None else [p.waiting.init_depth for p in members]
        depths = estimator.predict_batch(rgbs, inits, strength)
        if on_batch is not None:
            on_batch(len(members), size)
        return depths
    try:
        return run(group)
    except Exception as exc:  # noqa: BLE001 — find the frame at fault: the others still get their depth
        if len(group) == 1:
            return [exc]
    out = []
    for p in group:
        try:
            out.append(run([p])[0])
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    return out


def convert_cameras(pipelines: Mapping[Hashable, FramePipeline], frames: Iterable[tuple[Hashable, CameraFrame]],
                    estimator=None, batching: bool = True) -> Iterator[tuple[Hashable, object]]:
    """Every frame of several cameras in the order given (a bag's), none dropped: frames are
    gathered until a camera comes again, then run as one ``process_cameras`` call (one frame per
    camera, batched by model resolution). Yields (camera, FrameDepth) and (camera, Exception) for
    a frame that failed, each camera's in its order; ends with each pipeline's ``flush`` (the video
    model's last windows). What ppd-bag runs for several camera topics of one bag."""
    gathered: dict = {}
    for camera, item in frames:
        if camera in gathered:
            yield from _results(process_cameras(pipelines, gathered, estimator, batching))
            gathered = {}
        gathered[camera] = item
    if gathered:
        yield from _results(process_cameras(pipelines, gathered, estimator, batching))
    for camera, pipeline in pipelines.items():
        for depth in pipeline.flush():
            yield camera, depth


def _results(results: dict):
    for camera, result in results.items():
        if isinstance(result, Exception):
            yield camera, result
        else:
            for depth in result:
                yield camera, depth
