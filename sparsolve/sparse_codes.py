"""Products with a batch of sparse codes Z (rows × atoms) on the host, from its nonzeros.

At interpretability width a code has tens of nonzeros in thousands of atoms, and the three
products a learning step takes with it cost, as dense products,

    ZD   (the residual R = X − ZD):       b·m·p      (1.1e9 multiply-adds at b = 1,024, m = 4,096, p = 256)
    ZᵀM  (the gradient ZᵀR, the statistic ZᵀX): b·m·p
    ZᵀZ  (the online statistic):          b·m²       (1.7e10)

where the nonzeros need nnz·p, nnz·p and Σ_i nnz_i².  These numba kernels scan each row's
nonzeros once and do only that work; ``backend`` sends numpy codes here when they are sparse
enough to pay (:data:`DENSITY`: a function returns None otherwise) and everything else to the dense
product.  The sums run in the
order of the rows, so a result does not depend on the number of threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Above this fraction of nonzeros the dense BLAS product is faster than the scan (measured:
#: at 1,024 × 4,096 codes the kernels won below about 5 %; patches with 256 atoms at 10 % run
#: dense).
DENSITY = 0.02


@njit(parallel=True, cache=True)
def _row_counts(Z, counts):
    for i in prange(Z.shape[0]):
        c = 0
        for j in range(Z.shape[1]):
            if Z[i, j] != 0:
                c += 1
        counts[i] = c


@njit(parallel=True, cache=True)
def _fill(Z, indptr, cols, vals):
    for i in prange(Z.shape[0]):
        k = indptr[i]
        for j in range(Z.shape[1]):
            if Z[i, j] != 0:
                cols[k] = j
                vals[k] = Z[i, j]
                k += 1


def nonzeros(Z, density=None):
    """(indptr, cols, vals): the nonzeros of the numpy codes Z by rows (CSR); None where more than
    ``density`` of the entries are nonzero (the dense product is then the faster)."""
    counts = np.empty(Z.shape[0], dtype=np.int64)
    _row_counts(Z, counts)
    total = int(counts.sum())
    if density is not None and total > density * Z.size:
        return None
    indptr = np.zeros(Z.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    cols = np.empty(total, dtype=np.int64)
    vals = np.empty(total, dtype=Z.dtype)
    _fill(Z, indptr, cols, vals)
    return indptr, cols, vals


@njit(parallel=True, cache=True)
def _times(indptr, cols, vals, D, out):
    """out = Z D, row by row."""
    p = D.shape[1]
    for i in prange(out.shape[0]):
        for f in range(p):
            out[i, f] = 0
        for k in range(indptr[i], indptr[i + 1]):
            v = vals[k]
            row = D[cols[k]]
            for f in range(p):
                out[i, f] += v * row[f]


@njit(cache=True)
def _transpose_times(indptr, cols, vals, M, out):
    """out = Zᵀ M (out zeroed by the caller): each nonzero z_ij adds z_ij·M[i] to row j.  One
    thread: rows of the output are shared between the input's rows."""
    p = M.shape[1]
    for i in range(M.shape[0]):
        for k in range(indptr[i], indptr[i + 1]):
            v = vals[k]
            j = cols[k]
            for f in range(p):
                out[j, f] += v * M[i, f]


@njit(cache=True)
def _gram(indptr, cols, vals, out):
    """out = ZᵀZ (out zeroed by the caller), from each row's pairs of nonzeros."""
    for i in range(indptr.shape[0] - 1):
        for a in range(indptr[i], indptr[i + 1]):
            va = vals[a]
            ja = cols[a]
            for b in range(indptr[i], indptr[i + 1]):
                out[ja, cols[b]] += va * vals[b]


def times(Z, D):
    """Z D (rows × p) from Z's nonzeros; None where Z is too dense to pay (:data:`DENSITY`)."""
    csr = nonzeros(Z, DENSITY) if Z.size else None
    if csr is None:
        return None
    out = np.empty((Z.shape[0], D.shape[1]), dtype=np.result_type(Z, D))
    _times(*csr, np.ascontiguousarray(D), out)
    return out


def transpose_times(Z, M):
    """Zᵀ M (atoms × p) from Z's nonzeros; None where Z is too dense to pay."""
    csr = nonzeros(Z, DENSITY) if Z.size else None
    if csr is None:
        return None
    out = np.zeros((Z.shape[1], M.shape[1]), dtype=np.result_type(Z, M))
    _transpose_times(*csr, np.ascontiguousarray(M), out)
    return out


def gram(Z):
    """Zᵀ Z (atoms × atoms) from Z's nonzeros; None where Z is too dense to pay."""
    csr = nonzeros(Z, DENSITY) if Z.size else None
    if csr is None:
        return None
    out = np.zeros((Z.shape[1], Z.shape[1]), dtype=Z.dtype)
    _gram(*csr, out)
    return out
