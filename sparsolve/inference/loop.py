"""The batched iteration shared by ISTA, FISTA and LCA.

A solver supplies three small functions -- ``init``, ``step`` and ``current`` -- over
a state dict whose entries all have one row per sample.  Every ``check_every``
steps this loop certifies each sample by its relative duality gap,
gap ≤ tol · F(z) (see :mod:`sparsolve.gap`), writes the finished rows out, and
drops them from the state and the problem: a converged sample costs no more work.
It also stops a diverging iteration with an error instead of returning NaN.

Host reads.  A certificate reads the device once: the per-row verdicts gap ≤ tol·F and
the divergence flag, computed on the device, come back as one vector of booleans.  The rows
that finish are copied out and dropped by integer indices made from it (no boolean mask,
whose indexing would read the device again; the indices go to the device in one copy), and
their criteria and verdicts are written into device arrays that are read once, at the end.
So an encode on a GPU reads the device once per ``check_every`` steps and once more when it
ends.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ..gap import gap_from_terms


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
    n = Z0.shape[0]
    Z_out = backend.copy(Z0)
    n_iter = np.zeros(n, dtype=np.int64)
    # each row's criterion and verdict (1.0: converged), on the device until the end
    out = backend.astype(backend.zeros(Z0, (2, n)), "float64")
    out[0] = np.inf
    active = np.arange(n)
    state = solver.init(prob, Z0)
    limit = None  # per row, the objective beyond which the iteration is diverging (set at the start)
    it = 0
    while active.size:
        # Certify at it = 0 too: a warm start that is already good enough costs no steps.
        if it >= max_iter or it % check_every == 0:
            Z, crit, ok, F, calm = _certify(solver, prob, state, tol, limit)
            # the certificate's one read: booleans joined as they are (a conversion is a launch on a GPU)
            flags = backend.to_numpy(backend.concat([v for v in (ok, calm) if v is not None]))
            if calm is not None and not flags[-1]:
                raise DivergenceError(
                    f"{solver.name} diverged: the objective became non-finite or grew beyond "
                    f"{_BLOWUP:g}·F(start). {solver.divergence_hint(prob)}"
                )
            if limit is None:
                limit = _limit(F, prob.xsq)
            stop = it >= max_iter or (trace is not None and bool(trace(it, active, Z, F)))
            fin = np.ones(active.size, bool) if stop else flags[:active.size].astype(bool)
            if fin.any():
                rows = active[fin]
                # the three index arrays moved to the device in one copy (on a GPU each is a transfer)
                moved = backend.like(np.concatenate([np.flatnonzero(fin), rows, np.flatnonzero(~fin)]), Z)
                done, to, keep = moved[:rows.size], moved[rows.size:2 * rows.size], moved[2 * rows.size:]
                Z_out[to] = Z[done]
                # criterion and verdict (as 1.0 / 0.0) of the finished rows in one write, not two
                out[:, to] = backend.astype(backend.namespace(crit).stack([crit, ok])[:, done], "float64")
                n_iter[rows] = it
                active = active[~fin]
                if not active.size:
                    break
                state = {k: v[keep] for k, v in state.items()}
                prob = prob.take(keep)
                limit = limit[keep]
        solver.step(prob, state)
        it += 1
    host = backend.to_numpy(out)  # the criteria and verdicts, read once
    return Result(Z_out, n_iter, host[0].copy(), host[1] > 0)


def _limit(F, xsq):
    """Each row's divergence limit, _BLOWUP · max(F(start), ½‖x‖²) + 1e-30, made once per run
    (not at every certificate), and capped at the dtype's largest finite value so that one test,
    |F| ≤ limit, fails for a NaN or infinite F as well as for one beyond the limit."""
    xp = backend.namespace(F)
    largest = float(np.finfo(backend.dtype_name(F)).max)
    return xp.clip(_BLOWUP * xp.maximum(F, 0.5 * xsq) + 1e-30, None, largest)


def _certify(solver, prob, state, tol, limit):
    """(Z, criterion, ok, F, calm): the lasso gap, or the solver's own residual when it is not
    a lasso solver, the objective, and (on the device, a 1-element array) whether every F is
    finite and within its row's ``limit`` (_limit); None while limit is None (the start, which
    is not tested).  (F ≥ 0: |F| only lets the one test catch a −∞ of an overflowed ‖r‖².)"""
    xp = backend.namespace(prob.xsq)
    Z = solver.current(prob, state)
    C, r2, xr = prob.terms(Z)
    gap, F = gap_from_terms(r2, xr, prob.row_sum(abs(Z)), prob.dual_scale(C), prob.alpha)
    calm = None
    if limit is not None:
        calm = (abs(F) <= limit).all().reshape(1)
    if solver.criterion == "rel_gap":
        # 1e-30, not smaller: float32 flushes 1e-300 to 0, and an all-zero row (F = gap = 0) gave 0/0
        rel = gap / xp.clip(F, 1e-30, None)
        return Z, rel, gap <= tol * F, F, calm
    res = solver.residual(prob, state, C)
    return Z, res, res <= tol, F, calm
