"""Training code of the demo model: target normalisation, data determinism, losses, and a
3-step smoke run of both stages that must resume exactly from its checkpoint."""
import numpy as np
import pytest
import torch

from ppd_dev.training.checkpoint import load_checkpoint
from ppd_dev.training.data import TRAIN_SEED_BASE, FrameCache, batch_tensors, frame_seed_and_kind, render_cache
from ppd_dev.training.export import HEAD_FILE, MODEL_FILE
from ppd_dev.training.normalization import normalise_log_depth
from ppd_dev.training.pipeline import STAGE1_CHECKPOINT, STAGE2_CHECKPOINT, train_stage1, train_stage2
from ppd_dev.training.recipe import DemoRecipe
from ppd_dev.training.stage1 import align_scale_shift, ssi_loss
from ppd_dev.training.stage2 import FlowMatchingObjective
from ppd_ros.model.checkpoint import load_model_file


def test_normalisation_maps_percentiles_to_half_range():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 30.0, size=(40, 50)).astype(np.float32)
    valid = np.ones_like(depth, bool)
    valid[:5] = False
    out = normalise_log_depth(depth, valid)
    inside = out[valid]
    assert np.percentile(inside, 2) == pytest.approx(-0.5, abs=1e-3)
    assert np.percentile(inside, 98) == pytest.approx(0.5, abs=1e-3)
    assert inside.min() >= -1.0 and inside.max() <= 0.5
    assert np.all(out[~valid] == 0)
    # monotone: farther stays larger
    order = np.argsort(depth[valid])
    assert np.all(np.diff(inside[order]) >= -1e-6)


def test_normalisation_rejects_maps_without_valid_depth():
    with pytest.raises(ValueError, match='no valid pixel'):
        normalise_log_depth(np.full((4, 4), 100.0), np.ones((4, 4), bool))


def test_training_and_evaluation_seeds_are_disjoint():
    seeds = [frame_seed_and_kind(i)[0] for i in range(5000)]
    assert min(seeds) >= 100_000
    assert {frame_seed_and_kind(i)[1] for i in range(4)} == {'indoor', 'outdoor'}


def test_scale_shift_invariant_loss_ignores_affine_changes():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.uniform(-0.5, 0.5, (2, 16, 16)).astype(np.float32))
    mask = torch.ones_like(target, dtype=torch.bool)
    pred = 3.0 * target - 0.7
    assert torch.allclose(align_scale_shift(pred, target, mask), target, atol=1e-5)
    assert ssi_loss(pred, target, mask, direct_weight=0, gradient_weight=0).item() < 1e-5
    assert ssi_loss(target, target, mask).item() < 1e-8
    assert ssi_loss(torch.randn_like(target), target, mask).item() > 0.01


class _ZeroVelocity(torch.nn.Module):
    def forward(self, x, semantics, timestep):
        return torch.zeros_like(x[:, :1])


class _NoEncoder(torch.nn.Module):
    def forward(self, image):
        return torch.zeros(image.shape[0], 1, 1)


@pytest.mark.parametrize('kind, error', [('mse', lambda d: d ** 2), ('l1', torch.abs)])
def test_flow_matching_loss_is_the_velocity_error_on_valid_pixels(kind, error):
    target = torch.rand(2, 16, 16) - 0.5
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[:, :4] = False
    objective = FlowMatchingObjective(_ZeroVelocity(), _NoEncoder(), uniform_fraction=1.0, loss=kind)
    loss = objective(torch.rand(2, 3, 16, 16), target, valid, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn((2, 1, 16, 16), generator=gen)
    expected = error(noise[:, 0] - target)[valid].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match='stage-2 loss'):
        FlowMatchingObjective(_ZeroVelocity(), _NoEncoder(), loss='huber')


class _RecordTimestep(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, semantics, timestep):
        self.seen.extend(timestep.tolist())
        return torch.zeros_like(x[:, :1])


def test_timesteps_mix_uniform_and_the_sampling_schedule():
    from ppd_ros.model.sampler import sampling_timesteps
    from ppd_dev.training.stage2 import SCHEDULE_TIMESTEPS
    assert list(SCHEDULE_TIMESTEPS) == sampling_timesteps(4)
    recorder = _RecordTimestep()
    objective = FlowMatchingObjective(recorder, _NoEncoder(), uniform_fraction=0.5)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        objective(torch.rand(8, 3, 16, 16), torch.zeros(8, 16, 16), torch.ones(8, 16, 16, dtype=torch.bool), gen)
    seen = np.array(recorder.seen)
    assert seen.min() >= 0 and seen.max() <= 1000
    on_schedule = np.isin(np.round(seen, 3), SCHEDULE_TIMESTEPS)
    assert 0.35 < on_schedule.mean() < 0.65


@pytest.fixture(scope='module')
def tiny_cache(tmp_path_factory):
    synthetic = pytest.importorskip('ppd_ros.synthetic', reason='synthetic world not available')
    if not hasattr(synthetic, 'render_frame'):
        pytest.skip('ppd_ros.synthetic.render_frame not available yet')
    recipe = DemoRecipe.tiny()
    shards = render_cache(tmp_path_factory.mktemp('cache'), recipe.num_frames, recipe.width,
                          recipe.height, shard_size=recipe.shard_size, workers=1, log=lambda m: None)
    return FrameCache(shards)


def test_cache_batches_are_a_pure_function_of_the_step(tiny_cache):
    recipe = DemoRecipe.tiny()
    assert len(tiny_cache) == recipe.num_frames
    assert tiny_cache.size == (recipe.height, recipe.width)
    a, b = tiny_cache.batch(4, seed=5, step=7), tiny_cache.batch(4, seed=5, step=7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.target, b.target)
    c = tiny_cache.batch(4, seed=5, step=8)
    assert not np.array_equal(a.image, c.image)
    image, target, valid = batch_tensors(a)
    assert image.shape == (4, 3, recipe.height, recipe.width) and 0 <= image.min() <= image.max() <= 1
    assert target.shape == valid.shape == (4, recipe.height, recipe.width)


def test_flip_augmentation_flips_image_and_target_together(tiny_cache):
    flips = 0
    for step in range(20):
        batch = tiny_cache.batch(1, seed=0, step=step)
        image, target = batch.image[0], batch.target[0]
        plain = [i for i, rgb in enumerate(tiny_cache.rgb) if np.array_equal(image, rgb)]
        mirrored = [i for i, rgb in enumerate(tiny_cache.rgb) if np.array_equal(image, rgb[:, ::-1])]
        if plain:
            assert np.array_equal(target, tiny_cache.target[plain[0]])
        else:
            assert mirrored, 'batch image is neither a cached frame nor its mirror'
            assert np.array_equal(target, tiny_cache.target[mirrored[0]][:, ::-1])
            flips += 1
    assert 0 < flips < 20


def _params(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_three_step_smoke_run_resumes_exactly(tiny_cache, tmp_path):
    recipe = DemoRecipe.tiny()
    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'

    reg_a, res_a = train_stage1(recipe, tiny_cache, straight, log=lambda m: None)
    assert res_a.finished and np.isfinite(res_a.last_loss)
    assert (straight / STAGE1_CHECKPOINT).exists()
    obj_a, res2_a = train_stage2(recipe, tiny_cache, reg_a.encoder, straight, log=lambda m: None)
    assert res2_a.finished and np.isfinite(res2_a.last_loss)
    assert load_checkpoint(straight / STAGE2_CHECKPOINT, modules={'model': obj_a})['step'] == 3

    # Interrupt each stage after its first step (a zero time budget), then resume.
    cut = DemoRecipe.tiny()
    cut.stage1.time_budget_s = cut.stage2.time_budget_s = 0.0
    _, r1 = train_stage1(cut, tiny_cache, interrupted, log=lambda m: None)
    assert r1.step == 1 and not r1.finished
    reg_b, r1 = train_stage1(recipe, tiny_cache, interrupted, resume=True, log=lambda m: None)
    assert r1.step == 3
    _, r2 = train_stage2(cut, tiny_cache, reg_b.encoder, interrupted, log=lambda m: None)
    assert r2.step == 1
    obj_b, r2 = train_stage2(recipe, tiny_cache, reg_b.encoder, interrupted, resume=True, log=lambda m: None)
    assert r2.step == 3

    for a, b in ((reg_a, reg_b), (obj_a, obj_b), (res2_a.ema, r2.ema)):
        pa, pb = _params(a), _params(b)
        assert pa.keys() == pb.keys()
        for key in pa:
            assert torch.equal(pa[key], pb[key]), key
    # The frozen encoder really stayed frozen during stage 2.
    for key, value in _params(reg_a.encoder).items():
        assert torch.equal(value, obj_a.encoder.state_dict()[key])


def test_evaluation_scores_a_ground_truth_oracle_as_near_perfect(tiny_cache):
    pytest.importorskip('ppd_ros.eval.metrics')
    from ppd_ros.eval.baselines import GroundTruthResampled, Oracle
    from ppd_dev.training.evaluation import evaluate
    table = evaluate({'oracle': Oracle(), 'blurred': GroundTruthResampled(1 / 8)},
                     width=64, height=48, seeds=[0, 1], log=lambda m: None)
    assert table['oracle']['abs_rel'] < 1e-3 and table['oracle']['delta1'] > 0.999
    assert table['oracle']['edge_chamfer'] < 1e-3
    assert table['blurred']['abs_rel'] > table['oracle']['abs_rel']
    assert table['blurred']['edge_chamfer'] > table['oracle']['edge_chamfer']


def test_streamed_frames_arrive_in_order_and_batches_mix_fresh_and_old(tmp_path):
    pytest.importorskip('ppd_ros.synthetic')
    from ppd_dev.training.data import FrameStream, render_stream
    recipe = DemoRecipe.tiny()
    shard = recipe.stream_shard
    render_stream(tmp_path, recipe.width, recipe.height, shard_size=shard, max_frames=2 * shard)
    stream = FrameStream(tmp_path, recipe.width, recipe.height, shard_size=shard, recent=shard, refresh_every=1)
    assert len(stream) == stream.frames_seen == 2 * shard
    # The frames are the training frames 0.. in order (render_frame with the training seeds).
    first = FrameCache(render_cache(tmp_path / 'fixed', shard, recipe.width, recipe.height,
                                    shard_size=shard, workers=1, log=lambda m: None))
    assert np.array_equal(stream.rgb[:shard], first.rgb)
    np.testing.assert_allclose(stream.target[:shard], first.target, atol=2e-3)  # stored as float16
    newest = {stream.rgb[i].tobytes() for i in range(shard, 2 * shard)}
    newest |= {stream.rgb[i][:, ::-1].tobytes() for i in range(shard, 2 * shard)}
    fresh = [sum(img.tobytes() in newest for img in stream.batch(4, seed=0, step=s).image[:2]) for s in range(10)]
    assert fresh == [2] * 10, 'the first half of every batch comes from the newest frames'
    a, b = stream.batch(4, seed=0, step=3), stream.batch(4, seed=0, step=3)
    assert np.array_equal(a.image, b.image) and a.target.dtype == np.float32


def test_stream_without_a_renderer_says_so(tmp_path):
    from ppd_dev.training.data import FrameStream
    with pytest.raises(TimeoutError, match='render process'):
        FrameStream(tmp_path, 64, 48, shard_size=4, wait_s=0.0)


def test_learning_rate_decays_over_the_time_budget_when_steps_remain():
    from ppd_dev.training.loop import LoopConfig, learning_rate
    cfg = LoopConfig(steps=100_000, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1, time_budget_s=100.0)
    assert learning_rate(0, cfg, 0.0) == pytest.approx(1e-4)
    assert learning_rate(20, cfg, 0.0) == pytest.approx(1e-3, rel=1e-3)
    assert learning_rate(20, cfg, 50.0) == pytest.approx(0.55e-3, rel=1e-3)  # half-way through the time
    assert learning_rate(20, cfg, 100.0) == pytest.approx(1e-4)
    no_budget = LoopConfig(steps=100, lr=1e-3, warmup_steps=0, min_lr_ratio=0.1)
    assert learning_rate(50, no_budget, 1e6) == pytest.approx(0.55e-3, rel=1e-3)  # steps only


def test_stage2_alongside_reruns_the_command_for_stage2_only():
    from ppd_dev.train_demo import parse_args, stage2_alongside_argv
    argv = ['--stream', '--only', 'stage1', 'stage2', 'eval', '--stage2-alongside', '--run-dir', 'runs/x']
    child = stage2_alongside_argv(argv, stream=True)
    assert child == ['--stream', '--run-dir', 'runs/x', '--only', 'stage2', 'export', '--follow-stage1',
                     '--resume', '--no-render']
    args = parse_args(child)
    assert args.only == ['stage2', 'export'] and args.follow_stage1 and args.no_render and not args.stage2_alongside


def test_a_fine_tune_card_keeps_the_lineage_and_notes_of_the_weights_it_started_from():
    from ppd_dev.training.export import lineage
    oldest = {'what': 'v1', 'notes': 'from scratch'}
    card = {'training': {'recipe': DemoRecipe().to_dict(), 'steps': {'stage1': 7, 'stage2': 5},
                         'wall_s': {'stage1': 60.0}, 'trained_in': 'runs/a', 'notes': 'v2 by hand',
                         'initialised_from': [oldest]}}
    chain = lineage(card, 'runs/b/init')
    assert chain[0] == oldest and len(chain) == 2
    assert chain[1]['notes'] == 'v2 by hand' and chain[1]['trained_in'] == 'runs/a'
    assert chain[1]['steps'] == {'stage1': 7, 'stage2': 5} and chain[1]['run_dir'] == 'runs/b/init'
    assert chain[1]['lr'] == {'stage1': DemoRecipe().stage1.lr, 'stage2': DemoRecipe().stage2.lr}
    assert lineage({}, 'runs/c')[0]['steps'] is None  # a card without a training record (hand-made weights)


def test_a_fine_tune_trains_on_scenes_its_weights_never_saw(tmp_path):
    """train_demo end to end (tiny): the fine-tune's frames start past every seed on the starting card."""
    pytest.importorskip('ppd_ros.synthetic')
    from ppd_dev.train_demo import main
    from ppd_dev.training.export import load_card
    common = ['--tiny', '--threads', str(torch.get_num_threads()), '--workers', '1',
              '--only', 'render', 'stage1', 'stage2', 'export']
    assert main(common + ['--run-dir', str(tmp_path / 'a'), '--weights-dir', str(tmp_path / 'wa')]) == 0
    first = load_card(tmp_path / 'wa')['data']['seeds']
    assert first == [TRAIN_SEED_BASE, TRAIN_SEED_BASE + DemoRecipe.tiny().num_frames - 1]
    assert main(common + ['--run-dir', str(tmp_path / 'b'), '--weights-dir', str(tmp_path / 'wb'),
                          '--init-from-weights', str(tmp_path / 'wa')]) == 0
    card = load_card(tmp_path / 'wb')
    assert card['data']['seeds'][0] == first[1] + 1
    assert card['training']['initialised_from'][-1]['seeds'] == first
    assert sorted(p.name for p in (tmp_path / 'b' / 'cache').iterdir())[0].startswith(f'64x48_s{first[1] + 1}_')
    # stage 2 alone, with the L1 objective: the encoder and baseline head stay the starting model's
    assert main(common[:-4] + ['stage2', 'export', '--stage2-loss', 'l1', '--run-dir', str(tmp_path / 'c'),
                               '--weights-dir', str(tmp_path / 'wc'), '--init-from-weights', str(tmp_path / 'wa')]) == 0
    tuned_card = load_card(tmp_path / 'wc')['training']
    assert tuned_card['recipe']['stage2_loss'] == 'l1' and 'velocity L1' in tuned_card['objective']['stage2']
    assert (tmp_path / 'wc' / HEAD_FILE).read_bytes() == (tmp_path / 'wa' / HEAD_FILE).read_bytes()
    start, tuned = (load_model_file(tmp_path / w / MODEL_FILE) for w in ('wa', 'wc'))
    assert all(torch.equal(a, b) for a, b in zip(start[1].state_dict().values(), tuned[1].state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(start[0].state_dict().values(), tuned[0].state_dict().values()))
