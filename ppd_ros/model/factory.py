"""One way to build a ``PPDEstimator`` from user options, shared by the command lines and nodes.

``build_estimator`` picks released checkpoints (``dit``/``encoder``), the bundled demo weights
(``model='demo'``) or a model with random weights of a size of ``config.SIZES``
(``model='random-tiny'`` … ``'random-large'``, the released size), and turns every reason it
cannot do so into one ``EstimatorBuildError`` whose text is a single line naming the file or
option at fault; errors about weight files end with where the released file is published
(``released``). The option rules themselves live in ``runtime`` (``model_options_problem``,
``BACKENDS``); ``metric_model_problem`` tells from the options and the encoder file's header,
before any model loads, whether the model has MoGe-2's metric depth. ``add_model_arguments``
adds the argparse options whose names all the command lines share. Importing this module does
not import torch (the estimator is imported on use).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .config import SIZES, model_configs
from .released import where_to_get
from .runtime import BACKENDS, OPTION_NAMES, model_options_problem, resolve_device, resolve_precision

#: random-ppvd: a tiny untrained video model (PPVD), for plumbing tests
MODELS = ('demo',) + tuple(f'random-{size}' for size in SIZES) + ('random-ppvd',)
NO_DEMO_WEIGHTS = ('no bundled demo weights (demo_*.safetensors) found; give the released weights with '
                   '--dit ppd.pth --encoder depth_anything_v2_vitl.pth, or depth_node\'s '
                   f'model.dit_path and model.encoder_path; {where_to_get()}')
#: Said once when the demo model is built for frames that are not the synthetic world's.
SYNTHETIC_DEMO_NOTE = ('the demo model was trained on the synthetic world only (ppd_ros/synthetic): its depth '
                       'of real images is meaningless. For real images give the released weights, --dit ppd.pth '
                       '--encoder depth_anything_v2_vitl.pth (depth_node: model.dit_path, model.encoder_path); '
                       f'{where_to_get("ppd.pth")}, {where_to_get("depth_anything_v2_vitl.pth")}')
_LOG = logging.getLogger('ppd_ros.model')
#: What loading a checkpoint or constructing the model raises for bad files or settings.
_BUILD_ERRORS = (OSError, RuntimeError, ValueError, KeyError, NotImplementedError)


class EstimatorBuildError(ValueError):
    """The estimator cannot be built. ``str()`` is one line; ``path`` is the file at fault (or
    None) and ``reason`` the text without it, for 'FILE: error: reason' command-line messages."""

    def __init__(self, reason: str, path=None):
        super().__init__(reason if path is None else f'{path}: {reason}')
        self.reason = reason
        self.path = path

    def line(self, prog: str) -> str:
        """'FILE: error: reason', or 'PROG: error: reason' when no file is at fault."""
        return f'{self.path if self.path is not None else prog}: error: {self.reason}'


def build_estimator(model: str = 'demo', dit=None, encoder=None, device='auto', precision: str = 'fp32',
                    steps: int | None = None, seed: int | None = None, target_area=None,
                    compile: str = 'off', backend: str = 'torch', onnx_path=None, log=None,
                    defer_warm_up: bool = False, names='arguments', synthetic_input: bool = False):
    """``PPDEstimator`` (or ``VideoDepthEstimator``) from released checkpoints when ``dit`` and
    ``encoder`` are given (together or not at all; a file holding both models is given as both;
    ``model`` is then ignored), else the ``model`` of ``MODELS``. ``steps``/``target_area`` None
    keep the model's own defaults (a single model file, e.g. the bundled demo weights given as
    both paths, brings its own, as with ``model='demo'``); ``compile``, ``backend``,
    ``onnx_path``, ``log`` and ``defer_warm_up`` as the estimator's fast paths. The option rule
    is ``runtime.model_options_problem``; ``names`` ('arguments', 'node', 'flags') picks how its
    messages name the options. The demo model says once, through ``log`` (default: logging),
    that it knows only the synthetic world (``SYNTHETIC_DEMO_NOTE``), unless ``synthetic_input``
    says that the frames come from there (ppd-demo, ppd-eval's scenes). Raises
    EstimatorBuildError."""
    problem = model_options_problem(dit, encoder, backend, onnx_path, compile, names=names)
    if problem is not None:
        raise EstimatorBuildError(problem)
    if dit is None and model not in MODELS:
        raise EstimatorBuildError(f'unknown model {model!r}: choose {", ".join(MODELS)}, or give checkpoints')
    for role, path in (('DiT', dit), ('encoder', encoder)):
        if path is not None and not Path(path).is_file():  # checked before loading the other (large) file
            raise EstimatorBuildError(f'checkpoint not found ({role}: file not found; {where_to_get(path)})', path)
    try:
        from . import estimator
    except ImportError as exc:
        raise EstimatorBuildError(f'the PPD model code is not available: {exc}') from exc
    if onnx_path is not None and not Path(onnx_path).is_file():
        raise EstimatorBuildError('ONNX model not found (write one with ppd-export)', onnx_path)
    options = dict(device=device, precision=precision, seed=seed, compile=compile, backend=backend,
                   onnx_path=onnx_path, log=log, defer_warm_up=defer_warm_up)
    if steps is not None:
        options['steps'] = steps
    if target_area is not None:
        options['target_area'] = tuple(target_area)
    try:
        _check_device_and_precision(device, precision)  # before loading any weights
        video = _is_video(dit, encoder) if dit is not None else model == 'random-ppvd'
        problem = model_options_problem(dit, encoder, backend, onnx_path, compile, video=video, names=names)
        if problem is not None:
            raise EstimatorBuildError(problem)
        if video:
            return _video_estimator(dit, encoder, device, precision, steps, seed)
        if dit is None and model.startswith('random-'):
            return estimator.PPDEstimator.from_config(*model_configs(model[len('random-'):]), **options)
        metadata = _checkpoint().peek_metadata(dit) if dit is not None else None
        if dit is None:
            built = estimator.PPDEstimator.demo(**options)
        elif _one_model_file(dit, encoder, metadata):  # its own steps and area, as the demo model
            built = estimator.PPDEstimator.from_file(dit, **options)
        else:
            built = estimator.PPDEstimator.from_checkpoints(dit, encoder, **options)
        if not synthetic_input and (dit is None or _checkpoint().is_synthetic_demo(metadata)):
            (log or _LOG.warning)(SYNTHETIC_DEMO_NOTE)
        return built
    except EstimatorBuildError:
        raise
    except FileNotFoundError as exc:
        if dit is None:  # demo() found no weights file
            raise EstimatorBuildError(NO_DEMO_WEIGHTS, estimator.WEIGHTS_DIR) from exc
        raise _one_line_error(exc, dit, encoder) from exc
    except _BUILD_ERRORS as exc:
        raise _one_line_error(exc, dit, encoder, onnx_path) from exc


def _checkpoint():
    from . import checkpoint  # imports torch: only once a model is built or its files are read
    return checkpoint


def _one_model_file(dit, encoder, metadata) -> bool:
    """The same file as DiT and encoder, in the single-file format (``save_model_file``): it
    carries the steps and target area the model was trained for."""
    return (metadata or {}).get('format') == _checkpoint().FORMAT_TAG and \
        Path(dit).resolve() == Path(encoder).resolve()


def metric_model_problem(model: str = 'demo', dit=None, encoder=None, option: str = '--metric',
                         names: str = 'flags') -> str | None:
    """Why metric depth from the camera alone (MoGe-2's, asked for by ``option``) cannot come
    from this model, or None; told from the options and the encoder file's header, so it is
    refused before any model loads (the estimator's ``has_metric_model`` is the same fact once
    loaded). A file that cannot be read is left to the loader's own error. ``names`` as
    ``runtime.OPTION_NAMES``."""
    n = OPTION_NAMES[names]
    needs = f'{option} needs MoGe-2 weights ({n["dit"]} ppd_moge.pth {n["encoder"]} moge2.pt)'
    if not dit or not encoder:  # None, or a node's empty parameter
        return f'{needs}; the {model} model has no metric depth'
    if not Path(encoder).is_file():
        return None
    metadata = _checkpoint().peek_metadata(encoder)
    if metadata is None or 'model_config' in metadata:
        return None
    return f'{needs}; {Path(encoder).name} is not a MoGe-2 encoder ({where_to_get("moge2.pt")})'


def _is_video(dit, encoder) -> bool:
    """The released video model (ppvd.pth, keys dit_video.*) is recognised from its keys."""
    from .checkpoint import peek_kind
    dit_kind = peek_kind(dit)
    if dit_kind != 'video' and peek_kind(encoder) == 'video':
        raise EstimatorBuildError('the video model goes --dit ppvd.pth --encoder pi3.safetensors '
                                  f'(the two files seem swapped; {where_to_get()})', dit)
    return dit_kind == 'video'


def _video_estimator(dit, encoder, device, precision, steps, seed):
    from .video import VideoDepthEstimator
    options = dict(device=device, precision=precision)
    if steps is not None:
        options['steps'] = steps
    if seed is not None:
        options['seed'] = seed
    if dit is None:
        return VideoDepthEstimator.from_config(**options)
    return VideoDepthEstimator.from_checkpoints(dit, encoder, **options)


def add_model_arguments(parser, fast: bool = True) -> None:
    """--dit, --encoder, --device, --precision (the model options every command line shares) on an
    argparse parser or argument group, and with ``fast`` --compile, --backend, --onnx; pass them
    on to ``build_estimator`` (``fast_options(args)`` for the last three)."""
    parser.add_argument('--dit', type=Path, metavar='PATH',
                        help='released DiT checkpoint: ppd.pth or ppd_moge.pth (image model), ppvd.pth (video model)')
    parser.add_argument('--encoder', type=Path, metavar='PATH',
                        help='released semantics encoder (with --dit): depth_anything_v2_vitl.pth for ppd.pth, '
                             'moge2.pt for ppd_moge.pth, pi3.safetensors for ppvd.pth (told apart by content)')
    parser.add_argument('--device', default='auto', help='auto (default), cpu, cuda, cuda:1, …')
    parser.add_argument('--precision', default='fp32', help='fp32 (default), fp16 or bf16')
    if not fast:
        return
    parser.add_argument('--compile', choices=('off', 'on'), default='off',
                        help='on: torch.compile + CUDA graphs of the whole frame (CUDA; warm-up at start)')
    parser.add_argument('--backend', choices=BACKENDS, default='torch',
                        help='torch (default); onnxruntime or tensorrt run --onnx (from ppd-export)')
    parser.add_argument('--onnx', type=Path, metavar='PATH', help='ONNX model written by ppd-export')


def fast_options(args) -> dict:
    """build_estimator's compile/backend/onnx_path from the options of ``add_model_arguments``."""
    return dict(compile=args.compile, backend=args.backend, onnx_path=args.onnx)


def model_flags_problem(args) -> str | None:
    """``runtime.model_options_problem`` for the options of ``add_model_arguments``, in flag names."""
    return model_options_problem(args.dit, args.encoder, getattr(args, 'backend', 'torch'),
                                 getattr(args, 'onnx', None), getattr(args, 'compile', 'off'), names='flags')


def _check_device_and_precision(device, precision) -> None:
    """ValueError for an unknown/unavailable device or an unknown precision (the estimator warns
    about fp16 on CPU itself, so the warning is not given twice)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        resolve_precision(precision, resolve_device(device))


def _one_line_error(exc: BaseException, *paths) -> EstimatorBuildError:
    """The first line of `exc`; checkpoint errors start with the file name, which becomes `path`,
    and end with where the released weights are published."""
    from .checkpoint import CheckpointError
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else type(exc).__name__
    for path in paths:
        if path is not None and message.startswith(f'{path}: '):
            reason = message[len(f'{path}: '):]
            if isinstance(exc, CheckpointError):  # unreadable or the wrong file: the README's table
                reason = f'{reason}; {where_to_get()}'
            return EstimatorBuildError(reason, path)
    return EstimatorBuildError(message)


__all__ = ['EstimatorBuildError', 'build_estimator', 'add_model_arguments', 'fast_options', 'MODELS',
           'metric_model_problem', 'SYNTHETIC_DEMO_NOTE']
