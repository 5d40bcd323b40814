"""Write the trained demo model into ppd_ros/weights (the model package's single-file format),
the baseline head next to it, and a JSON model card with provenance and measured numbers."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from ppd_ros.model.checkpoint import load_model_file, save_model_file
from ppd_ros.model.dit import SPDiT
from ppd_ros.model.estimator import WEIGHTS_DIR  # where PPDEstimator.demo() looks: the export writes there
from ppd_dev.training.baseline import BaselineEstimator, save_head
from ppd_dev.training.checkpoint import load_checkpoint
from ppd_dev.training.data import TRAIN_SEED_BASE
from ppd_dev.training.pipeline import STAGE2_CHECKPOINT
from ppd_dev.training.recipe import DemoRecipe
from ppd_dev.training.stage1 import DepthRegressor
from ppd_dev.training.stage2 import LOSSES, FlowMatchingObjective

MODEL_FILE = 'demo_ppd.safetensors'  # PPDEstimator.demo() loads weights/demo_*.safetensors
HEAD_FILE = 'baseline_head.safetensors'
CARD_FILE = 'demo_ppd.json'
STORAGE_DTYPE = torch.float16  # halves the file; the loader returns float32 weights


def load_stage2_dit(recipe: DemoRecipe, run_dir: str | Path, use_ema: bool = True) -> SPDiT:
    objective = FlowMatchingObjective(SPDiT(recipe.dit), DepthRegressor(recipe.encoder).encoder)
    ema = FlowMatchingObjective(SPDiT(recipe.dit), DepthRegressor(recipe.encoder).encoder)
    modules = {'model': objective} | ({'ema': ema} if recipe.stage2.ema_decay > 0 else {})
    load_checkpoint(Path(run_dir) / STAGE2_CHECKPOINT, modules=modules)
    return (ema if use_ema and recipe.stage2.ema_decay > 0 else objective).dit.eval()


def read_timings(run_dir: str | Path) -> dict:
    """Training wall time per stage, as recorded in the checkpoints (all resumed runs summed)."""
    timings = {}
    for name in ('stage1', 'stage2'):
        path = Path(run_dir) / f'{name}.pt'
        if path.exists():
            extra = torch.load(path, map_location='cpu', weights_only=False)['extra']
            timings[name] = extra.get('wall_s', 0.0)
    return timings


def load_card(weights_dir: str | Path) -> dict:
    path = Path(weights_dir) / CARD_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_card(weights_dir: Path, card: dict):
    path = weights_dir / CARD_FILE
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(card, indent=2) + '\n')
    tmp.replace(path)


def lineage(card: dict, init_dir: str | Path) -> list:
    """The ``initialised_from`` list of a fine-tune of the weights ``card`` describes: their own lineage
    plus their training record, with what a person wrote on that card (notes) carried along."""
    before = card.get('training', {})
    entry = {'run_dir': str(init_dir), 'steps': before.get('steps'), 'wall_s': before.get('wall_s'),
             'lr': {stage: before.get('recipe', {}).get(stage, {}).get('lr') for stage in ('stage1', 'stage2')}}
    entry.update({k: before[k] for k in ('what', 'trained_in', 'exported_at', 'machine', 'notes') if k in before})
    if 'seeds' in card.get('data', {}):
        entry['seeds'] = card['data']['seeds']
    return before.get('initialised_from', []) + [entry]


def unseen_seed(card: dict) -> int:
    """The first scene seed that neither the weights ``card`` describes nor any run they were
    fine-tuned from trained on: where a fine-tune of them starts, so that it sees new scenes."""
    ranges = [card.get('data', {}).get('seeds')]
    ranges += [run.get('seeds') for run in card.get('training', {}).get('initialised_from', [])]
    return max([TRAIN_SEED_BASE] + [last + 1 for _, last in filter(None, ranges)])


def export_demo(recipe: DemoRecipe, regressor: DepthRegressor, dit: SPDiT, weights_dir: str | Path,
                *, run_dir: str | Path | None = None, timings: dict | None = None,
                earlier_runs: list | None = None) -> list[Path]:
    """``earlier_runs``: training records of the runs this one was fine-tuned from (oldest first)."""
    weights_dir = Path(weights_dir)
    metadata = {'name': 'demo_ppd', 'target_area': json.dumps(list(recipe.target_area)), 'steps': '4',
                'description': 'ppd_ros demo model: small SP-DiT + small ViT trained on the synthetic world'}
    model_path = save_model_file(weights_dir / MODEL_FILE, dit, regressor.encoder, dtype=STORAGE_DTYPE,
                                 extra_metadata=metadata)
    head_path = save_head(regressor, weights_dir / HEAD_FILE)
    for path in (model_path, head_path):
        path.chmod(0o644)  # safetensors' temporary files are private; these ship with the package
    stage1_step = stage2_step = None
    if run_dir is not None:
        for name, key in (('stage1.pt', 'stage1'), (STAGE2_CHECKPOINT, 'stage2')):
            p = Path(run_dir) / name
            if p.exists():
                step = torch.load(p, map_location='cpu', weights_only=False)['step']
                stage1_step, stage2_step = (step, stage2_step) if key == 'stage1' else (stage1_step, step)
    card = load_card(weights_dir)
    card.update({
        'model_file': MODEL_FILE,
        'baseline_head_file': HEAD_FILE,
        'resolution': {'width': recipe.width, 'height': recipe.height},
        'target_area': list(recipe.target_area),
        'sampling': {'steps': 4, 'sampler': 'Euler, released timesteps'},
        'storage_dtype': str(STORAGE_DTYPE).replace('torch.', ''),
        'parameters': {'dit': sum(p.numel() for p in dit.parameters()),
                       'encoder': sum(p.numel() for p in regressor.encoder.parameters()),
                       'baseline_head': sum(p.numel() for p in regressor.head.parameters())},
        'data': {'source': 'ppd_ros.synthetic.render_frame', 'frames': recipe.num_frames,
                 'seeds': [recipe.first_seed, recipe.first_seed + recipe.num_frames - 1],
                 'kinds': 'indoor (even index) / outdoor (odd index)', 'augmentation': 'horizontal flip',
                 'evaluation_seeds': [0, 99]},
        'training': {
            'recipe': recipe.to_dict(),
            'steps': {'stage1': stage1_step, 'stage2': stage2_step},
            'wall_s': {k: round(v, 1) for k, v in (timings or {}).items()},
            'machine': f'{platform.machine()} CPU, torch {torch.__version__}, '
                       f'{torch.get_num_threads()} threads',
            'objective': {'stage1': 'scale-shift-invariant MSE + 0.5 multi-scale gradient, '
                                    'normalised log(d+1)',
                          'stage2': f'flow matching velocity {LOSSES[recipe.stage2_loss]}, t: half '
                                    'U(0,1), half the 4-step schedule (1000/750/500/249), target = log(d+1) '
                                    'normalised by its 2%/98% percentiles to [-0.5, 0.5] '
                                    '(clamped to [-1, 0.5]); EMA weights shipped'},
            'exported_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            **({'trained_in': str(run_dir)} if run_dir is not None else {}),
            'initialised_from': earlier_runs or [],
        },
    })
    _write_card(weights_dir, card)
    return [model_path, head_path, weights_dir / CARD_FILE]


def load_demo_estimator(weights_dir: str | Path, steps: int = 4, seed: int = 0):
    """The demo SP-DiT as a PPDEstimator from ``weights_dir`` (the shipped one via ``demo()``)."""
    from ppd_ros.model.estimator import PPDEstimator
    weights_dir = Path(weights_dir)
    card = load_card(weights_dir)
    target_area = tuple(card.get('target_area', (128, 96)))
    return PPDEstimator.from_file(weights_dir / MODEL_FILE, device='cpu', steps=steps, seed=seed,
                                  target_area=target_area)


def load_baseline(weights_dir: str | Path) -> BaselineEstimator:
    weights_dir = Path(weights_dir)
    card = load_card(weights_dir)
    _, encoder, _ = load_model_file(weights_dir / MODEL_FILE)
    return BaselineEstimator.from_files(encoder.state_dict(), encoder.config, weights_dir / HEAD_FILE,
                                        target_area=tuple(card.get('target_area', (128, 96))))


def evaluate_shipped(weights_dir: str | Path, num_scenes: int = 100,
                     log: Callable[[str], None] = print) -> dict:
    """Two tables over held-out seeds 0..num_scenes-1: frames rendered at the demo (model)
    resolution, and frames rendered at twice that size (a camera larger than the model: every
    estimator runs at model resolution and its output is enlarged bilinearly; the reference is
    the ground truth shrunk to model resolution and enlarged back bilinearly)."""
    from ppd_ros.eval.baselines import GroundTruthResampled
    from ppd_dev.training.evaluation import evaluate, format_table
    card = load_card(weights_dir)
    res = card.get('resolution', {'width': 128, 'height': 96})
    estimators = {'demo SP-DiT (4 steps, seed 0)': load_demo_estimator(weights_dir),
                  'discriminative baseline': load_baseline(weights_dir),
                  'GT shrunk x2 + bilinear': GroundTruthResampled(0.5)}
    tables = {}
    for key, scale in (('demo_resolution', 1), ('camera_2x', 2)):
        width, height = scale * res['width'], scale * res['height']
        log(f'evaluating on {num_scenes} held-out scenes rendered at {width}x{height}')
        tables[key] = evaluate(estimators, width=width, height=height, seeds=range(num_scenes), log=log)
        tables[key + '_size'] = f'{width}x{height}'
        log(f'\n{width}x{height} frames:\n' + format_table(tables[key]))
    return tables


def record_evaluation(weights_dir: str | Path, tables: dict, num_scenes: int):
    weights_dir = Path(weights_dir)
    card = load_card(weights_dir)
    card['evaluation'] = {
        'scenes': f'render_frame seeds 0..{num_scenes - 1}, even=indoor odd=outdoor',
        'metrics': 'ppd_ros.eval.metrics after align_to_gt (least squares in log(d+1)); '
                   'edge_chamfer in metres; flying_pixels = fraction of discontinuity-band pixels',
    }
    for key in ('demo_resolution', 'camera_2x'):
        if key in tables:
            card['evaluation'][key] = {
                'frame_size': tables[key + '_size'],
                'results': {name: {k: round(v, 5) for k, v in row.items()} for name, row in tables[key].items()}}
    _write_card(weights_dir, card)
