"""ONNX export of one frame's whole computation, and running it with onnxruntime.

What is exported: ``FrameGraph`` — the encoder plus the full N-step Euler sampler, unrolled, as
ONE graph for a fixed resolution and step count (inputs ``image`` (1, 3, h, w) RGB in [0, 1] and
``noise`` (1, 1, h, w); output ``depth`` (1, 1, h, w); ``batch`` N > 1: N frames per run, the
frames of several cameras, ``ppd-export --batch N``). Why one graph rather than encoder + one
DiT step: a TensorRT engine is static anyway, and one enqueue per frame keeps the semantics
tokens, the state and the Euler updates on the device with no host round trip or launch gap
between steps, and lets the builder fuse across step boundaries. The DiT's weights are shared by
the unrolled steps (one initializer each, the file is not N times larger). The price: the step
count is fixed at export (re-export for another), and warm starts (a suffix of the schedule) run
in PyTorch.

The file's metadata records what it was exported for (``ppd_steps``, ``ppd_height``,
``ppd_width``, ``ppd_model``) and from which weights (``ppd_weights``: ``weights_fingerprint``
of the DiT and encoder); ``OnnxFrame`` checks frames and the model it is given against it, so a
file exported from another model at the same size is refused instead of run silently.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .frame_graph import FrameGraph

INPUTS = ('image', 'noise')
OUTPUT = 'depth'
EXTERNAL_DATA_BYTES = 1 << 30  # weights above this are saved beside the .onnx file
#: backend name → onnxruntime execution providers, most preferred first.
PROVIDERS = {
    'onnxruntime-cpu': ('CPUExecutionProvider',),
    'onnxruntime-cuda': ('CUDAExecutionProvider', 'CPUExecutionProvider'),
    'tensorrt': ('TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider'),
}


class ExportError(RuntimeError):
    """The model cannot be exported or the exported file cannot be run here; one line."""


def weights_fingerprint(dit, encoder, samples: int = 64) -> str:
    """16 hex digits that tell weights apart: every tensor's name and shape and ``samples``
    evenly spaced values of it, hashed. Values are copied, never summed, so the same weights
    give the same fingerprint on any device; cheap (a few small copies) even for the released
    model, so it is checked at every start."""
    digest = hashlib.sha256()
    for role, module in (('dit', dit), ('encoder', encoder)):
        for name, tensor in module.state_dict().items():
            flat = tensor.detach().reshape(-1)
            picked = flat[::max(1, flat.numel() // samples)][:samples]
            digest.update(f'{role}.{name}{tuple(tensor.shape)}'.encode())
            digest.update(picked.to('cpu', torch.float32).numpy().tobytes())
    return digest.hexdigest()[:16]


def export_onnx(dit, encoder, steps: int, height: int, width: int, path, name: str = 'ppd',
                batch: int = 1) -> Path:
    """Write ``FrameGraph(dit, encoder, steps)`` for (batch, 3, height, width) inputs to ``path``
    (fp32 weights; TensorRT picks fp16/bf16 kernels itself when asked to)."""
    dit.check_input_size(height, width)
    if not isinstance(batch, int) or batch < 1:
        raise ExportError(f'batch must be an integer >= 1, got {batch!r}')
    graph = FrameGraph(dit, encoder, steps).eval()
    device = next(dit.parameters()).device
    image = torch.rand(batch, 3, height, width, device=device)
    noise = torch.randn(batch, 1, height, width, device=device)
    path = Path(path)
    with torch.inference_mode():
        graph(image, noise)  # fill the models' per-shape caches with real tensors before tracing:
        # a cache miss during export would store the tracer's fake tensors there
    try:
        program = torch.onnx.export(graph, (image, noise), input_names=list(INPUTS),
                                    output_names=[OUTPUT], dynamo=True, verbose=False)
    except ImportError as exc:
        raise ExportError(f'ONNX export needs the onnx and onnxscript packages '
                          f'(pip install ppd_ros[onnx]): {exc}') from exc
    metadata = {'ppd_model': name, 'ppd_steps': str(steps), 'ppd_height': str(height),
                'ppd_width': str(width), 'ppd_inputs': json.dumps(list(INPUTS)),
                'ppd_weights': weights_fingerprint(dit, encoder), 'ppd_batch': str(batch)}
    program.model.metadata_props.update(metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Protobuf files stop at 2 GB: the released model's weights go to PATH.data beside it.
    weight_bytes = sum(p.numel() * p.element_size() for p in graph.parameters())
    program.save(str(path), external_data=weight_bytes > EXTERNAL_DATA_BYTES)
    return path


class OnnxFrame:
    """An exported ``FrameGraph`` in an onnxruntime session: (image, noise) → depth.

    ``backend``: a key of ``PROVIDERS``. The requested execution provider must be installed
    (``onnxruntime-gpu`` for CUDA, TensorRT libraries for the TensorRT provider); otherwise
    ``ExportError`` names the providers this onnxruntime has.
    """

    def __init__(self, path, backend: str = 'onnxruntime-cpu', threads: int | None = None):
        if backend not in PROVIDERS:
            raise ExportError(f'unknown ONNX backend {backend!r}; choose {", ".join(PROVIDERS)}')
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ExportError(f'backend {backend} needs onnxruntime (pip install ppd_ros[onnx], or '
                              f'onnxruntime-gpu for CUDA/TensorRT): {exc}') from exc
        path = Path(path)
        if not path.is_file():
            raise ExportError(f'{path}: ONNX model not found (write one with ppd-export)')
        available = ort.get_available_providers()
        wanted = PROVIDERS[backend]
        if wanted[0] not in available:
            raise ExportError(f'backend {backend} needs onnxruntime\'s {wanted[0]}, which this '
                              f'onnxruntime does not have (it has {", ".join(available)})')
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=[p for p in wanted if p in available])
        except Exception as exc:  # noqa: BLE001 — onnxruntime raises its own exception types
            raise ExportError(f'{path}: onnxruntime cannot load it: {exc}'.splitlines()[0]) from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.steps = int(meta['ppd_steps'])
            self.size = (int(meta['ppd_height']), int(meta['ppd_width']))
        except (KeyError, ValueError) as exc:
            raise ExportError(f'{path}: not written by ppd-export (metadata {exc} missing)') from exc
        self.batch = int(meta.get('ppd_batch', 1))  # frames per run (files before --batch: 1)
        self.model = meta.get('ppd_model', path.stem)
        self.weights = meta.get('ppd_weights')  # None: written before ppd-export recorded it
        self.backend = backend
        self.path = path

    def check_model(self, dit, encoder, name: str | None = None) -> str | None:
        """ExportError unless the file was exported from these weights (``ppd_weights``); for a
        file without that entry (an older ppd-export), the one line to warn with, else None."""
        if self.weights is None:
            return (f'{self.path.name} was written by an older ppd-export and does not record which '
                    f'weights it was exported from (ppd_model {self.model!r}): running it without that '
                    'check; export it again to have it checked')
        if self.weights != weights_fingerprint(dit, encoder):
            given = f' ({name})' if name else ''
            raise ExportError(f'{self.path}: exported from other weights (ppd_model {self.model!r}) than '
                              f'the DiT and encoder given{given}: export this model with ppd-export, or '
                              'give the weights the file was exported from')
        return None

    def check(self, steps: int, height: int, width: int) -> None:
        """ValueError unless frames of this size and step count are what the file was exported for."""
        if (height, width) != self.size:
            raise ValueError(f'the exported model {self.path.name} runs at {self.size[1]}x{self.size[0]}, '
                             f'this frame resizes to {width}x{height}: export for it '
                             f'(ppd-export --height {height} --width {width}) or set the target area to '
                             f'{self.size[1]}x{self.size[0]} with a camera of that aspect ratio')
        if steps != self.steps:
            raise ValueError(f'the exported model {self.path.name} runs {self.steps} steps, model steps '
                             f'is {steps}: export with --steps {steps}')

    def __call__(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """image (B, 3, h, w), noise (B, 1, h, w) → depth (B, 1, h, w) on the image's device; the
        frames run ``self.batch`` at a time (the exported batch size), a last short run padded with
        copies of its last frame (each frame's depth depends on that frame alone)."""
        outputs, n = [], image.shape[0]
        for start in range(0, n, self.batch):
            index = [min(i, n - 1) for i in range(start, start + self.batch)]
            feed = {'image': image[index].detach().float().cpu().numpy(),
                    'noise': noise[index].detach().float().cpu().numpy()}
            outputs.append(torch.from_numpy(self.session.run([OUTPUT], feed)[0])[:min(self.batch, n - start)])
        return torch.cat(outputs).to(image.device)


__all__ = ['export_onnx', 'OnnxFrame', 'ExportError', 'PROVIDERS', 'weights_fingerprint']
