"""``alpha_for_l0``: the L1 weight α at which the lasso codes reach a target mean L0.

Interpretability users state sparsity as L0 (non-zeros per token), the lasso takes α.  Along
the lasso path a sample's codes are zero for α ≥ ‖x Dᵀ‖∞ (for z ≥ 0: α ≥ max_j (x Dᵀ)_j) and
gain non-zeros as α falls, so the mean L0 over many samples falls with α (an atom can leave the
support as α falls, but rarely: in practice and on average the count is monotone).  So α is
found by bisection in log α on a subset of the rows, each step an exact :func:`encode`:

    α_hi = max over the subset of ‖x Dᵀ‖∞ (L0 = 0);  α_lo = α_hi / 10^k for the first k with
    L0(α_lo) ≥ l0;  then α = √(α_lo α_hi) replaces the end on its side of l0, until
    |L0(α) − l0| ≤ rtol · l0.

Each step starts the solver from the codes of the previous one (the same rows, a nearby α).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .. import backend
from ..checks import positive_float, positive_int

__all__ = ["alpha_for_l0"]

# The bracket search gives up below α_max · 10^-_DECADES: an L0 not reached there needs a least-squares
# fit, not a lasso (and the solvers take ever longer as α → 0).
_DECADES = 8


def alpha_for_l0(X, D, l0, *, positive=False, n_samples=4096, rtol=0.01, seed=0, solver="auto", tol=1e-4,
                 max_steps=40, **options) -> float:
    """The α at which ``encode(X, D, α)`` gives a mean L0 of ``l0`` (non-zeros per row), found by
    bisection in log α on ``n_samples`` rows of X (all rows when X has fewer; else a seeded sample).

    Parameters
    ----------
    X : (n_samples, n_features) numpy array, torch tensor or cupy array (the data as it will be
        coded: centre it first where the model has an offset, as ``SparseCodingModel.encode`` does).
    D : (n_atoms, n_features) dictionary, one atom per row.
    l0 : the target mean number of non-zeros per row, 0 < l0 < min(n_atoms, n_features) (the
        lasso's codes have at most n_features non-zeros).
    positive : codes z ≥ 0, as the encode that will use α.
    rtol : stop when |L0 − l0| ≤ rtol · l0 on the subset.
    seed : chooses the subset.
    solver, tol, **options : the exact solver that codes each step ("auto": cd on the host, fista
        on a GPU) and its relative duality gap.
    max_steps : bisection steps before giving up; then the α whose L0 came closest is returned,
        with a warning that names the L0 it gives.

    Returns α as a float.
    """
    from . import encode, solver_for  # the package imports this module: they are there once its import is done

    if not backend.is_array(X) or not backend.is_array(D):
        raise TypeError(f"X and D must be arrays (numpy, torch or cupy), got {type(X).__name__} and "
                        f"{type(D).__name__}")
    if X.ndim != 2 or D.ndim != 2 or X.shape[1] != D.shape[1] or X.shape[0] == 0:
        raise ValueError(f"X (n_samples, n_features) and D (n_atoms, n_features) must be 2-D with the same "
                         f"n_features and X non-empty, got X {tuple(X.shape)} and D {tuple(D.shape)}")
    if isinstance(l0, bool) or not isinstance(l0, numbers.Real) or not math.isfinite(l0):
        raise TypeError(f"l0 must be a finite number, got {l0!r}")
    most = min(D.shape[0], D.shape[1])
    if not 0 < l0 < most:
        raise ValueError(f"l0={l0} cannot be reached: pass 0 < l0 < min(n_atoms, n_features) = {most} (the lasso's "
                         "codes have at most n_features non-zeros, and the codes are zero for α ≥ max ‖x Dᵀ‖∞)")
    n_samples = positive_int(n_samples, "n_samples", "rows of X the bisection codes")
    rtol = positive_float(rtol, "rtol")
    max_steps = positive_int(max_steps, "max_steps")
    solver = solver_for(solver, X)  # once, for every step of the bisection

    n = X.shape[0]
    rows = np.arange(n) if n <= n_samples else np.sort(np.random.default_rng(seed).choice(n, n_samples, replace=False))
    Xs = backend.take_rows(X, rows)
    Ds = backend.match(D, Xs)
    C = Xs @ Ds.T
    top = backend.item((C if positive else abs(C)).max())
    if not top > 0:
        raise ValueError("every code is zero at any α > 0 (X Dᵀ has no positive entry" + ("" if positive else
                         " or is zero") + "); with positive=True, check the signs of X and D")
    codes = None

    def mean_l0(alpha):
        nonlocal codes
        codes = encode(Xs, Ds, alpha, solver=solver, positive=positive, tol=tol, init=codes, **options)
        return backend.item((codes != 0).sum()) / Xs.shape[0]

    hi, l0_hi = top, 0.0
    lo, l0_lo = top, 0.0
    for _ in range(_DECADES):
        lo = hi / 10
        l0_lo = mean_l0(lo)
        if l0_lo >= l0:
            break
        hi, l0_hi = lo, l0_lo
    else:
        raise ValueError(f"l0={l0} is not reached at α = {lo:.3g} (10^-{_DECADES} of the largest correlation "
                         f"{top:.3g}), where the mean L0 is {l0_lo:.3g}; ask for a smaller l0")
    tried = [(lo, l0_lo), (hi, l0_hi)]
    for _ in range(max_steps):
        best = min(tried, key=lambda t: abs(t[1] - l0))
        if abs(best[1] - l0) <= rtol * l0:
            return float(best[0])
        mid = math.sqrt(lo * hi)
        l0_mid = mean_l0(mid)
        tried.append((mid, l0_mid))
        if l0_mid >= l0:
            lo = mid
        else:
            hi = mid
    alpha, reached = min(tried, key=lambda t: abs(t[1] - l0))
    if abs(reached - l0) > rtol * l0:
        warnings.warn(f"alpha_for_l0: after {max_steps} steps the closest mean L0 is {reached:.4g} (α = {alpha:.4g}), "
                      f"not within rtol={rtol:g} of l0={l0}; the L0 jumps there (few rows, or ties): pass more "
                      "rows (n_samples) or a larger rtol", UserWarning, stacklevel=2)
    return float(alpha)
