"""Coordinate descent on the Gram matrix, one numba thread per sample.

Why numba: the update is sequential in the coordinates -- each one depends on the
last -- so it cannot be phrased as the big matrix products numpy and torch are
good at.  Compiled, a sample's sweep costs O(m) checks plus O(m) per coordinate
that moves, and samples run in parallel with ``prange``.

For one sample, with b = xDᵀ, G = DDᵀ and the correlation c = b − zG kept up to
date, a sweep visits j = 1..m:

    z_j ← T_{α/G_jj}( z_j + c_j / G_jj )          (exact minimisation in z_j)
    c   ← c − (z_j^new − z_j^old) · G_j           (only when z_j moved)

A coordinate at zero with |c_j| ≤ α stays at zero, so most of a sweep is a
comparison.  Plain CD crawls when the support is nearly collinear (k close to
n_features), so after each sweep the solver also takes damped Newton steps on
the current support (``_support_newton``), each cut back at the first sign
change, until one is taken in full.  Sweeps find the atoms that belong in the
support, Newton steps solve on it exactly: once the support is right this lands
on the solution to rounding error, as LARS would.  Because c is exact after every sweep, the duality gap of
:mod:`sparsolve.gap` costs O(m) and certifies each sample after each sweep.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from ..gap import gap_from_terms
from .loop import Result

_gap_from_terms = njit(cache=True)(gap_from_terms)


@njit(cache=True)
def _certify(z, c, b, xsq, alpha, positive):
    zb = 0.0
    zc = 0.0
    l1 = 0.0
    cmax = 0.0
    for j in range(z.shape[0]):
        zb += z[j] * b[j]
        zc += z[j] * c[j]
        l1 += abs(z[j])
        cj = c[j] if positive else abs(c[j])
        if cj > cmax:
            cmax = cj
    s = max(1.0, cmax / alpha) if alpha > 0 else (1.0 if cmax == 0 else np.inf)
    # ‖r‖² = ‖x‖² − 2⟨z,b⟩ + ⟨z,zG⟩ and ⟨z,zG⟩ = ⟨z,b⟩ − ⟨z,c⟩
    return _gap_from_terms(xsq - zb - zc, xsq - zb, l1, s, alpha)


@njit(cache=True)
def _sweep(z, c, G, alpha, positive):
    """One cyclic pass of exact coordinate minimisation; returns whether the support changed."""
    changed = False
    for j in range(z.shape[0]):
        gjj = G[j, j]
        u = z[j] + c[j] / gjj
        t = alpha / gjj
        if u > t:
            new = u - t
        elif u < -t and not positive:
            new = u + t
        else:
            new = 0.0
        d = new - z[j]
        if d != 0.0:
            if (new == 0.0) != (z[j] == 0.0):
                changed = True
            z[j] = new
            for k in range(c.shape[0]):
                c[k] -= d * G[j, k]
    return changed


@njit(cache=True)
def _support_newton(z, c, G, alpha, delta):
    """A damped Newton step on the current support S and sign pattern s.

    There the lasso is the quadratic Q(z_S) = ½ z_S G_SS z_Sᵀ − z_S·(b_S − αs), whose
    gradient is αs − c_S.  The step solves (G_SS + δI) d = c_S − αs -- δ keeps
    the solve defined when the support is collinear (k > n_features) -- and moves
    z_S + t·d with t = min(1, first sign change).  Since ∇Q·d = −d(G_SS + δI)dᵀ < 0
    and Q along d is minimised at t* = d(G_SS+δI)dᵀ / dG_SSdᵀ ≥ 1, the objective
    falls.  When S is the solution's support one step lands on it, as a LARS step
    would; when S is collinear the step drops the atom whose sign flips first.
    Returns the step t taken (1 for a full step, 0 when nothing moved because
    the support is empty or the factorisation broke down)."""
    m = z.shape[0]
    k = 0
    for j in range(m):
        if z[j] != 0.0:
            k += 1
    if k == 0:
        return 0.0
    S = np.empty(k, dtype=np.int64)
    q = 0
    for j in range(m):
        if z[j] != 0.0:
            S[q] = j
            q += 1
    L = np.empty((k, k), dtype=G.dtype)  # Cholesky factor of G_SS + δI
    for r in range(k):
        for s_ in range(r + 1):
            acc = G[S[r], S[s_]]
            for t in range(s_):
                acc -= L[r, t] * L[s_, t]
            if r == s_:
                acc += delta
                if acc <= 0.0:
                    return 0.0
                L[r, r] = np.sqrt(acc)
            else:
                L[r, s_] = acc / L[s_, s_]
    d = np.empty(k, dtype=G.dtype)
    for r in range(k):
        acc = c[S[r]] - (alpha if z[S[r]] > 0 else -alpha)
        for t in range(r):
            acc -= L[r, t] * d[t]
        d[r] = acc / L[r, r]
    for r in range(k - 1, -1, -1):
        acc = d[r]
        for t in range(r + 1, k):
            acc -= L[t, r] * d[t]
        d[r] = acc / L[r, r]
    step = 1.0
    for r in range(k):
        zr = z[S[r]]
        if (zr + d[r] > 0) != (zr > 0):  # crosses zero: stop at the orthant's face
            frac = -zr / d[r]
            if frac < step:
                step = frac
    for r in range(k):
        j = S[r]
        zr = z[j]
        new = zr + step * d[r]
        if new == 0.0 or (new > 0) != (zr > 0):
            new = 0.0
        dz = new - zr
        if dz != 0.0:
            z[j] = new
            for t in range(m):
                c[t] -= dz * G[j, t]
    return step


@njit(cache=True)
def _active_set_solve(z, c, G, alpha, delta, max_steps):
    """Newton steps until one is taken in full: each cut step drops an atom, so
    this ends on the exact minimiser over a sub-support, or after ``max_steps``."""
    for _ in range(max_steps):
        step = _support_newton(z, c, G, alpha, delta)
        if step == 1.0 or step == 0.0:
            return


@njit(parallel=True, cache=True)
def _cd_batch(G, B, xsq, Z, alpha, positive, tol, max_iter, delta, n_iter, gap, converged):
    n, m = B.shape
    for i in prange(n):
        z = Z[i]
        b = B[i]
        c = b.copy()
        for k in range(m):
            if z[k] != 0.0:
                zk = z[k]
                for j in range(m):
                    c[j] -= zk * G[k, j]
        it = 0
        while True:
            g, F = _certify(z, c, b, xsq[i], alpha, positive)
            if g <= tol * F:
                converged[i] = True
                break
            if it >= max_iter:
                break
            _sweep(z, c, G, alpha, positive)
            _active_set_solve(z, c, G, alpha, delta, 4)
            it += 1
        n_iter[i] = it
        gap[i] = g / F if F > 0 else 0.0


def _damping(G):
    """δ for the Newton step: a thousand rounding units of the largest diagonal entry."""
    return G.dtype.type(1e3 * np.finfo(G.dtype).eps * float(np.max(np.diag(G))))


OPTIONS = {}


def solve(X, D, alpha, *, positive, init, tol, max_iter, G=None, **_):
    """Lasso codes by Gram-form coordinate descent (host arrays; see the module doc)."""
    Dh = backend.to_numpy(D)
    Xh = backend.to_numpy(X)
    Gh = Dh @ Dh.T if G is None else backend.to_numpy(G)
    Z = np.array(backend.to_numpy(init), dtype=Xh.dtype, order="C", copy=True)
    B = np.ascontiguousarray(Xh @ Dh.T)
    xsq = np.einsum("ij,ij->i", Xh, Xh)
    n = Xh.shape[0]
    n_iter = np.zeros(n, dtype=np.int64)
    gap = np.zeros(n, dtype=np.float64)
    converged = np.zeros(n, dtype=np.bool_)
    _cd_batch(np.ascontiguousarray(Gh), B, xsq, Z, Xh.dtype.type(alpha), positive, float(tol),
              int(max_iter), _damping(Gh), n_iter, gap, converged)
    return Result(backend.like(Z, X), n_iter, gap, converged)
