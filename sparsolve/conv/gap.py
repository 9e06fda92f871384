"""Objective and duality gap of the convolutional lasso, per signal, from the codes.

    F(z) = ½‖x − Dz‖² + α‖z‖₁,     c = Dᵀ(x − Dz),     θ = r / max(1, ‖c‖∞/α)

The dual and the gap are those of :mod:`sparsolve.gap` with the operator D of :mod:`.operator` in
place of the matrix: one dual point per signal, so F(z) − F* ≤ gap certifies each signal's codes.
Compute it in float64 to certify small gaps (encode_conv does).
"""
from __future__ import annotations

from .. import backend
from ..gap import dual_scale, gap_from_terms
from .operator import ConvOperator, choose_form, geometry_of
from .problem import ConvProblem


def _problem(X, D, boundary, form="auto"):
    g = geometry_of(X, D, boundary)
    op = ConvOperator(backend.match(D, X), g, choose_form(X, g) if form == "auto" else form)
    return ConvProblem.build(X, op, 0.0, False, 1.0)


def objective(X, D, Z, alpha, boundary="valid"):
    """F(z) = ½‖x − Dz‖² + α‖z‖₁ for each signal of X (n, C, *S), codes Z (n, K, *P)."""
    prob = _problem(X, D, boundary)
    R = prob.residual(Z.reshape(Z.shape[0], -1))
    n = Z.shape[0]
    return 0.5 * (R * R).reshape(n, -1).sum(axis=1) + alpha * abs(Z).reshape(n, -1).sum(axis=1)


def duality_gap(X, D, Z, alpha, boundary="valid", positive=False, form="auto"):
    """(gap, F) per signal: the duality gap F(z) − G(θ) with θ = r / max(1, ‖Dᵀr‖∞/α), and F(z)."""
    prob = _problem(X, D, boundary, form)
    flat = Z.reshape(Z.shape[0], -1)
    C, r2, xr = prob.terms(flat)
    return gap_from_terms(r2, xr, abs(flat).sum(axis=1), dual_scale(C, alpha, positive), alpha)
