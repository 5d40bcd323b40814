"""Train the small demo model shipped in ppd_ros/weights (CPU, synthetic world, resumable).

    python -m ppd_dev.train_demo                 # render cache, stage 1, stage 2, export, eval
    python -m ppd_dev.train_demo --resume        # continue after an interruption
    python -m ppd_dev.train_demo --only eval     # re-evaluate the shipped weights
    python -m ppd_dev.train_demo --stream --init-from-weights DIR   # fresh frames, fine-tune DIR's model

Everything intermediate (frame cache, checkpoints, log) lives under --run-dir (gitignored runs/).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

STAGES = ('render', 'stage1', 'stage2', 'export', 'eval')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run-dir', default='runs/demo', help='cache, checkpoints and log (default: runs/demo)')
    p.add_argument('--weights-dir', default=None, help='where to write the demo weights '
                   '(default: the package ppd_ros/weights)')
    p.add_argument('--resume', action='store_true', help='continue from checkpoints in --run-dir')
    p.add_argument('--init-from', help='run dir of an earlier run: start both stages from its '
                   'final weights (fine-tuning with a fresh schedule) instead of from scratch')
    p.add_argument('--init-from-weights', help='a weights dir (demo_ppd.safetensors + baseline_head): '
                   'start both stages from that exported model (e.g. a copy of the shipped one)')
    p.add_argument('--stream', action='store_true', help='train on fresh frames that a background '
                   'render process keeps adding (instead of a fixed cache of --frames frames)')
    p.add_argument('--no-render', action='store_true', help='with --stream: start no render process; '
                   'read the frames another training process renders into the same --run-dir/--cache-dir')
    p.add_argument('--first-seed', type=int, help='scene seed of training frame 0 (default: the first '
                   'seed the --init-from(-weights) model never trained on, so a fine-tune sees new scenes)')
    p.add_argument('--stream-nice', type=int, default=10, help='extra nice value of the render process')
    p.add_argument('--stream-pool', type=int, default=6000, help='streamed frames kept in memory')
    p.add_argument('--follow-stage1', action='store_true', help='stage 2 on the encoder of a stage 1 '
                   'still training in --run-dir (another process), reloaded whenever its checkpoint changes')
    p.add_argument('--stage2-alongside', action='store_true', help='run stage 2 in a second process '
                   'while stage 1 trains (--follow-stage1), so both get a share of a busy CPU; one command')
    p.add_argument('--only', choices=STAGES, nargs='+', help='run only these stages')
    p.add_argument('--tiny', action='store_true', help='seconds-long recipe (tests)')
    p.add_argument('--frames', type=int, help='number of cached training frames')
    p.add_argument('--stage1-steps', type=int)
    p.add_argument('--stage2-steps', type=int)
    p.add_argument('--stage1-minutes', type=float, help='wall-clock budget for stage 1')
    p.add_argument('--stage2-minutes', type=float, help='wall-clock budget for stage 2')
    p.add_argument('--workers', type=int, default=2, help='render processes')
    p.add_argument('--threads', type=int, default=2, help='torch threads (use 1 on a busy shared CPU: '
                   'under a load of ~15 on 2 cores, 2 threads took ~7x longer per step than 1)')
    p.add_argument('--device', default='cpu', help="torch device for training, e.g. 'cuda' (default cpu)")
    p.add_argument('--cache-dir', help='frame cache (default: <run-dir>/cache)')
    p.add_argument('--dit-hidden', type=int, help='SP-DiT width (the 16x16x4 coarse patch is embedded '
                   'into it: below 1024 the noise channel is compressed)')
    p.add_argument('--dit-depth', type=int)
    p.add_argument('--dit-heads', type=int)
    p.add_argument('--stage1-lr', type=float)
    p.add_argument('--stage2-lr', type=float)
    p.add_argument('--stage2-loss', choices=('mse', 'l1'),  # training.stage2.LOSSES (not imported: no torch here)
                   help="stage-2 velocity loss (default mse, the paper's; l1: see ppd_dev/training/stage2.py)")
    p.add_argument('--eval-scenes', type=int, default=100, help='held-out scenes (seeds 0..N-1)')
    return p.parse_args(argv)


def build_recipe(args):
    from ppd_dev.training.recipe import DemoRecipe
    recipe = DemoRecipe.tiny() if args.tiny else DemoRecipe()
    if args.frames:
        recipe.num_frames = args.frames
    if args.first_seed is not None:
        recipe.first_seed = args.first_seed
    if args.stage1_steps:
        recipe.stage1.steps = args.stage1_steps
    if args.stage2_steps:
        recipe.stage2.steps = args.stage2_steps
    if args.dit_hidden or args.dit_depth or args.dit_heads:
        recipe.dit = dataclasses.replace(recipe.dit, hidden_size=args.dit_hidden or recipe.dit.hidden_size,
                                         depth=args.dit_depth or recipe.dit.depth,
                                         num_heads=args.dit_heads or recipe.dit.num_heads)
    if args.stage1_lr:
        recipe.stage1.lr = args.stage1_lr
    if args.stage2_lr:
        recipe.stage2.lr = args.stage2_lr
    if args.stage2_loss:
        recipe.stage2_loss = args.stage2_loss
    if args.stage1_minutes:
        recipe.stage1.time_budget_s = 60 * args.stage1_minutes
    if args.stage2_minutes:
        recipe.stage2.time_budget_s = 60 * args.stage2_minutes
    return recipe


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from ppd_dev.training import export
    from ppd_dev.training.data import FrameCache, render_cache
    from ppd_dev.training.pipeline import STAGE1_CHECKPOINT, Stage1Follower, load_stage1, train_stage1, train_stage2

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    weights_dir = Path(args.weights_dir) if args.weights_dir else export.WEIGHTS_DIR
    log_file = open(run_dir / 'train.log', 'a', buffering=1)

    def log(msg: str):
        line = f'{time.strftime("%H:%M:%S")} {msg}'
        print(line, flush=True)
        log_file.write(line + '\n')

    recipe = build_recipe(args)
    start_card = None  # the card of the weights a fine-tune starts from
    if args.init_from or args.init_from_weights:
        start_card = export.load_card(Path(args.init_from_weights) if args.init_from_weights
                                      else Path(args.init_from) / 'weights')
        if args.first_seed is None:
            recipe.first_seed = export.unseen_seed(start_card)
    stages = set(args.only or STAGES)
    log(f'train_demo: stages {sorted(stages)} recipe {json.dumps(dataclasses.asdict(recipe))}')
    timings = export.read_timings(run_dir)
    cache = None

    def get_cache():
        nonlocal cache
        if cache is None:
            start = time.monotonic()
            shards = render_cache(Path(args.cache_dir) if args.cache_dir else run_dir / 'cache', recipe.num_frames, recipe.width, recipe.height,
                                  shard_size=recipe.shard_size, workers=args.workers, seed_base=recipe.first_seed,
                                  log=log)
            cache = FrameCache(shards)
            timings['render_and_load'] = time.monotonic() - start
            log(f'cache: {len(cache)} frames {cache.size}')
        return cache

    stage2_process = None
    if args.stage2_alongside and {'stage1', 'stage2'} <= stages:
        stage2_process = _start_stage2_alongside(argv, args, log)
        stages -= {'stage2', 'export'}
    stream_process = None
    if args.stream:
        cache, stream_process = _start_stream(args, recipe, run_dir, log)
    if args.init_from_weights:
        args.init_from = str(_checkpoints_from_weights(Path(args.init_from_weights), run_dir / 'init', log))
    if 'render' in stages and not args.stream:
        get_cache()
    regressor = None
    # without stage 1 in this run (e.g. --only stage2 export with --init-from), the encoder is the
    # starting model's
    stage1_dir = run_dir if (run_dir / STAGE1_CHECKPOINT).exists() or not args.init_from else Path(args.init_from)
    if 'stage1' in stages:
        init = Path(args.init_from) / 'stage1.pt' if args.init_from else None
        regressor, result = train_stage1(recipe, get_cache(), run_dir, resume=args.resume, init_from=init,
                                         device=args.device, log=log)
        timings['stage1'] = result.wall_s
        log(f'stage 1 done: step {result.step} loss {result.last_loss:.4f} {result.wall_s:.0f}s')
    dit_ema = None
    if 'stage2' in stages:
        follower = Stage1Follower(recipe, run_dir, log=log, device=args.device) if args.follow_stage1 else None
        regressor = regressor or (follower.regressor if follower else load_stage1(recipe, stage1_dir).to(args.device))
        init = Path(args.init_from) / 'stage2.pt' if args.init_from else None
        objective, result = train_stage2(recipe, get_cache(), regressor.encoder, run_dir,
                                         resume=args.resume, init_from=init, before_step=follower,
                                         device=args.device, log=log)
        if follower is not None:
            follower.reload()  # export with the encoder the DiT saw last (the final one)
            regressor = follower.regressor
        timings['stage2'] = result.wall_s
        dit_ema = (result.ema or objective).dit
        log(f'stage 2 done: step {result.step} loss {result.last_loss:.4f} {result.wall_s:.0f}s')
    if stage2_process is not None:
        log(f'waiting for the stage-2 process {stage2_process.pid}')
        if stage2_process.wait() != 0:
            raise SystemExit(f'stage-2 process failed (exit {stage2_process.returncode}); see {run_dir}/train.log')
    if 'export' in stages:
        regressor = regressor or load_stage1(recipe, stage1_dir)
        if dit_ema is None:
            dit_ema = export.load_stage2_dit(recipe, run_dir)
        if args.stream:
            recipe.num_frames = cache.frames_seen  # the card records the distinct frames trained on
        earlier = export.lineage(start_card, args.init_from) if start_card is not None else None
        regressor, dit_ema = regressor.cpu(), dit_ema.cpu()
        timings.update(export.read_timings(run_dir))  # stage 1 may have run in another process
        paths = export.export_demo(recipe, regressor, dit_ema, weights_dir, run_dir=run_dir, timings=timings,
                                   earlier_runs=earlier)
        for path in paths:
            log(f'wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)')
    if 'eval' in stages:
        table = export.evaluate_shipped(weights_dir, num_scenes=args.eval_scenes, log=log)
        export.record_evaluation(weights_dir, table, args.eval_scenes)
    if args.stream:
        log(f'stream: {cache.frames_seen} distinct frames rendered for training')
    if stream_process is not None:
        stream_process.terminate()
    log_file.close()
    return 0


def _start_stream(args, recipe, run_dir: Path, log):
    """A render process (niced) writing shards of fresh frames, and the trainer's view of them."""
    import multiprocessing
    from ppd_dev.training.data import FrameStream, render_stream
    cache_dir = Path(args.cache_dir) if args.cache_dir else run_dir / 'stream'
    shard = recipe.stream_shard
    process = None
    if not args.no_render:
        ctx = multiprocessing.get_context('spawn')  # no torch state forked into the renderer
        process = ctx.Process(target=render_stream, args=(str(cache_dir), recipe.width, recipe.height),
                              kwargs={'shard_size': shard, 'seed_base': recipe.first_seed,
                                      'niceness': args.stream_nice}, daemon=True)
        process.start()
        log(f'stream: render process {process.pid} writing {shard}-frame shards to {cache_dir} '
            f'(nice +{args.stream_nice})')
    stream = FrameStream(cache_dir, recipe.width, recipe.height, shard_size=shard, seed_base=recipe.first_seed,
                         pool_frames=args.stream_pool, min_frames=2 * shard)
    log(f'stream: {len(stream)} frames ready')
    return stream, process


def stage2_alongside_argv(argv: list, stream: bool) -> list:
    """The arguments of this command for its stage-2 process: stage 2 + export only, following
    stage 1, reading (not rendering) the streamed frames."""
    keep, skip = [], False
    for arg in argv:  # drop --only and its values, and the flag that got us here
        if arg == '--only':
            skip = True
            continue
        if skip and arg in STAGES:
            continue
        skip = False
        if arg != '--stage2-alongside':
            keep.append(arg)
    return keep + ['--only', 'stage2', 'export', '--follow-stage1', '--resume'] + (['--no-render'] if stream else [])


def _start_stage2_alongside(argv, args, log):
    """This command again, for stage 2 (+ export) only, following this process's stage 1."""
    import subprocess
    argv = stage2_alongside_argv(list(sys.argv[1:] if argv is None else argv), args.stream)
    process = subprocess.Popen([sys.executable, '-m', 'ppd_dev.train_demo'] + argv, stdout=subprocess.DEVNULL)
    log(f'stage 2 runs alongside in process {process.pid} (log: the same train.log)')
    return process


def _checkpoints_from_weights(weights_dir: Path, out_dir: Path, log) -> Path:
    """Stage checkpoints (weights only) from an exported model, for --init-from."""
    import torch
    from ppd_dev.training.export import load_baseline
    from ppd_dev.training.pipeline import STAGE1_CHECKPOINT, STAGE2_CHECKPOINT
    from ppd_ros.model.checkpoint import load_model_file
    out_dir.mkdir(parents=True, exist_ok=True)
    regressor = load_baseline(weights_dir).model
    dit, _, _ = load_model_file(weights_dir / 'demo_ppd.safetensors')
    for name, state in ((STAGE1_CHECKPOINT, {'model': regressor.state_dict()}),
                        (STAGE2_CHECKPOINT, {'ema': {'dit.' + k: v for k, v in dit.state_dict().items()}})):
        tmp = out_dir / f'{name}.{os.getpid()}.tmp'  # two processes (stage 1, stage 2) may write at once
        torch.save({'modules': state, 'step': 0, 'extra': {}}, tmp)
        os.replace(tmp, out_dir / name)
    log(f'initialising from the exported model in {weights_dir}')
    return out_dir


if __name__ == '__main__':
    sys.exit(main())
