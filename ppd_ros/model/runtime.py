"""The model's run-time rules in one place: device, precision, backend, ONNX path, compile, and
which checkpoint paths go together.

Importing this module does not import torch (the nodes and command lines read ``BACKENDS`` and
check options before any model code is loaded); the functions that need torch import it when
called. It imports no other module of ``ppd_ros.model`` but ``released`` (a table), so every
model module may import it without an import cycle.

``model_options_problem`` is THE rule for the paths and fast-path options, written once for the
estimator, ``factory.build_estimator``, depth_node's parameter check and the command lines; its
messages name the options as the caller's user knows them (``OPTION_NAMES``).
"""
from __future__ import annotations

import contextlib
import gc
import sys
import warnings
from pathlib import Path
from typing import Mapping

from .released import partner

BACKENDS = ('torch', 'onnxruntime', 'tensorrt')  # how cold-start frames run; the last two run an ONNX file
COMPILE_MODES = ('off', 'on')
#: accepted precision spellings → canonical name ('fp32' runs without autocast)
PRECISIONS = {'fp32': 'fp32', 'float32': 'fp32', 'fp16': 'fp16', 'float16': 'fp16', 'half': 'fp16',
              'bf16': 'bf16', 'bfloat16': 'bf16'}

#: How each option is called where the user sets it: Python keyword arguments (build_estimator),
#: depth_node's parameters, the command-line flags.
OPTION_NAMES = {
    'arguments': {'dit': 'dit', 'encoder': 'encoder', 'backend': 'backend', 'onnx_path': 'onnx_path',
                  'compile': 'compile'},
    'node': {'dit': 'model.dit_path', 'encoder': 'model.encoder_path', 'backend': 'model.backend',
             'onnx_path': 'model.onnx_path', 'compile': 'model.compile'},
    'flags': {'dit': '--dit', 'encoder': '--encoder', 'backend': '--backend', 'onnx_path': '--onnx',
              'compile': '--compile'},
}


# ------------------------------------------------------------------------------ options rule
def model_options_problem(dit=None, encoder=None, backend: str = 'torch', onnx_path=None, compile: str = 'off',
                          *, video: bool = False, names: str | Mapping[str, str] = 'arguments') -> str | None:
    """What is wrong with this combination of model options, in one line, or None.

    - ``dit`` and ``encoder`` (checkpoint paths) are given together or not at all: the encoder
      never defaults to the DiT file. A file that holds both models (a full PixelPerfectDepth
      state dict, e.g. a training checkpoint) is given as both paths.
    - ``backend`` is one of ``BACKENDS``; ``onnx_path`` is given exactly when the backend is
      onnxruntime or tensorrt.
    - ``compile`` is one of ``COMPILE_MODES``; 'on' only with the torch backend.
    - ``video`` (the checkpoints are the video model, known once the files are read): compile
      off and the torch backend (the video model runs eager PyTorch).

    Empty strings count as not given (node parameters). ``names``: 'arguments', 'node' or
    'flags' (``OPTION_NAMES``), or a mapping overriding some of the 'arguments' names. Only the
    values are checked here, no file is opened."""
    n = dict(OPTION_NAMES['arguments'])
    n.update(OPTION_NAMES[names] if isinstance(names, str) else names)
    if compile not in COMPILE_MODES:
        return f'{n["compile"]} must be one of {", ".join(COMPILE_MODES)}, got {compile!r}'
    if backend not in BACKENDS:
        return f'{n["backend"]} must be one of {", ".join(BACKENDS)}, got {backend!r}'
    if _given(dit) != _given(encoder):
        text = f'{n["dit"]} and {n["encoder"]} must be given together, or neither'
        path = dit if _given(dit) else encoder
        other = partner(path)
        if other is not None:
            role = 'needs its semantics encoder' if _given(dit) else 'is the semantics encoder of'
            text += f': {Path(str(path)).name} {role} {other}'
        return text
    if backend != 'torch' and not _given(onnx_path):
        return f'{n["onnx_path"]} is needed by {n["backend"]} {backend} (an ONNX model written by ppd-export)'
    if backend == 'torch' and _given(onnx_path):
        return (f'{n["onnx_path"]} is needed by {n["backend"]} onnxruntime/tensorrt and only by them '
                f'({n["backend"]} is torch)')
    if compile == 'on' and backend != 'torch':
        return f'{n["compile"]} on is for {n["backend"]} torch (an ONNX backend compiles itself)'
    if video and (compile != 'off' or backend != 'torch'):
        return (f'{n["compile"]} on and {n["backend"]} onnxruntime/tensorrt are for the image model; the video '
                'model runs eager PyTorch')
    return None


def _given(value) -> bool:
    return value is not None and str(value) != ''


# ------------------------------------------------------------------------------ device rule
def resolve_device(device='auto'):
    """torch.device: 'auto' → cuda, then mps, then cpu; explicit names are checked for
    availability (ValueError)."""
    import torch
    if device is None or device == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        mps = getattr(torch.backends, 'mps', None)
        if mps is not None and mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f'invalid device {device!r}: {exc}') from exc
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available')
    if dev.type == 'mps' and not (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()):
        raise ValueError(f'device {device!r} requested but MPS is not available')
    return dev


def release_device_memory() -> None:
    """Hand the memory of models no longer referenced back: collect Python's cycles, then empty
    the CUDA allocator's cache (which otherwise keeps freed blocks for this process). Does not
    import torch when nothing imported it."""
    gc.collect()
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- precision rule
def resolve_precision(precision: str, device) -> str:
    """'fp32' | 'fp16' | 'bf16' (autocast) from any spelling of ``PRECISIONS`` (ValueError
    otherwise). fp16 on a CPU device falls back to fp32 with a RuntimeWarning."""
    key = str(precision).lower()
    if key not in PRECISIONS:
        raise ValueError(f'precision must be one of fp32, fp16, bf16; got {precision!r}')
    name = PRECISIONS[key]
    if name == 'fp16' and device.type == 'cpu':
        warnings.warn('fp16 autocast is not supported well on CPU; running in fp32 '
                      '(use precision="bf16" for reduced precision on CPU)', RuntimeWarning, stacklevel=3)
        name = 'fp32'
    return name


def autocast_dtype(precision: str):
    """torch dtype of a canonical precision's autocast, None for fp32."""
    import torch
    return {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}[PRECISIONS[precision]]


def autocast(precision: str, device):
    """Context that runs ``precision`` on ``device``: nothing for fp32, else torch.autocast
    (RuntimeError naming both when the device has no such autocast)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    import torch
    try:
        return torch.autocast(device_type=device.type, dtype=dtype)
    except RuntimeError as exc:
        raise RuntimeError(f'{precision} autocast is not available on {device}: {exc}') from exc


__all__ = ['BACKENDS', 'COMPILE_MODES', 'PRECISIONS', 'OPTION_NAMES', 'model_options_problem', 'resolve_device',
           'release_device_memory', 'resolve_precision', 'autocast_dtype', 'autocast']
