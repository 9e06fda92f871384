"""alpha_for_l0: the α that gives a target mean L0, by bisection in log α on a subset."""
import numpy as np
import pytest
import torch

import sparsolve
from sparsolve import metrics


def _planted(n=3000, m=128, p=48, k=6, seed=0):
    """X = Z D + noise with k non-negative non-zeros per row over random unit atoms."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n, m))
    for i in range(n):
        Z[i, rng.choice(m, k, replace=False)] = rng.uniform(0.5, 1.5, k)
    return Z @ D + 0.01 * rng.standard_normal((n, p)), D


@pytest.mark.parametrize("target, positive", [(3.0, True), (6.0, True), (12.0, False)])
def test_hits_the_requested_l0_within_two_percent(target, positive):
    X, D = _planted()
    # the bisection sees a third of the rows; the L0 is measured on all of them
    alpha = sparsolve.alpha_for_l0(X, D, target, positive=positive, n_samples=1000)
    Z = sparsolve.encode(X, D, alpha, solver="cd", positive=positive, tol=1e-4)
    assert metrics.l0(Z) == pytest.approx(target, rel=0.02)


def test_torch_input_gives_the_same_alpha():
    X, D = _planted(n=800)
    a_np = sparsolve.alpha_for_l0(X, D, 5.0, positive=True)
    a_torch = sparsolve.alpha_for_l0(torch.from_numpy(X), torch.from_numpy(D), 5.0, positive=True)
    assert a_torch == pytest.approx(a_np, rel=1e-6)


@pytest.mark.parametrize("l0, match", [(0, "0 < l0"), (48, "0 < l0"), (float("nan"), "finite number"),
                                       (True, "finite number")])
def test_an_l0_out_of_reach_is_refused_before_any_work(l0, match):
    X, D = _planted(n=100)
    with pytest.raises((ValueError, TypeError), match=match):
        sparsolve.alpha_for_l0(X, D, l0)


def test_mismatched_widths_and_impossible_signs_are_named():
    X, D = _planted(n=100)
    with pytest.raises(ValueError, match="same n_features"):
        sparsolve.alpha_for_l0(X[:, :10], D, 3)
    with pytest.raises(ValueError, match="positive=True"):
        sparsolve.alpha_for_l0(-np.abs(X), np.abs(D), 3, positive=True)


def test_a_model_encodes_at_a_target_l0_on_its_centred_data():
    X, D = _planted(n=1500)
    c = np.linspace(-2, 2, D.shape[1])
    model = sparsolve.SparseCodingModel(D, None, positive=True, offset=c)  # no α of its own, as from an SAE
    with pytest.raises(ValueError, match="no α of its own"):
        model.encode(X + c)
    Z = model.encode(X + c, l0=6.0)
    assert metrics.l0(Z) == pytest.approx(6.0, rel=0.02)
    with pytest.raises(ValueError, match="not both"):
        model.encode(X + c, l0=6.0, alpha=0.1)
