"""The Cholesky factor of a support's Gram matrix, G_SS = L Lᵀ (L lower triangular),
kept up to date as atoms join and leave, and the triangular solves with it: shared by
coordinate descent's Newton steps (:mod:`.cd`) and batch-OMP (:mod:`.omp`).

Here ``L`` is always a Cholesky factor (never a Lipschitz constant) and ``S`` the
atoms of the support, in the factor's order.  All functions are numba kernels that
work in place on the caller's workspace.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Let LLVM reorder sums so that the O(k²) loops vectorise; no NaN/Inf-assuming flags,
# because the comparisons with zero decide supports.
FAST = {"reassoc", "contract", "arcp"}


@njit(cache=True, fastmath=FAST)
def factor_delete(L, S, k, i):
    """Remove position i from the factor: drop row i of L, and the rows below it,
    moved up, each carry one entry past the diagonal; Givens rotations of the
    column pairs (j, j+1), j = i..k−2, zero those (a rotation from the right keeps
    LLᵀ).  Row q needs the rotations i..q−1 in turn, a chain of dependent
    multiply-adds, so the rows go two at a time: their chains are independent and
    the processor overlaps them.  O((k−i)²); 11 µs at k ≈ 150 where rotating
    whole columns took 36 µs and the rank-one update that preceded this 56 µs."""
    cs = np.empty(max(k - 1 - i, 0), dtype=L.dtype)
    sn = np.empty_like(cs)
    q = i
    while q + 1 < k - 1:  # new rows q and q+1, from old rows q+1 and q+2
        s0 = q + 1
        s1 = q + 2
        for t in range(i):
            L[q, t] = L[s0, t]
            L[q + 1, t] = L[s1, t]
        S[q] = S[s0]
        S[q + 1] = S[s1]
        a0 = L[s0, i]
        a1 = L[s1, i]
        for j in range(i, q):
            c = cs[j - i]
            s = sn[j - i]
            b0 = L[s0, j + 1]
            b1 = L[s1, j + 1]
            L[q, j] = c * a0 + s * b0
            L[q + 1, j] = c * a1 + s * b1
            a0 = c * b0 - s * a0
            a1 = c * b1 - s * a1
        # rotation q from row q, applied to row q+1, then rotation q+1 from row q+1
        b0 = L[s0, q + 1]
        h = np.sqrt(a0 * a0 + b0 * b0)
        c = a0 / h
        s = b0 / h
        cs[q - i] = c
        sn[q - i] = s
        L[q, q] = h
        b1 = L[s1, q + 1]
        L[q + 1, q] = c * a1 + s * b1
        a1 = c * b1 - s * a1
        b1 = L[s1, q + 2]
        h = np.sqrt(a1 * a1 + b1 * b1)
        cs[q + 1 - i] = a1 / h
        sn[q + 1 - i] = b1 / h
        L[q + 1, q + 1] = h
        q += 2
    if q < k - 1:  # one row left
        src = q + 1
        for t in range(i):
            L[q, t] = L[src, t]
        S[q] = S[src]
        a = L[src, i]
        for j in range(i, q):
            b = L[src, j + 1]
            L[q, j] = cs[j - i] * a + sn[j - i] * b
            a = cs[j - i] * b - sn[j - i] * a
        b = L[src, q + 1]
        L[q, q] = np.sqrt(a * a + b * b)
    return k - 1


@njit(cache=True, fastmath=FAST)
def factor_append(L, S, k, new, G, delta):
    """Grow the factor by the atoms ``new`` at once.  Their rows of L solve
    L_SS yᵀ = G_S,new together, so that each row of L_SS is read once for all of
    them (appending one at a time read all of L_SS once per atom); each new row
    then finishes as a row of the Cholesky factor, with L_kk ≥ √δ.  O(k²·b + k·b²)
    for b atoms."""
    b = new.shape[0]
    for q in range(b):
        for r in range(k):
            L[k + q, r] = G[new[q], S[r]]
    for r in range(k):
        lrr = L[r, r]
        for q in range(b):
            row = k + q
            acc = L[row, r]
            for t in range(r):
                acc -= L[r, t] * L[row, t]
            L[row, r] = acc / lrr
    for q in range(b):
        row = k + q
        for p in range(q):
            col = k + p
            acc = G[new[q], new[p]]
            for t in range(col):
                acc -= L[col, t] * L[row, t]
            L[row, col] = acc / L[col, col]
        acc = G[new[q], new[q]] + delta
        for t in range(row):
            acc -= L[row, t] * L[row, t]
        L[row, row] = np.sqrt(max(acc, delta))  # ≥ δ in exact arithmetic; rounding must not break it
        S[row] = new[q]
    return k + b


@njit(cache=True, fastmath=FAST)
def forward_substitute(L, k, rhs, out):
    """Solve L[:k,:k] w = rhs[:k] into ``out`` (forward substitution, by rows)."""
    for r in range(k):
        acc = rhs[r]
        for t in range(r):
            acc -= L[r, t] * out[t]
        out[r] = acc / L[r, r]


@njit(cache=True, fastmath=FAST)
def back_substitute(L, k, d):
    """Solve Lᵀx = d in place, by rows of L.  Four rows at a time: their 4×4
    diagonal block first, then one pass over the entries left of it, so that each
    d[t] is loaded and stored once per four rows (3× faster at k = 175)."""
    r = k - 1
    while r >= 3:
        d[r] /= L[r, r]
        d[r - 1] = (d[r - 1] - L[r, r - 1] * d[r]) / L[r - 1, r - 1]
        d[r - 2] = (d[r - 2] - L[r, r - 2] * d[r] - L[r - 1, r - 2] * d[r - 1]) / L[r - 2, r - 2]
        d[r - 3] = (d[r - 3] - L[r, r - 3] * d[r] - L[r - 1, r - 3] * d[r - 1]
                    - L[r - 2, r - 3] * d[r - 2]) / L[r - 3, r - 3]
        d0 = d[r]
        d1 = d[r - 1]
        d2 = d[r - 2]
        d3 = d[r - 3]
        for t in range(r - 3):
            d[t] -= L[r, t] * d0 + L[r - 1, t] * d1 + L[r - 2, t] * d2 + L[r - 3, t] * d3
        r -= 4
    while r >= 0:
        d[r] /= L[r, r]
        for t in range(r):
            d[t] -= L[r, t] * d[r]
        r -= 1


def damping(G):
    """δ for the Newton step: a thousand rounding units of the largest diagonal entry."""
    return G.dtype.type(1e3 * np.finfo(G.dtype).eps * float(np.max(np.diag(G))))
