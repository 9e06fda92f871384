"""Coordinate descent on the Gram matrix, one numba thread per sample.

Why numba: the update is sequential in the coordinates -- each one depends on the
last -- so it cannot be phrased as the big matrix products numpy and torch are
good at.  Compiled, a sample's sweep costs O(m) checks plus O(m) per coordinate
that moves, and samples run in parallel with ``prange``.

For one sample, with b = xDᵀ, G = DDᵀ and the correlation c = b − zG kept up to
date, a sweep visits j = 1..m:

    z_j ← T_{α/G_jj}( z_j + c_j / G_jj )          (exact minimisation in z_j)
    c   ← c − (z_j^new − z_j^old) · G_j           (only when z_j moved)

A coordinate at zero with |c_j| ≤ α stays at zero, so most of a sweep is a
comparison.

Plain CD crawls when the support is nearly collinear (k close to n_features), so
after each sweep the solver takes damped Newton steps on the current support
(``_active_set_solve``), each projected or cut back at the first sign change,
until one is taken in full.  The Cholesky factor of the support's Gram matrix is
updated, not recomputed, as atoms come and go (O(k²) per atom).  Sweeps find the
atoms that belong in the support, Newton steps solve on it exactly: once the
support is right this lands on the solution to rounding error, as LARS would.
So a sweep visits only the atoms at zero, to switch them on; the support's own
coordinates are left to the Newton step (and swept only where the support has
outgrown the factor and CD runs alone).

Sweeping all m atoms from z = 0 switches on far more atoms than the solution
keeps (more than n_features, where the Newton steps degenerate), so the sweeps
run over a working set (as in Celer and skglm): the support plus the atoms with
the largest KKT violations |c_j| > α, doubled in size whenever the sub-problem
is solved and the full duality gap is still above tol.  For the same reason a
sweep may switch on only a limited number of new atoms: an atom switched on in
excess costs a Newton step to switch off again.  The allowance grows by 8 after
each sweep whose new atoms mostly survive the Newton steps and halves after one
whose new atoms mostly do not (growing it by doubling instead cost 15% more
time on 16×16 patches: the overshoot it invites is paid for in appends,
Newton cuts and deletes).

Because c is kept for all atoms, the full gap of :mod:`sparsolve.gap` costs O(m) and
decides when a sample stops.  That c is a running quantity, updated in place over every move,
and in float32 it drifts (a row stalled for all its sweeps at tol 1e-6); so the gap *reported*
is recomputed from the returned codes (:mod:`.certificate`), rows it refuses are finished in
float64, and below PRECISE_BELOW float32 data is solved in float64 from the start.

This module is the Gram form.  At interpretability width (many atoms per feature) the same
per-sample kernel runs without G, on per-row working sets (:mod:`.working_sets`).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .. import backend
from ..checks import choice
from ._cd_kernels import _correlation, _solve_one
from ._cholesky import damping
from .base import Solver
from .certificate import certify
from .loop import Result
from .problem import FORMS


@njit(parallel=True, cache=True)
def _cd_batch(G, XDt, xsq, Z, alpha, positive, tol, max_iter, delta, ws0, cap, n_chunks, n_iter, gap,
              converged):
    """Every row of XDt = XDᵀ (b = xDᵀ per sample) in parallel, over chunks of rows; Z in place."""
    n, m = XDt.shape
    per_chunk = (n + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        # one workspace per chunk: allocating the factor per sample costs more
        # than solving the many samples whose code is zero
        L = np.empty((cap, cap), dtype=G.dtype)
        S = np.empty(cap, dtype=np.int64)
        in_S = np.zeros(m, dtype=np.bool_)
        c = np.empty(m, dtype=G.dtype)
        for i in range(chunk * per_chunk, min(n, (chunk + 1) * per_chunk)):
            z = Z[i]
            _correlation(z, XDt[i], G, c)
            n_iter[i], gap[i], converged[i] = _solve_one(z, c, XDt[i], xsq[i], G, alpha, positive, tol,
                                                         max_iter, delta, ws0, L, S, in_S)


# The first working set: large enough for a typical patch's support at 5-10% density.
_WORKING_SET_START = 16

class CD(Solver):
    """Coordinate descent with working sets and Newton steps (module docstring), as numba kernels
    on host copies of the arrays, in one of two forms (option ``form``):

    * ``"gram"``: on G = DDᵀ, formed once (m²p multiply-adds), every row's correlations kept for
      all m atoms (this module);
    * ``"factored"``: no Gram matrix; batched working sets whose Gram blocks are formed per row,
      pruned by gap-safe screening, checked by one product c = rDᵀ a round
      (:mod:`.working_sets`): the work scales with the support, not the width;
    * ``"auto"`` (default): the plan's form where memory forces the factored one, else the cheaper
      by the cost model of :meth:`settle_form`.

    Either way the certificate reported is recomputed from the returned codes (:mod:`.certificate`)."""

    name = "cd"
    runs_on_host = True
    default_max_iter = 2000
    OPTIONS = {"form": "auto"}
    OPTION_TYPES = {"form": FORMS}

    #: cd computes its certificate in float64 from the returned codes (float32 codes: their own
    #: rounding leaves relative gaps of about 2e-7 on random 64-d rows) and runs in float64 below
    #: PRECISE_BELOW, so float32 is certified down to 1e-6.
    TOL_FLOOR = {"float32": 1e-6, "bfloat16": 2.0 ** -7}

    @classmethod
    def _check(cls, opts, positive, X, D):
        choice(opts["form"], "form", FORMS)

    def floor_reason(self):
        return "codes stored in that dtype are rounded by more than a smaller gap"

    def form_request(self):
        return self.form

    def settle_form(self, plan, n_samples, n_atoms, n_features):
        """The form to run: the one asked for, or under "auto" the factored form where G does not fit
        (``plan.gram_fits``) or where the dictionary is wide: m > FACTORED_ABOVE · p.  The iterative solvers' flop
        count (the plan's own choice) prices a step of theirs, not a sweep of cd's, so it is not used."""
        if self.form != "auto":
            return plan.form
        if not plan.gram_fits:
            return "factored"
        return "factored" if n_atoms > FACTORED_ABOVE * n_features else "gram"

    def prepare(self, D, form):
        Dh = np.ascontiguousarray(backend.to_numpy(D))
        if form == "factored":
            return {"D": Dh}
        return {"G": np.ascontiguousarray(Dh @ Dh.T), "D": Dh}

    def solve(self, X, D, alpha, *, init, tol, max_iter, form, shared, row_offset=0):
        """Lasso codes for the rows of X; ``Result.crit`` is the relative gap gap/F(z) of the codes returned."""
        Dh = shared["D"]
        Xh = np.ascontiguousarray(backend.to_numpy(X))
        if form == "factored":
            from . import working_sets

            Z, n_iter, rel_gap, converged = working_sets.solve(Xh, Dh, float(alpha), self.positive,
                                                               backend.to_numpy(init), float(tol), int(max_iter))
            return Result(backend.match(Z, X), n_iter, rel_gap, converged)
        Z = np.array(backend.to_numpy(init), dtype=Xh.dtype, order="C", copy=True)
        if Xh.dtype != np.float64 and tol < PRECISE_BELOW:
            # float32 coordinate descent cannot resolve such a gap: its running correlation drifts by
            # more over the moves; the kernel runs in float64 and the codes are rounded once
            D64 = Dh.astype(np.float64)
            Z64 = Z.astype(np.float64)
            n_iter = _gram_solve(D64 @ D64.T, Xh.astype(np.float64), D64, Z64, alpha, self.positive, tol, max_iter)
            Z[:] = Z64
        else:
            n_iter = _gram_solve(shared["G"], Xh, Dh, Z, alpha, self.positive, tol, max_iter)
        cert = certify(Xh, Dh, Z, float(alpha), self.positive, tol=tol)
        short = np.flatnonzero(cert.gap > tol * cert.F)
        if short.size and Xh.dtype != np.float64 and tol > 0:
            # The kernel's running correlation drifts in float32 (updated in place over every move, it
            # can stall a row for all its sweeps) and its certificate with it: the rows the recomputed
            # certificate refuses are finished in float64, from where they are, and certified again.
            D64 = Dh.astype(np.float64)
            Z64 = Z[short].astype(np.float64)
            n_iter[short] += _gram_solve(D64 @ D64.T, Xh[short].astype(np.float64), D64, Z64, alpha, self.positive,
                                         tol, max_iter)
            Z[short] = Z64
            again = certify(Xh, Dh, Z, float(alpha), self.positive, rows=short, tol=tol)
            cert.rel_gap[short], cert.gap[short], cert.F[short] = again.rel_gap, again.gap, again.F
        converged = cert.gap <= tol * cert.F
        return Result(backend.match(Z, X), n_iter, cert.rel_gap, converged)


#: Below this tol, float32 data is solved in float64 (the Gram form; the factored form's
#: sub-problems always are): float32 coordinate descent stalled short of 1e-6 on random 64-d rows.
PRECISE_BELOW = 1e-5

#: Under form="auto", cd runs without the Gram matrix above this many atoms per feature.  Measured
#: (one thread, CPU time, tol 1e-3): synthetic activations, m = 4,096 = 16p, L0 12: factored 1.4–1.7×
#: faster at 256 to 8,000 rows; 16×16 patches, m = 1,024 = 4p, L0 47: Gram 2.2–2.6× faster at 256
#: and 1,024 rows (its supports make the per-row blocks large); 8×8 patches, m = 4p: even.
FACTORED_ABOVE = 8


def _gram_solve(G, Xh, Dh, Z, alpha, positive, tol, max_iter):
    """The Gram-form kernel over the rows of Xh, Z in place; returns the sweeps per row."""
    XDt = np.ascontiguousarray(Xh @ Dh.T)
    xsq = np.einsum("ij,ij->i", Xh, Xh)
    n = Xh.shape[0]
    n_iter = np.zeros(n, dtype=np.int64)
    rel_gap = np.zeros(n, dtype=np.float64)
    converged = np.zeros(n, dtype=np.bool_)
    m, p = Dh.shape
    cap = min(m, max(64, 2 * p))  # supports hardly exceed n_features; past cap, CD sweeps alone
    n_chunks = min(max(n, 1), 16 * numba.get_num_threads())  # small chunks balance uneven samples
    _cd_batch(G, XDt, xsq, Z, G.dtype.type(alpha), positive, float(tol), int(max_iter), damping(G),
              _WORKING_SET_START, cap, n_chunks, n_iter, rel_gap, converged)
    return n_iter
