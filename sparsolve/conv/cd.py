"""Locally greedy coordinate descent (LGCD) on the convolutional lasso, one numba thread per signal.

Moreau, Oudre & Vayatis (2018), the z-step of alphacsc ("lgcd") and of dicodile.  The codes of one
signal, z (K, P), are split along each spatial axis into segments of 2f − 1 positions.  A visit to a
segment finds, among its K·|segment| coordinates, the one whose exact minimisation moves it most,

    z_kp ← T_{α/n_k}( z_kp + c_kp / n_k ),      n_k = ‖d_k‖²,   c = Dᵀ(x − Dz)

and makes that one move, keeping the correlation c exact in the window it changes:

    c_l(p + δ) −= Δz · G_{k,l}(δ),    G_{k,l}(δ) = Σ_c Σ_τ d_l[c, τ] · d_k[c, τ + δ],   |δ| < f

(K·(2f − 1) entries an axis: the filters' cross-correlations, computed once).  A segment whose best
move is below the current move tolerance falls asleep, and wakes when a move in a neighbour reaches
into it; a sweep visits every segment once.  Because a move's effect is local, the segments far
apart are independent, and the cost of a move is K·(2f − 1)^d, not the size of the signal.

Certificate.  c is kept exact, and so is ‖r‖² (a move changes it by −2Δz·c_kp + n_k Δz²), and
⟨x, r⟩ = ‖r‖² + ⟨z, c⟩ (x = r + Dz), so the duality gap of :mod:`sparsolve.gap` costs one pass over
z and c.  When every segment is asleep the gap is taken; if it is above tol·F the move tolerance is
cut (to a quarter) and the sweeps go on.  The first tolerance is α/(10·max n_k): a move smaller than
a tenth of a threshold's width.

Boundaries: "valid" (windows cut at the ends of the code grid) and "circular" (windows wrap); with
"same" the filters are cut off at the edges, so n_k and G would depend on the position, and this
solver refuses it (encode_conv names the solvers that take it).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from ..gap import gap_from_terms
from ..inference.base import Solver
from ..checks import choice
from ..inference.loop import Result
from ..prox import threshold_scalar
from .operator import FORMS

_gap_from_terms = njit(cache=True)(gap_from_terms)

# The move tolerance starts at this share of the narrowest threshold α/n_k, and is cut by
# this factor each time the sweeps settle without certifying tol.
_FIRST_TOL = 0.1
_CUT = 0.25


@njit(cache=True)
def _certify(z, c, r2, alpha, positive):
    """(gap, F) of one signal from its codes, correlation and ‖r‖²."""
    zc = 0.0
    l1 = 0.0
    cmax = 0.0
    K, H, W = z.shape
    for k in range(K):
        for i in range(H):
            for j in range(W):
                zk = z[k, i, j]
                ck = c[k, i, j]
                zc += zk * ck
                l1 += abs(zk)
                v = ck if positive else abs(ck)
                if v > cmax:
                    cmax = v
    s = max(1.0, cmax / alpha)
    return _gap_from_terms(r2, r2 + zc, l1, s, alpha)


@njit(cache=True)
def _best_move(z, c, norms, alpha, positive, i0, i1, j0, j1):
    """(k, i, j, Δz) of the largest exact coordinate move in the segment [i0, i1) × [j0, j1)."""
    best = 0.0
    bk = -1
    bi = -1
    bj = -1
    for k in range(z.shape[0]):
        nk = norms[k]
        t = alpha / nk
        for i in range(i0, i1):
            for j in range(j0, j1):
                zk = z[k, i, j]
                u = zk + c[k, i, j] / nk
                new = threshold_scalar(u, t, positive)
                d = new - zk
                if abs(d) > abs(best):
                    best = d
                    bk = k
                    bi = i
                    bj = j
    return bk, bi, bj, best


@njit(cache=True)
def _move(z, c, G, k0, i0, j0, dz, circular):
    """z[k0, i0, j0] += dz, and c −= dz · G[k0] around (i0, j0)."""
    z[k0, i0, j0] += dz
    K, H, W = z.shape
    h = (G.shape[2] + 1) // 2
    w = (G.shape[3] + 1) // 2
    if not circular:
        a0 = max(0, h - 1 - i0)
        a1 = min(2 * h - 1, H - i0 + h - 1)
        b0 = max(0, w - 1 - j0)
        b1 = min(2 * w - 1, W - j0 + w - 1)
        for l in range(K):
            for a in range(a0, a1):
                i = i0 + a - (h - 1)
                for b in range(b0, b1):
                    c[l, i, j0 + b - (w - 1)] -= dz * G[k0, l, a, b]
        return
    for l in range(K):
        for a in range(2 * h - 1):
            i = (i0 + a - (h - 1)) % H
            for b in range(2 * w - 1):
                c[l, i, (j0 + b - (w - 1)) % W] -= dz * G[k0, l, a, b]


@njit(cache=True)
def _wake(awake, i0, j0, h, w, sh, sw, H, W, circular):
    """Wake the segments that the window of a move at (i0, j0) reaches into."""
    for a in range(i0 - (h - 1), i0 + h):
        if circular:
            i = a % H
        elif a < 0 or a >= H:
            continue
        else:
            i = a
        for b in range(j0 - (w - 1), j0 + w):
            if circular:
                j = b % W
            elif b < 0 or b >= W:
                continue
            else:
                j = b
            awake[i // sh, j // sw] = True


@njit(cache=True)
def _solve_one(z, c, r2, G, norms, alpha, positive, circular, tol, max_iter, first_tol):
    """One signal: sweeps until asleep, certificate, tighter moves; returns (sweeps, gap/F, ok, r2)."""
    K, H, W = z.shape
    h = (G.shape[2] + 1) // 2
    w = (G.shape[3] + 1) // 2
    sh = min(2 * h - 1, H)
    sw = min(2 * w - 1, W)
    nh = (H + sh - 1) // sh
    nw = (W + sw - 1) // sw
    awake = np.ones((nh, nw), dtype=np.bool_)
    move_tol = first_tol
    sweeps = 0
    while True:
        moved = True
        while moved and sweeps < max_iter:
            moved = False
            for si in range(nh):
                for sj in range(nw):
                    if not awake[si, sj]:
                        continue
                    i0 = si * sh
                    j0 = sj * sw
                    k, i, j, dz = _best_move(z, c, norms, alpha, positive, i0, min(H, i0 + sh), j0, min(W, j0 + sw))
                    if abs(dz) <= move_tol:
                        awake[si, sj] = False
                        continue
                    r2 += dz * (norms[k] * dz - 2.0 * c[k, i, j])
                    _move(z, c, G, k, i, j, dz, circular)
                    _wake(awake, i, j, h, w, sh, sw, H, W, circular)
                    moved = True
            sweeps += 1
        gap, F = _certify(z, c, r2, alpha, positive)
        ok = gap <= tol * F
        if ok or sweeps >= max_iter:
            rel = gap / F if F > 0 else (0.0 if F == 0.0 and gap == 0.0 else np.nan)
            return sweeps, rel, ok, r2
        move_tol *= _CUT
        awake[:, :] = True


@njit(parallel=True, cache=True)
def _cd_batch(Z, C, r2, G, norms, alpha, positive, circular, tol, max_iter, first_tol, n_iter, rel_gap, converged):
    for n in prange(Z.shape[0]):
        n_iter[n], rel_gap[n], converged[n], r2[n] = _solve_one(Z[n], C[n], r2[n], G, norms, alpha, positive,
                                                                circular, tol, max_iter, first_tol)


class ConvCD(Solver):
    """Locally greedy coordinate descent (module docstring): numba kernels on host copies, one signal a
    thread; boundaries "valid" and "circular".  Option ``form``: how the first correlation Dᵀ(x − Dz₀)
    is computed ("auto", "fft", "direct")."""

    name = "cd"
    runs_on_host = True
    default_max_iter = 10000  # sweeps
    BOUNDARIES = ("valid", "circular")
    FORMS = FORMS
    OPTIONS = {"form": "auto"}
    OPTION_TYPES = {"form": FORMS}

    @classmethod
    def _check(cls, opts, positive, X, D):
        choice(opts["form"], "form", FORMS)

    def run(self, prob, init, *, tol, max_iter, row_offset=0):
        """Codes for the signals of the :class:`~.problem.ConvProblem` ``prob`` from ``init`` (flat rows)."""
        op = prob.op
        g = op.geometry
        Z = np.array(backend.to_numpy(init), dtype=np.float64, order="C", copy=True)
        C, r2, _ = prob.terms(backend.match(Z, init))
        C = np.ascontiguousarray(backend.to_numpy(C), dtype=np.float64)
        r2 = np.array(backend.to_numpy(r2), dtype=np.float64)
        shape4 = (Z.shape[0], g.n_filters, *_as_2d(g.codes))
        Z4, C4 = Z.reshape(shape4), C.reshape(shape4)
        G = gram_filters(op.D, g)
        norms = np.ascontiguousarray([G[k, k, G.shape[2] // 2, G.shape[3] // 2] for k in range(g.n_filters)])
        n = Z.shape[0]
        n_iter = np.zeros(n, dtype=np.int64)
        rel_gap = np.zeros(n, dtype=np.float64)
        converged = np.zeros(n, dtype=np.bool_)
        first_tol = _FIRST_TOL * prob.alpha / float(norms.max())
        _cd_batch(Z4, C4, r2, G, norms, float(prob.alpha), bool(prob.positive), g.boundary == "circular",
                  float(tol), int(max_iter), first_tol, n_iter, rel_gap, converged)
        return Result(backend.match(Z, init), n_iter, rel_gap, converged)


def _as_2d(shape):
    return (1, *shape) if len(shape) == 1 else tuple(shape)


def gram_filters(D, g):
    """G (K, K, 2h − 1, 2w − 1) on the host in float64: G[k, l, δ + f − 1] = Σ_c Σ_τ d_l[c, τ] d_k[c, τ + δ]
    (the module docstring's G_{k,l}(δ)); 1-D filters as 2-D ones of height 1."""
    Dh = np.asarray(backend.to_numpy(D), dtype=np.float64)
    padded = backend.pad(Dh, [(f - 1, f - 1) for f in g.filters])
    G = backend.correlate(padded, Dh, g.ndim)  # out[k, l, a] = Σ d_k[τ + a − (f − 1)] d_l[τ]
    G = np.ascontiguousarray(G)
    return G.reshape(G.shape[0], G.shape[1], 1, -1) if g.ndim == 1 else G
