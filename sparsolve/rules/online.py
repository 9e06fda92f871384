"""``update="online"``: Mairal, Bach, Ponce & Sapiro (2009, 2010), block coordinate descent on
running statistics.

With the batch statistics A = ZᵀZ/b (m, m) and B = ZᵀX/b (m, p), the dictionary loss is
½ tr(DᵀA D) − tr(DᵀB) + const (= the mean of ½‖x − zD‖²), plus (decay/2) Σ‖d_j‖² under the
penalty rule.  The rule keeps running means of the statistics with forgetting,

    Ā_t = (w_{t−1} ρ_t Ā_{t−1} + A) / w_t,   B̄_t likewise,   w_t = ρ_t w_{t−1} + 1,
    ρ_t = (1 − 1/t)^forget,

(weighted means of the batch statistics, so the loss keeps a per-sample scale), then makes one
pass over the atoms j = 1..m in order:

    d_j ← Π( (B̄_j − Ā_j D + Ā_jj d_j) / (Ā_jj + decay) ),

the exact minimiser over d_j, with Π the norm rule's projection.  An atom that no sample used
(Ā_jj = 0) keeps its row: there is no data to move it, and the dead-atom policy decides its fate.

State: Ā, B̄ and the weight w; an atom resampled in place of a dead one has its rows and columns
of Ā and B̄ zeroed, so that the pass does not pull it back to the atom it replaced.  Host arrays run
the pass as a numba kernel (:func:`online`); device arrays as a blocked sweep of large products
(:func:`online_blocked`), whose in-block steps are one Triton kernel on CUDA (_online_triton.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import backend
from .base import UNUSED, UpdateRule, checked_arrays


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


class Online(UpdateRule):
    name = "online"
    summary = "Mairal's running statistics"
    state_text = "the online statistics Ā and A ({m}×{m} each)"

    def __init__(self, config, norm):
        super().__init__(config, norm)
        self.forget = config.forget

    def init(self, D):
        return {"A": None, "B": None, "weight": 0.0}

    def statistics(self, X, Z, R, D):
        return batch_statistics(X, Z)

    def apply(self, D, stats, state, step):
        A, B, weight = running_statistics(state["A"], state["B"], state["weight"], *stats, step, self.forget)
        return online(D, A, B, self.norm, self.decay), {"A": A, "B": B, "weight": weight}

    def reset_atoms(self, state, atoms):
        A, B = state["A"], state["B"]
        if A is not None and atoms.size:
            idx = backend.like(atoms, A)
            A[idx, :] = 0
            A[:, idx] = 0
            B[idx, :] = 0
        return state

    @classmethod
    def nbytes(cls, m, p, batch, itemsize):
        # Ā and the batch's A, two m×m temporaries (the running mean's update, the pass's
        # triangular matrix), B̄ and B
        return (4 * m * m + 2 * m * p) * itemsize

    def state_dict(self, state):
        arrays = {} if state["A"] is None else {"stats_A": backend.to_numpy(state["A"]),
                                                "stats_B": backend.to_numpy(state["B"])}
        return arrays, {"weight": state["weight"]}

    def load_state_dict(self, arrays, values, m, p, dtype):
        found = checked_arrays(arrays, {"stats_A": (m, m), "stats_B": (m, p)}, dtype)
        if len(found) == 1:
            raise ValueError(f"checkpoint holds {next(iter(found))!r} without its pair (stats_A and stats_B)")
        return {"A": found.get("stats_A"), "B": found.get("stats_B"), "weight": float(values["weight"])}


def online(D, A_bar, B_bar, norm, decay, *, block=None):
    """One pass of block coordinate descent over the atoms j = 1..m in order (updates a copy of D),
    under the norm rule ``norm`` (a :class:`~.base.NormRule`).

    Host arrays (numpy, and torch CPU tensors through a numpy view of the copy) take the numba
    kernel where the rule's projection has its closed form (``norm.floor``) or none; device arrays,
    and rules of another form, take :func:`online_blocked`, the same pass in a few large products."""
    D = D + 0
    if not backend.on_gpu(D) and (norm.floor is not None or not norm.projects):
        # The pass is m small dependent steps; in Python each costs ~25 µs of call
        # overhead, a third of sparsolve.fit's time on 8×8 patches with 256 atoms.
        _online_numba(backend.to_numpy(D), backend.to_numpy(A_bar), backend.to_numpy(B_bar),
                      norm.floor if norm.projects else 0.0, float(decay), UNUSED)  # floor 0: no projection
        return D
    return online_blocked(D, A_bar, B_bar, norm, decay, block=block, copy=False)


# Atoms per block of the blocked pass: each block costs one (k, m)·(m, p) product and k small
# in-block steps of k·p work, so k ≪ m keeps the in-block work a small fraction of the products.
BLOCK = 64


def online_blocked(D, A_bar, B_bar, norm, decay, *, block=None, copy=True):
    """The online pass as a blocked Gauss–Seidel sweep: the same sequence of exact minimisers

        d_j ← Π( (B̄_j − Σ_i Ā_ji d_i + Ā_jj d_j) / (Ā_jj + decay) ),   j = 1..m in order,

    (d_i already updated for i < j), rearranged so that most of the work is in large products.
    For a block J of k atoms, one product gives every u_j with the atoms of J at their old
    values,  U_J = B̄_J − Ā_J,: D + diag(Ā_JJ) D_J,  and the in-block steps correct it by the
    changes Δ_i = d_i^new − d_i^old of the atoms before j in J:

        u_j = U_j − Σ_{i∈J, i<j} Ā_ji Δ_i,        d_j^new = Π(u_j / (Ā_jj + decay)).

    Without a projection (``norm.projects`` false: "penalty", "none") the steps are linear and the
    whole pass is one lower-triangular solve, with L the strict lower triangle of Ā,

        (L + diag(Ā_jj + decay)) Δ = B̄ − Ā D − decay·D,      D^new = D + Δ,

    (an unused atom, Ā_jj ≤ 1e-12, gets the row e_j and right-hand side 0: it keeps its row).
    Equal to the sequential pass in exact arithmetic.  Nothing here reads a value back to the
    host, so on a GPU the whole pass is queued without a sync (and can be captured in a graph).
    The in-block steps are a Python loop of small array operations (:func:`_in_block_steps`);
    on float32/float64 CUDA torch tensors with Triton installed, and a rule with a closed-form
    projection (``norm.floor``), they are one kernel launch a block (:mod:`._online_triton`).
    """
    xp = backend.namespace(D)
    m = D.shape[0]
    if copy:
        D = D + 0
    diag = _diag(A_bar)
    used = diag > UNUSED
    if not norm.projects:
        # Unused atoms keep their rows; a unit divisor keeps their (discarded) candidates finite.
        denominator = xp.where(used, diag + decay, diag * 0 + 1)
        # built in place: at interpretability sizes each m×m temporary is GBs (sparsolve.memory)
        T = xp.tril(A_bar, -1)
        T *= used[:, None]
        backend.set_diagonal(T, denominator)
        rhs = (B_bar - A_bar @ D - decay * D) * used[:, None]
        return D + backend.solve_lower_triangular(T, rhs)
    from . import _online_triton  # Triton itself is imported on first use, and only for CUDA torch

    k = max(1, min(m, BLOCK if block is None else int(block)))
    if norm.floor is not None and _online_triton.usable(D):
        floor = norm.floor

        def steps(W, coupling, old, keep):
            _online_triton.in_block_steps(W, coupling, old, keep, floor)
    else:
        def steps(W, coupling, old, keep):
            _in_block_steps(W, coupling, old, keep, norm)
    # 1/(Ā_jj + decay), and 1 for an unused atom (whose candidate is discarded: kept finite); the
    # reciprocal is torch's 1 / x in one launch rather than two (its 1 / x is reciprocal times 1)
    inverse = xp.reciprocal(xp.where(used, diag + decay if decay else diag, 1))
    # Every block's coupling C = Ā_JJ / (Ā_jj + decay), strictly lower, columns of unused atoms
    # zero (their Δ is 0): made for all the full blocks at once, from the view of Ā's diagonal
    # blocks, rather than in three small operations a block (on a GPU each is a launch).
    full = m // k
    couplings = xp.tril(backend.diagonal_blocks(A_bar, k) * inverse[:full * k].reshape(full, k, 1)
                        * used[:full * k].reshape(full, 1, k), -1)
    for start in range(0, m, k):
        stop = min(m, start + k)
        coupling = (couplings[start // k] if stop - start == k else
                    xp.tril(A_bar[start:stop, start:stop] * inverse[start:stop, None] * used[None, start:stop], -1))
        old = D[start:stop]  # a view: the block's rows are overwritten only by its in-block steps, last
        # W_t = u_t / (Ā_tt + decay) and the coupling scaled alike, so each in-block step is a
        # projection and one rank-1 correction of the rows after it.
        W = (B_bar[start:stop] - A_bar[start:stop] @ D + diag[start:stop, None] * old) * inverse[start:stop, None]
        steps(W, coupling, old, used[start:stop])
    return D


def _in_block_steps(W, coupling, old, keep, norm):
    """The new rows of a block of k atoms in online_blocked, one step per atom t = 1..k in order:

        u_t = W_t − Σ_{i<t} C_ti Δ_i,   Δ_t = κ_t (Π(u_t) − d_t^old),   d_t^new = d_t^old + Δ_t,

    with Π the norm rule's projection (in closed form, the division by max(‖·‖, floor), where the
    rule has one), C the scaled coupling (k, k; only its strictly lower part is read), κ = ``keep``
    (booleans: true for a used atom, false for an unused one), W (k, p) overwritten, and the new rows
    written over ``old`` (the block of D).  11 small array operations a step; on CUDA torch tensors
    with Triton, _online_triton.in_block_steps runs all k steps in one kernel launch instead."""
    xp = backend.namespace(W)
    floor = norm.floor
    change = old * 0
    for t in range(W.shape[0]):
        w = W[t]
        new = (w / xp.clip(xp.sqrt((w * w).sum()), floor, None) if floor is not None
               else norm.project(w[None, :], previous=old[t:t + 1])[0])
        change[t] = (new - old[t]) * keep[t]
        W[t + 1:] -= coupling[t + 1:, t:t + 1] * change[t][None, :]
    old += change


@njit(cache=True)
def _online_numba(D, A_bar, B_bar, floor, decay, unused):
    """online()'s pass in place on a numpy D: d_j ← Π((B̄_j − Ā_j D + Ā_jj d_j)/(Ā_jj + decay)),
    with Π the division by max(‖·‖, floor) (none for floor = 0)."""
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


def _diag(A):
    return backend.namespace(A).diagonal(A)
