"""Objective, dual point, duality gap and KKT residual of the lasso, for each sample.

Primal, one row x of X at a time (D is (n_atoms, n_features), one atom per row)::

    F(z) = ½‖x − zD‖² + α‖z‖₁          (optionally subject to z ≥ 0)

Dual (Fenchel), with the correlation c = r Dᵀ of the residual r = x − zD::

    G(θ) = ⟨x, θ⟩ − ½‖θ‖²    subject to ‖θDᵀ‖∞ ≤ α   (max(θDᵀ) ≤ α when z ≥ 0)

The dual point is the residual scaled into the feasible set,
θ = r / s with s = max(1, ‖c‖∞ / α), so that

    gap = F(z) − G(θ) = ½‖r‖² + α‖z‖₁ − ⟨x, r⟩/s + ½‖r‖²/s²  ≥ 0,

and F(z) − F(z*) ≤ gap.  A zero gap certifies z optimal.  The helpers below work
from the scalars (‖r‖², ⟨x, r⟩, ‖z‖₁, s) so that the Gram-form solvers, which never
form r, and the numba kernels share the one formula.
"""
from __future__ import annotations

from .backend import namespace


def dual_scale(c, alpha, positive: bool = False):
    """s = max(1, ‖c‖∞/α)  (max(1, max(c)/α) with z ≥ 0), one per row of c."""
    xp = namespace(c)
    cmax = xp.amax(c, axis=-1) if positive else xp.amax(abs(c), axis=-1)
    if alpha == 0:
        # cmax·0 + inf, not cmax·inf: 0·inf would be NaN (and warn) where cmax = 0
        return xp.where(cmax > 0, cmax * 0 + float("inf"), cmax * 0 + 1)
    return xp.clip(cmax / alpha, 1.0, None)


def gap_from_terms(r2, xr, l1, s, alpha):
    """(gap, F) from ‖r‖², ⟨x, r⟩, ‖z‖₁ and the dual scale s.  Plain arithmetic:
    it runs unchanged on arrays of any backend and inside numba kernels."""
    half = 0.5 * r2  # once, for both (on a GPU each operation is a launch)
    primal = half + alpha * l1
    dual = xr / s - half / (s * s)
    return primal - dual, primal


def residual_terms(X, D, Z):
    """Factored form: r = X − ZD, c = r Dᵀ, and the rows' ‖r‖² and ⟨x, r⟩."""
    R = X - Z @ D
    return R @ D.T, (R * R).sum(axis=1), (X * R).sum(axis=1)


def check_shapes(X, D, Z) -> None:
    """Refuse arrays that do not fit X ≈ Z D: X (n_samples, n_features), D (n_atoms, n_features),
    Z (n_samples, n_atoms), naming the one that is off and the shape it must have."""
    import numpy as np

    shapes = {name: tuple(np.shape(A)) for name, A in (("X", X), ("D", D), ("Z", Z))}
    for name, shape in shapes.items():
        if len(shape) != 2:
            raise ValueError(f"{name} must be 2-D, got shape {shape}")
    (n, p), (m, q), z = shapes["X"], shapes["D"], shapes["Z"]
    if q != p:
        raise ValueError(f"D has {q} features but X has {p}; D must be (n_atoms, n_features) = ({m}, {p})")
    if z != (n, m):
        raise ValueError(f"Z has shape {z}; expected (n_samples, n_atoms) = ({n}, {m}): a code per row of X, "
                         "an entry per atom of D")


def objective(X, D, Z, alpha):
    """F(z) = ½‖x − zD‖² + α‖z‖₁ for each row (a vector of n_samples values)."""
    check_shapes(X, D, Z)
    R = X - Z @ D
    return 0.5 * (R * R).sum(axis=1) + alpha * abs(Z).sum(axis=1)


def duality_gap(X, D, Z, alpha, positive: bool = False):
    """The duality gap F(z) − G(θ) for each row, with θ = r / max(1, ‖rDᵀ‖∞/α).

    Compute it in float64 when certifying small gaps: in float32 the gap of a
    good solution drowns in rounding (about 1e-7 · ‖x‖²)."""
    check_shapes(X, D, Z)
    C, r2, xr = residual_terms(X, D, Z)
    gap, _ = gap_from_terms(r2, xr, abs(Z).sum(axis=1), dual_scale(C, alpha, positive), alpha)
    return gap


def kkt_residual(X, D, Z, alpha, positive: bool = False):
    """The largest violation of the lasso's optimality conditions, per row, over α.

    With c = (x − zD)Dᵀ, z is optimal iff, for every atom j,
    c_j = α·sign(z_j) where z_j ≠ 0 and |c_j| ≤ α where z_j = 0
    (with z ≥ 0: c_j = α where z_j > 0 and c_j ≤ α where z_j = 0)."""
    check_shapes(X, D, Z)
    xp = namespace(Z)
    C, _, _ = residual_terms(X, D, Z)
    active = Z != 0
    on_support = abs(C - alpha * xp.sign(Z))
    off_support = xp.clip(C - alpha, 0, None) if positive else xp.clip(abs(C) - alpha, 0, None)
    violation = xp.where(active, on_support, off_support)
    return xp.amax(violation, axis=1) / max(alpha, 1e-300)
