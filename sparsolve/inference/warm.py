"""An encoder's codes as the start of an exact solver: ``encode(X, D, alpha, init=encoder)``.

Amortized start, exact finish: a learned encoder (a :class:`sparsolve.LearnedG`, or any
callable X ↦ Z) proposes z₀, and the solver runs from there to the same certified
relative gap as from z = 0.  The certificate does not depend on the start, so the codes
are as good either way; only the time can differ (benchmarks/amortized_start.py
measures where it does).
"""
from __future__ import annotations

import numpy as np

from .. import backend


def encoder_codes(encoder, X, D, positive):
    """z₀ = encoder(X) as an (n_samples, n_atoms) array of X's kind, device and dtype.

    An object with an ``encode`` method (a LearnedG, whose call returns the
    reconstruction x̂, not the codes) is asked through that method; any other callable
    is called on X.  Its output is checked before any solver work: the shape, and no
    NaN or Inf.  With ``positive`` the start is projected onto z ≥ 0 (a signed encoder
    may propose negative values; the projection is the nearest feasible start, and the
    certificate decides what the solver returns)."""
    fn = getattr(encoder, "encode", encoder)
    what = f"init ({type(encoder).__name__})"
    with backend._torch().no_grad():  # an encoder's forward pass needs no graph
        Z = fn(X)
    try:
        backend.namespace(Z)
    except TypeError:
        raise TypeError(f"{what} must return an array of codes, got {type(Z).__name__}") from None
    n, m = X.shape[0], D.shape[0]
    if tuple(Z.shape) != (n, m):
        raise ValueError(f"{what} returned codes of shape {tuple(Z.shape)}, but X and D need (n_samples, n_atoms) "
                         f"= {(n, m)}: use an encoder trained for this dictionary")
    Z = backend.match(Z, X)
    finite = backend.to_numpy(backend.namespace(Z).isfinite(Z).all(axis=1))
    if not finite.all():
        raise ValueError(f"{what} returned NaN or Inf codes (first at row {int(np.argmin(finite))}); "
                         "check the encoder's weights, or start from zeros (init=None)")
    if positive:
        Z = Z * (Z > 0)
    return Z
