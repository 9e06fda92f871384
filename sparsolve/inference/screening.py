"""Gap-safe screening (Fercoq, Gramfort & Salmon 2015; Ndiaye et al. 2017) and the working sets
it prunes, for the factored form of coordinate descent (:mod:`.working_sets`).

The dual objective G(θ) = ⟨x, θ⟩ − ½‖θ‖² is 1-strongly concave, so any dual-feasible θ lies
within √(2·gap) of the dual optimum θ*, gap = F(z) − G(θ).  At the optimum an atom can be
active only where its constraint is tight, |⟨θ*, d_j⟩| = α (⟨θ*, d_j⟩ = α when z ≥ 0), so

    |⟨θ, d_j⟩| + ‖d_j‖·√(2·gap) < α     ⇒     z*_j = 0                  (the sphere test)

(⟨θ, d_j⟩ itself in place of its absolute value when z ≥ 0).  With θ = r/s (:mod:`sparsolve.gap`),
⟨θ, d_j⟩ = c_j/s; the bound on the rounding of the computed c_j (:mod:`.certificate`) is added to
it, and the gap is the certificate's upper bound, so the test stays safe for computed numbers:
an atom it removes is zero at the optimum.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def screened(cj, margin, scale, dnorm, radius, alpha, positive):
    """The sphere test for one atom: c_j its computed correlation, ``margin`` the bound on its
    rounding, ``scale`` the dual scale s, ``dnorm`` = ‖d_j‖, ``radius`` = √(2·gap)."""
    v = cj if positive else abs(cj)
    return (v + margin) / scale + dnorm * radius < alpha


@njit(parallel=True, cache=True)
def screen(C, margin, scale, gap, dnorm, alpha, positive, out):
    """out[r, j] = the sphere test for atom j of row r (C: rows × atoms; margin, scale, gap: per row)."""
    for r in prange(C.shape[0]):
        radius = np.sqrt(2.0 * max(gap[r], 0.0))
        for j in range(C.shape[1]):
            out[r, j] = screened(C[r, j], margin[r], scale[r], dnorm[j], radius, alpha, positive)


@njit(parallel=True, cache=True)
def grow(C, crow, Z, zrow, margin, scale, gap, dnorm, alpha, positive, add, W, W_len, n_screened):
    """The next working set of each row q: the support of Z[zrow[q]] and the ``add[q]`` atoms off the
    support with the largest correlations (c_j, or |c_j| for signed codes; C[crow[q]]) that the
    sphere test does not remove, largest first; written to W[q, :W_len[q]].  n_screened[q]: how
    many of the atoms examined for the set the test removed.  Atoms whose correlation is ≤ 0
    (signed: = 0) never join: their coordinate cannot move from 0.

    One pass over the atoms a row: the best ``add`` candidates are kept sorted in a short list
    (an insertion each time one beats the list's smallest, about add·ln(m/add) insertions for m
    atoms), not found by sorting all m; only an atom that would enter the list is tested."""
    m = C.shape[1]
    for q in prange(crow.shape[0]):
        i = zrow[q]
        r = crow[q]
        radius = np.sqrt(2.0 * max(gap[q], 0.0))
        k = 0
        for j in range(m):
            if Z[i, j] != 0.0:
                W[q, k] = j
                k += 1
        want = max(0, min(add[q], W.shape[1] - k))
        best = np.empty(max(want, 1), dtype=np.float64)  # ascending: best[0] is the smallest kept
        atom = np.empty(max(want, 1), dtype=np.int64)
        n = 0
        dropped = 0
        floor = 0.0  # an atom must beat this to enter: 0 until the list is full, then its smallest
        for j in range(m):
            v = C[r, j] if positive else abs(C[r, j])
            if v <= floor or want == 0:
                continue
            if Z[i, j] != 0.0:
                continue
            if screened(C[r, j], margin[q], scale[q], dnorm[j], radius, alpha, positive):
                dropped += 1
                continue
            if n < want:  # insert into the ascending list, growing it
                t = n
                n += 1
                while t > 0 and best[t - 1] > v:
                    best[t] = best[t - 1]
                    atom[t] = atom[t - 1]
                    t -= 1
            else:  # drop the smallest, insert in order
                t = 0
                while t + 1 < n and best[t + 1] < v:
                    best[t] = best[t + 1]
                    atom[t] = atom[t + 1]
                    t += 1
            best[t] = v
            atom[t] = j
            if n == want:
                floor = best[0]
        for t in range(n):  # largest first
            W[q, k + t] = atom[n - 1 - t]
        W_len[q] = k + n
        n_screened[q] = dropped
