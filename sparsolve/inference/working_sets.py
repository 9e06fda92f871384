"""Coordinate descent without the Gram matrix: batched working sets, cd's factored form.

At interpretability width (thousands to tens of thousands of atoms, tens active per sample) the
Gram form costs what the support does not need: G = DDᵀ takes m²p multiply-adds a batch (4.3e9
at m = 4,096, p = 256, more than the rest of a fit step), and each coordinate move updates all m
correlations.  Here the work scales with the support.  Rounds, over the rows not yet certified:

1. the residual r = x − zD from the nonzeros of z, in float64, and the correlation c = rDᵀ, one
   product of the rows by the atoms (the cost of one FISTA step): the certificate of the codes
   as they are (:mod:`.certificate`, a rigorous upper bound) and the KKT check in one.  A row
   with gap ≤ tol·F(z) is done;
2. every other row gets a working set W: its support, and the atoms off it with the largest
   correlations c_j (|c_j| for signed codes) that gap-safe screening does not rule out
   (:mod:`.screening`), ``first`` of them in the first round and as many as the last set held
   after that (so the set doubles, as in Celer and skglm);
3. on W alone the lasso is solved by cd's per-sample kernel (:func:`._cd_kernels._solve_one`: sweeps, and
   Newton steps on the support's Cholesky factor), from the codes so far, in float64 on

       G_WW = D_W D_Wᵀ   and   b_W = x D_Wᵀ,   formed for the row by BLAS (|W|²p multiply-adds),

   to a relative gap of ``tol``/3 (the sub-problem's gap in float64, so the float32 codes it
   writes back keep room under tol);
4. back to 1.  Once W holds the support of the solution, the sub-problem's solution is the
   whole problem's, and the next check certifies it.

A row stops unconverged when its sweeps reach ``max_iter`` (counted over all its rounds), or
when its working set cannot grow (no atom left that is not screened out or already in it).
The codes come back in X's dtype; every certificate is recomputed from them (never a running
quantity), so what is reported is the gap of what is returned.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import screening
from ._cd_kernels import _correlation, _solve_one
from .certificate import certify

#: Atoms in a row's first working set (besides its support): L0 is tens at interpretability
#: width, and a set too small costs a round (one product with D), one too large costs |W|²p.
FIRST = 32
#: Rounds before a row that is still not certified stops (each round at least doubles its set).
MAX_ROUNDS = 64
#: Below this tol the Gram blocks are formed in float64; above it in float32 first, and in float64
#: for a row that the float32 blocks leave short of tol (their rounding moves c by about u·√p·‖z‖,
#: a relative gap of about that over α: 7e-6 at fit's α = 0.2, 4e-5 at α = 0.05).
PRECISE_BELOW = 1e-5
# The sub-problem's target, as a share of tol: its gap is computed in float64, the codes it writes
# back are rounded to X's dtype, and the check's rounding margin is added; a third leaves room.
_INNER = 1.0 / 3.0


@njit(cache=True)
def _gram_block(D, x, idx, k, precise):
    """(G, b) = (D_W D_Wᵀ, x D_Wᵀ) in float64 for the k atoms idx[:k], by BLAS on the gathered rows:
    in float64 when ``precise``, else in float32 (PRECISE_BELOW; the certificate never uses them)."""
    p = D.shape[1]
    if precise:
        Dw = np.empty((k, p), dtype=np.float64)
        for a in range(k):
            Dw[a, :] = D[idx[a], :]
        G = np.dot(Dw, Dw.T)
        b = np.dot(Dw, x)
    else:
        Dw32 = np.empty((k, p), dtype=np.float32)
        for a in range(k):
            Dw32[a, :] = D[idx[a], :]
        G = np.dot(Dw32, Dw32.T).astype(np.float64)
        b = np.dot(Dw32, x.astype(np.float32)).astype(np.float64)
    return G, b


@njit(parallel=True, cache=True)
def _subproblems(D, X, Z, rows, W, W_len, alpha, positive, tol, max_iter, cap, n_chunks, n_iter, precise):
    """The lasso on each row's working set (module docstring, step 3), in place in Z; n_iter counts sweeps."""
    n = rows.shape[0]
    p = X.shape[1]
    per_chunk = (n + n_chunks - 1) // n_chunks
    eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    for chunk in prange(n_chunks):
        for q in range(chunk * per_chunk, min(n, (chunk + 1) * per_chunk)):
            i = rows[q]
            k = W_len[q]
            budget = max_iter - n_iter[i]
            if k == 0 or budget <= 0:
                continue
            idx = W[q, :k]
            x = np.empty(p, dtype=np.float64)
            xsq = 0.0
            for f in range(p):
                x[f] = X[i, f]
                xsq += x[f] * x[f]
            G, b = _gram_block(D, x, idx, k, precise[q])
            z = np.empty(k, dtype=np.float64)
            top = 0.0
            for a in range(k):
                z[a] = Z[i, idx[a]]
                top = max(top, G[a, a])
            c = np.empty(k, dtype=np.float64)
            _correlation(z, b, G, c)
            width = min(k, cap)
            L = np.empty((width, width), dtype=np.float64)
            S = np.empty(width, dtype=np.int64)
            in_S = np.zeros(k, dtype=np.bool_)
            # the Newton steps' damping, a thousand rounding units of the largest diagonal entry in the
            # block's own precision: a float32 block of more atoms than features is singular, and its
            # rounding (~1e-7) makes it indefinite, which float64's δ left the support's factor NaN
            eps = eps64 if precise[q] else eps32
            it, _, _ = _solve_one(z, c, b, xsq, G, alpha, positive, tol, budget, 1e3 * eps * top, 16, L, S, in_S)
            n_iter[i] += it
            for a in range(k):
                Z[i, idx[a]] = z[a]


def solve(X, D, alpha, positive, init, tol, max_iter, *, first=FIRST, stats=None):
    """Codes for the rows of X (host numpy, C-contiguous) under D from ``init``: (Z, n_iter,
    rel_gap, converged), see the module docstring.  ``stats``, a dict, receives the rounds, the
    rows each round checked, the working-set sizes and the atoms screening removed."""
    n, p = X.shape
    m = D.shape[0]
    Z = np.array(init, dtype=X.dtype, order="C", copy=True)
    dnorm = np.sqrt(np.einsum("ij,ij->i", D, D, dtype=np.float64))
    dmax = float(dnorm.max(initial=0.0))
    D64 = D.astype(np.float64) if D.dtype != np.float64 and tol < 1e-3 else None
    n_iter = np.zeros(n, dtype=np.int64)
    rel_gap = np.full(n, np.nan)
    converged = np.zeros(n, dtype=bool)
    size = np.zeros(n, dtype=np.int64)
    precise = np.full(n, tol < PRECISE_BELOW)  # per row: Gram blocks in float64
    last_gap = np.full(n, np.inf)
    limit = min(m, max(2 * first, 4 * p))  # a working set never outgrows this (a support hardly exceeds p)
    cap = min(limit, max(64, 2 * p))  # the support's Cholesky factor, as cd's
    n_chunks = lambda rows: min(max(rows, 1), 16 * numba.get_num_threads())  # noqa: E731
    rows = np.arange(n, dtype=np.int64)
    rounds = 0
    while rows.size:
        cert = certify(X, D, Z, alpha, positive, rows=rows, tol=tol, dmax=dmax, D64=D64)
        ok = cert.gap <= tol * cert.F
        rel_gap[rows] = cert.rel_gap
        converged[rows] = ok
        if stats is not None:
            stats.setdefault("checked", []).append(int(rows.size))
        go = ~ok & (n_iter[rows] < max_iter) & np.isfinite(cert.F) & (rounds < MAX_ROUNDS)
        q = np.flatnonzero(go)
        if not q.size:
            break
        nxt = rows[q]
        add = np.maximum(first, size[nxt])
        support = (Z[nxt] != 0).sum(axis=1)
        W = np.empty((q.size, min(m, max(limit, int((support + add).max())))), dtype=np.int64)
        W_len = np.zeros(q.size, dtype=np.int64)
        dropped = np.zeros(q.size, dtype=np.int64)
        screening.grow(cert.C, q.astype(np.int64), Z, nxt, cert.margin[q], cert.scale[q], cert.gap[q], dnorm,
                       float(alpha), bool(positive), add, W, W_len, dropped)
        # a row whose gap stopped falling, or whose set cannot grow (no atom left to add), goes on with
        # float64 blocks: the float32 blocks' rounding may be what keeps it from tol (their error in c,
        # about u·√p·‖z‖, counts against α); once on float64 and unable to grow, it cannot get further
        stuck = ((W_len <= support) | (cert.gap[q] > 0.5 * last_gap[nxt])) & ~precise[nxt]
        last_gap[nxt] = cert.gap[q]
        precise[nxt[stuck]] = True
        grew = (W_len > support) | stuck
        if stats is not None:
            stats.setdefault("set_size", []).append(float(W_len.mean()))
            stats.setdefault("screened", []).append(float(dropped.mean()))
        size[nxt] = W_len
        live = np.flatnonzero(grew | (rounds == 0))
        if not live.size:
            break
        _subproblems(D, X, Z, nxt[live], W[live], W_len[live], float(alpha), bool(positive), tol * _INNER,
                     int(max_iter), cap, n_chunks(live.size), n_iter, precise[nxt[live]])
        rows = nxt[live]
        rounds += 1
    if stats is not None:
        stats["rounds"] = rounds
    return Z, n_iter, rel_gap, converged
