"""How well a dictionary and its codes explain data whose features are known.

* :func:`recovery` -- of the planted features f_i, the fraction matched by some atom d_j at
  |cos(f_i, d_j)| > threshold (0.9 by default, as in Sharkey et al. 2022), and the mean max
  cosine (1/n) Σ_i max_j |cos(f_i, d_j)|;
* :func:`fvu` -- the fraction of variance unexplained, Σ‖x − x̂‖² / Σ‖x − x̄‖²;
* :func:`l0` -- the mean number of non-zero coefficients per row;
* :func:`dead_fraction` -- the fraction of atoms never non-zero on the rows given.

Arrays may be numpy, torch or cupy; the results are Python floats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend

__all__ = ["Recovery", "recovery", "fvu", "l0", "dead_fraction"]


@dataclass(frozen=True)
class Recovery:
    """The result of :func:`recovery`."""

    recovered: float
    """The fraction of planted features with some atom at |cos| > threshold."""
    mean_max_cos: float
    """The mean over planted features of the largest |cos| with any atom."""
    max_cos: np.ndarray
    """(n_planted,) each planted feature's largest |cos| with any atom."""


def _unit_rows(A, name: str) -> np.ndarray:
    A = np.asarray(backend.to_numpy(A), dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (one vector per row), got shape {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} has NaN or Inf values; a dictionary must be finite")
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    # A zero (dead) atom matches nothing rather than dividing by zero.
    return np.divide(A, norms, out=np.zeros_like(A), where=norms > 0)


def recovery(dictionary, planted, threshold: float = 0.9, *, chunk: int = 2048) -> Recovery:
    """Match the planted features (rows of ``planted``) with the atoms (rows of ``dictionary``):
    max_j |cos(f_i, d_j)| for each i, computed ``chunk`` planted features at a time so that
    16,384 × 16,384 problems need no full cosine matrix."""
    D = _unit_rows(dictionary, "dictionary")
    F = _unit_rows(planted, "planted")
    if D.shape[1] != F.shape[1]:
        raise ValueError(f"dictionary has {D.shape[1]} features per atom but planted has {F.shape[1]}; "
                         "pass the features of the same data")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    best = np.concatenate([np.abs(F[i:i + chunk] @ D.T).max(axis=1) for i in range(0, len(F), chunk)])
    return Recovery(float((best > threshold).mean()), float(best.mean()), best)


def fvu(X, X_hat) -> float:
    """Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the mean row of X: 0 is perfect, 1 is no better than the mean."""
    if tuple(X.shape) != tuple(X_hat.shape):
        raise ValueError(f"X has shape {tuple(X.shape)} but X_hat {tuple(X_hat.shape)}; they must match")
    R = X - X_hat
    C = X - X.mean(axis=0)
    total = backend.item((C * C).sum())
    if total == 0:
        raise ValueError("X has no variance (all rows are equal); FVU is undefined")
    return backend.item((R * R).sum()) / total


def l0(Z) -> float:
    """The mean number of non-zero entries per row of the codes Z."""
    return backend.item((Z != 0).sum()) / Z.shape[0]


def dead_fraction(Z) -> float:
    """The fraction of atoms (columns of Z) that are zero on every row."""
    return 1.0 - backend.item((Z != 0).any(axis=0).sum()) / Z.shape[1]
