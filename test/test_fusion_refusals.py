"""scale_fusion_node validates what enters it (issue 22): a model scale that is no scale (NaN,
infinite, a <= 0, absurd) is refused with the reason, not republished as OK; a source that stops
because its messages exceed the buffer budget is said to be refused by the budget, not "stale".
Everything over real topics (test_fusion_node's Harness)."""
import math

import pytest

pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from ppd_ros.msg import DepthScale  # noqa: E402
from test_fusion_node import A, B, _big_cloud, cloud_msg, harness, model_scale_msg  # noqa: E402,F401


def received(node) -> bool:
    """The model scale has reached the node (kept, or refused)."""
    return len(node.model_scales) + getattr(node, 'model_scales_refused', 0) > 0


@pytest.mark.parametrize('a, b', [(math.nan, B), (math.inf, B), (-1.6, B), (1e30, B), (A, math.nan),
                                  (A, -math.inf)])
def test_an_impossible_model_scale_is_refused_where_it_enters(harness, a, b):
    """Issue 22, item 2: with the sensor expired such a scale went out on metric/scale as OK, and
    metric/depth/image was full of non-finite values."""
    pub_model = harness.io.create_publisher(DepthScale, 'depth/scale', 10)
    harness.spin_until(lambda: pub_model.get_subscription_count() > 0)
    harness.source(cloud_msg(5.0))
    assert harness.frame(5.0)[0].status == DepthScale.STATUS_OK
    pub_model.publish(model_scale_msg(7.5, a=a, b=b))
    harness.spin_until(lambda: received(harness.node))
    scale, _ = harness.frame(7.5, expect_metric=False)  # sensor stale past max_hold_age, no usable model scale
    assert scale.status == DepthScale.STATUS_EXPIRED and scale.source == 'sensor'
    assert 'MoGe-2 scale from depth_node refused' in scale.message, scale.message
    diag = harness.diagnostics()
    values = {v.key: v.value for v in diag.values}
    assert diag.level != DiagnosticStatus.OK and 'refused' in diag.message
    assert values['model scales refused'] == '1' and values['model scale refusal'].startswith('MoGe-2 scale')


def test_a_refused_model_scale_is_said_even_while_the_sensor_is_fine(harness):
    pub_model = harness.io.create_publisher(DepthScale, 'depth/scale', 10)
    harness.spin_until(lambda: pub_model.get_subscription_count() > 0)
    harness.source(cloud_msg(5.0))
    pub_model.publish(model_scale_msg(5.0, a=-1.0))
    harness.spin_until(lambda: received(harness.node))
    assert harness.frame(5.0)[0].source == 'sensor'
    diag = harness.diagnostics()
    assert diag.level == DiagnosticStatus.WARN and 'a=-1 must be positive' in diag.message
    assert harness.diagnostics().level == DiagnosticStatus.OK  # said once per report, not forever


def test_scale_problem_accepts_real_scales():
    from ppd_ros.nodes.scale_message import scale_problem
    assert scale_problem(A, B) is None and scale_problem(0.5, -0.2) is None
    assert 'not finite' in scale_problem(math.nan, 0.0)
    assert 'outside' in scale_problem(1e30, 0.0) and 'outside' in scale_problem(0.01, -0.02)


@pytest.mark.parametrize('harness', [{'source_budget_mb': 1.0}], indirect=True)
def test_clouds_over_the_budget_are_named_in_the_scale_not_called_stale(harness):
    """Issue 22, item 12: after the clouds grew over the budget, DepthScale said 'source stale'
    and only the log named the budget."""
    harness.source(cloud_msg(1.0))
    assert harness.frame(1.0)[0].status == DepthScale.STATUS_OK
    for t in (2.0, 3.0, 4.0):
        harness.source(_big_cloud(t, 100_000, point_step=16))  # 1.5 MB > 1 MB: refused
    scale, _ = harness.frame(4.0, expect_metric=False)
    assert 'stale' not in scale.message, scale.message
    assert 'more than the whole buffer budget of 1.0 MB' in scale.message
    assert 'raise source_budget_mb' in scale.message
    harness.source(cloud_msg(4.5))  # a normal cloud is kept again: pairing works as before
    assert harness.frame(4.5)[0].status == DepthScale.STATUS_OK
