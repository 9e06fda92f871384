"""Orthogonal matching pursuit as batch-OMP (Rubinstein, Zibulevsky & Elad 2008).

The L0 alternative to the lasso: for each sample, greedily select up to
``n_nonzero_coefs`` atoms,

    j_k = argmax_j |c_j|,   c = b − z G,   b = xDᵀ,   G = DDᵀ
    z_S = argmin ‖x − z_S D_S‖² = (G_SS)⁻¹ b_S

and stop early once ‖x − zD‖² ≤ tol · ‖x‖².  Batch-OMP never forms the residual:
G_SS is factored as L Lᵀ and L grows by one row per selection (a Cholesky
update, O(k²)), and c = b − G_S z_S costs O(m·k).

Why numba: the selection is data-dependent and sequential per sample; compiled,
the samples run in parallel with ``prange``.  ``alpha`` plays no part.
"""
from __future__ import annotations

import numbers

import numpy as np
from numba import njit, prange

from .. import backend
from ..checks import positive_int
from ._cholesky import back_substitute, forward_substitute
from .base import Solver
from .loop import Result


@njit(parallel=True, cache=True)
def _omp_batch(G, XDt, xsq, n_nonzero, tol, Z, n_iter, resid, converged):
    """Every row of XDt = XDᵀ (b = xDᵀ per sample) in parallel; Z, n_iter, resid in place."""
    n, m = XDt.shape
    for i in prange(n):
        b = XDt[i]
        c = b.copy()
        idx = np.empty(n_nonzero, dtype=np.int64)
        L = np.zeros((n_nonzero, n_nonzero), dtype=G.dtype)
        rhs = np.empty(n_nonzero, dtype=G.dtype)
        gamma = np.zeros(0, dtype=G.dtype)
        k = 0
        r2 = xsq[i]
        while k < n_nonzero and r2 > tol * xsq[i]:
            j = 0
            best = -1.0
            for q in range(m):
                if abs(c[q]) > best:
                    best = abs(c[q])
                    j = q
            if best <= 0.0:
                break
            if k == 0:
                L[0, 0] = np.sqrt(G[j, j])
            else:
                col = np.empty(k, dtype=G.dtype)
                for q in range(k):
                    col[q] = G[idx[q], j]
                forward_substitute(L, k, col, L[k])  # the new row of the factor, in place
                d = G[j, j] - np.dot(L[k, :k], L[k, :k])
                if d <= 1e-10 * G[j, j]:  # the atom is (numerically) in the span already
                    break
                L[k, k] = np.sqrt(d)
            idx[k] = j
            rhs[k] = b[j]
            k += 1
            gamma = np.empty(k, dtype=G.dtype)
            forward_substitute(L, k, rhs, gamma)
            back_substitute(L, k, gamma)
            for q in range(m):
                acc = b[q]
                for s in range(k):
                    acc -= G[idx[s], q] * gamma[s]
                c[q] = acc
            # ‖r‖² = ‖x‖² − ⟨z_S, b_S⟩ at the least-squares solution
            r2 = xsq[i] - np.dot(gamma, rhs[:k])
        for s in range(k):
            Z[i, idx[s]] = gamma[s]
        n_iter[i] = k
        resid[i] = r2 / xsq[i] if xsq[i] > 0 else 0.0
        converged[i] = True


class OMP(Solver):
    """Batch-OMP (module docstring).  Option: ``n_nonzero_coefs``, the most atoms per
    sample (default: a tenth of the atoms); ``max_iter``, when given, caps it too.
    Its ``criterion`` is the relative residual energy ‖x − zD‖²/‖x‖²."""

    name = "omp"
    runs_on_host = True
    criterion = "residual_energy"
    OPTIONS = {"n_nonzero_coefs": None}
    OPTION_TYPES = {"n_nonzero_coefs": int}

    @classmethod
    def _check(cls, opts, positive, X, D):
        if positive:
            raise ValueError("solver='omp' does not support positive=True; use 'cd', 'fista' or 'lca'")
        k = opts["n_nonzero_coefs"]
        if k is not None and D is None:  # fit's early check, before the atoms are known
            positive_int(k, "n_nonzero_coefs", "the most atoms per sample")
        elif k is not None:
            top = min(D.shape)
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= top:
                raise ValueError(f"n_nonzero_coefs={k} must lie in [1, min(n_atoms, n_features)] = [1, {top}]")

    def prepare(self, D, form):
        Dh = backend.to_numpy(D)
        return {"G": np.ascontiguousarray(Dh @ Dh.T), "D": Dh}

    def solve(self, X, D, alpha, *, init, tol, max_iter, form, shared, row_offset=0):
        """Up to ``n_nonzero_coefs`` nonzeros per sample; ``alpha`` and ``init`` play no part."""
        G, Dh = shared["G"], shared["D"]
        Xh = backend.to_numpy(X)
        m = Dh.shape[0]
        k = max(1, m // 10) if self.n_nonzero_coefs is None else int(self.n_nonzero_coefs)
        k = min(k, max_iter) if max_iter is not None else k
        XDt = np.ascontiguousarray(Xh @ Dh.T)
        xsq = np.einsum("ij,ij->i", Xh, Xh)
        n = Xh.shape[0]
        Z = np.zeros((n, m), dtype=Xh.dtype)
        n_iter = np.zeros(n, dtype=np.int64)
        resid = np.zeros(n, dtype=np.float64)
        converged = np.zeros(n, dtype=np.bool_)
        _omp_batch(G, XDt, xsq, k, float(tol), Z, n_iter, resid, converged)
        return Result(backend.match(Z, X), n_iter, resid, converged)
