"""``norm="ball"``: every atom in the unit ball, ‖d_j‖ ≤ 1, as scikit-learn and SPAMS constrain it.

    Π(d) = d / max(1, ‖d‖)

The cheat needs atoms longer than 1, which the ball forbids; atoms inside it may change length,
so the gradient is taken whole (no tangent).
"""
from __future__ import annotations

from .base import NormRule, rescaled


class Ball(NormRule):
    name = "ball"
    summary = "‖d‖ ≤ 1"
    floor = 1.0

    def project(self, D, previous=None):
        return rescaled(D, self.floor, previous)
