"""The video model (PPVD): parity with the official recording, window schedule, alignment,
loading of the released file layouts, the 512x512 rule, and streaming == offline."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ppd_dev import parity as parity_tool
from ppd_ros.model import checkpoint as ck
from ppd_ros.model.dit_video import VideoDiT, VideoDiTConfig, sincos_2d
from ppd_ros.model.pi3 import Pi3Config, Pi3Semantics, pi3_encoder_config
from ppd_ros.model.video import (PPVD, VideoDepthEstimator, WindowPlan, fit_scale_shift, padded_length,
                                 window_slots)

PPVD_FILE = Path(__file__).resolve().parents[2] / 'shared' / 'parity' / 'ppvd_official_tiny.pt'


@pytest.fixture(scope='module')
def ppvd_file():
    if not PPVD_FILE.exists():
        pytest.skip(f'PPVD parity vectors not found at {PPVD_FILE}')
    return PPVD_FILE


def test_parity_with_official_recording(ppvd_file, capsys):
    assert parity_tool.main([str(ppvd_file)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names[0] == 'pi3_forward_semantics' and names[-1] == 'infer_video'
    assert 'window_preds' in names and 'align_scale_shift' in names
    assert all(line.split()[2] == 'OK' for line in lines), lines


def test_parity_fails_above_tolerance(ppvd_file, capsys):
    assert parity_tool.main([str(ppvd_file), '--tolerance', '1e-9']) == 1
    assert 'FAIL' in capsys.readouterr().out


@pytest.mark.parametrize('frames, pad', [(1, 15), (3, 13), (4, 12), (16, 0), (17, 12), (29, 0), (33, 9)])
def test_padding_rule(frames, pad):
    assert padded_length(frames) - frames == pad
    if frames >= 4:  # the released rule: (T - 16) mod 13 (Python modulo)
        r = (frames - 16) % 13
        assert pad == (13 - r if r else 0)


def test_window_slots_inherit_keyframes_of_the_window_as_run():
    slots = window_slots(33)
    assert slots[0] == list(range(16))
    assert slots[1][:3] == [0, 8, 15] and slots[1][3:] == list(range(16, 29))
    assert slots[2][:3] == [0, 21, 28] and slots[2][3:7] == [29, 30, 31, 32] and set(slots[2][7:]) == {32}
    short = WindowPlan(4)
    assert short.length == 7 and short.keyframes == (0, 3, 6)
    assert window_slots(11, short)[1] == [0, 3, 6, 7, 8, 9, 10]
    with pytest.raises(ValueError, match='1..13'):
        WindowPlan(14)


def test_fit_scale_shift_recovers_affine_and_handles_singular():
    pred = torch.rand(3, 8, 8)
    scale, shift = fit_scale_shift(pred, 2.5 * pred - 0.75)
    assert abs(float(scale) - 2.5) < 1e-4 and abs(float(shift) + 0.75) < 1e-4
    scale, shift = fit_scale_shift(torch.full((3, 4, 4), 0.3), torch.rand(3, 4, 4))
    assert (float(scale), float(shift)) == (1.0, 0.0)


def _tiny_pair(width=24, dit_width=40, size=32, heads=3, dit_heads=5, seed=0):
    torch.manual_seed(seed)
    pi3 = Pi3Semantics(Pi3Config(encoder=pi3_encoder_config(embed_dim=width, depth=2, num_heads=heads),
                                 decoder_dim=width, decoder_depth=3, decoder_heads=heads))
    dit = VideoDiT(VideoDiTConfig(hidden_size=dit_width, depth=24, num_heads=dit_heads, semantic_dim=2 * width,
                                  video_size=size))
    dit.reset_parameters(zero_output=False)
    return pi3.eval(), dit.eval()


def test_released_layouts_load_with_sizes_from_the_weights(tmp_path):
    """A differently sized pair written in the released layouts: pi3.safetensors (with unused heads)
    and ppvd.pth (dit_video.*). Every size, including S from pos_embed, comes back."""
    pi3, dit = _tiny_pair()
    tensors = {k: v.contiguous() for k, v in pi3.state_dict().items()}
    tensors['point_head.proj.weight'] = torch.zeros(4, 2)
    tensors['camera_decoder.blocks.0.norm1.weight'] = torch.ones(3)
    save_file(tensors, str(tmp_path / 'pi3.safetensors'))
    torch.save({'dit_video.' + k: v for k, v in dit.state_dict().items()}, tmp_path / 'ppvd.pth')

    pi3_loaded = ck.load_pi3(tmp_path / 'pi3.safetensors')
    dit_loaded = ck.load_video_dit(tmp_path / 'ppvd.pth')
    assert pi3_loaded.config == pi3.config
    assert dit_loaded.config == dit.config and dit_loaded.config.video_size == 32
    assert ck.checkpoint_kind(ck.read_checkpoint(tmp_path / 'ppvd.pth')[0]) == 'video'
    clip = torch.rand(16, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(pi3_loaded(clip), pi3(clip))

    tensors['stray.weight'] = torch.zeros(1)
    save_file(tensors, str(tmp_path / 'bad.safetensors'))
    with pytest.raises(ck.CheckpointError, match='unexpected keys.*stray.weight'):
        ck.load_pi3(tmp_path / 'bad.safetensors')
    torch.save({'dit.' + k: v for k, v in dit.state_dict().items()}, tmp_path / 'ppd.pth')
    with pytest.raises(ck.CheckpointError, match='no video-DiT weights'):
        ck.load_video_dit(tmp_path / 'ppd.pth')


def test_video_dit_refuses_other_frame_sizes_clearly():
    pi3, dit = _tiny_pair()
    x = torch.zeros(16, 4, 48, 32)
    with pytest.raises(ValueError, match='32x32 frames only.*got 48x32'):
        dit(x, torch.zeros(16, 6, dit.config.semantic_dim), torch.tensor(500))


def test_sincos_table_matches_the_released_layout():
    table = sincos_2d(8, 3)  # first half encodes the column, second half the row
    assert abs(float(table[1, 0]) - np.sin(1.0)) < 1e-7 and float(table[1, 4]) == 0.0  # row 0, col 1
    assert abs(float(table[3, 4]) - np.sin(1.0)) < 1e-7 and float(table[3, 0]) == 0.0  # row 1, col 0


def test_stream_equals_offline_infer_video():
    """With the offline window size, feeding frames one at a time gives infer_video's depths;
    each frame comes out as soon as its window ran."""
    pi3, dit = _tiny_pair(width=16, dit_width=32, size=32, heads=2, dit_heads=2)
    est = VideoDepthEstimator(PPVD(pi3, dit), device='cpu', steps=2, seed=3)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (20, 24, 40, 3), dtype=np.uint8)
    offline = est.infer_video(frames)
    assert offline.shape == (20, 24, 40) and offline.dtype == np.float32

    stream = est.stream(new_frames=13)
    rgb = torch.from_numpy(frames[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    got, emitted_at = {}, {}
    for i, frame in enumerate(rgb):
        for key, depth in stream.push(frame, i):
            got[key] = depth
            emitted_at[key] = i
    assert sorted(got) == list(range(16)) and all(emitted_at[k] == 15 for k in got)
    for key, depth in stream.flush():
        got[key] = depth
    streamed = torch.stack([got[i] for i in range(20)]).numpy()
    np.testing.assert_allclose(streamed, offline, atol=1e-6, rtol=0)


def test_window_alignment_removes_per_window_scale_and_shift():
    """A stand-in video model whose windows differ only by an affine map (per-window normalisation
    and jitter, no noise): after the keyframe alignment every frame sits on window 0's map."""
    from ppd_dev.video_report import StandInVideoModel
    from ppd_ros.model.video import VideoDepthStream
    from ppd_ros.synthetic import camera_sequence
    frames = camera_sequence(3, 12, 32, 24, kind='indoor', motion='smooth')
    model = StandInVideoModel(frames, 32, seed=1, jitter=0.2, smooth_noise=0.0, pixel_noise=0.0)
    stream = VideoDepthStream(model, torch.zeros(16, 1, 32, 32), steps=1, new_frames=3)
    depths = {}
    for i, frame in enumerate(frames):
        depths.update(stream.push_rgb(frame.rgb, i))
    depths.update((k, d.numpy()) for k, d in stream.flush())
    assert stream.windows_run == 3
    first = [depths[i] for i in range(6)]   # window 0 as predicted
    later = [depths[i] for i in range(6, 12)]
    # one affine map for all frames: fit it on window 0, it must hold on the later windows
    truth = [np.log1p(cv2.resize(np.where(f.valid, f.depth, np.nan).astype(np.float32), (32, 32),
                                 interpolation=cv2.INTER_NEAREST)) for f in frames]
    truth_full = [cv2.resize(t, (32, 24), interpolation=cv2.INTER_LINEAR) for t in truth]
    ok = [np.isfinite(t) for t in truth_full]
    a, b = np.polyfit(np.concatenate([t[m] for t, m in zip(truth_full[:6], ok[:6])]),
                      np.concatenate([d[m] for d, m in zip(first, ok[:6])]), 1)
    for d, t, m in zip(later, truth_full[6:], ok[6:]):
        assert np.abs(d[m] - (a * t[m] + b)).max() < 1e-3


def test_video_dit_with_a_head_dim_not_divisible_by_4_builds_loads_and_runs(tmp_path):
    """Issue 22 item 16: the authors' DiT_Video has no RoPE (timm attention, sin-cos positions), so
    head dim 6 is valid there; only the image DiT's 2D RoPE needs a head dim divisible by 4."""
    from ppd_ros.model.config import DiTConfig
    pi3, dit = _tiny_pair(width=16, dit_width=24, size=32, heads=2, dit_heads=4)  # head dim 6
    assert dit.config.head_dim == 6
    torch.save({'dit_video.' + k: v for k, v in dit.state_dict().items()}, tmp_path / 'ppvd.pth')
    loaded = ck.load_video_dit(tmp_path / 'ppvd.pth')
    assert loaded.config == dit.config
    depth = VideoDepthEstimator(PPVD(pi3, loaded), device='cpu', steps=1, seed=0).infer_video(
        np.random.default_rng(0).integers(0, 255, (4, 24, 40, 3), dtype=np.uint8))
    assert depth.shape == (4, 24, 40) and np.isfinite(depth).all()
    with pytest.raises(ValueError, match='2D RoPE needs a head dim divisible by 4, got 6'):
        DiTConfig(hidden_size=24, num_heads=4)
