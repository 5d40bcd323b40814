"""Checkpoint reading, size inference and strict loading.

Accepted layouts (``.pth``/``.pt``/``.bin``/``.ckpt`` via ``torch.load(weights_only=True)``, or
``.safetensors``):
  * released ``ppd.pth``: ``dit.*`` (anything under ``sem_encoder.``/``pretrained.``/
    ``depth_head.`` in the same file is left to the encoder loader);
  * released ``depth_anything_v2_vit{s,b,l}.pth``: ``pretrained.*`` (the DPT head ``depth_head.*``
    is ignored);
  * a full ``PixelPerfectDepth`` state dict: ``dit.*`` + ``sem_encoder.pretrained.*``;
  * bare keys (a DiT without ``dit.``, a DINOv2 hub file without ``pretrained.``), optionally
    wrapped in ``{'state_dict': ...}``/``{'model': ...}`` or prefixed ``module.``;
  * the single-file format of ``save_model_file`` (safetensors with ``dit.*``, ``pretrained.*``
    and a ``config`` metadata entry).

Sizes come from tensor shapes. DiT heads follow from the qk-norm width (= head dim); encoder heads
cannot be read from shapes: the Depth-Anything-v2 sizes (384/768/1024 wide) use 6/12/16 heads,
any other width gets head dim 64 (``embed_dim // 64``) unless ``encoder_heads`` overrides it.

Every problem (unreadable, truncated, wrong model, missing/unexpected keys, shape mismatch,
non-finite weights) raises one ``CheckpointError`` naming the file; a model is only returned once
all of its tensors were checked, never half-loaded.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from .config import DiTConfig, EncoderConfig
from .dit import SPDiT
from .moge import MoGe2, MoGeSemanticEncoder, backbone_config
from .vit import SemanticEncoder

FORMAT_TAG = 'ppd_ros.model/1'
DA2_HEADS = {384: 6, 768: 12, 1024: 16}
_WRAPPERS = ('state_dict', 'model', 'module', 'net')
_MAX_LISTED = 8


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and what is wrong."""


def _listing(keys, limit: int = _MAX_LISTED) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return f'{shown}, … (+{len(keys) - limit} more)' if len(keys) > limit else shown


# ---------------------------------------------------------------------------------- reading
def read_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a checkpoint file (CPU) and its metadata (safetensors only, else {})."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: checkpoint file does not exist')
    if path.stat().st_size == 0:
        raise CheckpointError(f'{path}: checkpoint file is empty')
    if path.suffix == '.safetensors':
        tensors, metadata = _read_safetensors(path)
    else:
        tensors, metadata = _read_torch(path)
    if tensors and all(k.startswith('module.') for k in tensors):  # saved from DataParallel
        tensors = {k[len('module.'):]: v for k, v in tensors.items()}
    return tensors, metadata


def _read_safetensors(path: Path):
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # SafetensorError, OSError: header/offsets do not fit the file
        raise CheckpointError(f'{path}: not a readable safetensors file (truncated or corrupt?): '
                              f'{type(exc).__name__}: {exc}') from exc
    if not tensors:
        raise CheckpointError(f'{path}: contains no tensors')
    return tensors, metadata


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata; a ``moge2.pt``-style {'model_config', 'model'} dict keeps its config
    as JSON under the ``model_config`` metadata key."""
    try:
        obj = torch.load(str(path), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if 'weights_only' in text or 'Unsupported global' in text:
            raise CheckpointError(
                f'{path}: holds Python objects other than tensors; refusing to unpickle it '
                '(re-save it as a plain state dict or as .safetensors)') from exc
        raise CheckpointError(f'{path}: not a PyTorch checkpoint (truncated or wrong file?): '
                              f'{text.splitlines()[0] if text else type(exc).__name__}') from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, struct.error) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ''
        raise CheckpointError(f'{path}: cannot read checkpoint (truncated or corrupt?): '
                              f'{type(exc).__name__}: {first}') from exc
    metadata = {}
    if isinstance(obj, Mapping) and 'model_config' in obj:
        try:
            metadata['model_config'] = json.dumps(obj['model_config'])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f'{path}: "model_config" is not a plain configuration: {exc}') from exc
    return _flatten_state(obj, path), metadata


def _flatten_state(obj, path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # unwrap {'state_dict': {...}} / {'model': {...}}
        if isinstance(obj, Mapping) and not any(torch.is_tensor(v) for v in obj.values()):
            inner = [obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)]
            if inner:
                obj = inner[0]
                continue
        break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{path}: expected a state dict (name → tensor), got {type(obj).__name__}')
    tensors = {str(k): v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f'{path}: contains no tensors')
    return tensors


# ------------------------------------------------------------------------- layout selection
def select_dit_state(tensors: Mapping[str, torch.Tensor], path) -> tuple[dict, list[str]]:
    """(DiT tensors without the ``dit.`` prefix, keys that belong to nothing known)."""
    encoder_parts = ('sem_encoder.', 'pretrained.', 'depth_head.')
    if any(k.startswith('dit.') for k in tensors):
        state = {k[4:]: v for k, v in tensors.items() if k.startswith('dit.')}
        stray = [k for k in tensors if not k.startswith(('dit.',) + encoder_parts)]
        return state, stray
    if 'x_embedder.proj.weight' in tensors:
        return dict(tensors), []
    raise CheckpointError(f'{path}: contains no SP-DiT weights (no "dit.*" keys); '
                          f'found keys like {_listing(tensors, 5)}')


def select_encoder_state(tensors: Mapping[str, torch.Tensor], path) -> tuple[dict, list[str]]:
    """(encoder tensors with the ``pretrained.`` prefix, keys that belong to nothing known)."""
    ignored = ('depth_head.', 'sem_encoder.depth_head.', 'dit.')
    for prefix in ('sem_encoder.pretrained.', 'pretrained.'):
        if any(k.startswith(prefix) for k in tensors):
            state = {'pretrained.' + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            known = ('pretrained.', 'sem_encoder.pretrained.') + ignored
            return state, [k for k in tensors if not k.startswith(known)]
    if 'cls_token' in tensors and 'patch_embed.proj.weight' in tensors:
        return {'pretrained.' + k: v for k, v in tensors.items()}, []
    raise CheckpointError(f'{path}: contains no DINOv2 encoder weights (no "pretrained.*" keys); '
                          f'found keys like {_listing(tensors, 5)}')


# ---------------------------------------------------------------------------- size inference
def _need(state, keys, path, what):
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f'{path}: cannot infer the {what} size, missing key(s): {_listing(missing)}')
    return [state[k] for k in keys]


def _count_blocks(state, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    indices = {int(m.group(1)) for k in state for m in [pattern.match(k)] if m}
    return max(indices) + 1 if indices else 0


def infer_dit_config(state: Mapping[str, torch.Tensor], path='<state dict>', config_class=DiTConfig,
                     what: str = 'SP-DiT', **fields) -> DiTConfig:
    """DiTConfig (or ``config_class``, with the extra ``fields``) from the shapes of a DiT state
    dict (keys without ``dit.``)."""
    embed, qn, fc1, fusion, final = _need(
        state, ['x_embedder.proj.weight', 'blocks.0.attn.q_norm.weight', 'blocks.0.mlp.fc1.weight',
                'proj_fusion.0.weight', 'final_layer.linear.weight'], path, what)
    try:
        hidden, in_ch, coarse = embed.shape[0], embed.shape[1], embed.shape[2]
        patch = coarse // 2
        return config_class(
            in_channels=in_ch,
            out_channels=final.shape[0] // (patch * patch),
            hidden_size=hidden,
            depth=_count_blocks(state, 'blocks.'),
            num_heads=hidden // qn.shape[0],
            patch_size=patch,
            mlp_ratio=fc1.shape[0] / hidden,
            semantic_dim=fusion.shape[1] - hidden,
            **fields,
        )
    except (ValueError, IndexError, ZeroDivisionError) as exc:
        raise CheckpointError(f'{path}: inconsistent {what} shapes: {exc}') from exc


def infer_encoder_config(state: Mapping[str, torch.Tensor], path='<state dict>',
                         num_heads: int | None = None) -> EncoderConfig:
    """EncoderConfig from a ``pretrained.*`` state dict; heads: see the module docstring."""
    cls, pos, proj, fc1 = _need(
        state, ['pretrained.cls_token', 'pretrained.pos_embed', 'pretrained.patch_embed.proj.weight',
                'pretrained.blocks.0.mlp.fc1.weight'], path, 'encoder')
    dim = cls.shape[-1]
    patch = proj.shape[-1]
    grid = round((pos.shape[1] - 1) ** 0.5)
    if grid * grid != pos.shape[1] - 1:
        raise CheckpointError(f'{path}: pos_embed has {pos.shape[1] - 1} patch positions, not a square grid')
    if num_heads is None:
        num_heads = DA2_HEADS.get(dim, dim // 64 if dim % 64 == 0 else 0)
        if not num_heads:
            raise CheckpointError(f'{path}: cannot guess the head count of a {dim}-wide encoder; '
                                  'pass encoder_heads')
    try:
        return EncoderConfig(embed_dim=dim, depth=_count_blocks(state, 'pretrained.blocks.'),
                             num_heads=num_heads, patch_size=patch, img_size=grid * patch,
                             mlp_ratio=fc1.shape[0] / dim)
    except ValueError as exc:
        raise CheckpointError(f'{path}: {exc}') from exc


# --------------------------------------------------------------------------- strict building
def build_checked(factory, state: Mapping[str, torch.Tensor], path, what: str,
                  stray: list[str] = ()) -> nn.Module:
    """Build ``factory()`` without allocating weights, check every key and shape, then adopt
    the checkpoint tensors (as float32). Any mismatch raises one CheckpointError."""
    with torch.device('meta'):
        model = factory()
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected] + list(stray)
    mismatched = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}'
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f'missing keys ({len(missing)}): {_listing(missing)}')
    if unexpected:
        problems.append(f'unexpected keys ({len(unexpected)}): {_listing(unexpected)}')
    if mismatched:
        problems.append(f'shape mismatches ({len(mismatched)}): {_listing(mismatched, 4)}')
    if problems:
        raise CheckpointError(f'{path}: does not match the {what}: ' + '; '.join(problems))
    tensors = {}
    bad = []
    for key in expected:
        tensor = state[key]
        if not tensor.is_floating_point():
            bad.append(f'{key} ({tensor.dtype})')
            continue
        tensor = tensor.to(torch.float32)
        if not torch.isfinite(tensor).all():
            bad.append(f'{key} (non-finite values)')
        tensors[key] = tensor
    if bad:
        raise CheckpointError(f'{path}: unusable {what} tensors: {_listing(bad)}')
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def dit_from_tensors(tensors, path='<state dict>', config: DiTConfig | None = None) -> SPDiT:
    state, stray = select_dit_state(tensors, path)
    config = config or infer_dit_config(state, path)
    return build_checked(lambda: SPDiT(config), state, path, f'SP-DiT {config}', stray)


def encoder_from_tensors(tensors, path='<state dict>', config: EncoderConfig | None = None,
                         num_heads: int | None = None) -> SemanticEncoder:
    state, stray = select_encoder_state(tensors, path)
    config = config or infer_encoder_config(state, path, num_heads)
    return build_checked(lambda: SemanticEncoder(config), state, path, f'encoder {config}', stray)


def moge_from_tensors(model_config: Mapping, tensors, path='<state dict>', backbone: EncoderConfig | None = None,
                      num_heads: int | None = None) -> MoGe2:
    """MoGe-2 from ``moge2.pt``'s ``model_config`` and ``model`` tensors: layout from the config,
    backbone sizes from the weights (``moge.backbone_config``), every key and shape checked."""
    if not isinstance(model_config, Mapping) or not isinstance(model_config.get('encoder'), Mapping):
        raise CheckpointError(f'{path}: "model_config" is not a MoGe configuration (no "encoder" section)')
    state = dict(tensors)
    if any(k.startswith('sem_encoder.') for k in state):  # a full PixelPerfectDepth state dict
        state = {k[len('sem_encoder.'):]: v for k, v in state.items() if k.startswith('sem_encoder.')}
    try:
        backbone = backbone or backbone_config(state, str(model_config['encoder'].get('backbone')),
                                               num_heads=num_heads)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f'{path}: not a usable MoGe-2 checkpoint: {exc}') from exc
    try:
        with torch.device('meta'):
            MoGe2(model_config, backbone)  # configuration errors surface here, before the key check
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f'{path}: unsupported MoGe model_config: {exc}') from exc
    return build_checked(lambda: MoGe2(model_config, backbone), state, path,
                         f'MoGe-2 model ({model_config["encoder"].get("backbone")}, width {backbone.embed_dim}, '
                         f'depth {backbone.depth})')


def moge_config_of(metadata: Mapping[str, str], path) -> dict | None:
    """The MoGe ``model_config`` stored in a checkpoint, or None for other files."""
    if 'model_config' not in metadata:
        return None
    try:
        return json.loads(metadata['model_config'])
    except ValueError as exc:
        raise CheckpointError(f'{path}: invalid "model_config": {exc}') from exc


def save_moge_file(path, model: MoGe2) -> Path:
    """Write a MoGe-2 model in the released ``moge2.pt`` layout ({'model_config', 'model'})."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to('cpu').contiguous() for k, v in model.state_dict().items()}
    torch.save({'model_config': model.config, 'model': state}, str(path))
    return path


def load_dit(path, config: DiTConfig | None = None) -> SPDiT:
    """SP-DiT from ``ppd.pth`` (or any accepted layout); sizes inferred unless ``config``."""
    tensors, metadata = read_checkpoint(path)
    config = config or _metadata_configs(metadata, path)[0]
    return dit_from_tensors(tensors, path, config)


def load_encoder(path, config: EncoderConfig | None = None, num_heads: int | None = None):
    """Semantics encoder, its variant told by the file: ``moge2.pt`` (a ``model_config`` + ``model``
    dict) gives a ``MoGeSemanticEncoder`` (PPD with MoGe-2 semantics), anything else the
    Depth-Anything-v2 ``SemanticEncoder`` (``depth_anything_v2_vit*.pth`` or any accepted layout)."""
    tensors, metadata = read_checkpoint(path)
    moge_config = moge_config_of(metadata, path)
    if moge_config is not None:
        return MoGeSemanticEncoder(moge_from_tensors(moge_config, tensors, path, config, num_heads))
    config = config or _metadata_configs(metadata, path)[1]
    return encoder_from_tensors(tensors, path, config, num_heads)


# ------------------------------------------------------------------------ single-file format
def _metadata_configs(metadata: Mapping[str, str], path):
    """(DiTConfig | None, EncoderConfig | None) from a ``config`` metadata entry, if present."""
    if 'config' not in metadata:
        return None, None
    try:
        config = json.loads(metadata['config'])
        dit = DiTConfig.from_dict(config['dit']) if config.get('dit') else None
        enc = EncoderConfig.from_dict(config['encoder']) if config.get('encoder') else None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f'{path}: invalid "config" metadata: {exc}') from exc
    return dit, enc


def save_model_file(path, dit: SPDiT, encoder: SemanticEncoder, dtype: torch.dtype = torch.float32,
                    extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write DiT + encoder as one safetensors file: ``dit.*`` and ``pretrained.*`` tensors and
    metadata ``config`` = JSON {"dit": DiTConfig fields, "encoder": EncoderConfig fields} plus
    ``format`` = ``ppd_ros.model/1``. ``dtype`` (e.g. bfloat16) shrinks the file; loading
    returns float32 weights. Written atomically (temporary file, then rename)."""
    from safetensors.torch import save_file
    path = Path(path)
    if path.suffix != '.safetensors':
        raise ValueError(f'{path}: the single-file format is safetensors (use a .safetensors name)')
    tensors = {'dit.' + k: v for k, v in dit.state_dict().items()}
    tensors.update(encoder.state_dict())
    tensors = {k: v.detach().to('cpu', dtype).contiguous() for k, v in tensors.items()}
    metadata = {'format': FORMAT_TAG,
                'config': json.dumps({'dit': dit.config.to_dict(), 'encoder': encoder.config.to_dict()})}
    metadata.update(extra_metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    save_file(tensors, str(tmp), metadata=dict(metadata))
    os.replace(tmp, path)
    return path


def load_model_file(path, encoder_heads: int | None = None):
    """(SPDiT, SemanticEncoder, metadata) from one file holding both models (the format of
    ``save_model_file``, or a full PixelPerfectDepth state dict)."""
    tensors, metadata = read_checkpoint(path)
    dit_config, enc_config = _metadata_configs(metadata, path)
    dit = dit_from_tensors(tensors, path, dit_config)
    encoder = encoder_from_tensors(tensors, path, enc_config, encoder_heads)
    return dit, encoder, metadata


# ------------------------------------------------------------- video model (PPVD) and Pi3
#: Pi3 parts the semantics path never uses: present in ``pi3.safetensors``, skipped on purpose.
PI3_UNUSED_HEADS = ('point_decoder.', 'point_head.', 'conf_decoder.', 'conf_head.',
                    'camera_decoder.', 'camera_head.')
_PI3_PARTS = ('encoder.', 'decoder.', 'register_token', 'image_mean', 'image_std')


def checkpoint_kind(tensors: Mapping[str, torch.Tensor]) -> str:
    """'video' (``dit_video.*``: PPVD), 'pi3' (Pi3 weights), or 'image' (anything else: the
    image-model loaders decide)."""
    if any(k.startswith('dit_video.') for k in tensors) or 'temporal_blocks.0.attn.qkv.weight' in tensors:
        return 'video'
    if 'register_token' in tensors and any(k.startswith('decoder.') for k in tensors):
        return 'pi3'
    return 'image'


def peek_kind(path) -> str:
    """``checkpoint_kind`` of a file from its key names only (safetensors header, or a memory-mapped
    torch load), so choosing the model does not read a large file twice. Unreadable → 'image'
    (the image loaders then give their full error)."""
    path = Path(path)
    try:
        if path.suffix == '.safetensors':
            from safetensors import safe_open
            with safe_open(str(path), framework='pt', device='cpu') as f:
                keys = {k: None for k in f.keys()}
        else:
            obj = torch.load(str(path), map_location='cpu', weights_only=True, mmap=True)
            keys = _flatten_state(obj, path)
    except Exception:  # noqa: BLE001 — the real loader reports the problem
        return 'image'
    if keys and all(k.startswith('module.') for k in keys):
        keys = {k[len('module.'):]: None for k in keys}
    return checkpoint_kind(keys)


def peek_metadata(path) -> dict[str, str] | None:
    """The metadata ``read_checkpoint`` would return, without reading the tensors (safetensors
    header, or a memory-mapped torch load); None when the file cannot be read that way (the
    loaders then give their full error). Cheap even for the released 1.3 GB files, so options can
    be checked against the files before any model loads."""
    path = Path(path)
    try:
        if path.suffix == '.safetensors':
            from safetensors import safe_open
            with safe_open(str(path), framework='pt', device='cpu') as f:
                return dict(f.metadata() or {})
        obj = torch.load(str(path), map_location='cpu', weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 — the real loader reports the problem
        return None
    if isinstance(obj, Mapping) and 'model_config' in obj:
        try:
            return {'model_config': json.dumps(obj['model_config'])}
        except (TypeError, ValueError):
            return None
    return {}


#: What the bundled demo weights say of themselves (metadata ``description``, written by
#: ppd_dev/training/export.py): trained on the synthetic world only.
SYNTHETIC_DEMO_MARK = 'trained on the synthetic world'


def is_synthetic_demo(metadata: Mapping[str, str] | None) -> bool:
    """True for the metadata of a demo model trained on the synthetic world only."""
    return SYNTHETIC_DEMO_MARK in (metadata or {}).get('description', '')


def select_video_dit_state(tensors: Mapping[str, torch.Tensor], path) -> tuple[dict, list[str]]:
    """(video-DiT tensors without ``dit_video.``, keys that belong to nothing known)."""
    if any(k.startswith('dit_video.') for k in tensors):
        state = {k[len('dit_video.'):]: v for k, v in tensors.items() if k.startswith('dit_video.')}
        return state, [k for k in tensors if not k.startswith(('dit_video.', 'sem_encoder.'))]
    if 'temporal_blocks.0.attn.qkv.weight' in tensors:
        return dict(tensors), []
    raise CheckpointError(f'{path}: contains no video-DiT weights (no "dit_video.*" keys; is this the image '
                          f'model\'s ppd.pth?); found keys like {_listing(tensors, 5)}')


def infer_video_dit_config(state: Mapping[str, torch.Tensor], path='<state dict>'):
    """VideoDiTConfig from shapes: the image DiT's sizes, the frame size S from ``pos_embed``
    ((S/16)² positions), the temporal block count from ``temporal_blocks.*``."""
    from .dit_video import VideoDiTConfig
    embed, pos = _need(state, ['x_embedder.proj.weight', 'pos_embed'], path, 'video-DiT')
    grid = round(pos.shape[1] ** 0.5)
    if grid * grid != pos.shape[1]:
        raise CheckpointError(f'{path}: pos_embed has {pos.shape[1]} positions, not a square grid')
    return infer_dit_config(state, path, VideoDiTConfig, 'video-DiT', video_size=grid * embed.shape[2],
                            temporal_depth=_count_blocks(state, 'temporal_blocks.'))


def video_dit_from_tensors(tensors, path='<state dict>', config=None):
    from .dit_video import VideoDiT
    state, stray = select_video_dit_state(tensors, path)
    config = config or infer_video_dit_config(state, path)
    return build_checked(lambda: VideoDiT(config), state, path, f'video DiT {config}', stray)


def select_pi3_state(tensors: Mapping[str, torch.Tensor], path) -> tuple[dict, list[str], list[str]]:
    """(semantics-path tensors, unknown keys, skipped head keys). Accepts ``pi3.safetensors``
    as released or the same under ``sem_encoder.`` (a full PPVD state dict)."""
    if not any(k.startswith(_PI3_PARTS) for k in tensors) and any(k.startswith('sem_encoder.') for k in tensors):
        tensors = {k[len('sem_encoder.'):]: v for k, v in tensors.items() if k.startswith('sem_encoder.')}
    if 'register_token' not in tensors or not any(k.startswith('decoder.') for k in tensors):
        raise CheckpointError(f'{path}: contains no Pi3 weights (no "register_token"/"decoder.*"); '
                              f'found keys like {_listing(tensors, 5)}')
    state = {k: v for k, v in tensors.items() if k.startswith(_PI3_PARTS)}
    skipped = [k for k in tensors if k.startswith(PI3_UNUSED_HEADS)]
    stray = [k for k in tensors if k not in state and k not in skipped]
    return state, stray, skipped


def infer_pi3_config(state: Mapping[str, torch.Tensor], path='<state dict>', encoder_heads: int | None = None):
    """Pi3Config from shapes. Decoder heads from the qk-norm width; the encoder's heads cannot be
    read from shapes: its head width is taken equal to the decoder's (true for the release:
    both 64), unless ``encoder_heads`` is given."""
    from .pi3 import Pi3Config, pi3_encoder_config
    reg, qn, fc1, cls, pos, proj, efc1 = _need(
        state, ['register_token', 'decoder.0.attn.q_norm.weight', 'decoder.0.mlp.fc1.weight',
                'encoder.cls_token', 'encoder.pos_embed', 'encoder.patch_embed.proj.weight',
                'encoder.blocks.0.mlp.fc1.weight'], path, 'Pi3')
    dim, head_dim, enc_dim = reg.shape[-1], qn.shape[0], cls.shape[-1]
    grid = round((pos.shape[1] - 1) ** 0.5)
    if grid * grid != pos.shape[1] - 1:
        raise CheckpointError(f'{path}: encoder.pos_embed has {pos.shape[1] - 1} patch positions, not a square grid')
    if encoder_heads is None:
        if enc_dim % head_dim:
            raise CheckpointError(f'{path}: cannot infer the Pi3 encoder heads (width {enc_dim}, decoder head '
                                  f'width {head_dim}); pass encoder_heads')
        encoder_heads = enc_dim // head_dim
    registers = state['encoder.register_tokens'].shape[1] if 'encoder.register_tokens' in state else 0
    try:
        encoder = pi3_encoder_config(embed_dim=enc_dim, depth=_count_blocks(state, 'encoder.blocks.'),
                                     num_heads=encoder_heads, patch_size=proj.shape[-1], img_size=grid * proj.shape[-1],
                                     mlp_ratio=efc1.shape[0] / enc_dim, num_register_tokens=registers,
                                     mask_token='encoder.mask_token' in state)
        return Pi3Config(encoder=encoder, decoder_dim=dim, decoder_depth=_count_blocks(state, 'decoder.'),
                         decoder_heads=dim // head_dim, mlp_ratio=fc1.shape[0] / dim, register_tokens=reg.shape[-2])
    except (ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f'{path}: inconsistent Pi3 shapes: {exc}') from exc


def pi3_from_tensors(tensors, path='<state dict>', config=None, encoder_heads: int | None = None):
    """Pi3 semantics path; the unused heads are skipped, every other key is checked strictly."""
    from .pi3 import Pi3Semantics
    state, stray, _skipped = select_pi3_state(tensors, path)
    config = config or infer_pi3_config(state, path, encoder_heads)
    return build_checked(lambda: Pi3Semantics(config), state, path, f'Pi3 semantics {config}', stray)


def load_video_dit(path, config=None):
    """Video DiT from ``ppvd.pth`` (keys ``dit_video.*``); sizes inferred unless ``config``."""
    tensors, _ = read_checkpoint(path)
    return video_dit_from_tensors(tensors, path, config)


def load_pi3(path, config=None, encoder_heads: int | None = None):
    """Pi3 semantics from ``pi3.safetensors``; sizes inferred unless ``config``."""
    tensors, _ = read_checkpoint(path)
    return pi3_from_tensors(tensors, path, config, encoder_heads)
