"""LCA as the seed's explaining-away loop: its fixed point is the lasso solution, and
the recursion reduces as the seed says -- t* = 0 is the plain layer T(xDᵀ), t* = 1
with γ = 1 is the residual form T(μ₀ − G T(μ₀)), G = DDᵀ − I."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve.inference import ConvergenceWarning
from sparsolve.prox import hard_threshold, nonneg_threshold, soft_threshold

T = {"soft": soft_threshold, "nonneg": nonneg_threshold, "hard": hard_threshold}


def lca(X, D, alpha, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # t* fixed on purpose
        return sparsolve.encode(X, D, alpha, solver="lca", **kw)


def test_fixed_point_is_the_lasso_solution(X, D, alpha, reference):
    Z, info = sparsolve.encode(X, D, alpha, solver="lca", tol=1e-12, max_iter=50000, return_info=True)
    assert info.converged.all()
    np.testing.assert_allclose(Z, reference, atol=1e-5 * np.abs(reference).max())
    # the fixed-point equation itself: z = T_α(z + (x − zD)Dᵀ) = T_α(μ₀ − (DDᵀ − I) z)
    G = D @ D.T - np.eye(D.shape[0])
    mu = X @ D.T - Z @ G
    np.testing.assert_allclose(soft_threshold(mu, alpha), Z, atol=1e-5 * np.abs(Z).max())


def test_nonneg_fixed_point_is_the_positive_lasso(X, D, alpha):
    Z = sparsolve.encode(X, D, alpha, solver="lca", positive=True, tol=1e-12, max_iter=50000)
    Z_cd = sparsolve.encode(X, D, alpha, solver="cd", positive=True, tol=1e-12, max_iter=10000)
    assert Z.min() >= 0
    np.testing.assert_allclose(Z, Z_cd, atol=1e-5 * np.abs(Z_cd).max())


@pytest.mark.parametrize("threshold", ["soft", "nonneg", "hard"])
def test_t0_is_the_plain_layer(X, D_learned, alpha, threshold):
    Z = lca(X, D_learned, alpha, threshold=threshold, max_iter=0)
    np.testing.assert_allclose(Z, T[threshold](X @ D_learned.T, alpha), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("threshold", ["soft", "nonneg", "hard"])
def test_t1_gamma1_is_the_residual_form(X, D, alpha, threshold, kind):
    Tf = T[threshold]
    mu0 = X @ D.T
    G = D @ D.T - np.eye(D.shape[0])
    expected = Tf(mu0 - Tf(mu0, alpha) @ G, alpha)
    Xk, Dk = (torch.from_numpy(X), torch.from_numpy(D)) if kind == "torch" else (X, D)
    for form in ("gram", "factored"):
        for accelerate in (False, True):  # the first accelerated step is the exact one
            Z = lca(Xk, Dk, alpha, threshold=threshold, gamma=1.0, max_iter=1, form=form, accelerate=accelerate)
            np.testing.assert_allclose(np.asarray(Z), expected, rtol=1e-10, atol=1e-12)


def test_t2_follows_the_recursion(X, D_random, alpha):
    gamma = 0.3
    mu0 = X @ D_random.T
    G = D_random @ D_random.T - np.eye(D_random.shape[0])
    mu = mu0
    for _ in range(2):
        mu = mu + gamma * ((mu0 - soft_threshold(mu, alpha) @ G) - mu)
    Z = lca(X, D_random, alpha, gamma=gamma, max_iter=2, accelerate=False)
    np.testing.assert_allclose(Z, soft_threshold(mu, alpha), rtol=1e-10, atol=1e-12)


def test_default_gamma_is_one_over_L(X, D_random, alpha):
    L = sparsolve.inference.lipschitz(D_random)
    np.testing.assert_allclose(lca(X, D_random, alpha, max_iter=7),
                               lca(X, D_random, alpha, max_iter=7, gamma=1 / L), rtol=0, atol=0)


def test_hard_threshold_runs_and_is_certified_by_its_fixed_point_residual(X, D, alpha):
    tol = 1e-9
    Z, info = sparsolve.encode(X, D, alpha, solver="lca", threshold="hard", tol=tol, max_iter=20000,
                               return_info=True)
    assert np.isfinite(Z).all() and info.converged.all() and (info.gap <= tol).all()
    # an L0-like code: fewer, larger coefficients than the lasso, none of them below α
    nz = Z[Z != 0]
    assert (np.abs(nz) > alpha).all()
    # recompute the residual from Z alone: at a fixed point μ = z + c(z) and z = T_hard(μ)
    mu = Z + (X - Z @ D) @ D.T
    assert np.array_equal(hard_threshold(mu, alpha) != 0, Z != 0)
    delta = np.abs(hard_threshold(mu, alpha) + (X - hard_threshold(mu, alpha) @ D) @ D.T - mu).max(axis=1)
    assert (delta <= 1e-6 * np.maximum(np.abs(mu).max(axis=1), 1e-30)).all()
    # on its support z is the least-squares fit of x, the hallmark of a hard-threshold fixed point
    i = int(np.argmax((Z != 0).sum(axis=1)))
    S = Z[i] != 0
    z_ls = np.linalg.lstsq(D[S].T, X[i], rcond=None)[0]
    np.testing.assert_allclose(Z[i, S], z_ls, rtol=1e-5, atol=1e-8)


def test_hard_threshold_keeps_the_data_fit_of_the_lasso_with_fewer_atoms(X, D_learned, alpha):
    Zl = sparsolve.encode(X, D_learned, alpha, solver="cd", tol=1e-10)
    Zh = sparsolve.encode(X, D_learned, alpha, solver="lca", threshold="hard", tol=1e-8, max_iter=20000)
    err = lambda Z: ((X - Z @ D_learned) ** 2).sum()  # noqa: E731
    assert err(Zh) < err(Zl)


def test_gamma_is_used(X, D_random, alpha):
    Z1 = lca(X, D_random, alpha, gamma=0.05, max_iter=5)
    Z2 = lca(X, D_random, alpha, gamma=0.2, max_iter=5)
    assert not np.allclose(Z1, Z2)


def test_coherent_dictionary_is_not_mistaken_for_divergence(X):
    """With many coherent atoms the plain layer T(xDᵀ) overshoots F(0) by orders of
    magnitude; that start is no divergence, and the default γ = 1/L brings F down."""
    from sparsolve.data import natural_image_patches

    P = natural_image_patches(patch_size=8, n_patches=2048, seed=5)
    D = P / np.linalg.norm(P, axis=1, keepdims=True)
    alpha = 0.02
    Z0 = lca(X[:40], D, alpha, max_iter=0)
    F0 = sparsolve.objective(X[:40], D, Z0, alpha)
    assert (F0 > 1e4 * 0.5 * (X[:40] ** 2).sum(1)).any()  # the start the old test flagged
    Z = lca(X[:40], D, alpha, max_iter=50)  # certified (and tested for divergence) at steps 10, 20, ...
    F = sparsolve.objective(X[:40], D, Z, alpha)
    assert np.isfinite(Z).all() and F.sum() < 1e-2 * F0.sum()


def test_accelerated_is_the_default_and_its_first_step_is_exact(X, D_learned, alpha):
    np.testing.assert_array_equal(lca(X, D_learned, alpha, max_iter=9), lca(X, D_learned, alpha, max_iter=9,
                                                                            accelerate=True))
    assert not np.allclose(lca(X, D_learned, alpha, max_iter=9), lca(X, D_learned, alpha, max_iter=9,
                                                                     accelerate=False))


@pytest.mark.parametrize("positive", [False, True])
def test_accelerated_reaches_the_certified_optimum_in_far_fewer_iterations(X, D, D_learned, alpha, reference,
                                                                           positive):
    """Momentum on μ keeps LCA's fixed point (the lasso solution: gap, KKT and the float64
    reference) and takes about FISTA's iterations, far fewer than the exact dynamics."""
    kw = dict(positive=positive, tol=1e-10, max_iter=50000, return_info=True)
    Z, fast = sparsolve.encode(X, D, alpha, solver="lca", **kw)
    _, exact = sparsolve.encode(X, D, alpha, solver="lca", accelerate=False, **kw)
    _, fista = sparsolve.encode(X, D, alpha, solver="fista", **kw)
    assert fast.converged.all() and exact.converged.all()
    F = sparsolve.objective(X, D, Z, alpha)
    assert (sparsolve.duality_gap(X, D, Z, alpha, positive) <= 1e-9 * F).all()
    assert sparsolve.kkt_residual(X, D, Z, alpha, positive).max() <= 1e-3
    if not positive:
        np.testing.assert_allclose(Z, reference, atol=1e-5 * np.abs(reference).max())
    # 0.27 of the exact dynamics' iterations on the learned dictionary, 0.42 on the better
    # conditioned random one (z ≥ 0); 0.1 with 256 learned atoms on 8×8 patches (README)
    assert fast.n_iter.sum() < (0.4 if D is D_learned else 0.5) * exact.n_iter.sum()
    assert fast.n_iter.sum() < 1.5 * fista.n_iter.sum()


def test_a_step_beyond_one_over_L_runs_the_exact_dynamics(X, D_random, alpha):
    """Momentum diverges for γ in (1/L, 2/L), where the exact dynamics still converge
    (fit(solver="lca", gamma=0.5) did with 2/L = 0.586): there accelerate has no effect."""
    L = sparsolve.inference.lipschitz(D_random)
    gamma = 1.5 / L
    np.testing.assert_array_equal(lca(X, D_random, alpha, gamma=gamma, max_iter=40),
                                  lca(X, D_random, alpha, gamma=gamma, max_iter=40, accelerate=False))
    Z = sparsolve.encode(X, D_random, alpha, solver="lca", gamma=gamma, tol=1e-8, max_iter=50000)
    assert (sparsolve.duality_gap(X, D_random, Z, alpha) <= 1e-7 * sparsolve.objective(X, D_random, Z, alpha)).all()
