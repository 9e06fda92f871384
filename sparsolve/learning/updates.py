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
* ``"sgd"`` -- Olshausen & Field (1996)'s gradient step, taken by :class:`Adam` on the
  gradient from the residual R = X − ZD,  ∇ = −ZᵀR/b + decay·D  (:func:`gradient`, no m×m
  array, so it serves dictionaries too wide for the statistics), with the norm rule after
  the step; under ``"unit"`` the gradient first loses its part along each atom
  (norms.tangent), as sparse-autoencoder trainers do.
* ``"mod"`` -- the method of optimal directions (Engan et al. 1999), the exact
  minimiser on the batch (meant for full-batch data):

      D ← (A + decay·I)⁻¹ B.

An atom that no sample used (A_jj = 0) keeps its row: there is no data to move it,
and the dead-atom policy (dead.py) decides its fate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import backend
from ..checks import nonnegative_float, positive_float
from . import norms

UPDATES = ("online", "sgd", "mod")

# A_jj below this is an unused atom.
_UNUSED = 1e-12


def check_update(update):
    if update not in UPDATES:
        raise ValueError(f"update={update!r} is not known; choose one of {list(UPDATES)}")
    return update


def batch_statistics(X, Z):
    """(A, B) = (ZᵀZ / b, ZᵀX / b)."""
    b = max(1, X.shape[0])
    return backend.codes_gram(Z) / b, backend.codes_transpose_times(Z, X) / b  # from Z's nonzeros where sparse


def running_statistics(A_bar, B_bar, weight, A, B, t, forget):
    """(Ā_t, B̄_t, w_t) from the previous running means (None at the start), their weight
    w_{t−1} and the statistics of step t's batch; ρ_t = (1 − 1/t)^forget (ρ_1 = 0)."""
    rho = (1.0 - 1.0 / t) ** forget
    w = rho * weight + 1.0
    if A_bar is None:
        return A, B, w
    return (rho * weight * A_bar + A) / w, (rho * weight * B_bar + B) / w, w


def online(D, A_bar, B_bar, norm, decay, *, block=None):
    """One pass of block coordinate descent over the atoms j = 1..m in order (updates a copy of D).

    Host arrays (numpy, and torch CPU tensors through a numpy view of the copy) take the numba
    kernel; device arrays take :func:`online_blocked`, the same pass in a few large products."""
    D = D + 0
    if not backend.on_gpu(D):
        Dh, Ah, Bh = backend.to_numpy(D), backend.to_numpy(A_bar), backend.to_numpy(B_bar)
        if D.shape[0] >= BLOCKED_ON_HOST and norm in norms.FLOOR:
            # wide, under a projection: the pass's m²p multiply-adds as the blocked pass's products
            # (BLAS), the in-block steps one numba kernel a block; in place on the host view of the copy.
            # Blocks of HOST_BLOCK atoms: each product is then large enough for every core where the
            # machine has one to spare (2.7e8 at m = 4,096, p = 256; backend.blas_threads_for)
            k = HOST_BLOCK if block is None else block
            with backend.blas_threads_for(Dh, k * D.shape[0] * D.shape[1]):
                online_blocked(Dh, Ah, Bh, norm, decay, block=k, copy=False)
            return D
        # The pass is m small dependent steps; in Python each costs ~25 µs of call
        # overhead, a third of sparsolve.fit's time on 8×8 patches with 256 atoms.
        _online_numba(Dh, Ah, Bh, norms.FLOOR.get(norm, 0.0), float(decay), _UNUSED)  # floor 0: no projection
        return D
    return online_blocked(D, A_bar, B_bar, norm, decay, block=block, copy=False)


# Atoms per block of the blocked pass: each block costs one (k, m)·(m, p) product and k small
# in-block steps of k·p work, so k ≪ m keeps the in-block work a small fraction of the products.
BLOCK = 64
#: From this many atoms the host takes the blocked pass too (numba in-block steps, BLAS products):
#: its per-atom kernel reads a row of Ā and D's rows a step, m²p multiply-adds at a few GFLOP/s.
#: At m = 4,096, p = 256, one thread, an Ā of 27 % nonzeros: 197 ms that way, 118 ms blocked (at
#: any block from 64 to 512 atoms; and the blocked pass does not slow as Ā fills in).
BLOCKED_ON_HOST = 1024
HOST_BLOCK = 256


def online_blocked(D, A_bar, B_bar, norm, decay, *, block=None, copy=True):
    """The online pass as a blocked Gauss–Seidel sweep: the same sequence of exact minimisers

        d_j ← Π( (B̄_j − Σ_i Ā_ji d_i + Ā_jj d_j) / (Ā_jj + decay) ),   j = 1..m in order,

    (d_i already updated for i < j), rearranged so that most of the work is in large products.
    For a block J of k atoms, one product gives every u_j with the atoms of J at their old
    values,  U_J = B̄_J − Ā_J,: D + diag(Ā_JJ) D_J,  and the in-block steps correct it by the
    changes Δ_i = d_i^new − d_i^old of the atoms before j in J:

        u_j = U_j − Σ_{i∈J, i<j} Ā_ji Δ_i,        d_j^new = Π(u_j / (Ā_jj + decay)).

    Without a projection (norm "penalty" or "none") the steps are linear and the whole pass is
    one lower-triangular solve, with L the strict lower triangle of Ā,

        (L + diag(Ā_jj + decay)) Δ = B̄ − Ā D − decay·D,      D^new = D + Δ,

    (an unused atom, Ā_jj ≤ 1e-12, gets the row e_j and right-hand side 0: it keeps its row).
    Equal to the sequential pass in exact arithmetic.  Nothing here reads a value back to the
    host, so on a GPU the whole pass is queued without a sync (and can be captured in a graph).
    The in-block steps are a Python loop of small array operations (:func:`_in_block_steps`);
    on float32/float64 CUDA torch tensors with Triton installed they are one kernel launch a
    block (:mod:`._online_triton`).
    """
    xp = backend.namespace(D)
    m = D.shape[0]
    if copy:
        D = D + 0
    diag = _diag(A_bar)
    used = diag > _UNUSED
    floor = norms.FLOOR.get(norm)
    if floor is None:
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
    steps = (_online_triton.in_block_steps if _online_triton.usable(D)
             else _in_block_numba if isinstance(D, np.ndarray) else _in_block_steps)
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
        steps(W, coupling, old, used[start:stop], floor)
    return D


def _in_block_steps(W, coupling, old, keep, floor):
    """The new rows of a block of k atoms in online_blocked, one step per atom t = 1..k in order:

        u_t = W_t − Σ_{i<t} C_ti Δ_i,   Δ_t = κ_t (Π(u_t) − d_t^old),   d_t^new = d_t^old + Δ_t,

    with Π the division by max(‖·‖, floor), C the scaled coupling (k, k; only its strictly lower
    part is read), κ = ``keep`` (booleans: true for a used atom, false for an unused one), W (k, p)
    overwritten, and the new rows written over ``old`` (the block of D).  11 small array operations
    a step; on CUDA torch tensors with Triton, _online_triton.in_block_steps runs all k steps in
    one kernel launch instead."""
    xp = backend.namespace(W)
    change = old * 0
    for t in range(W.shape[0]):
        w = W[t]
        change[t] = (w / xp.clip(xp.sqrt((w * w).sum()), floor, None) - old[t]) * keep[t]
        W[t + 1:] -= coupling[t + 1:, t:t + 1] * change[t][None, :]
    old += change


@njit(cache=True, fastmath={"reassoc", "contract", "arcp"})
def _in_block_numba(W, coupling, old, keep, floor):
    """:func:`_in_block_steps` as one numba kernel, for numpy arrays (the host's blocked pass)."""
    k, p = W.shape
    change = np.zeros_like(W)
    for t in range(k):
        if keep[t]:
            sq = 0.0
            for f in range(p):
                sq += W[t, f] * W[t, f]
            scale = 1.0 / max(np.sqrt(sq), floor)
            for f in range(p):
                change[t, f] = W[t, f] * scale - old[t, f]
        for r in range(t + 1, k):
            c = coupling[r, t]
            if c != 0.0:
                for f in range(p):
                    W[r, f] -= c * change[t, f]
    for t in range(k):
        for f in range(p):
            old[t, f] += change[t, f]


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


def gradient(D, Z, R, decay):
    """∇_D of the batch loss  mean_x ½‖x − zD‖² + (decay/2) Σ‖d_j‖²,  from the codes Z (b, m) and
    the residual R = X − ZD (b, p):  −ZᵀR / b + decay·D.  It never forms ZᵀZ (m×m), so it
    serves dictionaries too wide for the online statistics."""
    grad = backend.codes_transpose_times(Z, R) / -max(1, R.shape[0])  # = −(ZᵀR)/b exactly, one operation fewer
    return grad + decay * D if decay else grad  # decay 0 (every rule but "penalty"): nothing to add


@dataclass(frozen=True)
class AdamSettings:
    """Adam's constants for the ``update="sgd"`` step (Kingma & Ba 2015), checked on creation."""

    lr: float = 1e-3
    """The step size: each entry of D moves by about ``lr`` per step, whatever the gradient's scale."""
    beta1: float = 0.9
    """Decay of the running mean of the gradient, in [0, 1)."""
    beta2: float = 0.999
    """Decay of the running mean of the squared gradient, in [0, 1)."""
    eps: float = 1e-8
    """Added to √v̂ so that entries without gradient history take no huge step."""

    def __post_init__(self):
        positive_float(self.lr, "lr")
        positive_float(self.eps, "eps")
        for name in ("beta1", "beta2"):
            if not nonnegative_float(getattr(self, name), name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


class Adam:
    """Adam on the dictionary: with the gradient g_t (after norms.tangent),

        m_t = β₁ m_{t−1} + (1 − β₁) g_t,     v_t = β₂ v_{t−1} + (1 − β₂) g_t²,
        D ← D − lr · m̂_t / (√v̂_t + eps),   m̂_t = m_t / (1 − β₁ᵗ),  v̂_t = v_t / (1 − β₂ᵗ),

    then the norm rule (norms.project) as after every update.  The moments live beside D, in
    its library, device and dtype; :meth:`state` and :meth:`from_state` carry them through a
    checkpoint."""

    def __init__(self, settings: AdamSettings | None = None):
        self.settings = AdamSettings() if settings is None else settings
        self.mean = self.square = None
        self.t = 0

    def step(self, D, grad):
        s = self.settings
        if self.mean is None:
            self.mean, self.square = grad * 0, grad * 0
        self.t += 1
        self.mean = s.beta1 * self.mean + (1 - s.beta1) * grad
        self.square = s.beta2 * self.square + (1 - s.beta2) * grad * grad
        xp = backend.namespace(D)
        # the bias corrections are host scalars (t is counted here), so the step reads nothing back
        step = s.lr / (1 - s.beta1 ** self.t)
        root = xp.sqrt(self.square / (1 - s.beta2 ** self.t))
        return D - step * self.mean / (root + s.eps)

    def state(self):
        """The moments as host arrays and the step count, for a checkpoint (None before the first step)."""
        if self.mean is None:
            return None
        return {"mean": backend.to_numpy(self.mean), "square": backend.to_numpy(self.square), "t": self.t}

    @classmethod
    def from_state(cls, state, like, settings: AdamSettings | None = None):
        """An Adam resumed from :meth:`state`, its moments moved to the library and device of ``like``."""
        adam = cls(settings)
        if state is not None:
            dtype = backend.dtype_name(like)
            adam.mean = backend.astype(backend.like(np.asarray(state["mean"]), like), dtype)
            adam.square = backend.astype(backend.like(np.asarray(state["square"]), like), dtype)
            adam.t = int(state["t"])
        return adam


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
