"""How well a dictionary and its codes explain data whose features are known.

* :func:`recovery` -- of the planted features f_i, the fraction matched by some atom d_j at
  |cos(f_i, d_j)| > threshold (0.9 by default, as in Sharkey et al. 2022), and the mean max
  cosine (1/n) Σ_i max_j |cos(f_i, d_j)|;
* :func:`fvu` -- the fraction of variance unexplained, Σ‖x − x̂‖² / Σ‖x − x̄‖²;
* :func:`l0` -- the mean number of non-zero coefficients per row;
* :func:`dead_fraction` -- the fraction of atoms never non-zero on the rows given.

SynthSAEBench's metrics (Chanin & Garriga-Alonso 2026; SAELens's ``sae_lens.synthetic``), so that
a run can be scored without SAELens, on the same definitions:

* :func:`mcc` -- the mean correlation coefficient: the one-to-one matching π of atoms to true
  features that maximises Σ |cos(d_j, f_π(j))| (the Hungarian algorithm,
  ``scipy.optimize.linear_sum_assignment``), and the mean |cos| over its min(m, n) pairs;
* :func:`uniqueness` -- each atom's best-matching true feature, argmax_i |cos(d_j, f_i)|; the
  number of distinct features so matched over the number of atoms (1: no two atoms track one);
* :func:`classification` -- each atom as a detector of its best-matching feature: the atom fires
  when z_j ≠ 0, the feature when its true activation is > 0; precision, recall, F1 and accuracy
  per atom (0 where undefined), and their means over the atoms.

Arrays may be numpy, torch or cupy; the results are Python floats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import backend

__all__ = ["Recovery", "recovery", "fvu", "l0", "dead_fraction", "mcc", "uniqueness", "Classification",
           "classification"]


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


def _abs_cosines(dictionary, features):
    """|cos(d_j, f_i)| (m, n) in float64, after the checks every metric against true features shares."""
    D = _unit_rows(dictionary, "dictionary")
    F = _unit_rows(features, "features")
    if D.shape[1] != F.shape[1]:
        raise ValueError(f"dictionary has {D.shape[1]} features per atom but features has {F.shape[1]}; "
                         "pass the true features of the same data, one per row")
    return np.abs(D @ F.T)


def mcc(dictionary, features) -> float:
    """The mean correlation coefficient of the atoms (rows of ``dictionary``) with the true
    features (rows of ``features``): max over one-to-one matchings π of the mean |cos(d_j, f_π(j))|,
    over min(n_atoms, n_features) pairs (the Hungarian algorithm on the m × n matrix |cos|)."""
    C = _abs_cosines(dictionary, features)
    rows, cols = linear_sum_assignment(C, maximize=True)
    return float(C[rows, cols].mean())


def uniqueness(dictionary, features) -> float:
    """The number of distinct true features that are some atom's best match (argmax |cos|),
    over the number of atoms: 1 when every atom tracks a feature of its own."""
    C = _abs_cosines(dictionary, features)
    return float(np.unique(C.argmax(axis=1)).size / C.shape[0])


@dataclass(frozen=True)
class Classification:
    """The result of :func:`classification`: means over the atoms, and the per-atom values."""

    precision: float
    """Mean over atoms of TP / (TP + FP) (0 for an atom that never fires)."""
    recall: float
    """Mean over atoms of TP / (TP + FN) (0 when its feature never fires)."""
    f1: float
    """Mean over atoms of 2PR / (P + R) (0 where P + R = 0)."""
    accuracy: float
    """Mean over atoms of (TP + TN) / n_samples."""
    f1_per_atom: np.ndarray
    """(n_atoms,) each atom's F1 as a detector of its matched feature."""
    matched_feature: np.ndarray
    """(n_atoms,) the index of each atom's best-matching true feature, argmax_i |cos(d_j, f_i)|."""


def classification(codes, feature_acts, dictionary, features, *, chunk: int = 4096) -> Classification:
    """Each atom j as a binary detector of its best-matching true feature i(j) = argmax_i
    |cos(d_j, f_i)|: on each sample it predicts "fires" when z_j ≠ 0, and the truth is a_i(j) > 0.

    codes : (n_samples, n_atoms) the codes Z of the samples under ``dictionary``.
    feature_acts : (n_samples, n_features) the true feature activations a of the same samples.
    dictionary : (n_atoms, p) the atoms; features : (n_features, p) the true features.

    The counts are summed ``chunk`` samples at a time (no n_samples × n_atoms temporaries)."""
    C = _abs_cosines(dictionary, features)
    match = C.argmax(axis=1)
    m, n_true = C.shape
    Z = backend.to_numpy(codes)
    A = backend.to_numpy(feature_acts)
    if Z.ndim != 2 or Z.shape[1] != m:
        raise ValueError(f"codes must have shape (n_samples, {m}) (one column per atom), got {Z.shape}")
    if A.ndim != 2 or A.shape != (Z.shape[0], n_true):
        raise ValueError(f"feature_acts must have shape ({Z.shape[0]}, {n_true}) (the samples of codes, one column "
                         f"per true feature), got {A.shape}")
    if Z.shape[0] == 0:
        raise ValueError("codes has no rows; pass the codes of at least one sample")
    tp = np.zeros(m)
    fp = np.zeros(m)
    fn = np.zeros(m)
    for lo in range(0, Z.shape[0], chunk):
        fires = Z[lo:lo + chunk] != 0
        truth = A[lo:lo + chunk][:, match] > 0
        tp += (fires & truth).sum(axis=0)
        fp += (fires & ~truth).sum(axis=0)
        fn += (~fires & truth).sum(axis=0)
    tn = Z.shape[0] - tp - fp - fn
    precision = np.divide(tp, tp + fp, out=np.zeros(m), where=tp + fp > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(m), where=tp + fn > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(m), where=precision + recall > 0)
    accuracy = (tp + tn) / Z.shape[0]
    return Classification(float(precision.mean()), float(recall.mean()), float(f1.mean()), float(accuracy.mean()),
                          f1, match)
