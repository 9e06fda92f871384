"""The support's Cholesky factor shared by cd and omp (sparsolve.inference._cholesky):
appending atoms in blocks and deleting them keeps L an exact Cholesky factor of
G_SS + δI, and the triangular solves agree with scipy's."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_triangular

from sparsolve.inference import _cholesky


def _check_factor(L, S, k, G, delta):
    keep = S[:k]
    assert len(set(keep.tolist())) == k
    M = G[np.ix_(keep, keep)] + delta * np.eye(k)
    Lk = np.tril(L[:k, :k])
    assert np.all(np.diag(Lk) > 0)
    np.testing.assert_allclose(Lk @ Lk.T, M, atol=1e-12 * np.abs(M).max())


@pytest.mark.parametrize("seed", range(4))
def test_factor_append_in_blocks_and_delete_anywhere(D_learned, seed):
    rng = np.random.default_rng(seed)
    G = D_learned @ D_learned.T
    delta = _cholesky.damping(G)
    m = G.shape[0]
    L = np.full((m, m), np.nan)  # entries the factor never wrote must never be read
    S = np.empty(m, dtype=np.int64)
    k = 0
    order = rng.permutation(m)
    taken = 0
    for _ in range(6):
        b = int(rng.integers(1, 12))
        k = _cholesky.factor_append(L, S, k, order[taken:taken + b].astype(np.int64), G, delta)
        taken += b
        _check_factor(L, S, k, G, delta)
        for _ in range(int(rng.integers(0, k))):
            k = _cholesky.factor_delete(L, S, k, int(rng.integers(0, k)))  # first, middle and last positions
            _check_factor(L, S, k, G, delta)


def test_triangular_solves_agree_with_scipy(D_learned):
    G = D_learned[:20] @ D_learned[:20].T + 1e-3 * np.eye(20)
    L = np.linalg.cholesky(G)
    rhs = np.random.default_rng(0).standard_normal(20)
    for k in (1, 7, 20):  # the solves use only the leading k×k block
        w = np.empty(20)
        _cholesky.forward_substitute(L, k, rhs, w)
        np.testing.assert_allclose(w[:k], solve_triangular(L[:k, :k], rhs[:k], lower=True), rtol=1e-10)
        _cholesky.back_substitute(L, k, w)  # Lᵀx = w, so x solves G_kk x = rhs
        np.testing.assert_allclose(w[:k], np.linalg.solve(G[:k, :k], rhs[:k]), rtol=1e-8)
