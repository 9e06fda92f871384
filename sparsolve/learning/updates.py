"""Dictionary updates: the M-step of the EM-style alternation, given a batch's codes.

With the batch X (b, p), its codes Z (b, m), and the statistics of the batch

    A = ZᵀZ / b   (m, m)        B = ZᵀX / b   (m, p)

the dictionary loss is  ½ tr(D ᵀA D) − tr(DᵀB) + const  (= the mean of ½‖x − zD‖²),
plus the weight decay β Σ‖d_j‖² under the ``"penalty"`` norm rule (its curvature
``decay`` = 2β enters every update below).  Three updates, chosen by ``update``:

* ``"online"`` -- Mairal, Bach, Ponce & Sapiro (2009, 2010): block coordinate descent
  on running statistics with forgetting,

      Ā_t = (w_{t−1} ρ_t Ā_{t−1} + A) / w_t,   B̄_t likewise,   w_t = ρ_t w_{t−1} + 1,
      ρ_t = (1 − 1/t)^forget,

  (Ā, B̄ are weighted means of the batch statistics, so the loss keeps a per-sample
  scale), then one pass over the atoms j = 1..m:

      d_j ← Π( (B̄_j − Ā_j D + Ā_jj d_j) / (Ā_jj + decay) ),

  the exact minimiser over d_j, with Π the norm rule's projection (norms.py).
* ``"sgd"`` -- Olshausen & Field (1996): a gradient step on the batch loss,

      D ← D + η (B − A D − decay·D),    η = lr / (λ_max(A) + decay).

* ``"mod"`` -- the method of optimal directions (Engan et al. 1999), the exact
  minimiser on the batch (meant for full-batch data):

      D ← (A + decay·I)⁻¹ B.

An atom that no sample used (A_jj = 0) keeps its row: there is no data to move it,
and the dead-atom policy (dead.py) decides its fate.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import backend
from ..inference.problem import top_eigenvalue
from . import norms

UPDATES = ("online", "sgd", "mod")

# A_jj below this is an unused atom.
_UNUSED = 1e-12
# Power-iteration steps for λ_max(A) in the sgd step; from a fixed start vector
# this reaches the top eigenvalue to a few percent, ample for a step size.
_POWER_STEPS = 20


def check_update(update):
    if update not in UPDATES:
        raise ValueError(f"update={update!r} is not known; choose one of {list(UPDATES)}")
    return update


def batch_statistics(X, Z):
    """(A, B) = (ZᵀZ / b, ZᵀX / b)."""
    b = max(1, X.shape[0])
    return (Z.T @ Z) / b, (Z.T @ X) / b


def running_statistics(A_bar, B_bar, weight, A, B, t, forget):
    """(Ā_t, B̄_t, w_t) from the previous running means (None at the start), their weight
    w_{t−1} and the statistics of step t's batch; ρ_t = (1 − 1/t)^forget (ρ_1 = 0)."""
    rho = (1.0 - 1.0 / t) ** forget
    w = rho * weight + 1.0
    if A_bar is None:
        return A, B, w
    return (rho * weight * A_bar + A) / w, (rho * weight * B_bar + B) / w, w


def online(D, A_bar, B_bar, norm, decay):
    """One pass of block coordinate descent over the atoms (updates a copy of D)."""
    D = D + 0
    if isinstance(D, np.ndarray):
        # The pass is m small dependent steps; in Python each costs ~25 µs of call
        # overhead, a third of sparsolve.fit's time on 8×8 patches with 256 atoms.
        _online_numba(D, A_bar, B_bar, norms.FLOOR.get(norm, 0.0), float(decay), _UNUSED)  # 0: no projection
        return D
    diag = backend.to_numpy(_diag(A_bar))
    for j in np.flatnonzero(diag > _UNUSED):
        ajj = float(diag[j])
        u = (B_bar[j] - A_bar[j] @ D + ajj * D[j]) / (ajj + decay)
        D[j] = norms.project_atom(u, norm)
    return D


@njit(cache=True)
def _online_numba(D, A_bar, B_bar, floor, decay, unused):
    """online()'s pass in place on a numpy D: d_j ← Π((B̄_j − Ā_j D + Ā_jj d_j)/(Ā_jj + decay)),
    with Π the division by max(‖·‖, floor) of norms.FLOOR (none for floor = 0)."""
    m, p = D.shape
    u = np.empty(p, dtype=D.dtype)
    for j in range(m):
        ajj = A_bar[j, j]
        if not ajj > unused:
            continue
        for f in range(p):
            u[f] = B_bar[j, f] + ajj * D[j, f]
        for i in range(m):
            a = A_bar[j, i]
            if a != 0.0:
                for f in range(p):
                    u[f] -= a * D[i, f]
        scale = 1.0 / (ajj + decay)
        if floor > 0.0:
            sq = 0.0
            for f in range(p):
                sq += u[f] * u[f]
            scale /= max(np.sqrt(sq) * scale, floor)
        for f in range(p):
            D[j, f] = u[f] * scale


def sgd(D, A, B, decay, lr):
    """D + η (B − A D − decay·D) with η = lr / (λ_max(A) + decay)."""
    eta = lr / (top_eigenvalue(A, n_iter=_POWER_STEPS, rtol=0.0) + decay + 1e-30)
    return D + eta * (B - A @ D - decay * D)


def mod(D, A, B, decay):
    """(A + decay·I)⁻¹ B, keeping the rows of unused atoms."""
    xp = backend.namespace(D)
    m = A.shape[0]
    diag = _diag(A)
    used = diag > _UNUSED
    # A tiny ridge keeps the solve defined when unused atoms make A singular;
    # their rows are restored below.
    ridge = decay + 1e-10 * float(backend.item(diag.sum()) / max(m, 1) + 1e-30)
    eye = backend.like(np.eye(m), A)
    eye = backend.astype(eye, backend.dtype_name(A))
    new = xp.linalg.solve(A + ridge * eye, B)
    return xp.where(used[:, None], new, D)


def _diag(A):
    return backend.namespace(A).diagonal(A)
