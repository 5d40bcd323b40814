"""Flow-matching Euler sampler: released timesteps, exact-velocity recovery, warm starts."""
import pytest
import torch

from ppd_ros.model.sampler import (euler_schedule, noise_to, sample, sampling_timesteps,
                                   warm_start_index)


class OracleVelocity:
    """Stands in for the DiT: returns the true velocity ε − x0 of the linear path, so an exact
    sampler must land on x0. Records the timesteps it was called with."""

    def __init__(self, x0, noise):
        self.velocity = noise - x0
        self.calls = []

    def __call__(self, x, semantics, t, semantics_normalized=False):
        assert x.shape[1] == 4 and semantics_normalized
        assert torch.allclose(semantics.norm(dim=-1), torch.ones(()), atol=1e-5)
        self.calls.append(t.tolist())
        return self.velocity


def _inputs(seed=0, b=2, h=32, w=48):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand((b, 3, h, w), generator=g)
    sem = torch.randn((b, (h // 16) * (w // 16), 8), generator=g)
    noise = torch.randn((b, 1, h, w), generator=g)
    x0 = torch.rand((b, 1, h, w), generator=g) - 0.5
    return image, sem, noise, x0


def test_released_timesteps():
    assert sampling_timesteps(4) == [1000, 750, 500, 249]
    assert sampling_timesteps(1) == [1000]
    for steps in range(1, 30):
        ts = sampling_timesteps(steps)
        assert len(ts) == steps and ts[0] == 1000 and ts == sorted(ts, reverse=True)
    # The released arange has one extra element (t = -1) for 29 steps: dropped.
    assert sampling_timesteps(29)[-2:] == [68, 34]
    plan = euler_schedule(4)
    assert [(p.t, p.s) for p in plan] == [(1000, 750), (750, 500), (500, 249), (249, -1)]
    with pytest.raises(ValueError):
        sampling_timesteps(0)
    with pytest.raises(ValueError):
        sampling_timesteps(2.0)


@pytest.mark.parametrize('steps', [1, 2, 4, 7])
def test_exact_velocity_lands_on_x0(steps):
    image, sem, noise, x0 = _inputs()
    oracle = OracleVelocity(x0, noise)
    depth = sample(oracle, image, sem, noise, steps)
    assert torch.allclose(depth, x0 + 0.5, atol=1e-5)
    assert [c[0] for c in oracle.calls] == sampling_timesteps(steps)


def test_forward_process_convention():
    x0, eps = torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 2, 2), -1.0)
    assert torch.allclose(noise_to(x0, eps, 1000), eps)
    assert torch.allclose(noise_to(x0, eps, 0), x0)
    assert torch.allclose(noise_to(x0, eps, 250), 0.75 * x0 + 0.25 * eps)


def test_warm_start_index():
    assert warm_start_index(4, 1.0) == 0
    assert warm_start_index(4, 0.5) == 2
    assert warm_start_index(4, 0.75) == 1
    assert warm_start_index(4, 0.01) == 3
    assert warm_start_index(10, 0.3) == 7
    for bad in (0.0, -0.5, 1.5, float('nan')):
        with pytest.raises(ValueError):
            warm_start_index(4, bad)


def test_warm_start_runs_remaining_steps_from_init():
    image, sem, noise, x0 = _inputs(1)
    oracle = OracleVelocity(x0, noise)
    depth = sample(oracle, image, sem, noise, 4, init_depth=x0 + 0.5, start_index=2)
    assert [c[0] for c in oracle.calls] == [500, 249]
    assert torch.allclose(depth, x0 + 0.5, atol=1e-5)
    with pytest.raises(ValueError, match='needs init_depth'):
        sample(oracle, image, sem, noise, 4, start_index=1)
    with pytest.raises(ValueError, match='start_index'):
        sample(oracle, image, sem, noise, 4, init_depth=x0, start_index=4)
