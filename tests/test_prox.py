"""The shared thresholds of sparsolve.prox: values, the prox property, every backend."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsolve.prox import (THRESHOLDS, get_threshold, hard_threshold, nonneg_threshold, prox_l1,
                            soft_threshold)

U = np.array([-2.0, -0.5, -0.3, 0.0, 0.3, 0.5, 2.0])


def test_values():
    np.testing.assert_allclose(soft_threshold(U, 0.5), [-1.5, 0, 0, 0, 0, 0, 1.5])
    np.testing.assert_allclose(nonneg_threshold(U, 0.5), [0, 0, 0, 0, 0, 0, 1.5])
    np.testing.assert_allclose(hard_threshold(U, 0.4), [-2.0, -0.5, 0, 0, 0, 0.5, 2.0])


@pytest.mark.parametrize("positive", [False, True])
def test_prox_l1_minimises_its_objective(positive):
    """prox_{t‖·‖₁}(u) = argmin_z ½(z − u)² + t|z|  (z ≥ 0 when positive), checked on a fine grid."""
    grid = np.linspace(-3, 3, 60001)
    if positive:
        grid = grid[grid >= 0]
    t = 0.7
    u = np.random.default_rng(0).uniform(-3, 3, 50)
    brute = grid[np.argmin(0.5 * (grid[None] - u[:, None]) ** 2 + t * np.abs(grid[None]), axis=1)]
    np.testing.assert_allclose(prox_l1(u, t, positive), brute, atol=1e-4)


def test_hard_is_the_prox_of_the_l0_penalty():
    """hard_threshold(u, t) = argmin_z ½(z − u)² + (t²/2)·1[z ≠ 0]."""
    t = 0.7
    u = np.random.default_rng(1).uniform(-3, 3, 200)
    u = u[np.abs(np.abs(u) - t) > 1e-6]  # the tie |u| = t has two minimisers
    cost_keep = np.zeros_like(u) + 0.5 * t * t
    cost_zero = 0.5 * u * u
    np.testing.assert_array_equal(hard_threshold(u, t), np.where(cost_zero <= cost_keep, 0.0, u))


def test_broadcast_threshold():
    u = np.ones((2, 3))
    t = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(soft_threshold(u, t), [[0.5, 0, 0]] * 2)
    np.testing.assert_allclose(nonneg_threshold(u, t[:, None][:2]), [[0.5] * 3, [0] * 3])


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_matches_numpy_and_keeps_dtype(name, dtype):
    f = get_threshold(name)
    out = f(torch.tensor(U, dtype=dtype), 0.4)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), f(U, 0.4), rtol=1e-6)
    assert f(U.astype(np.float32), 0.4).dtype == np.float32


def test_torch_thresholds_are_differentiable():
    u = torch.tensor(U, requires_grad=True)
    t = torch.tensor(0.4, requires_grad=True)
    soft_threshold(u, t).sum().backward()
    # d/du = 1 outside [−t, t], 0 inside;  d/dt = −sign(u) outside
    np.testing.assert_allclose(u.grad.numpy(), (np.abs(U) > 0.4).astype(float))
    assert t.grad.item() == pytest.approx(-(np.sign(U) * (np.abs(U) > 0.4)).sum())
    u.grad = None
    nonneg_threshold(u, 0.4).sum().backward()
    np.testing.assert_allclose(u.grad.numpy(), (U > 0.4).astype(float))


def test_unknown_threshold():
    with pytest.raises(ValueError, match=r"threshold='relu' is not known; choose one of \['hard', 'nonneg', 'soft'\]"):
        get_threshold("relu")
