"""``norm="unit"``: every atom on the unit sphere, ‖d_j‖ = 1 after every update.

    Π(d) = d / ‖d‖

The L1 cheat has no room: an atom's scale is fixed, so its code carries the whole amplitude.
"""
from __future__ import annotations

from .. import backend
from .base import TINY, NormRule, rescaled


class Unit(NormRule):
    name = "unit"
    summary = "‖d‖ = 1"
    floor = TINY

    def project(self, D, previous=None):
        return rescaled(D, self.floor, previous)

    def tangent(self, grad, D):
        """Each row g_j loses its part along its atom,  g_j ← g_j − (⟨g_j, d_j⟩ / ‖d_j‖²) d_j:  the
        part that would only change the atom's length, which the projection undoes anyway (and which,
        through Adam's per-entry scaling, would otherwise leak into the direction).  Sparse-autoencoder
        trainers (sparsify, SAELens) do the same before their optimiser step."""
        along = (grad * D).sum(axis=1) / backend.namespace(D).clip((D * D).sum(axis=1), TINY, None)
        return grad - along[:, None] * D
