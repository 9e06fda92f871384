"""solver="cd" certifies the hard patches, those whose supports hold most of n_features
atoms, which the support's Cholesky factor (tests/test_cholesky.py) exists for."""
from __future__ import annotations

import numpy as np
import pytest

import sparsolve
from sparsolve.data import natural_image_patches
from sparsolve.inference import _cd_kernels as cd
from sparsolve.inference import _cholesky


def test_high_contrast_patches_with_large_supports(D_learned):
    """16×16-like difficulty on 8×8: an α small enough that supports fill most of the
    64 features, where plain CD crawls and the Newton steps must add and drop atoms."""
    X = natural_image_patches(8, 200, seed=5)
    alpha = 0.01
    Z, info = sparsolve.encode(X, D_learned, alpha, solver="cd", tol=1e-8, return_info=True)
    assert info.converged.all()
    assert (Z != 0).sum(axis=1).max() >= 40  # the hard case is really exercised
    gap = sparsolve.duality_gap(X, D_learned, Z, alpha) / sparsolve.objective(X, D_learned, Z, alpha)
    assert gap.max() <= 1e-8
    assert sparsolve.kkt_residual(X, D_learned, Z, alpha).max() <= 1e-3


def test_coordinate_descent_alone_when_the_support_outgrows_the_factor(D_learned):
    """With no room for the factor (a support larger than its capacity) the Newton
    steps are skipped and the sweeps must move the support atoms themselves."""
    X = natural_image_patches(8, 20, seed=6)
    alpha = 0.05
    G = D_learned @ D_learned.T
    Z = np.zeros((len(X), G.shape[0]))
    cap = 2
    for x, z in zip(X, Z):
        b = D_learned @ x
        c = b.copy()
        L = np.empty((cap, cap))
        S = np.empty(cap, dtype=np.int64)
        in_S = np.zeros(G.shape[0], dtype=np.bool_)
        _, rel_gap, ok = cd._solve_one(z, c, b, float(x @ x), G, alpha, False, 1e-8, 100_000,
                                       _cholesky.damping(G), 16, L, S, in_S)
        assert ok and rel_gap <= 1e-8
        assert not in_S.any()
    assert (Z != 0).sum(axis=1).max() > cap  # the factor really could not hold the support
    reference = sparsolve.encode(X, D_learned, alpha, solver="fista", tol=1e-10)
    np.testing.assert_allclose(Z, reference, atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_projected_step_priced_from_prefix_sums_equals_the_objective_change(D_learned, seed):
    """The Newton loop prices each trial step t from prefix sums over the atoms that
    cross zero by t; those prices must equal F(z + Δ) − F(z) computed directly."""
    rng = np.random.default_rng(seed)
    G = D_learned @ D_learned.T
    m = G.shape[0]
    alpha = 0.05
    k = 20
    S = rng.choice(m, k, replace=False).astype(np.int64)
    z = np.zeros(m)
    z[S] = rng.normal(size=k)
    b = rng.normal(size=m)
    c = b - z @ G
    cS = c[S].copy()
    d = rng.normal(size=k) * 1.5  # large enough that many atoms cross by t = 1
    Gd = G[np.ix_(S, S)] @ d
    C = np.empty(k, dtype=np.int64)
    tc = np.empty(k)
    n = cd._crossings(z, S, k, d, C, tc)
    assert n >= 3 and np.all(np.diff(tc[:n]) >= 0)
    P = np.empty((k + 1, 9))
    cd._path_terms(z, S, d, Gd, cS, G, C, n, P)
    s = np.sign(z[S])

    def F(v):  # the lasso objective up to the constant ½‖x‖², with b = xDᵀ
        return 0.5 * v @ G @ v - v @ b + alpha * np.abs(v).sum()

    for t in [1.0, 0.5, 0.3, tc[n // 2], 0.5 * (tc[0] + tc[1]), tc[0]]:
        q = int(np.searchsorted(tc[:n], t, side="right"))
        new = z.copy()
        new[S] += t * d
        new[S[C[:q]]] = 0.0
        assert np.all(np.sign(new[S][np.sign(new[S]) != 0]) == s[np.sign(new[S]) != 0])
        priced = cd._path_change(t, P[q], cS @ d, d @ Gd, s @ d, alpha)
        assert priced == pytest.approx(F(new) - F(z), rel=1e-9, abs=1e-12)
