"""ISTA: proximal gradient descent on the lasso, batched over samples.

    z_{k+1} = T_{α/L}( z_k + c(z_k) / L ),   c(z) = (x − zD)Dᵀ,   L = ‖D‖₂²

with T the soft threshold (non-negative threshold when z ≥ 0).  F(z_k) decreases
monotonically and F(z_k) − F* = O(1/k).
"""
from __future__ import annotations

from ..prox import prox_l1
from .base import Iterative


class ISTA(Iterative):
    name = "ista"
    default_max_iter = 20000

    def init(self, prob, Z0):
        return {"z": Z0 + 0}

    def step(self, prob, s):
        z = s["z"]
        s["z"] = prox_l1(z + prob.correlation(z) / prob.L, prob.alpha / prob.L, prob.positive)

    def current(self, prob, s):
        return s["z"]
