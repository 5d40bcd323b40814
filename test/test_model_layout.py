"""Our modules have exactly the released parameter layout, and sizes are read back from shapes."""
import pytest
import torch

from ppd_ros.model.checkpoint import (infer_dit_config, infer_encoder_config, select_dit_state,
                                      select_encoder_state)
from ppd_ros.model.config import DiTConfig, EncoderConfig
from ppd_ros.model.dit import SPDiT
from ppd_ros.model.rope import build_rope_tables, apply_rope
from ppd_ros.model.vit import SemanticEncoder


@pytest.fixture(scope='module')
def parity(parity_file):
    return torch.load(parity_file, map_location='cpu', weights_only=True)


def _shapes(state, prefix=''):
    return {prefix + k: tuple(v.shape) for k, v in state.items()}


def test_dit_state_dict_matches_released_layout(parity):
    dit = SPDiT(DiTConfig.from_dict(parity['dit_config']))
    assert _shapes(dit.state_dict(), 'dit.') == _shapes(parity['dit_state_dict'])


def test_encoder_state_dict_matches_released_layout(parity):
    encoder = SemanticEncoder(EncoderConfig.from_dict(parity['encoder_config']))
    assert _shapes(encoder.state_dict()) == _shapes(parity['encoder_state_dict'])


def test_sizes_are_inferred_from_shapes(parity):
    state, stray = select_dit_state(parity['dit_state_dict'], 'parity')
    assert stray == []
    assert infer_dit_config(state) == DiTConfig.from_dict(parity['dit_config'])
    enc_state, _ = select_encoder_state(parity['encoder_state_dict'], 'parity')
    expected = EncoderConfig.from_dict(parity['encoder_config'])
    assert infer_encoder_config(enc_state, num_heads=2) == expected
    # Heads are not in the shapes: head dim 64 unless overridden (documented).
    assert infer_encoder_config(enc_state).num_heads == 1


@pytest.mark.parametrize('preset, heads', [('vits', 6), ('vitb', 12), ('vitl', 16)])
def test_released_encoder_sizes_round_trip(preset, heads):
    with torch.device('meta'):
        encoder = SemanticEncoder(EncoderConfig.preset(preset))
    state = encoder.state_dict()
    assert state['pretrained.pos_embed'].shape[1] == 37 * 37 + 1
    assert infer_encoder_config(state) == EncoderConfig.preset(preset)
    assert infer_encoder_config(state).num_heads == heads


def test_released_dit_size_layout():
    with torch.device('meta'):
        dit = SPDiT(DiTConfig())
    state = dit.state_dict()
    assert state['x_embedder.proj.weight'].shape == (1024, 4, 16, 16)
    assert state['proj_fusion.0.weight'].shape == (4096, 2048)
    assert state['final_layer.linear.weight'].shape == (64, 1024)
    assert state['blocks.0.attn.q_norm.weight'].shape == (64,)
    assert len({k.split('.')[1] for k in state if k.startswith('blocks.')}) == 24
    assert infer_dit_config(state) == DiTConfig()


def test_rope_equals_per_axis_rotate_half():
    """Independent statement of the released 2D RoPE: first half of each head by row, second by
    column, rotate-half inside each half, base 100."""
    gh, gw, hd = 3, 5, 16
    x = torch.randn(2, 4, gh * gw, hd, dtype=torch.float64)
    tables = build_rope_tables(gh, gw, hd, 100.0, torch.device('cpu'))
    ours = apply_rope(x.float(), tables).double()

    def rope_1d(t, pos):
        dim = t.shape[-1]
        inv = 1.0 / (100.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        ang = pos[:, None].double() * inv[None]
        ang = torch.cat((ang, ang), -1)
        rot = torch.cat((-t[..., dim // 2:], t[..., :dim // 2]), -1)
        return t * ang.cos() + rot * ang.sin()

    rows = torch.arange(gh).repeat_interleave(gw)
    cols = torch.arange(gw).repeat(gh)
    ref = torch.cat((rope_1d(x[..., :hd // 2], rows), rope_1d(x[..., hd // 2:], cols)), -1)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_dit_rejects_bad_sizes(parity):
    dit = SPDiT(DiTConfig.from_dict(parity['dit_config']))
    with pytest.raises(ValueError, match='multiples of 16'):
        dit(torch.zeros(1, 4, 40, 64), torch.zeros(1, 10, 1024), torch.tensor(500))
    with pytest.raises(ValueError, match='semantics shape'):
        dit(torch.zeros(1, 4, 32, 64), torch.zeros(1, 7, 1024), torch.tensor(500))


def test_odd_depth_splits_like_released():
    """The released loop runs depth // 2 coarse blocks, the rest fine: odd depths work too."""
    dit = SPDiT(DiTConfig(hidden_size=32, depth=3, num_heads=2, semantic_dim=16)).eval()
    out = dit(torch.randn(1, 4, 32, 48), torch.randn(1, 6, 16), 500)
    assert out.shape == (1, 1, 32, 48)
    with pytest.raises(ValueError, match='depth'):
        DiTConfig(depth=1)
