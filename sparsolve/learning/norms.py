"""Norm rules for the atoms: how the L1 cheat is priced or prevented.

Scaling an atom by c and its code by 1/c leaves the reconstruction zD unchanged
while α‖z‖₁ falls by the factor c, so without a rule exact inference lets the
atoms grow and the codes shrink toward zero.  Four rules, for atom rows d_j of D:

* ``"unit"``    d_j ← d_j / ‖d_j‖                 (‖d_j‖ = 1 after every update)
* ``"ball"``    d_j ← d_j / max(1, ‖d_j‖)         (‖d_j‖ ≤ 1, as scikit-learn and SPAMS)
* ``"penalty"`` no projection; the dictionary loss gains the weight decay β Σ_j ‖d_j‖²,
                which prices the cheat: over the scale c of an atom,
                α‖z‖₁/c + β c²‖d‖² has a finite minimiser, so the norms settle.
* ``"none"``    nothing: the ablation that lets the cheat show in the history.
"""
from __future__ import annotations

from .. import backend

NORMS = ("unit", "ball", "penalty", "none")

# Atoms shorter than this are treated as zero: projecting them would amplify rounding.
_TINY = 1e-12
# The projecting rules as a floor on the divisor, d_j ← d_j / max(‖d_j‖, floor).
FLOOR = {"unit": _TINY, "ball": 1.0}


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not known; choose one of {list(NORMS)}")
    return norm


def decay(norm, beta):
    """The curvature 2β the rule adds to the dictionary loss (0 unless ``"penalty"``)."""
    return 2.0 * float(beta) if norm == "penalty" else 0.0


def tangent(grad, D, norm):
    """The gradient that a projected step should take: under ``"unit"``, each row g_j loses its
    part along its atom,  g_j ← g_j − (⟨g_j, d_j⟩ / ‖d_j‖²) d_j,  the part that would only change
    the atom's length, which the projection undoes anyway (and which, through Adam's per-entry
    scaling, would otherwise leak into the direction).  Sparse-autoencoder trainers (sparsify,
    SAELens) do the same before their optimiser step.  Every other rule keeps the gradient:
    ``"ball"`` lets atoms inside the ball change length, ``"penalty"`` prices the length through
    the decay term of the gradient, and ``"none"`` is the ablation."""
    if norm != "unit":
        return grad
    along = (grad * D).sum(axis=1) / backend.namespace(D).clip((D * D).sum(axis=1), _TINY, None)
    return grad - along[:, None] * D


def project(D, norm, previous=None):
    """Apply the rule to every row of D.  A row that came out (near) zero -- an
    atom whose update had no data behind it -- takes its row from ``previous``
    instead, because a zero atom cannot be normalised or used by the encoder."""
    xp = backend.namespace(D)
    norms = xp.sqrt((D * D).sum(axis=1))
    if previous is not None:
        # unconditionally: asking whether any row is zero would be a read of the device each step
        zero = norms <= _TINY
        D = xp.where(zero[:, None], previous, D)
        norms = xp.where(zero, xp.sqrt((previous * previous).sum(axis=1)), norms)
    if norm in FLOOR:
        return D / xp.clip(norms, FLOOR[norm], None)[:, None]
    return D
