"""``norm="unit_nonneg"``: non-negative atoms on the unit sphere, ‖d_j‖ = 1 and d_j ≥ 0, for
non-negative data (spectra, counts, intensities; with ``positive=True`` codes, non-negative
sparse coding in the sense of Hoyer 2002).

    Π(u) = u₊ / ‖u₊‖,      u₊ = max(u, 0),

the Euclidean projection onto {d ≥ 0, ‖d‖ = 1} (the point of the set nearest u maximises ⟨d, u⟩,
which u₊/‖u₊‖ does).  Π commutes with positive scaling, so the online pass's exact minimiser over
d_j is still Π((B̄_j − Ā_j D + Ā_jj d_j)/(Ā_jj + decay)); the pass runs it atom by atom (no closed
form for the kernels: ``floor`` is None).  An atom with no positive entry left keeps its previous row
(which does not raise the loss), or without one takes |u|/‖u‖.

The tangent for sgd is the projection of the gradient's descent direction onto the set's tangent
cone at d, {v : ⟨v, d⟩ = 0, v_i ≥ 0 where d_i = 0}: an entry at the bound whose step would go
negative (d_i = 0, g_i > 0) loses its gradient -- the clip would undo it, and Adam's moments would
remember it -- and the rest loses its part along the atom, as under ``"unit"``.
"""
from __future__ import annotations

from .. import backend
from .base import TINY, NormRule, rescaled
from .unit import Unit


class UnitNonneg(NormRule):
    name = "unit_nonneg"
    summary = "‖d‖ = 1 and d ≥ 0, for non-negative data"

    def project(self, D, previous=None):
        xp = backend.namespace(D)
        return rescaled(xp.clip(D, 0, None), TINY, xp.abs(D) if previous is None else previous)

    def tangent(self, grad, D):
        xp = backend.namespace(D)
        return Unit().tangent(xp.where((D <= 0) & (grad > 0), 0 * grad, grad), D)

    def start(self, D):
        return self.project(D)

    def new_atoms(self, inputs, D, atoms):
        return self.project(inputs)
