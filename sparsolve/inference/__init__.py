"""``encode``: sparse codes for the rows of X under a dictionary D.

This module is the one place where inputs are validated, dtypes and devices
settled, the Gram or factored form chosen, large batches split to fit memory, and
solvers looked up by name.  The solver modules beside it hold only algorithms.
"""
from __future__ import annotations

import contextlib
import numbers
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .. import backend
from . import cd, omp, warm
from . import fused as fused_kernel
from .fista import FISTA
from .ista import ISTA
from .lca import LCA
from .loop import DivergenceError, iterate
from .problem import FORMS, LassoProblem, choose_form, lipschitz

__all__ = ["encode", "EncodeInfo", "DivergenceError", "ConvergenceWarning", "SOLVERS", "lipschitz"]


class ConvergenceWarning(UserWarning):
    """Some samples did not reach ``tol`` within ``max_iter``."""


_ITERATIVE = {"check_every": 10, "form": "auto", "L": None}

# Solvers that run as numba kernels on host copies of the arrays, in Gram form.
HOST_KERNELS = ("cd", "omp")

# name -> (options with their defaults, default max_iter)
SOLVERS = {
    "ista": ({**_ITERATIVE}, 20000),
    "fista": ({**_ITERATIVE, "restart": True, "fused": "auto"}, 5000),
    "lca": ({**_ITERATIVE, "gamma": None, "threshold": None}, 20000),
    "cd": (cd.OPTIONS, 2000),
    "omp": (omp.OPTIONS, None),
}


@dataclass
class EncodeInfo:
    """What ``encode(..., return_info=True)`` reports, one entry per sample.

    ``gap`` is the relative duality gap gap/F(z) for the lasso solvers; for OMP
    the relative residual energy ‖x − zD‖²/‖x‖², and for LCA with the hard
    threshold the fixed-point residual max|Δμ|/max|μ|.  OMP is greedy and has no
    optimum to certify: its ``converged`` says that it stopped by its own rule
    (``n_nonzero_coefs`` atoms, a residual ≤ tol, or no atom left that lowers
    it), and ``gap`` how much of x that left unexplained."""

    n_iter: np.ndarray
    gap: np.ndarray
    converged: np.ndarray
    seconds: float
    solver: str
    form: str

    def __repr__(self) -> str:
        n = self.converged.size
        worst = float(np.max(self.gap)) if n else 0.0
        return (
            f"EncodeInfo(solver={self.solver!r}, form={self.form!r}, samples={n}, "
            f"converged={int(self.converged.sum())}/{n}, max_iter_used={int(self.n_iter.max(initial=0))}, "
            f"worst_gap={worst:.3g}, seconds={self.seconds:.3f})"
        )


def encode(X, D, alpha, *, solver="fista", positive=False, tol=1e-4, max_iter=None, init=None,
           return_info=False, **options):
    """Sparse codes Z (n_samples, n_atoms) with X ≈ Z @ D, minimising for each row

        F(z) = ½‖x − zD‖² + α‖z‖₁      (subject to z ≥ 0 when ``positive``)

    Parameters
    ----------
    X : (n_samples, n_features) numpy array, torch tensor or cupy array.
    D : (n_atoms, n_features) dictionary, one atom per row, same device as X.
    alpha : the L1 weight α > 0.  α = 0 is least squares, which the gap cannot
        certify, so it is refused -- except with tol=0 for ista, fista and lca, and
        for omp, which ignores α.  scikit-learn's ``Lasso`` and ``LassoLars``
        divide the squared error by n_features, so their ``alpha`` equals this
        α / n_features; ``sparse_encode(algorithm="lasso_lars"|"lasso_cd")``
        does that division itself and takes this α unchanged.
    solver : "fista" (default), "ista", "lca", "cd" or "omp".
    tol : relative duality gap: a sample stops once gap ≤ tol · F(z) and costs
        no further work.  (OMP: stop once ‖x − zD‖² ≤ tol · ‖x‖².)
    max_iter : iterations (sweeps for "cd", atoms for "omp"); a per-solver default.
    init : warm start: (n_samples, n_atoms) codes, or an encoder whose codes for X are
        the start -- a :class:`sparsolve.LearnedG` or any callable X ↦ Z (see
        :mod:`sparsolve.inference.warm`).  The same ``tol`` is certified either way.
    return_info : also return an :class:`EncodeInfo`.
    **options : per solver --
        ista, fista, lca: ``form`` ("auto", "gram", "factored"), ``check_every``
        (steps between certificates), ``L`` (a known ‖D‖₂²);
        fista: ``restart``, ``fused`` ("auto": on CUDA torch tensors with Triton
        installed, the element-wise step runs as one kernel, see
        :mod:`sparsolve.inference.fused`; False: never; True: require it);
        lca: ``gamma`` (default 1/L), ``threshold``
        ("soft", "nonneg" -- the default when positive -- or "hard");
        omp: ``n_nonzero_coefs``.

    The output has the kind, device and dtype of X (float32 stays float32).  On CUDA
    with TF32 products allowed (``torch.backends.cuda.matmul.allow_tf32``) the
    correlations are good to about 1e-3, so a smaller ``tol`` cannot be certified.
    """
    if callable(init):  # an encoder proposes the start, once X and D have passed their checks
        X, D, _ = _validate(X, D, alpha, solver, positive, tol, max_iter, None, options)
        init = warm.encoder_codes(init, X, D, positive)
    X, D, init = _validate(X, D, alpha, solver, positive, tol, max_iter, init, options)
    defaults, default_max_iter = SOLVERS[solver]
    opts = {**defaults, **options}
    max_iter = default_max_iter if max_iter is None else max_iter
    n, m = X.shape[0], D.shape[0]
    start = time.perf_counter()
    ctx = backend._torch().no_grad() if backend.is_torch(X) else contextlib.nullcontext()
    blas = backend.single_threaded_blas() if solver in HOST_KERNELS else contextlib.nullcontext()
    with ctx, blas:
        if init is None:
            init = backend.zeros(X, (n, m))
        form = _form(solver, opts, n, m, D.shape[1])
        L = G = None
        if solver in ("ista", "fista", "lca"):
            L = lipschitz(D) if opts["L"] is None else float(opts["L"])
        if form == "gram":
            G = D @ D.T
        parts = []
        step = _chunk_rows(X, m, solver)
        for lo in range(0, n, step):
            sl = slice(lo, min(n, lo + step))
            parts.append(_solve_chunk(solver, opts, X[sl], D, alpha, positive, init[sl], tol, max_iter, form, L, G))
        Z = _concat([p.Z for p in parts], X, m)
        backend.synchronize(Z)
    seconds = time.perf_counter() - start
    info = EncodeInfo(
        n_iter=np.concatenate([p.n_iter for p in parts]) if parts else np.zeros(0, np.int64),
        gap=np.concatenate([p.gap for p in parts]) if parts else np.zeros(0),
        converged=np.concatenate([p.converged for p in parts]) if parts else np.zeros(0, bool),
        seconds=seconds, solver=solver, form=form,
    )
    if n and tol > 0 and not info.converged.all():  # tol=0 asks for exactly max_iter steps
        warnings.warn(
            f"{int((~info.converged).sum())} of {n} samples did not reach tol={tol:g} within "
            f"max_iter={max_iter} (solver={solver!r}); raise max_iter, loosen tol, or try solver='cd'.",
            ConvergenceWarning, stacklevel=2,
        )
    return (Z, info) if return_info else Z


def _form(solver, opts, n, m, p):
    if solver in HOST_KERNELS:
        return "gram"
    form = opts["form"]
    return choose_form(n, m, p) if form == "auto" else form


def _chunk_rows(X, m, solver):
    """Rows per chunk so that the solver's working arrays (about eight (rows, m)
    arrays and two (rows, p)) take at most half of the free memory."""
    if X.shape[0] == 0:
        return 1
    itemsize = 4 if backend.dtype_name(X) == "float32" else 8
    return backend.rows_per_chunk(X, itemsize * (8 * m + 2 * X.shape[1]))


def _solve_chunk(solver, opts, X, D, alpha, positive, init, tol, max_iter, form, L, G):
    if solver == "cd":
        return cd.solve(X, D, alpha, positive=positive, init=init, tol=tol, max_iter=max_iter, G=G)
    if solver == "omp":
        return omp.solve(X, D, alpha, positive=positive, init=init, tol=tol, max_iter=max_iter, G=G,
                         n_nonzero_coefs=opts["n_nonzero_coefs"])
    if solver == "ista":
        algo = ISTA()
    elif solver == "fista":
        algo = FISTA(restart=bool(opts["restart"]), fused=opts["fused"])
    else:
        threshold = opts["threshold"] or ("nonneg" if positive else "soft")
        algo = LCA(gamma=opts["gamma"], threshold=threshold)
    prob = LassoProblem.build(X, D, float(alpha), bool(positive), form, L=L, G=G)
    return iterate(algo, prob, init, tol=tol, max_iter=max_iter, check_every=int(opts["check_every"]))


def _concat(parts, X, m):
    if not parts:
        return backend.zeros(X, (0, m))
    if len(parts) == 1:
        return parts[0]
    xp = backend.namespace(X)
    return xp.cat(parts, dim=0) if backend.is_torch(X) else xp.concatenate(parts, axis=0)


def _validate(X, D, alpha, solver, positive, tol, max_iter, init, options):
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is not known; choose one of {sorted(SOLVERS)}")
    allowed = SOLVERS[solver][0]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for solver={solver!r}; it accepts "
            f"{sorted(allowed) if allowed else 'no options'}"
        )
    for name, a in (("X", X), ("D", D)):
        backend.namespace(a)  # raises a TypeError that names the type for anything else
        if a.ndim != 2:
            hint = " (for one sample use X.reshape(1, -1))" if name == "X" else ""
            shape = "(n_samples, n_features)" if name == "X" else "(n_atoms, n_features)"
            raise ValueError(f"{name} must be 2-D {shape}, got ndim={a.ndim}{hint}")
        if backend.dtype_name(a) not in backend.SUPPORTED_DTYPES:
            raise TypeError(
                f"{name} has dtype {backend.dtype_name(a)}; sparsolve supports float32 and float64 -- "
                f"convert it first, e.g. {name}.astype('float32') or tensor.float()"
            )
    if backend.device_of(X) != backend.device_of(D):
        raise ValueError(
            f"X is on {backend.device_of(X)} but D is on {backend.device_of(D)}; "
            "move both to the same device"
        )
    if backend.kind(D) != backend.kind(X):
        D = backend.like(backend.to_numpy(D), X)
    if X.shape[1] != D.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but D has {D.shape[1]}: D must be (n_atoms, n_features) "
            f"with one atom per row (did you pass D.T?)"
        )
    xp = backend.namespace(X)
    if backend.dtype_name(D) != backend.dtype_name(X):
        D = backend.astype(D, backend.dtype_name(X))
    if not np.isscalar(alpha) and not (hasattr(alpha, "ndim") and alpha.ndim == 0):
        raise TypeError(f"alpha must be a scalar, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha}")
    if not (isinstance(tol, numbers.Real) and tol >= 0):
        raise ValueError(f"tol must be a number ≥ 0, got {tol!r}")
    if alpha == 0 and solver != "omp" and (tol > 0 or solver == "cd"):
        # The dual point is the residual scaled into ‖θDᵀ‖∞ ≤ α, which at α = 0 is θ = 0:
        # the gap stays F(z), so no sample could stop before max_iter, and cd's working
        # sets, which grow on that certificate, would never grow.
        raise ValueError(
            f"alpha=0 with solver={solver!r} is plain least squares: the duality gap certifies nothing there "
            "and the codes are not sparse.  Use alpha > 0, or numpy.linalg.lstsq (scipy.optimize.nnls for "
            "positive=True)" + ("" if solver == "cd" else ", or tol=0 with max_iter for a fixed number of iterations")
        )
    if max_iter is not None and (not isinstance(max_iter, (int, np.integer)) or max_iter < 0):
        raise ValueError(f"max_iter must be an integer ≥ 0, got {max_iter!r}")
    if not bool(xp.isfinite(D).all()):
        raise ValueError("D contains NaN or Inf; check how the dictionary was built")
    if X.shape[0] and not bool(xp.isfinite(X).all()):
        bad = int(np.argmax(~np.isfinite(backend.to_numpy(X)).all(axis=1)))
        raise ValueError(f"X contains NaN or Inf (first at row {bad}); clean or drop those samples")
    norms = backend.to_numpy((D * D).sum(axis=1))
    if (norms == 0).any():
        raise ValueError(
            f"D has zero-norm atoms (rows {np.flatnonzero(norms == 0)[:10].tolist()}); remove them or "
            "re-initialise them, e.g. with random unit-norm rows"
        )
    if positive and solver == "omp":
        raise ValueError("solver='omp' does not support positive=True; use 'cd', 'fista' or 'lca'")
    if solver == "lca" and options.get("threshold") is not None:
        threshold = options["threshold"]
        if positive and threshold in ("soft", "hard"):
            raise ValueError(f"threshold={threshold!r} contradicts positive=True (it returns signed codes); "
                             "use threshold='nonneg'")
    if solver in ("ista", "fista", "lca") and options.get("form", "auto") not in FORMS:
        raise ValueError(f"form={options['form']!r} is not known; choose one of {list(FORMS)}")
    if solver == "fista" and "fused" in options:
        fused = options["fused"]
        if not (isinstance(fused, bool) or fused == "auto"):
            raise ValueError(f"fused={fused!r} is not known; choose one of {list(fused_kernel.FUSED_CHOICES)}")
        if fused is True and not (backend.is_torch(X) and X.is_cuda and fused_kernel.available()):
            raise ValueError("fused=True needs X as a CUDA torch tensor and Triton installed; "
                             "use fused='auto' to fall back to the array-operation step")
    if solver == "lca" and options.get("gamma") is not None and not float(options["gamma"]) > 0:
        raise ValueError(f"gamma must be > 0, got {options['gamma']}")
    if init is not None:
        if backend.kind(init) != backend.kind(X) or backend.device_of(init) != backend.device_of(X):
            raise ValueError("init must be the same kind of array, on the same device, as X")
        if tuple(init.shape) != (X.shape[0], D.shape[0]):
            raise ValueError(
                f"init must have shape (n_samples, n_atoms) = {(X.shape[0], D.shape[0])}, got {tuple(init.shape)}"
            )
        init = backend.astype(init, backend.dtype_name(X))
    return X, D, init
