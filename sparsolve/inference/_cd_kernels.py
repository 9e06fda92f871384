"""cd's per-sample kernels (numba): one row's lasso by sweeps over a working set and damped
Newton steps on the support (the algorithm is :mod:`.cd`'s module docstring).  Two callers share
them: cd's Gram form, every row of a batch in parallel on G = DDᵀ (:mod:`.cd`), and its factored
form, each row on a Gram block of its own working set (:mod:`.working_sets`)."""
from __future__ import annotations

import numpy as np
from numba import njit

from ..gap import gap_from_terms
from ..prox import threshold_scalar
from ._cholesky import FAST as _FAST
from ._cholesky import back_substitute, factor_append, factor_delete, forward_substitute

_gap_from_terms = njit(cache=True)(gap_from_terms)

@njit(cache=True)
def _certify(z, c, b, xsq, alpha, positive, W):
    """(gap, F) of the lasso restricted to the atoms W (all atoms: the true gap).

    z is zero outside W, so the sums need only W; the dual scale uses the
    largest correlation in W."""
    zb = 0.0
    zc = 0.0
    l1 = 0.0
    cmax = 0.0
    for j in W:
        zb += z[j] * b[j]
        zc += z[j] * c[j]
        l1 += abs(z[j])
        cj = c[j] if positive else abs(c[j])
        cmax = max(cmax, cj)
    s = max(1.0, cmax / alpha) if alpha > 0 else (1.0 if cmax == 0 else np.inf)
    # ‖r‖² = ‖x‖² − 2⟨z,b⟩ + ⟨z,zG⟩ and ⟨z,zG⟩ = ⟨z,b⟩ − ⟨z,c⟩
    return _gap_from_terms(xsq - zb - zc, xsq - zb, l1, s, alpha)


@njit(cache=True, fastmath=_FAST)
def _sweep(z, c, G, alpha, positive, W, max_new, support_too):
    """One pass of exact coordinate minimisation over the atoms W, switching on at
    most ``max_new`` atoms that were zero (W lists the worst violators first).

    The atoms already in the support are visited only with ``support_too``: the
    Newton step that follows solves for them jointly, and after the last one
    their coordinate moves are rounding noise that would each cost an O(m)
    update of c (17% of the time on 16×16 patches)."""
    for j in W:
        if (z[j] == 0.0 and max_new == 0) or (z[j] != 0.0 and not support_too):
            continue
        gjj = G[j, j]
        u = z[j] + c[j] / gjj
        t = alpha / gjj
        new = threshold_scalar(u, t, positive)
        d = new - z[j]
        if d != 0.0:
            if z[j] == 0.0:
                max_new -= 1
            z[j] = new
            for k in range(c.shape[0]):
                c[k] -= d * G[j, k]


@njit(cache=True)
def _factor_sync(z, L, S, in_S, k, G, delta):
    """Bring the factor in line with the support of z; -1 (and an empty factor)
    when the support would outgrow L."""
    i = 0
    while i < k:
        if z[S[i]] == 0.0:
            in_S[S[i]] = False
            k = factor_delete(L, S, k, i)
        else:
            i += 1
    b = 0
    for j in range(z.shape[0]):
        if z[j] != 0.0 and not in_S[j]:
            b += 1
    if k + b > L.shape[0]:  # forget the factor; the next call rebuilds it
        for r in range(k):
            in_S[S[r]] = False
        return -1
    new = np.empty(b, dtype=S.dtype)
    b = 0
    for j in range(z.shape[0]):
        if z[j] != 0.0 and not in_S[j]:
            new[b] = j
            in_S[j] = True
            b += 1
    return factor_append(L, S, k, new, G, delta)


@njit(cache=True, fastmath=_FAST)
def _crossings(z, S, k, d, C, tc):
    """The positions C[:n] whose atoms reach zero or change sign along z + t·d by
    t = 1, sorted by the fraction t_r = −z_r/d_r at which they do (tc).  Returns n."""
    n = 0
    for r in range(k):
        zr = z[S[r]]
        new = zr + d[r]
        if new == 0.0 or (new > 0) != (zr > 0):
            C[n] = r
            tc[n] = min(1.0, -zr / d[r])
            n += 1
    order = np.argsort(tc[:n])
    C[:n] = C[:n][order]
    tc[:n] = tc[:n][order]
    return n


@njit(cache=True, fastmath=_FAST)
def _path_terms(z, S, d, Gd, cS, G, C, n, P):
    """Prefix sums, over the first q crossings (q = 0..n), of the terms that price
    the projected step: with A = C[:q] the atoms set to zero, P[q] holds Σ_A c·z,
    Σ_A c·d, Σ_A z·(G_SS d), Σ_A d·(G_SS d), Σ_A |z|, Σ_A s·d, z_A G z_A, z_A G d_A
    and d_A G d_A.  O(n²) once per Newton step, so that each trial step costs O(1)."""
    P[0, :] = 0.0
    for q in range(n):
        r = C[q]
        a = S[r]
        za = z[a]
        da = d[r]
        gz = 0.0
        gd = 0.0
        for p in range(q):
            g = G[a, S[C[p]]]
            gz += g * z[S[C[p]]]
            gd += g * d[C[p]]
        gaa = G[a, a]
        P[q + 1, 0] = P[q, 0] + cS[r] * za
        P[q + 1, 1] = P[q, 1] + cS[r] * da
        P[q + 1, 2] = P[q, 2] + za * Gd[r]
        P[q + 1, 3] = P[q, 3] + da * Gd[r]
        P[q + 1, 4] = P[q, 4] + abs(za)
        P[q + 1, 5] = P[q, 5] + (da if za > 0 else -da)
        P[q + 1, 6] = P[q, 6] + 2.0 * za * gz + za * za * gaa
        P[q + 1, 7] = P[q, 7] + za * gd + da * gz + za * da * gaa
        P[q + 1, 8] = P[q, 8] + 2.0 * da * gd + da * da * gaa


@njit(cache=True)
def _path_change(t, Pq, cd, dGd, sd, alpha):
    """F(z + Δ) − F(z) for the projected step Δ = t·d + e, where e = −(z + t·d) on
    the atoms A that have crossed by t (Pq: their prefix sums) and 0 elsewhere:
    −c_S·Δ + ½ ΔG_SSΔ + α(‖z + Δ‖₁ − ‖z‖₁), with ΔG_SSΔ = t²·dG_SSd + 2t·e·(G_SSd)
    + eG_SSe, and ‖z + Δ‖₁ − ‖z‖₁ = t·Σ_{S∖A} s·d − Σ_A |z| (atoms outside A keep
    their sign)."""
    ce = -(Pq[0] + t * Pq[1])
    eGd = -(Pq[2] + t * Pq[3])
    eGe = Pq[6] + 2.0 * t * Pq[7] + t * t * Pq[8]
    l1 = t * (sd - Pq[5]) - Pq[4]
    return -(t * cd + ce) + 0.5 * (t * t * dGd + 2.0 * t * eGd + eGe) + alpha * l1


@njit(cache=True, fastmath=_FAST)
def _active_set_solve(z, c, G, alpha, delta, L, S, in_S, k):
    """Damped Newton steps on the support S and its signs s, until one is taken in full.

    On S the lasso is the quadratic Q(z_S) = ½ z_S G_SS z_Sᵀ − z_S·(b_S − αs), whose
    gradient is αs − c_S.  Each step solves (G_SS + δI) d = c_S − αs with the
    Cholesky factor L -- δ keeps it defined when the support is collinear
    (k > n_features).  If no sign changes, the full step is taken and the loop
    ends.  Otherwise a projected step (t·d for t = 1, ½, ¼, … past the first sign
    change, with the atoms whose sign flips set to zero) is taken when it lowers
    F, and else the step cut at the first sign change, t = min(1, −z_j/d_j): since
    ∇Q·d = −d(G_SS + δI)dᵀ < 0 and Q along d is minimised at
    t* = d(G_SS+δI)dᵀ / dG_SSdᵀ ≥ 1, that one always lowers F.  Either way atoms
    leave the support, so the loop ends, within k+1 steps,
    on the exact minimiser over a sub-support -- the solution itself once the
    support is right, as LARS would find it.  Inside the loop only c_S is kept:
    G_SS d = c_S − αs − δd is known from the solve, so c_S ← c_S − G_SS Δ costs
    O(k) plus O(k) per atom dropped; the trial values of F come from prefix sums
    over the crossings in the order they happen (O(n²) for n crossings, then O(1)
    a trial: pricing each trial afresh took half the time on 8×8 patches whose
    supports nearly fill the 64 features).  The full c is brought up to date once
    at the end.
    Returns the factor's new size (-1: the support outgrew the factor, no step)."""
    k = _factor_sync(z, L, S, in_S, k, G, delta)
    if k <= 0:
        return k
    m = z.shape[0]
    z_start = z.copy()
    cS = np.empty(k, dtype=G.dtype)
    for r in range(k):
        cS[r] = c[S[r]]
    d = np.empty(k, dtype=G.dtype)
    Gd = np.empty(k, dtype=G.dtype)
    C = np.empty(k, dtype=np.int64)
    tc = np.empty(k, dtype=G.dtype)
    P = np.empty((k + 1, 9), dtype=G.dtype)
    for _ in range(k + 1):
        for r in range(k):
            Gd[r] = cS[r] - (alpha if z[S[r]] > 0 else -alpha)
        forward_substitute(L, k, Gd, d)
        back_substitute(L, k, d)
        # (G_SS + δI) d = c_S − αs, so G_SS d = c_S − αs − δd without a product
        cd = 0.0
        dGd = 0.0
        sd = 0.0
        for r in range(k):
            Gd[r] -= delta * d[r]
            cd += cS[r] * d[r]
            dGd += d[r] * Gd[r]
            sd += d[r] if z[S[r]] > 0 else -d[r]
        n = _crossings(z, S, k, d, C, tc)
        crossed = n > 0
        step = 1.0
        q = n  # atoms set to zero: those with t_r ≤ step, a prefix of C
        if crossed:
            # The step is cut back to a point that lowers F and drops at least one
            # atom.  First the projected steps: t·d with every atom that changes
            # sign by then set to zero, for t = 1, 1/2, 1/4, ... while t is past
            # the first sign change; the first that lowers F is taken, since it
            # may drop many atoms at once.  Else the step cut at the first sign
            # change, which always lowers F.  (On 16×16 patches with 1,024 atoms
            # the halving took the Newton iterations per high-contrast patch from
            # 290 to 100, mostly cuts dropping one atom.)
            _path_terms(z, S, d, Gd, cS, G, C, n, P)
            first = tc[0]
            projected = False
            while step > first:
                while q > 0 and tc[q - 1] > step:
                    q -= 1
                if _path_change(step, P[q], cd, dGd, sd, alpha) < 0.0:
                    projected = True
                    break
                step *= 0.5
            if not projected:
                step = first
                q = 1
                while q < n and tc[q] <= first:
                    q += 1
        # c_S ← c_S − G_SS Δ = c_S − t·G_SS d − G_SS e, e = −(z + t·d) on the q atoms dropped
        for r in range(k):
            cS[r] -= step * Gd[r]
        for p in range(q):
            row = S[C[p]]
            ep = -(z[row] + step * d[C[p]])
            for r in range(k):
                cS[r] -= ep * G[row, S[r]]
        for r in range(k):
            z[S[r]] += step * d[r]
        for p in range(q):
            z[S[C[p]]] = 0.0
        if not crossed:
            break
        i = 0
        while i < k:
            if z[S[i]] == 0.0:
                in_S[S[i]] = False
                for r in range(i + 1, k):
                    cS[r - 1] = cS[r]
                k = factor_delete(L, S, k, i)
            else:
                i += 1
        if k == 0:
            break
    for j in range(m):
        dz = z[j] - z_start[j]
        if dz != 0.0:
            for t in range(m):
                c[t] -= dz * G[j, t]
    return k


@njit(cache=True)
def _count_nonzero(z):
    n = 0
    for j in range(z.shape[0]):
        if z[j] != 0.0:
            n += 1
    return n


@njit(cache=True)
def _working_set(z, c, positive, size):
    """The current support, then the atoms that violate |c_j| ≤ α the most, worst first.

    Only the best size − k candidates are sorted, found by a partition: sorting all
    m atoms, the support among them as ties, took 8% of a high-contrast patch's time."""
    m = z.shape[0]
    W = np.empty(m, dtype=np.int64)
    rest = np.empty(m, dtype=np.int64)
    score = np.empty(m, dtype=c.dtype)
    k = 0
    q = 0
    for j in range(m):
        if z[j] != 0.0:
            W[k] = j
            k += 1
        else:
            rest[q] = j
            score[q] = c[j] if positive else abs(c[j])
            q += 1
    need = min(size - k, q)
    if need <= 0:
        return W[:k]
    score = score[:q]
    rest = rest[:q]
    if need < q:
        cut = np.partition(score, q - need)[q - need]
        keep = score >= cut
        score = score[keep]
        rest = rest[keep]
    order = np.argsort(-score)[:need]
    W[k:k + need] = rest[order]
    return W[:k + need]


@njit(cache=True, fastmath=_FAST)
def _correlation(z, b, G, c):
    """c = b − zG, from the nonzeros of z."""
    c[:] = b
    for j in range(z.shape[0]):
        if z[j] != 0.0:
            zj = z[j]
            for t in range(c.shape[0]):
                c[t] -= zj * G[j, t]


@njit(cache=True)
def _solve_one(z, c, b, xsq, G, alpha, positive, tol, max_iter, delta, ws0, L, S, in_S):
    """One sample: outer working-set loop, inner sweeps + Newton; returns (sweeps, gap/F, ok).

    L, S and in_S are the caller's workspace for the support's factor; in_S is
    left all False again on return."""
    m = z.shape[0]
    everything = np.arange(m)
    size = min(m, max(ws0, 2 * _count_nonzero(z)))
    allow = ws0
    k = 0
    it = 0
    while True:
        g, F = _certify(z, c, b, xsq, alpha, positive, everything)
        if g <= tol * F or it >= max_iter:
            for r in range(max(k, 0)):
                in_S[S[r]] = False
            # F = 0 only at x = 0, z = 0, where the gap is 0 too; a NaN F or gap (an
            # overflow) must show as NaN, not as a certified 0
            return it, (g / F if F > 0 else (0.0 if F == 0.0 and g == 0.0 else np.nan)), g <= tol * F
        W = _working_set(z, c, positive, size)
        inner = max(0.1 * tol, 0.1 * g / F)
        while it < max_iter:
            before = _count_nonzero(z)
            _sweep(z, c, G, alpha, positive, W, allow, k < 0)  # k < 0: no factor, CD alone
            swept = _count_nonzero(z)
            k = _active_set_solve(z, c, G, alpha, delta, L, S, in_S, max(k, 0))
            # Newton switched off more than half of what the sweep switched on:
            # the sweep is overshooting, so let it switch on fewer next time
            # (additive increase, multiplicative decrease).
            if 2 * (swept - _count_nonzero(z)) > swept - before:
                allow = max(ws0, allow // 2)
            else:
                allow = min(m, allow + 8)
            it += 1
            gw, Fw = _certify(z, c, b, xsq, alpha, positive, W)
            if gw <= inner * Fw:
                break
        size = min(m, 2 * size)
