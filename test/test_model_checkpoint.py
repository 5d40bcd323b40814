"""Strict checkpoint loading: every bad file is one clear CheckpointError naming the file."""
import collections
import json

import pytest
import torch

from ppd_ros.model.checkpoint import (CheckpointError, load_dit, load_encoder, load_model_file,
                                      save_model_file)
from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_ros.model.vit import SemanticEncoder


@pytest.fixture(scope='module')
def parity(parity_file):
    return torch.load(parity_file, map_location='cpu', weights_only=True)


@pytest.fixture
def dit_pth(tmp_path, parity):
    path = tmp_path / 'ppd.pth'
    torch.save(parity['dit_state_dict'], path)
    return path


def _same_state(module, state, prefix=''):
    ours = module.state_dict()
    return all(torch.equal(ours[k[len(prefix):]], v) for k, v in state.items())


def test_released_layouts_load(tmp_path, parity, dit_pth):
    dit = load_dit(dit_pth)
    assert dit.config == DiTConfig.from_dict(parity['dit_config'])
    assert _same_state(dit, parity['dit_state_dict'], 'dit.')
    # Depth-Anything-v2 file: pretrained.* plus a DPT head that is ignored.
    da2 = dict(parity['encoder_state_dict'])
    da2['depth_head.scratch.output_conv1.weight'] = torch.zeros(3, 3)
    path = tmp_path / 'depth_anything_v2_vits.pth'
    torch.save(da2, path)
    encoder = load_encoder(path, num_heads=2)
    assert encoder.config == EncoderConfig.from_dict(parity['encoder_config'])
    assert _same_state(encoder, parity['encoder_state_dict'])
    assert not any(p.requires_grad for p in encoder.parameters())


def test_full_model_layout_and_wrappers(tmp_path, parity):
    full = {**parity['dit_state_dict'],
            **{'sem_encoder.' + k: v for k, v in parity['encoder_state_dict'].items()}}
    path = tmp_path / 'full.pt'
    torch.save({'state_dict': collections.OrderedDict(('module.' + k, v) for k, v in full.items())}, path)
    assert _same_state(load_dit(path), parity['dit_state_dict'], 'dit.')
    assert _same_state(load_encoder(path, num_heads=2), parity['encoder_state_dict'])


def test_missing_key_is_named(tmp_path, parity):
    state = dict(parity['dit_state_dict'])
    del state['dit.blocks.1.attn.proj.bias']
    path = tmp_path / 'missing.pth'
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_dit(path)
    assert str(path) in str(err.value) and 'blocks.1.attn.proj.bias' in str(err.value)
    assert 'missing keys (1)' in str(err.value)


def test_unexpected_key_is_named(tmp_path, parity):
    state = dict(parity['dit_state_dict'])
    state['dit.blocks.0.attn.extra'] = torch.zeros(2)
    state['something_else'] = torch.zeros(1)
    path = tmp_path / 'unexpected.pth'
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r'unexpected keys \(2\):.*blocks.0.attn.extra'):
        load_dit(path)


def test_long_key_lists_are_truncated(tmp_path, parity):
    state = {k: v for k, v in parity['dit_state_dict'].items() if '.blocks.' not in k}
    path = tmp_path / 'noblocks.pth'
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r'more\)') as err:
        load_dit(path, config=DiTConfig.from_dict(parity['dit_config']))
    assert len(str(err.value)) < 1000


def test_shape_mismatch_with_explicit_config(dit_pth, parity):
    config = DiTConfig.from_dict({**parity['dit_config'], 'mlp_ratio': 2.0})
    with pytest.raises(CheckpointError, match='shape mismatches'):
        load_dit(dit_pth, config=config)


def test_truncated_and_wrong_files(tmp_path, dit_pth, parity):
    data = dit_pth.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated.pth'):
        load_dit(truncated)
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    with pytest.raises(CheckpointError, match='notes.pth'):
        load_dit(text)
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'junk')  # too short for torch's header: struct.error inside torch.load
    with pytest.raises(CheckpointError, match='junk.pth'):
        load_dit(junk)
    enc = tmp_path / 'encoder.pth'
    torch.save(parity['encoder_state_dict'], enc)
    with pytest.raises(CheckpointError, match='no SP-DiT weights'):
        load_dit(enc)
    with pytest.raises(CheckpointError, match='no DINOv2 encoder weights'):
        load_encoder(dit_pth)
    with pytest.raises(CheckpointError, match='does not exist'):
        load_dit(tmp_path / 'nope.pth')
    empty = tmp_path / 'empty.safetensors'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        load_dit(empty)


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / 'object.pth'
    torch.save({'weights': collections.Counter(a=1)}, path)
    with pytest.raises(CheckpointError, match='object.pth'):
        load_dit(path)


def test_non_finite_weights_are_refused(tmp_path, parity):
    state = dict(parity['dit_state_dict'])
    state['dit.final_layer.linear.bias'] = torch.full_like(state['dit.final_layer.linear.bias'], float('nan'))
    path = tmp_path / 'nan.pth'
    torch.save(state, path)
    with pytest.raises(CheckpointError, match='non-finite'):
        load_dit(path)


def test_safetensors_single_file_round_trip(tmp_path, parity):
    dit = load_dit_from(parity)
    encoder = SemanticEncoder(EncoderConfig.tiny())
    path = save_model_file(tmp_path / 'model.safetensors', dit, encoder)
    dit2, encoder2, metadata = load_model_file(path)
    expected = {'dit': dit.config.to_dict(), 'encoder': encoder.config.to_dict()}
    assert json.loads(metadata['config']) == expected
    assert metadata['format'] == 'ppd_ros.model/1'
    assert dit2.config == dit.config and encoder2.config == encoder.config
    assert _same_state(dit2, dit.state_dict()) and _same_state(encoder2, encoder.state_dict())
    # The separate loaders read the same file (config from metadata, heads included).
    assert load_encoder(path).config.num_heads == 2
    # bf16 storage halves the file and loads back as float32.
    small = save_model_file(tmp_path / 'small.safetensors', dit, encoder, dtype=torch.bfloat16)
    dit3, _, _ = load_model_file(small)
    assert next(dit3.parameters()).dtype == torch.float32
    assert small.stat().st_size < 0.6 * path.stat().st_size
    # A truncated safetensors file is an error, not a partial model.
    cut = tmp_path / 'cut.safetensors'
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match='cut.safetensors'):
        load_model_file(cut)


def load_dit_from(parity):
    from ppd_ros.model.checkpoint import dit_from_tensors
    return dit_from_tensors(parity['dit_state_dict'])
