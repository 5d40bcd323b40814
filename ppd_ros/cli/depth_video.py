"""ppd-depth with the video model (PPVD): every video, and every folder of frames, is one clip.

Frames go through the frame pipeline (its video step: the causal window stream) one by one, so
memory stays at one window however long the clip; each frame's outputs are written as soon as its
window is done, and an mp4 preview (``<clip>_depth.mp4``, colourised depth; ppd-depth writes one for every video,
whatever the model, unless --no-preview) is written beside them. The colour range
is fixed per clip (2nd..98th percentile of the first window, or ``--color-range``) so colours do
not flicker. Depth comes at the input size: the video model runs at its fixed S×S (512×512) and
resizes each window back, as the released code does.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from ppd_ros.cli import io

PREVIEW_SUFFIX = '_depth.mp4'
FOLDER_FPS = 30.0


def is_video_model(estimator) -> bool:
    return getattr(estimator, 'is_video', False)


def clips(items: list[io.InputItem]) -> Iterator[tuple[str, list[io.InputItem]]]:
    """(clip name, items): each video alone; images grouped by folder, in name order."""
    groups: dict[Path, list[io.InputItem]] = {}
    for item in items:
        if item.kind == 'video':
            yield item.name, [item]
        elif item.kind == 'image':
            groups.setdefault(item.path.parent, []).append(item)
    for folder, members in groups.items():
        parent = Path(members[0].name).parent.as_posix()
        yield (parent if parent != '.' else folder.name or 'clip'), members


def _frames(members: list[io.InputItem], reporter) -> Iterator[tuple[str, np.ndarray]]:
    """(output stem, RGB) of a clip's frames; unreadable frames are reported and skipped."""
    if len(members) == 1 and members[0].kind == 'video':
        item = members[0]
        stem = Path(item.name).name
        try:
            for index, rgb in io.iter_video_frames(item.path):
                yield f'{item.name}/{stem}_{index:06d}', rgb
        except io.InputError as err:
            reporter.error(str(item.path), str(err))
        return
    for item in members:
        try:
            yield item.name, io.read_image_rgb(item.path)
        except io.InputError as err:
            reporter.error(str(item.path), str(err))


def run_clip(pipeline, name: str, members: list[io.InputItem], opts, reporter, bar, frame_input, write_outputs,
             colorize) -> None:
    """One clip through the pipeline; ppd-depth passes its frame_input, write_outputs and colorize."""
    video = members[0].kind == 'video'
    fps = io.video_fps(members[0].path) if video else FOLDER_FPS
    preview = io.PreviewWriter(opts.out_dir / f'{name}{PREVIEW_SUFFIX}', fps) if opts.preview else None
    color_range = opts.color_range
    pipeline.reset()  # every clip starts afresh

    def emit(done) -> None:
        nonlocal color_range
        if done and color_range is None:
            lo, hi = np.percentile(np.stack([d.relative for d in done]), [2, 98])
            color_range = (float(lo), float(hi) if hi > lo else float(lo) + 1e-6)
        for depth in done:
            try:
                write_outputs(depth, opts, color_range)
                if preview is not None:
                    preview.write(colorize(depth.relative, color_range))
            except (OSError, ValueError) as err:
                reporter.error(depth.context, str(err))
            if bar is not None:
                bar.update(1)

    want_metric = opts.metric or opts.camera is not None
    try:
        for index, (stem, rgb) in enumerate(_frames(members, reporter)):
            try:
                emit(pipeline.process(frame_input(rgb, stem, opts, round(index * 1e9 / fps)), want_metric))
            except ValueError as err:  # e.g. a frame of another size in a folder clip
                reporter.error(stem, str(err))
        emit(pipeline.flush(want_metric))
    finally:
        if preview is not None:
            preview.close()
    if preview is not None and preview.frames == 0 and not reporter.failed:
        print(f'{name}: no frames written', file=sys.stderr)
