"""ppd-export: write a Pixel-Perfect Depth model as ONNX for one fixed resolution and step count.

The graph is the whole frame: encoder + the N-step Euler sampler (``ppd_ros.model.export`` says
why one graph). Run it with ``--backend onnxruntime|tensorrt --onnx FILE`` in ppd-depth/ppd-demo,
or ``model.backend``/``model.onnx_path`` in depth_node. ``--check`` runs the file with
onnxruntime on the CPU against PyTorch on the same input and noise and prints the largest
difference (exit 1 above ``--tolerance``).

``--area WxH`` is the graph's exact model resolution (both sides multiples of 16; the old
``--width W --height H`` still work for one release, with a note).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ppd_ros.cli.flags import Deprecated, add_sampling_flags, exit_status, format_size, summary_line
from ppd_ros.model.factory import MODELS, EstimatorBuildError, add_model_arguments, build_estimator

PROG = 'ppd-export'
EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = {EXIT_OK: 'written (and checked)', EXIT_CHECK_FAILED: '--check failed (difference above --tolerance)',
              EXIT_USAGE: 'usage error, model not loadable or export impossible'}


def build_parser() -> argparse.ArgumentParser:
    sections = __doc__.split('\n\n')
    p = argparse.ArgumentParser(prog=PROG, description=sections[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(sections[1:]) + '\n\n' + exit_status(EXIT_CODES))
    p.add_argument('--out', '-o', required=True, type=Path, metavar='FILE', help='ONNX file to write')
    p.add_argument('--model', choices=MODELS, default='demo',
                   help='demo (bundled weights, default) or random weights of a size (random-large: the '
                        'released architecture); ignored with --dit')
    add_model_arguments(p, fast=False)
    add_sampling_flags(p, exact_area=True, area_help="(default: the model's own target area, at its aspect)",
                       seed_help='noise seed of the --check input (default 0); the graph itself takes the '
                                 'noise as an input')
    for part, old in enumerate(('--width', '--height')):
        p.add_argument(old, dest='area', type=int, action=Deprecated, part=part, new='--area WxH')
    p.add_argument('--batch', type=int, default=1, metavar='N',
                   help='frames per run (default 1): N cameras of one model resolution in one run, as '
                        'depth_node with the cameras parameter batches them')
    p.add_argument('--check', action='store_true',
                   help='run the file with onnxruntime (CPU) against PyTorch and print the max difference')
    p.add_argument('--tolerance', type=float, default=1e-4, help='--check tolerance (default 1e-4)')
    return p


def _estimator(args):
    estimator = build_estimator(args.model, args.dit, args.encoder, args.device, 'fp32', args.steps)
    if not hasattr(estimator, 'encoder'):
        raise EstimatorBuildError('ppd-export writes the image model; the video model runs in PyTorch')
    return estimator


def check_export(path, estimator, seed: int = 0) -> float:
    """Max |onnxruntime − PyTorch| of the exported frame on one random image and noise (CPU)."""
    import torch

    from ppd_ros.model.export import OnnxFrame
    from ppd_ros.model.frame_graph import FrameGraph
    session = OnnxFrame(path, 'onnxruntime-cpu')
    h, w = session.size
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(session.batch, 3, h, w, generator=generator)
    noise = torch.randn(session.batch, 1, h, w, generator=generator)
    graph = FrameGraph(estimator.dit.cpu(), estimator.encoder.cpu(), session.steps)
    with torch.inference_mode():
        reference = graph(image, noise)
    return float(np.abs(session(image, noise).numpy() - reference.numpy()).max())


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.area is not None and None in args.area:
        parser.error('--width and --height go together (better: --area WxH)')
    try:
        estimator = _estimator(args)
    except EstimatorBuildError as err:
        print(err.line(PROG), file=sys.stderr)
        return EXIT_USAGE
    if args.area is None:
        from ppd_ros.model.preprocess import model_size
        area = estimator.target_area
        height, width = model_size(area[1], area[0], area)
        args.area = (width, height)
    width, height = args.area
    from ppd_ros.model.export import ExportError, export_onnx
    start = time.perf_counter()
    try:
        export_onnx(estimator.dit, estimator.encoder, estimator.steps, height, width, args.out,
                    name=estimator.name, batch=args.batch)
    except (ExportError, ValueError) as err:
        print(f'{PROG}: error: {err}', file=sys.stderr)
        return EXIT_USAGE
    size = sum(f.stat().st_size for f in args.out.parent.glob(args.out.name + '*'))  # + external data
    wrote = (f'wrote {args.out} ({size / 1e6:.1f} MB): {estimator.name}, {format_size(args.area)}, '
             f'{estimator.steps} steps, {f"batch {args.batch}, " if args.batch > 1 else ""}encoder + sampler in '
             f'one graph ({time.perf_counter() - start:.1f} s)')
    if not args.check:
        summary_line(PROG, wrote)
        return EXIT_OK
    try:
        error = check_export(args.out, estimator, seed=args.seed)
    except ExportError as err:
        print(f'{PROG}: error: {err}', file=sys.stderr)
        return EXIT_USAGE
    ok = error <= args.tolerance
    summary_line(PROG, f'{wrote}; check: max |onnxruntime - pytorch| = {error:.3g} '
                       f'({"<=" if ok else ">"} {args.tolerance:g})')
    return EXIT_OK if ok else EXIT_CHECK_FAILED


if __name__ == '__main__':
    sys.exit(main())
