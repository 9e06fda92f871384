"""Thresholds: the proximal maps shared by ISTA, FISTA, LCA and the learned-G encoder.

Each works on numpy, torch (differentiably) and cupy arrays alike, and accepts
a scalar or a broadcastable array threshold ``t``.

* soft     T(u) = sign(u) · max(|u| − t, 0)     prox of t‖·‖₁          (the lasso)
* nonneg   T(u) = max(u − t, 0)                 prox of t‖·‖₁ + ι(z≥0)  (the seed's ReLU with threshold)
* hard     T(u) = u · 1[|u| > t]                prox of (t²/2)‖·‖₀
"""
from __future__ import annotations

from numba import njit

from .backend import namespace
from .checks import choice


def soft_threshold(u, t):
    """sign(u) · max(|u| − t, 0), written as u − clip(u, −t, t) (one pass, no sign)."""
    return u - namespace(u).clip(u, -t, t)


def nonneg_threshold(u, t):
    """max(u − t, 0): the seed's ReLU(μ) once the threshold is folded into the bias."""
    return namespace(u).clip(u - t, 0, None)


@njit(inline="always")
def threshold_scalar(u, t, positive):
    """soft (or, where ``positive``, nonneg) of one float inside a numba kernel: the coordinate
    steps of cd and conv's cd, and admm's projection.  Inlined into the kernel that calls it, which
    compiles it under its own flags."""
    if u > t:
        return u - t
    if u < -t and not positive:
        return u + t
    return 0.0


def hard_threshold(u, t):
    """u · 1[|u| > t]: keeps large entries untouched, the L0 counterpart of soft."""
    return u * (abs(u) > t)


THRESHOLDS = {"soft": soft_threshold, "nonneg": nonneg_threshold, "hard": hard_threshold}


def get_threshold(name: str):
    return THRESHOLDS[choice(name, "threshold", tuple(THRESHOLDS))]


def prox_l1(u, t, positive: bool = False):
    """The proximal map of t‖z‖₁ (+ the constraint z ≥ 0 when ``positive``)."""
    return nonneg_threshold(u, t) if positive else soft_threshold(u, t)
