"""``update="mod"``: the method of optimal directions (Engan, Aase & Husøy 1999), the exact
minimiser of the batch's dictionary loss, meant for full-batch data:

    D ← (A + decay·I)⁻¹ B,      A = ZᵀZ / b,   B = ZᵀX / b,

(decay: the norm rule's curvature, 2β under "penalty"), then the norm rule.  An unused atom
(A_jj = 0) keeps its row; a tiny ridge keeps the solve defined when such atoms make A singular.
No state.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .base import UNUSED, UpdateRule
from .online import batch_statistics


class MOD(UpdateRule):
    name = "mod"
    summary = "full batch"
    full_batch = True
    default_epochs = 30
    state_text = "the statistics A ({m}×{m}) and its solve"

    def statistics(self, X, Z, R, D):
        return batch_statistics(X, Z)

    def apply(self, D, stats, state, step):
        return mod(D, *stats, self.decay), state

    @classmethod
    def nbytes(cls, m, p, batch, itemsize):
        return (3 * m * m + 2 * m * p) * itemsize  # A, the solve's copy and its factor; B


def mod(D, A, B, decay):
    """(A + decay·I)⁻¹ B, keeping the rows of unused atoms."""
    xp = backend.namespace(D)
    m = A.shape[0]
    diag = xp.diagonal(A)
    used = diag > UNUSED
    # A tiny ridge keeps the solve defined when unused atoms make A singular;
    # their rows are restored below.
    ridge = decay + 1e-10 * float(backend.item(diag.sum()) / max(m, 1) + 1e-30)
    eye = backend.like(np.eye(m), A)
    eye = backend.astype(eye, backend.dtype_name(A))
    new = xp.linalg.solve(A + ridge * eye, B)
    return xp.where(used[:, None], new, D)
