"""The batched iteration shared by ISTA, FISTA and LCA.

A solver supplies three small functions -- ``init``, ``step`` and ``current`` -- over
a state dict whose entries all have one row per sample.  Every ``check_every``
steps this loop certifies each sample by its relative duality gap,
gap ≤ tol · F(z) (see :mod:`sparsolve.gap`), writes the finished rows out, and
drops them from the state and the problem: a converged sample costs no more work.
It also stops a diverging iteration with an error instead of returning NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ..gap import dual_scale, gap_from_terms


class DivergenceError(FloatingPointError):
    """An iteration blew up (its objective became non-finite or grew without bound)."""


@dataclass
class Result:
    """Codes plus, for each sample, iterations taken, the solver's last certified
    criterion (``crit``: see ``base.CRITERIA``) and convergence."""

    Z: object
    n_iter: np.ndarray
    crit: np.ndarray
    converged: np.ndarray


# An iterate whose objective exceeds this multiple of max(F(0), F(start)) is diverging;
# F(start) counts because LCA starts at the plain layer T(xDᵀ), whose objective can
# exceed F(0) = ½‖x‖² many times over when the atoms are coherent.
_BLOWUP = 1e4


def iterate(solver, prob, Z0, *, tol, max_iter, check_every, trace=None):
    """Run ``solver`` on ``prob`` from ``Z0`` until every row is certified or max_iter.

    ``trace(step, rows, Z, F)``, when given, is called at every certificate with the
    host indices of the rows still running, their codes and their objectives F(z);
    if it returns True the run ends there, the rows not yet certified written out as
    they are (not converged)."""
    xp = backend.namespace(Z0)
    n = Z0.shape[0]
    Z_out = backend.copy(Z0)
    n_iter = np.zeros(n, dtype=np.int64)
    crit_out = np.full(n, np.inf)
    converged = np.zeros(n, dtype=bool)
    active = np.arange(n)
    state = solver.init(prob, Z0)
    F_ref = None
    it = 0
    while active.size:
        # Certify at it = 0 too: a warm start that is already good enough costs no steps.
        if it >= max_iter or it % check_every == 0:
            Z, crit, ok, F = _certify(solver, prob, state, tol, xp, F_ref)
            if F_ref is None:
                F_ref = xp.maximum(F, 0.5 * prob.xsq)
            stop = it >= max_iter or (trace is not None and bool(trace(it, active, Z, F)))
            finished = (ok | True) if stop else ok  # stop: every row finishes here
            if bool(finished.any()):
                fin = backend.to_numpy(finished)
                rows = active[fin]
                Z_out[backend.like(rows, Z_out)] = Z[finished]
                n_iter[rows] = it
                crit_out[rows] = backend.to_numpy(crit[finished])
                converged[rows] = backend.to_numpy(ok[finished])
                keep = ~finished
                active = active[~fin]
                if not active.size:
                    break
                state = {k: v[keep] for k, v in state.items()}
                prob = prob.take(keep)
                F_ref = F_ref[keep]
        solver.step(prob, state)
        it += 1
    return Result(Z_out, n_iter, crit_out, converged)


def _certify(solver, prob, state, tol, xp, F_ref):
    """(Z, criterion, ok, F): the lasso gap, or the solver's own residual when it is not a
    lasso solver, and the objective.  Raises DivergenceError where F > _BLOWUP · F_ref
    (F_ref is None at the start, which is not tested)."""
    Z = solver.current(prob, state)
    C, r2, xr = prob.terms(Z)
    gap, F = gap_from_terms(r2, xr, abs(Z).sum(axis=1), dual_scale(C, prob.alpha, prob.positive), prob.alpha)
    if F_ref is not None and (not bool(xp.isfinite(F).all()) or bool((F > _BLOWUP * F_ref + 1e-30).any())):
        raise DivergenceError(
            f"{solver.name} diverged: the objective became non-finite or grew beyond "
            f"{_BLOWUP:g}·F(start). {solver.divergence_hint(prob)}"
        )
    if solver.criterion == "rel_gap":
        # 1e-30, not smaller: float32 flushes 1e-300 to 0, and an all-zero row (F = gap = 0) gave 0/0
        rel = gap / xp.clip(F, 1e-30, None)
        return Z, rel, gap <= tol * F, F
    res = solver.residual(prob, state, C)
    return Z, res, res <= tol, F
