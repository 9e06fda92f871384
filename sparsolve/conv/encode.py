"""``encode_conv``: convolutional sparse codes for batches of signals or images.

The one place where the convolutional inputs are checked, the dtype and device settled, the product
(FFT or direct) chosen, large batches split, solvers looked up by name, and each signal's
certificate made true: the duality gap of the final codes in float64.
"""
from __future__ import annotations

import numbers
import time
import warnings

import numpy as np

from .. import backend
from ..checks import choice, finite_rows
from ..gap import dual_scale, gap_from_terms
from ..inference import ConvergenceWarning, EncodeInfo
from .operator import ConvOperator, choose_form, geometry_of, lipschitz
from .problem import ConvProblem
from .solvers import REGISTRY

# The arrays a solver holds per signal, in code-sized (K·|P|) and frame-sized ((K + C)·|N|, complex:
# two reals) units, for the rows per chunk: FISTA's z, y, t and a step's c, u and new z; the
# transforms of a product.
_CODE_ARRAYS = 10
_FRAME_ARRAYS = 6


def encode_conv(X, D, alpha, *, boundary="valid", solver="auto", positive=False, tol=1e-4, max_iter=None,
                init=None, return_info=False, **options):
    """Convolutional sparse codes Z (n, K, *P) of the signals X (n, C, *S), minimising for each signal

        F(z) = ½‖x − Σ_k d_k ∗ z_k‖² + α Σ_k ‖z_k‖₁      (subject to z ≥ 0 when ``positive``)

    Parameters
    ----------
    X : (n_signals, channels, length) 1-D signals or (n_images, channels, height, width) images; a numpy
        array, torch tensor or cupy array, float32 or float64.
    D : the filters, (n_filters, channels, h) or (n_filters, channels, h, w), as X.  No filter may be
        larger than the signal or all zero.
    alpha : the L1 weight α > 0.
    boundary : "valid" (codes where the whole filter fits: P = S − f + 1, as alphacsc), "same" (P = S,
        filters centred on their code and cut off at the edges) or "circular" (P = S, the signal is
        periodic, as SPORCO); see :mod:`sparsolve.conv.operator`.
    solver : "auto" (admm for "circular", cd on the host for "valid", else fista), "admm" (ADMM with the
        Fourier-domain x-step; circular), "cd" (locally greedy coordinate descent, numba; valid and
        circular), "fista", "ista" or "lca" (inference's solvers on the convolutional problem, any
        boundary); all but cd on numpy, torch or cupy.
    tol : relative duality gap per signal: a signal stops once gap ≤ tol · F(z).
    max_iter : iterations (sweeps over the segments for cd); a per-solver default.
    init : warm start, codes of shape (n, K, *P).
    return_info : also return an :class:`sparsolve.EncodeInfo` (one entry per signal; ``rel_gap`` is the
        float64 certificate of the returned codes).
    **options : per solver -- every solver: ``form`` ("auto", "fft", "direct": how the convolutions are
        computed); fista, ista, lca, admm: ``check_every``, ``trace`` (as encode's, with the codes as flat
        rows); fista, ista, lca: ``L`` (a known ‖D‖₂²); fista: ``restart``, ``fused``; lca: ``gamma``,
        ``threshold``, ``accelerate``; admm: ``relax``, ``rho``, ``rho_ratio``, ``rho_scaling``, ``rho_every``.

    The codes have the kind, device and dtype of X.  Their certificate is computed again, in float64,
    from the codes returned; a signal that the solver certified in float32 but float64 does not is
    polished in float64 from where it stopped, so ``converged`` means the float64 gap meets ``tol``.
    """
    start = time.perf_counter()
    X, D, init, algo, g = _validate(X, D, alpha, boundary, solver, positive, tol, max_iter, init, options)
    name = algo.name
    max_iter = algo.default_max_iter if max_iter is None else max_iter
    given = X
    X, D = backend.host_view(X), backend.host_view(D)
    init = None if init is None else backend.host_view(init)
    form = algo.form if algo.form != "auto" else getattr(algo, "AUTO_FORM", None) or choose_form(X, g)
    n = X.shape[0]
    work = X
    if algo.runs_on_host:  # numba kernels: float64 host copies
        work = np.asarray(backend.to_numpy(X), dtype=np.float64)
        init = None if init is None else np.asarray(backend.to_numpy(init), dtype=np.float64)
    Dw = backend.match(D, work)
    op = ConvOperator(Dw, g, form)
    L = lipschitz(D, g) if getattr(algo, "L", None) is None else float(algo.L)
    flat = (n, g.code_size)
    Z0 = backend.zeros(work, flat) if init is None else init.reshape(flat)
    step = _chunk_rows(work, g, n)
    with backend.no_grad(work):
        parts = []
        for lo in range(0, n, step):
            rows = slice(lo, min(n, lo + step))
            prob = ConvProblem.build(work[rows], op, alpha, positive, L)
            parts.append(algo.run(prob, Z0[rows], tol=tol, max_iter=max_iter, row_offset=lo))
        Z = backend.concat([p.Z for p in parts]) if parts else backend.zeros(work, flat)
        n_iter = np.concatenate([p.n_iter for p in parts]) if parts else np.zeros(0, np.int64)
        crit = np.concatenate([p.crit for p in parts]) if parts else np.zeros(0)
        converged = np.concatenate([p.converged for p in parts]) if parts else np.zeros(0, bool)
        if algo.criterion == "rel_gap" and n:
            Z, crit, converged, n_iter = _certified(algo, work, D, g, form, Z, alpha, positive, tol, max_iter,
                                                    n_iter, L)
        backend.synchronize(Z)
    codes = backend.match(Z, given).reshape((n, *g.code_shape))
    info = EncodeInfo(n_iter=n_iter, converged=converged, seconds=time.perf_counter() - start, solver=name,
                      form=form, **{algo.criterion: crit})
    if n and tol > 0 and not converged.all():
        warnings.warn(f"{int((~converged).sum())} of {n} signals did not reach tol={tol:g} within "
                      f"max_iter={max_iter} (solver={name!r}); raise max_iter or loosen tol.",
                      ConvergenceWarning, stacklevel=2)
    return (codes, info) if return_info else codes


def _certified(algo, X, D, g, form, Z, alpha, positive, tol, max_iter, n_iter, L):
    """(Z, rel_gap, converged, n_iter) with each signal's certificate recomputed in float64 from its
    codes; signals whose float64 gap is above tol (the solver's own certificate was in float32) are run
    again in float64 from their codes, once."""
    op64 = ConvOperator(backend.astype(backend.match(D, X), "float64"), g, form)
    rel = _rel_gap(X, Z, op64, alpha, positive)
    converged = rel <= tol
    redo = np.flatnonzero(~converged & (n_iter < max_iter))
    if redo.size and tol > 0 and backend.dtype_name(Z) != "float64":
        idx = backend.like(redo, X)
        X64, Z64 = backend.astype(X[idx], "float64"), backend.astype(Z[idx], "float64")
        again = algo.run(ConvProblem.build(X64, op64, alpha, positive, L), Z64, tol=tol, max_iter=max_iter)
        Z[idx] = backend.match(again.Z, Z)
        n_iter[redo] += again.n_iter
        rel[redo] = _rel_gap(X64, again.Z, op64, alpha, positive)
        converged = rel <= tol
    return Z, rel, converged, n_iter


def _rel_gap(X, Z, op64, alpha, positive):
    """gap/F of each signal in float64 (op64: the operator in float64), a chunk of signals at a time."""
    out = []
    step = _chunk_rows(op64.D, op64.geometry, X.shape[0])
    for lo in range(0, X.shape[0], step):
        X64, Z64 = backend.astype(X[lo:lo + step], "float64"), backend.astype(Z[lo:lo + step], "float64")
        C, r2, xr = ConvProblem.build(X64, op64, alpha, positive, 1.0).terms(Z64)
        gap, F = gap_from_terms(r2, xr, abs(Z64).sum(axis=1), dual_scale(C, alpha, positive), alpha)
        out.append((backend.to_numpy(gap), backend.to_numpy(F)))
    gap, F = (np.concatenate(parts) for parts in zip(*out))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(F > 0, gap / np.where(F > 0, F, 1), np.where(gap == 0, 0.0, np.nan))


def _chunk_rows(like, g, n) -> int:
    """Signals per chunk, of n: what fits in half the free memory of ``like``'s device (backend.free_bytes),
    in ``like``'s dtype."""
    item = 8 if backend.dtype_name(like) == "float64" else 4
    per_signal = item * (_CODE_ARRAYS * g.code_size + 2 * _FRAME_ARRAYS * (g.n_filters + g.channels)
                         * int(np.prod(g.frame)))
    return max(1, min(max(1, n), backend.free_bytes(like) // 2 // per_signal))


def resolve_solver(solver, X, boundary):
    """``solver`` with "auto" resolved: admm for "circular" (its Fourier-domain solve takes the fewest
    steps), cd on the host for "valid", fista otherwise (benchmarks/conv_encode.py)."""
    if solver != "auto":
        return solver
    if boundary in REGISTRY["admm"].BOUNDARIES:
        return "admm"
    if not backend.on_gpu(X) and boundary in REGISTRY["cd"].BOUNDARIES:
        return "cd"
    return "fista"


def _validate(X, D, alpha, boundary, solver, positive, tol, max_iter, init, options):
    """(X, D, init, the solver object, the geometry): every check before any work."""
    choice(solver, "solver", ("auto", *REGISTRY))
    for name, a in (("X", X), ("D", D)):
        backend.namespace(a)  # a TypeError naming the type for anything else
        if backend.dtype_name(a) not in backend.SUPPORTED_DTYPES:
            raise TypeError(f"{name} has dtype {backend.dtype_name(a)}; sparsolve supports float32 and float64 -- "
                            f"convert it first, e.g. {name}.astype('float32') or tensor.float()")
    if backend.device_of(X) != backend.device_of(D):
        raise ValueError(f"X is on {backend.device_of(X)} but D is on {backend.device_of(D)}; move both to the "
                         "same device")
    g = geometry_of(X, D, boundary)
    solver = resolve_solver(solver, X, boundary)
    cls = REGISTRY[solver]
    if boundary not in cls.BOUNDARIES:
        takes = [s for s, c in REGISTRY.items() if boundary in c.BOUNDARIES]
        raise ValueError(f"solver={solver!r} supports boundary {' and '.join(map(repr, cls.BOUNDARIES))}, not "
                         f"{boundary!r}; use one of those, or solver={takes[0]!r} (boundary {boundary!r} works "
                         f"with {takes})")
    opts = cls.check(options, positive=bool(positive), X=X, D=D)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a number ≥ 0, got {tol!r}")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer))
                                 or max_iter < 0):
        raise ValueError(f"max_iter must be an integer ≥ 0, got {max_iter!r}")
    D = backend.match(D, X)
    n, K = X.shape[0], D.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is a finding, reported below
        Xr, Dr = X.reshape(n, -1), D.reshape(K, -1)
        flags = backend.to_numpy(backend.concat([backend.isfinite(Dr).all(axis=1), (Dr * Dr).sum(axis=1) != 0,
                                                 backend.isfinite(Xr).all(axis=1),
                                                 backend.isfinite((Xr * Xr).sum(axis=1))])).astype(bool)
    d_finite, d_nonzero, x_finite, x_fits = np.split(flags, [K, 2 * K, 2 * K + n])
    if not d_finite.all():
        raise ValueError(f"D has NaN or Inf values (first in filter {int(np.argmin(d_finite))}); check how the "
                         "filters were built")
    if not d_nonzero.all():
        raise ValueError(f"D has all-zero filters ({np.flatnonzero(~d_nonzero)[:10].tolist()}); remove them or "
                         "re-initialise them, e.g. with random unit-norm filters")
    if n:
        finite_rows(x_finite, "X", "signals")
        if not x_fits.all():
            raise ValueError(f"X is too large for {backend.dtype_name(X)}: ‖x‖² overflows (first at signal "
                             f"{int(np.argmin(x_fits))}); rescale X, e.g. X / abs(X).max(), and alpha with it")
    if init is not None:
        if not backend.same_place(init, X):
            raise ValueError("init must be the same kind of array, on the same device, as X")
        if tuple(init.shape) != (n, *g.code_shape):
            raise ValueError(f"init must have the codes' shape (n, n_filters, *code grid) = {(n, *g.code_shape)} "
                             f"for boundary={boundary!r}, got {tuple(init.shape)}")
        if n:
            finite_rows(backend.to_numpy(backend.isfinite(init.reshape(n, -1)).all(axis=1)), "init", "signals")
        init = backend.astype(init, backend.dtype_name(X))
    return X, D, init, cls(positive=bool(positive), **opts), g
