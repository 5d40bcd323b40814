"""Depth-quality evaluation (numpy): metrics, ground-truth baselines, and the scoring protocol."""
from .baselines import GroundTruthResampled, Oracle, predict_for_eval
from .metrics import (abs_rel, align_sequence, align_to_gt, delta1, depth_edges, edge_chamfer, edge_region,
                      flying_pixel_rate, temporal_flicker)
from .protocol import evaluate_prediction, summarize

__all__ = ['GroundTruthResampled', 'Oracle', 'predict_for_eval', 'abs_rel', 'align_sequence', 'align_to_gt',
           'delta1', 'depth_edges', 'edge_chamfer', 'edge_region', 'flying_pixel_rate', 'temporal_flicker',
           'evaluate_prediction', 'summarize']
