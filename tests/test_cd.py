"""The support factor inside solver="cd": appending atoms in blocks and deleting them
keeps L an exact Cholesky factor of G_SS + δI; and cd certifies the hard patches,
those whose supports hold most of n_features atoms, which the factor exists for."""
from __future__ import annotations

import numpy as np
import pytest

import sparsolve
from sparsolve.data import natural_image_patches
from sparsolve.inference import cd


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
    delta = cd._damping(G)
    m = G.shape[0]
    L = np.full((m, m), np.nan)  # entries the factor never wrote must never be read
    S = np.empty(m, dtype=np.int64)
    k = 0
    order = rng.permutation(m)
    taken = 0
    for _ in range(6):
        b = int(rng.integers(1, 12))
        k = cd._factor_append(L, S, k, order[taken:taken + b].astype(np.int64), G, delta)
        taken += b
        _check_factor(L, S, k, G, delta)
        for _ in range(int(rng.integers(0, k))):
            k = cd._factor_delete(L, S, k, int(rng.integers(0, k)))  # first, middle and last positions
            _check_factor(L, S, k, G, delta)


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
