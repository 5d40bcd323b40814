"""ppd-bench: the report has every stage, FLOPs and TFLOP/s; the analytic FLOP count is right.

No timing assertions: only that the numbers are there and finite.
"""
import re

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ppd_ros.model.config import DiTConfig, EncoderConfig, model_configs
from ppd_ros.model.dit import SPDiT
from ppd_ros.model.sampler import sampling_timesteps
from ppd_ros.model.vit import SemanticEncoder
from ppd_dev import bench


def test_tiny_run_prints_every_stage_flops_and_rate(capsys):
    code = bench.main(['--size', 'tiny', '--height', '64', '--width', '96', '--steps', '3',
                       '--iters', '2', '--warmup', '1', '--device', 'cpu'])
    assert code == 0
    out = capsys.readouterr().out
    stages = ['preprocess', 'encoder'] + [f'dit step {i + 1} (t={t})' for i, t in enumerate(sampling_timesteps(3))]
    stages += ['sampler (excl. DiT)', 'postprocess', 'total']
    for stage in stages:
        match = re.search(rf'^  {re.escape(stage)}\s+([0-9.]+)\s+([0-9.]+)$', out, re.M)
        assert match, f'stage {stage!r} missing in:\n{out}'
        assert float(match.group(2)) >= float(match.group(1)) >= 0  # p90 ≥ median
    assert 'model 96x64, steps 3' in out
    flops = bench.pipeline_flops(*model_configs('tiny'), 64, 96, 3)
    assert f'total {flops.total / 1e9:.4f} GFLOP' in out
    number = r'([0-9.]+(?:e[-+][0-9]+)?)'
    rates = re.search(rf'TFLOP/s: encoder {number}, DiT step {number}, end to end {number}$', out, re.M)
    assert rates and all(float(r) > 0 for r in rates.groups())


def test_dit_flops_match_a_hand_count():
    # hidden 8, depth 2, heads 2, patch 8, mlp 4, semantics 4 on 32×48: N1 = 2·3 = 6, N2 = 24.
    cfg = DiTConfig(hidden_size=8, depth=2, num_heads=2, patch_size=8, semantic_dim=4)
    patch = 6 * 4 * 16 * 16 * 8                     # 49152
    timestep = 256 * 8 + 8 * 8                       # 2112
    coarse = 6 * (4 * 64 + 2 * 8 * 32) + 2 * 36 * 8 + 6 * 64     # 5568
    fine = 24 * (4 * 64 + 2 * 8 * 32) + 2 * 576 * 8 + 6 * 64     # 28032
    fusion = 6 * (12 * 32 + 2 * 32 * 32)             # 14592
    final = 24 * 8 * 64 + 2 * 64                     # 12416
    assert patch + timestep + coarse + fine + fusion + final == 111872
    assert bench.dit_flops(cfg, 32, 48) == 2 * 111872


def test_encoder_flops_match_a_hand_count():
    # width 8, depth 1, patch 14 on 32×48: 2·3 = 6 patches + class token = 7 tokens.
    cfg = EncoderConfig(embed_dim=8, depth=1, num_heads=2)
    patch = 6 * 3 * 14 * 14 * 8                      # 28224
    block = 7 * (4 * 64 + 2 * 8 * 32) + 2 * 49 * 8   # 6160
    assert bench.encoder_flops(cfg, 32, 48) == 2 * (patch + block)


@pytest.mark.parametrize('height,width', [(64, 96), (48, 32)])
def test_flop_formulas_match_torch_flop_counter(height, width):
    """Independent check: count the matmuls the real modules execute (math attention, so the
    attention products show up as counted bmm ops)."""
    dit_cfg, enc_cfg = model_configs('tiny')
    dit, encoder = SPDiT(dit_cfg).eval(), SemanticEncoder(enc_cfg).eval()
    x = torch.randn(1, 4, height, width)
    semantics = torch.randn(1, (height // 16) * (width // 16), dit_cfg.semantic_dim)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as counter:
            dit(x, semantics, torch.tensor([500]))
        assert counter.get_total_flops() == bench.dit_flops(dit_cfg, height, width)
        with FlopCounterMode(display=False) as counter:
            encoder(torch.rand(1, 3, height, width))
        assert counter.get_total_flops() == bench.encoder_flops(enc_cfg, height, width)


def test_large_preset_is_the_released_architecture():
    dit_cfg, enc_cfg = model_configs('large')
    assert (dit_cfg.hidden_size, dit_cfg.depth, dit_cfg.num_heads, dit_cfg.patch_size, dit_cfg.semantic_dim) == \
        (1024, 24, 16, 8, 1024)
    assert (enc_cfg.embed_dim, enc_cfg.depth, enc_cfg.num_heads, enc_cfg.patch_size) == (1024, 24, 16, 14)
    # 1024×768: ViT-L on 3072 + 1 tokens ≈ 24 · (3073 · 12.6 M + 2 · 3073² · 1024) MAC ≈ 2.8 TFLOP;
    # each DiT step ≈ 12 fine blocks on 12288 tokens (≈ 0.46 T MAC each) + 12 coarse ≈ 12.8 TFLOP.
    flops = bench.pipeline_flops(dit_cfg, enc_cfg, 768, 1024, 4)
    assert flops.encoder == pytest.approx(2.79e12, rel=0.01)
    assert flops.dit_step == pytest.approx(12.79e12, rel=0.01)


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(['--size', 'tiny', '--height', '60', '--width', '96'])
    assert exc.value.code == 2
    assert bench.main(['--dit', str(tmp_path / 'x.pth'), '--encoder', str(tmp_path / 'y.pth')]) == 2
    assert 'x.pth: error: checkpoint not found' in capsys.readouterr().err


def test_official_checkout_missing_is_a_clear_error(tmp_path, capsys):
    code = bench.main(['--size', 'tiny', '--height', '32', '--width', '32', '--iters', '1', '--warmup', '0',
                       '--device', 'cpu', '--official', str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert 'not a pixel-perfect-depth checkout' in err or 'needs packages' in err


def test_official_missing_packages_are_listed(tmp_path, capsys, monkeypatch):
    (tmp_path / 'ppd' / 'models').mkdir(parents=True)
    (tmp_path / 'ppd' / 'models' / 'dit.py').write_text('')
    monkeypatch.setattr(bench, '_OFFICIAL_DEPENDENCIES', {'no_such_module_for_ppd_bench': 'no-such-pkg',
                                                          'numpy': 'numpy'})
    with pytest.raises(bench.OfficialImportError, match=r'not installed: no-such-pkg \('):
        bench.import_official(tmp_path)


def test_variants_run_interleaved_with_ratios_and_roofline(capsys):
    code = bench.main(['--size', 'tiny', '--height', '32', '--width', '48', '--steps', '2', '--iters', '2',
                       '--warmup', '1', '--device', 'cpu', '--variants', 'eager,compiled',
                       '--compile-backend', 'eager', '--peak', '0.5'])
    out = capsys.readouterr().out
    assert code == 0, out
    for variant in ('eager', 'compiled'):
        assert re.search(rf'^{variant}\n  stage', out, re.M), out
    assert 'note: torch.compile eager: compile + warm-up' in out
    assert re.search(r'roofline \(0.5 TFLOP/s peak\): model [0-9.]+%, end to end [0-9.]+%', out)
    assert re.search(r'^  compiled\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+$', out, re.M)
    match = re.search(r'max \|compiled - eager\| = ([0-9.e+-]+)', out)
    assert match and float(match.group(1)) <= 1e-5


def test_unknown_variant_and_peak_table(capsys):
    with pytest.raises(SystemExit):
        bench.main(['--size', 'tiny', '--variants', 'eager,tensorflow', '--device', 'cpu'])
    assert 'unknown --variants tensorflow' in capsys.readouterr().err
    assert bench.PEAK_TFLOPS['h100-sxm']['bf16'] > bench.PEAK_TFLOPS['h100-sxm']['fp32']


@pytest.mark.parametrize('pipeline,stages', [
    ('metric', ['moge2 frame (relative depth)', 'metric pass (infer + scale fit)', 'frame + metric pass']),
    ('video', ['window (16 frames)', 'per new frame (window / 13)'])])
def test_metric_and_video_pipelines_print_time_flops_and_roofline(capsys, pipeline, stages):
    code = bench.main(['--pipeline', pipeline, '--size', 'tiny', '--area', '64x48', '--iters', '2',
                       '--warmup', '0', '--device', 'cpu', '--peak', '1.0'])
    assert code == 0
    out = capsys.readouterr().out
    for stage in stages:
        match = re.search(rf'^  {re.escape(stage)}\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)%$',
                          out, re.M)
        assert match, f'stage {stage!r} missing in:\n{out}'
        median, p90, gflop, rate, roofline = (float(v) for v in match.groups())
        assert p90 >= median > 0 and gflop > 0 and rate > 0
        assert roofline == pytest.approx(100 * rate, abs=0.01)  # peak 1 TFLOP/s
    if pipeline == 'video':
        assert re.search(r'^  video DiT step 4 \(t=249\)\s+[0-9.]+\s+[0-9.]+$', out, re.M), out


def test_metric_and_video_pipelines_refuse_other_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(['--pipeline', 'video', '--size', 'demo'])
    assert exit_info.value.code == 2
    assert '--pipeline video runs random weights of --size tiny or large' in capsys.readouterr().err
