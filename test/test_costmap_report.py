"""ppd_dev.costmap_report on its references: the exact depth marks no ghost and misses nothing;
the blurred ground truth (flying pixels) marks ghosts, and the edge filter removes most of them."""
from ppd_dev.costmap_report import run


def test_exact_depth_has_no_ghosts_and_blur_makes_them():
    result = run(frames=2, width=96, height=72, models=('gt', 'gt_resampled'))
    exact = result[('gt', 'raw cloud')]
    assert exact['ghost'] == exact['missed'] == exact['vghost'] == 0 and exact['absrel'] < 1e-5
    blurred, filtered = result[('gt_resampled', 'raw cloud')], result[('gt_resampled', 'edge_filter 0.05')]
    assert blurred['ghost'] > 0 and filtered['ghost'] < blurred['ghost']
    clearing = result[('gt', 'ppd_costmap.yaml (max 8, min 0.3, edge 0.05, stride 2)')]
    assert clearing['cleared'] > 0 and clearing['wrong_cleared'] <= 0.05 * clearing['cleared']
