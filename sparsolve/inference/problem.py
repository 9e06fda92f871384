"""The lasso instance a solver iterates on: the dictionary, the per-sample data, and
the two ways of computing the residual correlation c = (x − zD)Dᵀ.

* Gram form:     c = b − zG  with b = xDᵀ (a row of ``XDt``) and the Gram matrix G = DDᵀ
                 (m×m, computed once): one n×m×m product per evaluation.
* Factored form: c = (x − zD)Dᵀ: two n×m×p products per evaluation.

Per evaluation the Gram form costs n·m² and the factored form 2·n·m·p, so the Gram
form pays for undercomplete dictionaries (m < 2p) and the factored one for
overcomplete ones; ``choose_form`` (sparsolve.memory, which decides the form) also charges the
Gram form its set-up, m²·p.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import backend
from ..gap import residual_terms
from ..memory import FORMS, choose_form  # noqa: F401 -- the form is the memory plan's choice


def top_eigenvalue(A, *, n_iter: int = 200, rtol: float = 1e-7, block: int = 16) -> float:
    """λ_max(A) of a symmetric positive semi-definite matrix A (see :func:`power_iteration`)."""
    return power_iteration(A, n_iter=n_iter, rtol=rtol, block=block)[0]


def power_iteration(A, start=None, *, n_iter: int = 200, rtol: float = 1e-7, block: int = 16):
    """(λ, v): λ_max(A) and its unit eigenvector for a symmetric positive semi-definite A, by
    power iteration v ← Av/‖Av‖ from ``start`` (default v = 1/√n); stops when λ = ‖Av‖ moves
    by ≤ rtol·λ (never with rtol = 0) or after n_iter steps.  Approaches λ_max from below.

    The iterates' λ are read to the host ``block`` at a time (one read of the device per
    block, not per step: on a GPU each read waits for the queue), and the first λ that
    passes the test is returned -- the same λ as a test after every step, at the cost of
    up to ``block`` − 1 unread steps (v is the last iterate computed).  From the eigenvector
    of a nearby matrix (a learner's previous dictionary, :func:`lipschitz_and_vector`) the test
    usually passes within the first block: one read, where a start at 1/√n takes two or more
    (at 16×16 patches and 1,024 atoms: 3–15 steps warm, 23 cold)."""
    xp = backend.namespace(A)
    n = A.shape[0]
    v = backend.ones(A, (n,)) / n ** 0.5 if start is None else start
    lam, done = 0.0, 0
    while done < n_iter:
        steps = min(block, n_iter - done)
        norms = []
        for _ in range(steps):
            w = A @ v
            new = xp.sqrt((w * w).sum())
            norms.append(new.reshape(1))
            v = w / (new + (new == 0))  # ÷1 where ‖Av‖ = 0 (no NaN: that λ = 0 is returned below)
        for new in backend.to_numpy(backend.astype(backend.concat(norms), "float64")).tolist():
            if new == 0.0:
                return 0.0, v
            converged = abs(new - lam) <= rtol * new
            lam = new
            if converged:
                return lam, v
        done += steps
    return lam, v


def lipschitz(D) -> float:
    """L = ‖D‖₂² = λ_max(DDᵀ), the Lipschitz constant of the gradient of ½‖x − zD‖²,
    from the smaller of DDᵀ and DᵀD.  The 1e-3 margin keeps the step 1/L safe for
    the few digits the power iteration has not settled."""
    return lipschitz_and_vector(D)[0]


def lipschitz_and_vector(D, start=None):
    """(L, v): :func:`lipschitz`'s L, and the top eigenvector v of the smaller of DDᵀ and DᵀD,
    for the next call to ``start`` at when D has moved a little (a learner's next step).

    The power iteration starts at (±start + 1/√n) / ‖·‖, not at ``start`` alone: the last top
    eigenvector can have lost every component along the eigenvector that is now the top one (an
    exact 0.0 where D's features fall into disjoint blocks and the other block has just overtaken),
    and from there the iteration can never reach it -- L would come out too small and the solver
    diverge.  The cold start's 1/√n gives every direction at least half the share it has from a
    cold start; the sign makes ±start add to it rather than cancel it."""
    M = D @ D.T if D.shape[0] <= D.shape[1] else D.T @ D
    if start is not None:
        xp = backend.namespace(start)
        mixed = xp.where(start.sum() < 0, -start, start) + backend.ones(start, start.shape) / start.shape[0] ** 0.5
        start = mixed / xp.sqrt((mixed * mixed).sum())
    lam, v = power_iteration(M, start)
    return lam * (1 + 1e-3), v


@dataclass
class LassoProblem:
    """min_z ½‖x − zD‖² + α‖z‖₁ (+ z ≥ 0) for the rows x of ``X``.

    ``X`` (rows, factored form) or ``XDt`` = XDᵀ (rows, Gram form) hold the per-sample
    data, with ``xsq`` = ‖x‖²; ``G`` = DDᵀ (the Gram matrix, not LCA's DDᵀ − I) and
    ``L`` = ‖D‖₂² (the Lipschitz constant).  ``take`` keeps a subset of rows so that
    converged samples stop costing work."""

    D: object
    alpha: float
    positive: bool
    L: float
    form: str
    X: object = None
    XDt: object = None
    xsq: object = None
    G: object = None

    @classmethod
    def build(cls, X, D, alpha, positive, form, *, L=None, G=None):
        xsq = (X * X).sum(axis=1)
        L = lipschitz(D) if L is None else L
        if form == "gram":
            G = D @ D.T if G is None else G
            return cls(D, alpha, positive, L, form, XDt=X @ D.T, xsq=xsq, G=G)
        return cls(D, alpha, positive, L, form, X=X, xsq=xsq)

    def correlation(self, Z):
        """c = (x − zD)Dᵀ, the negative gradient of ½‖x − zD‖² at z."""
        if self.form == "gram":
            return self.XDt - Z @ self.G
        return (self.X - Z @ self.D) @ self.D.T

    def terms(self, Z, C=None):
        """(c, ‖r‖², ⟨x, r⟩) at Z; pass C when it is already known (Gram form)."""
        if self.form == "factored":
            return residual_terms(self.X, self.D, Z)
        if C is None:
            C = self.correlation(Z)
        zb = (Z * self.XDt).sum(axis=1)
        zc = (Z * C).sum(axis=1)
        # ‖r‖² = ‖x‖² − 2⟨z,b⟩ + ⟨z, zG⟩ and ⟨z, zG⟩ = ⟨z,b⟩ − ⟨z,c⟩
        return C, self.xsq - zb - zc, self.xsq - zb

    def take(self, keep):
        """The sub-problem of rows ``keep`` (a boolean mask or index array)."""
        return replace(
            self,
            X=None if self.X is None else self.X[keep],
            XDt=None if self.XDt is None else self.XDt[keep],
            xsq=self.xsq[keep],
        )
