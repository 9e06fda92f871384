"""The certificate of codes as they are returned, in a precision that resolves it (host arrays).

For each row, with r = x − zD and c = rDᵀ (see :mod:`sparsolve.gap`),

    gap = F(z) − G(θ),   θ = r / s,   s = max(1, ‖c‖∞ / α)        (max(1, max_j c_j / α) when z ≥ 0)

and F(z) − F* ≤ gap.  A solver's running quantities drift from the codes it finally returns
(coordinate descent updates c in place over thousands of coordinate moves: in float32 a
certificate read from that c said 4e-7 where the codes' own gap was 5e-5), and a gap of 1e-6·F
is a difference of two numbers of size F, which float32 cannot resolve.  So the certificate is
recomputed here from the returned codes:

* r, ‖r‖², ⟨x, r⟩ and ‖z‖₁ in float64.  A product of two float32 numbers is exact in float64,
  so these carry only float64's rounding of the sums;
* c = rDᵀ in the data's precision (one product: the cost of one iteration), with a bound on
  its rounding added to max|c_j| before the dual scale is taken.  For r rounded to the data's
  type and a dot product of p terms (Higham, *Accuracy and Stability*, §3.1),

      |fl(c_j) − c_j| ≤ (u + γ_p) ‖r‖ ‖d_j‖,    γ_p = p·u / (1 − p·u),   u the unit roundoff,

  so θ = r/s stays feasible for the exact c, and the gap is an upper bound on F(z) − F*, not
  an estimate.  In float32 at p = 256 the margin is 1.5e-5·‖r‖, a relative gap of about
  1.5e-5·‖r‖/α at most: below fit's tol, and below encode's default 1e-4 for most rows;
* where the margin decides between a row's gap and ``tol``, or adds more than a tenth of tol to
  it, that row's c is recomputed in float64 (exact for the codes as returned: no margin).

The rows' residuals are read from the nonzeros of z only (a numba kernel), so at a few dozen
nonzeros in thousands of atoms the check costs the one product c = rDᵀ.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..threads import blas_threads_for
from ..gap import gap_from_terms


def unit_roundoff(dtype) -> float:
    """u = ε/2 of a floating dtype (2⁻²⁴ for float32, 2⁻⁵³ for float64)."""
    return float(np.finfo(dtype).eps) / 2


def correlation_error(dtype, n_features: int) -> float:
    """(u + γ_p): the bound on |fl(c_j) − c_j| per unit of ‖r‖·‖d_j‖, for c = rDᵀ computed in
    ``dtype`` from a float64 residual rounded to ``dtype`` (module docstring)."""
    u = unit_roundoff(dtype)
    pu = n_features * u
    return u + pu / (1 - pu)


@njit(parallel=True, cache=True)
def _residual_terms(X, D, Z, rows, R, terms):
    """R[r] = x_i − z_i D in float64 for i = rows[r], from the nonzeros of z_i, and
    terms[r] = (‖r‖², ⟨x, r⟩, ‖z‖₁, ‖r‖)."""
    p = X.shape[1]
    m = D.shape[0]
    for r in prange(rows.shape[0]):
        i = rows[r]
        for f in range(p):
            R[r, f] = X[i, f]
        l1 = 0.0
        for j in range(m):
            zj = Z[i, j]
            if zj != 0.0:
                w = np.float64(zj)
                l1 += abs(w)
                for f in range(p):
                    R[r, f] -= w * D[j, f]
        r2 = 0.0
        xr = 0.0
        for f in range(p):
            r2 += R[r, f] * R[r, f]
            xr += X[i, f] * R[r, f]
        terms[r, 0] = r2
        terms[r, 1] = xr
        terms[r, 2] = l1
        terms[r, 3] = np.sqrt(r2)


@dataclass
class Certificate:
    """The certificate of the rows ``rows``: per row the relative gap, the gap and F(z) (float64),
    the dual scale s, the correlations C = rDᵀ (rows × atoms, the data's dtype, or float64 where
    refined) and the bound ``margin`` on their rounding (0 where refined)."""

    rows: np.ndarray
    rel_gap: np.ndarray
    gap: np.ndarray
    F: np.ndarray
    scale: np.ndarray
    C: np.ndarray
    margin: np.ndarray


def certify(X, D, Z, alpha, positive=False, *, rows=None, tol=None, dmax=None, D64=None) -> Certificate:
    """The certificate of the codes Z for the rows ``rows`` of X (default all), host numpy arrays
    (module docstring).  ``tol``: rows whose gap exceeds tol·F only through the rounding margin
    have c recomputed in float64.  ``dmax`` (max‖d_j‖) and ``D64`` (D in float64) may be passed
    when known."""
    n = X.shape[0]
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    p = X.shape[1]
    R = np.empty((rows.size, p), dtype=np.float64)
    terms = np.empty((rows.size, 4), dtype=np.float64)
    if rows.size:
        _residual_terms(X, D, Z, rows, R, terms)
    if dmax is None:
        dmax = float(np.sqrt(np.einsum("ij,ij->i", D, D, dtype=np.float64).max(initial=0.0)))
    exact = D.dtype == np.float64
    with blas_threads_for(R, rows.size * p * D.shape[0]):  # one large product: every core from 1e8
        C = (R if exact else R.astype(D.dtype)) @ D.T
    margin = correlation_error(D.dtype, p) * terms[:, 3] * dmax
    scale, gap, F = _gap(C, terms, margin, alpha, positive)
    if tol is not None and not exact and rows.size:
        _, bare, _ = _gap(C, terms, 0.0, alpha, positive)
        # the exact gap lies within (gap − bare) of the computed one, either way: recomputed exactly where
        # that uncertainty decides the verdict, or is more than a tenth of what tol allows
        slack = gap - bare
        redo = np.flatnonzero(((gap > tol * F) & (bare - slack <= tol * F)) | (slack > 0.1 * tol * F))
        if redo.size:
            D64 = D.astype(np.float64) if D64 is None else D64
            C = C.astype(np.float64)
            C[redo] = R[redo] @ D64.T
            margin[redo] = correlation_error(np.float64, p) * terms[redo, 3] * dmax
            scale[redo], gap[redo], F[redo] = _gap(C[redo], terms[redo], margin[redo], alpha, positive)
    rel = np.divide(gap, F, out=np.zeros_like(gap), where=F > 0)
    rel[~np.isfinite(F) | ~np.isfinite(gap)] = np.nan  # an overflow shows as NaN, never as a certified 0
    return Certificate(rows, rel, gap, F, scale, C, margin)


def _gap(C, terms, margin, alpha, positive):
    """(s, gap, F) in float64 from the correlations and the residual terms, the dual scale taken
    at max|c_j| + margin so that θ = r/s is feasible for the exact correlations."""
    if C.shape[1] == 0:
        cmax = np.zeros(C.shape[0])
    else:
        cmax = (C.max(axis=1) if positive else np.abs(C).max(axis=1)).astype(np.float64)
    top = np.maximum(cmax + margin, 0.0)
    s = np.maximum(1.0, top / alpha) if alpha > 0 else np.where(top > 0, np.inf, 1.0)
    gap, F = gap_from_terms(terms[:, 0], terms[:, 1], terms[:, 2], s, alpha)
    return s, np.maximum(gap, 0.0), F
