"""Objective, duality gap and KKT residual, per sample (sparsolve.gap)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve.gap import dual_scale, gap_from_terms, residual_terms
from sparsolve.inference.problem import LassoProblem


def test_objective_is_the_lasso_objective(X, D_random, alpha):
    Z = np.random.default_rng(1).standard_normal((X.shape[0], D_random.shape[0])) * 0.1
    F = sparsolve.objective(X, D_random, Z, alpha)
    for i in (0, 17, 99):
        r = X[i] - Z[i] @ D_random
        assert F[i] == pytest.approx(0.5 * r @ r + alpha * np.abs(Z[i]).sum(), rel=1e-12)


def test_gap_is_nonnegative_and_bounds_the_suboptimality(X, D, alpha, reference):
    rng = np.random.default_rng(2)
    F_star = sparsolve.objective(X, D, reference, alpha)
    for scale in (0.0, 1e-3, 1e-1):
        Z = reference + scale * rng.standard_normal(reference.shape)
        gap = sparsolve.duality_gap(X, D, Z, alpha)
        assert gap.shape == (X.shape[0],) and (gap >= -1e-12).all()
        # weak duality: F(z) − F(z*) ≤ gap
        assert (sparsolve.objective(X, D, Z, alpha) - F_star <= gap + 1e-12).all()


def test_gap_vanishes_at_the_solution(X, D, alpha, reference):
    gap = sparsolve.duality_gap(X, D, reference, alpha)
    assert (gap <= 1e-11 * sparsolve.objective(X, D, reference, alpha) + 1e-15).all()


def test_gap_of_zero_codes(X, D_learned, alpha):
    """At z = 0 the dual point is x scaled into the feasible set: the gap is 0 exactly
    when ‖xDᵀ‖∞ ≤ α (zero is optimal) and positive otherwise."""
    Z = np.zeros((X.shape[0], D_learned.shape[0]))
    gap = sparsolve.duality_gap(X, D_learned, Z, alpha)
    s = np.abs(X @ D_learned.T).max(axis=1) / alpha
    expected = 0.5 * (X * X).sum(1) * (1 - 1 / np.maximum(s, 1)) ** 2
    np.testing.assert_allclose(gap, expected, rtol=1e-10, atol=1e-15)
    assert (gap[s <= 1] == 0).all() and (gap[s > 1] > 0).all()


def test_dual_scale():
    c = np.array([[0.5, -3.0, 1.0], [0.1, 0.2, -0.05]])
    np.testing.assert_allclose(dual_scale(c, 1.0), [3.0, 1.0])
    np.testing.assert_allclose(dual_scale(c, 1.0, positive=True), [1.0, 1.0])
    np.testing.assert_allclose(dual_scale(c, 0.25, positive=True), [4.0, 1.0])
    s0 = dual_scale(np.array([[0.0, 0.0], [0.0, 1e-3]]), 0.0)
    assert s0[0] == 1 and s0[1] == np.inf


def test_positive_gap_uses_the_one_sided_dual(X, D_random, alpha):
    Zp = sparsolve.encode(X, D_random, alpha, solver="cd", positive=True, tol=1e-12)
    gap_pos = sparsolve.duality_gap(X, D_random, Zp, alpha, positive=True)
    gap_two = sparsolve.duality_gap(X, D_random, Zp, alpha)
    F = sparsolve.objective(X, D_random, Zp, alpha)
    assert (gap_pos <= 1e-11 * F + 1e-15).all()
    assert gap_two.max() > 1e-3 * F.max()  # not a solution of the signed problem


def test_gram_and_factored_terms_agree(X, D_random, alpha):
    Z = sparsolve.encode(X, D_random, alpha, solver="cd", tol=1e-6)
    C, r2, xr = residual_terms(X, D_random, Z)
    prob = LassoProblem.build(X, D_random, alpha, False, "gram")
    Cg, r2g, xrg = prob.terms(Z)
    np.testing.assert_allclose(Cg, C, atol=1e-12)
    np.testing.assert_allclose(r2g, r2, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(xrg, xr, rtol=1e-9, atol=1e-14)
    g1, F1 = gap_from_terms(r2, xr, np.abs(Z).sum(1), dual_scale(C, alpha), alpha)
    np.testing.assert_allclose(g1, sparsolve.duality_gap(X, D_random, Z, alpha), rtol=1e-12)
    np.testing.assert_allclose(F1, sparsolve.objective(X, D_random, Z, alpha), rtol=1e-12)


def test_kkt_residual(X, D, alpha, reference):
    assert (sparsolve.kkt_residual(X, D, reference, alpha) <= 1e-6).all()
    Z = reference.copy()
    i, j = np.unravel_index(np.argmax(np.abs(Z)), Z.shape)
    Z[i, j] *= 1.1  # breaks c_j = α·sign(z_j) for that sample only
    k = sparsolve.kkt_residual(X, D, Z, alpha)
    assert k[i] > 1e-2 and np.delete(k, i).max() <= 1e-6


def test_kkt_residual_positive(X, D_random, alpha):
    Zp = sparsolve.encode(X, D_random, alpha, solver="cd", positive=True, tol=1e-12)
    assert (sparsolve.kkt_residual(X, D_random, Zp, alpha, positive=True) <= 1e-6).all()
    # the positive solution violates the signed conditions where a negative code would help
    assert sparsolve.kkt_residual(X, D_random, Zp, alpha).max() > 0.1


def test_torch_and_numpy_agree(X, D_random, alpha):
    Z = sparsolve.encode(X, D_random, alpha, solver="fista", tol=1e-3)
    t = [torch.from_numpy(a) for a in (X, D_random, Z)]
    for fn in (sparsolve.objective, sparsolve.duality_gap, sparsolve.kkt_residual):
        out = fn(*t, alpha)
        assert isinstance(out, torch.Tensor) and out.shape == (X.shape[0],)
        np.testing.assert_allclose(out.numpy(), fn(X, D_random, Z, alpha), rtol=1e-10, atol=1e-15)


def test_float32_gap_is_dominated_by_rounding(X, D_random, alpha):
    """Why certificates below ~1e-6 need float64: the same codes give a float32 gap
    that is off by rounding (about 1e-7·‖x‖²)."""
    Z = sparsolve.encode(X, D_random, alpha, solver="cd", tol=1e-12)
    g64 = sparsolve.duality_gap(X, D_random, Z, alpha)
    g32 = sparsolve.duality_gap(*(a.astype(np.float32) for a in (X, D_random, Z)), alpha)
    assert g32.dtype == np.float32
    assert np.abs(g32 - g64).max() <= 1e-5 * (X * X).sum(1).max()
    assert np.abs(g32 - g64).max() > 10 * g64.max()


@pytest.mark.parametrize("name", ["objective", "duality_gap", "kkt_residual"])
def test_codes_of_the_wrong_shape_are_named(X, D_random, alpha, name):
    function = getattr(sparsolve, name) if hasattr(sparsolve, name) else getattr(sparsolve.gap, name)
    Z = np.zeros((X.shape[0], D_random.shape[0] - 1))
    with pytest.raises(ValueError, match=rf"Z has shape \({X.shape[0]}, 63\); expected \(n_samples, n_atoms\) = "
                                         rf"\({X.shape[0]}, 64\)"):
        function(X, D_random, Z, alpha)
    with pytest.raises(ValueError, match=r"D has 65 features but X has 64"):
        function(X, np.zeros((64, 65)), np.zeros((X.shape[0], 64)), alpha)
    with pytest.raises(ValueError, match=r"Z has shape \(3, 64\); expected .*\(150, 64\)"):
        function(X, D_random, np.zeros((3, 64)), alpha)
