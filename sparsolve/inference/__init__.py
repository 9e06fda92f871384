"""``encode``: sparse codes for the rows of X under a dictionary D.

This module is the one place where inputs are validated, dtypes and devices
settled, the Gram or factored form chosen, large batches split to fit memory, and
solvers looked up by name.  The solver modules beside it hold only algorithms.
"""
from __future__ import annotations

import numbers
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .. import backend, memory
from ..checks import choice, finite_rows
from . import warm
from .base import Solver
from .cd import CD
from .fista import FISTA
from .ista import ISTA
from .l0 import alpha_for_l0
from .lca import LCA
from .loop import DivergenceError
from .omp import OMP
from .problem import lipschitz, top_eigenvalue

__all__ = ["encode", "alpha_for_l0", "EncodeInfo", "DivergenceError", "ConvergenceWarning", "REGISTRY", "SOLVER_CHOICES", "Solver",
           "solver_class", "solver_for", "check_solver_options", "lipschitz", "top_eigenvalue"]


class ConvergenceWarning(UserWarning):
    """Some samples did not reach ``tol`` within ``max_iter``."""


# The registry: a solver is one module with one class (see .base), and one line here.
REGISTRY = {cls.name: cls for cls in (ISTA, FISTA, LCA, CD, OMP)}

#: The solver names every entry point accepts: the registry's, and "auto".
AUTO = "auto"
SOLVER_CHOICES = (AUTO, *REGISTRY)


def solver_for(solver, X):
    """The solver that runs on X: ``"auto"`` is cd on the host and fista on a GPU (the fastest
    certified solver for the device); a named solver is itself."""
    if solver != AUTO:
        return solver
    return "fista" if backend.on_gpu(X) else "cd"


def solver_class(name):
    """The registered solver class called ``name``; a ValueError listing them otherwise."""
    return REGISTRY[choice(name, "solver", tuple(REGISTRY))]


def check_solver_options(solver: str, options: dict, positive: bool = False) -> None:
    """Refuse, before any data is read, solver options that the named solver's own check
    (:meth:`sparsolve.inference.base.Solver.check`: names and values) refuses; what needs the data
    (fista's fused=True, omp's n_nonzero_coefs ≤ n_atoms) is checked again by encode.  FitConfig and
    the command line's ``--solver-option`` both check here.  solver="auto" takes none: which solver
    it runs, and so which options apply, depends on the data's device."""
    if solver == AUTO:
        if options:
            raise ValueError(f"solver options {sorted(options)} need a named solver (auto picks cd or fista by "
                             f"the data's device, and each solver takes its own options): pick one of "
                             f"{', '.join(REGISTRY)}")
        return
    solver_class(solver).check(options, positive=positive)


@dataclass
class EncodeInfo:
    """What ``encode(..., return_info=True)`` reports, one entry per sample.

    Each solver reports one criterion per sample, in its own field (the others are None):

    * ``rel_gap``: the relative duality gap gap/F(z) (ista, fista, cd; lca with the soft
      or non-negative threshold); NaN where it could not be computed (F overflowed);
    * ``residual_energy``: ‖x − zD‖²/‖x‖² (omp).  OMP is greedy and has no optimum to
      certify: its ``converged`` says that it stopped by its own rule (``n_nonzero_coefs``
      atoms, a residual ≤ tol, or no atom left that lowers it);
    * ``fixed_point_residual``: max|Δμ|/max|μ| (lca with the hard threshold).

    ``gap`` is whichever of the three the solver reports (the name of earlier releases)."""

    n_iter: np.ndarray
    converged: np.ndarray
    seconds: float
    solver: str
    form: str
    rel_gap: np.ndarray | None = None
    residual_energy: np.ndarray | None = None
    fixed_point_residual: np.ndarray | None = None

    @property
    def gap(self) -> np.ndarray:
        return next(v for v in (self.rel_gap, self.residual_energy, self.fixed_point_residual) if v is not None)

    def __repr__(self) -> str:
        n = self.converged.size
        worst = float(np.max(self.gap)) if n else 0.0  # np.max keeps a NaN: a gap not computed shows
        return (
            f"EncodeInfo(solver={self.solver!r}, form={self.form!r}, samples={n}, "
            f"converged={int(self.converged.sum())}/{n}, max_iter_used={int(self.n_iter.max(initial=0))}, "
            f"worst_gap={worst:.3g}, seconds={self.seconds:.3f})"
        )


def encode(X, D, alpha, *, solver="fista", positive=False, tol=1e-4, max_iter=None, init=None,
           return_info=False, plan=None, **options):
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
    solver : a name in :data:`REGISTRY`: "fista" (default), "ista", "lca", "cd" or "omp".
    tol : relative duality gap: a sample stops once gap ≤ tol · F(z) and costs
        no further work.  (OMP: stop once ‖x − zD‖² ≤ tol · ‖x‖².)
    max_iter : iterations (sweeps for "cd", atoms for "omp"); a per-solver default.
    init : warm start: (n_samples, n_atoms) codes, or an encoder whose codes for X are
        the start -- a :class:`sparsolve.LearnedG` or any callable X ↦ Z (see
        :mod:`sparsolve.inference.warm`).  The same ``tol`` is certified either way.
    return_info : also return an :class:`EncodeInfo`.
    plan : a :class:`sparsolve.memory.MemoryPlan` to follow -- its form and rows per chunk --
        instead of encode's own from the free memory (:func:`memory_plan`).  ``fit`` passes its
        own, which leaves out what the learner holds (statistics, copies of D, the batch).
    **options : per solver --
        ista, fista, lca: ``form`` ("auto", "gram", "factored"), ``check_every``
        (steps between certificates), ``L`` (a known ‖D‖₂²), ``trace`` (called at each
        certificate as ``trace(step, rows, Z, F)``; True stops the run);
        fista: ``restart``, ``fused`` ("auto": on CUDA torch tensors with Triton
        installed, the element-wise step runs as one kernel, see
        :mod:`sparsolve.inference.fused`; False: never; True: require it);
        lca: ``gamma`` (default 1/L), ``threshold``
        ("soft", "nonneg" -- the default when positive -- or "hard"), ``accelerate``
        (default True: momentum on μ with adaptive restart, FISTA's iteration count;
        False: the seed's exact dynamics, see :mod:`sparsolve.inference.lca`);
        omp: ``n_nonzero_coefs``.

    The output has the kind, device and dtype of X (float32 stays float32).  On CUDA
    with TF32 products allowed (``torch.backends.cuda.matmul.allow_tf32``) the
    correlations are good to about 1e-3, so a smaller ``tol`` cannot be certified.
    """
    if callable(init):  # an encoder proposes the start, once X and D have passed their checks
        X, D, _, _ = _validate(X, D, alpha, solver, positive, tol, max_iter, None, options)
        init = warm.encoder_codes(init, X, D, positive)
    X, D, init, algo = _validate(X, D, alpha, solver, positive, tol, max_iter, init, options)
    if plan is not None:
        _check_plan(plan, algo)
    max_iter = algo.default_max_iter if max_iter is None else max_iter
    given = X  # the codes go back in its kind; the solvers run on host views of torch CPU tensors
    X, D = backend.host_view(X), backend.host_view(D)
    init = None if init is None else backend.host_view(init)
    if getattr(algo, "trace", None) is not None and X is not given:
        algo.trace = _traced_as(algo.trace, given)
    n, m, p = X.shape[0], D.shape[0], D.shape[1]
    start = time.perf_counter()
    plan = memory_plan(X, n, m, algo) if plan is None else plan
    form, step = plan.form, plan.chunk_rows
    rows = min(n, step)
    if algo.runs_on_host:
        blas = backend.single_threaded_blas()
    else:
        blas = backend.blas_threads_for(X, rows * m * (m if form == "gram" else p))
    with backend.no_grad(X), blas:
        if init is None:
            init = backend.zeros(X, (n, m))
        shared = algo.prepare(D, form)
        parts = []
        for lo in range(0, n, step):
            sl = slice(lo, min(n, lo + step))
            parts.append(algo.solve(X[sl], D, alpha, init=init[sl], tol=tol, max_iter=max_iter, form=form,
                                    shared=shared, row_offset=lo))
        Z = backend.concat([part.Z for part in parts]) if parts else backend.zeros(X, (0, m))
        backend.synchronize(Z)
    Z = backend.match(Z, given)
    seconds = time.perf_counter() - start

    def joined(field, dtype):
        return np.concatenate([getattr(part, field) for part in parts]) if parts else np.zeros(0, dtype)

    info = EncodeInfo(n_iter=joined("n_iter", np.int64), converged=joined("converged", bool), seconds=seconds,
                      solver=solver, form=form, **{algo.criterion: joined("crit", np.float64)})
    if n and tol > 0 and not info.converged.all():  # tol=0 asks for exactly max_iter steps
        advice = "raise max_iter or loosen tol" + ("" if solver == "cd" else ", or try solver='cd'")
        warnings.warn(
            f"{int((~info.converged).sum())} of {n} samples did not reach tol={tol:g} within "
            f"max_iter={max_iter} (solver={solver!r}); {advice}.",
            ConvergenceWarning, stacklevel=2,
        )
    return (Z, info) if return_info else Z


def _traced_as(trace, like):
    """``trace`` called with the codes and objectives in the kind of ``like`` (the caller's)."""
    return lambda step, rows, Z, F: trace(step, rows, backend.match(Z, like), backend.match(F, like))


def memory_plan(like, n_samples, n_atoms, solver):
    """encode's :class:`sparsolve.memory.MemoryPlan` for ``n_samples`` rows like ``like`` (its device's
    free memory, its dtype and width) under ``n_atoms`` atoms, for the solver object ``solver``: the
    form (its request; "auto" picks by flops, and factored where G = DDᵀ would not fit beside 1,024
    rows) and the rows per chunk.  Any chunk down to one row is accepted; a dictionary that cannot
    fit raises MemoryPlanError, with the memory needed, before any work.  Sizes only: nothing is
    allocated."""
    return memory.plan_for(like, int(like.shape[1]), int(n_atoms), max(1, int(n_samples)), update=None,
                           form=solver.form_request(), min_rows=1)


def _check_plan(plan, algo):
    if not isinstance(plan, memory.MemoryPlan):
        raise TypeError(f"plan must be a sparsolve.memory.MemoryPlan (from memory.plan or memory_plan), "
                        f"got {type(plan).__name__}")
    asked = algo.form_request()
    if asked not in ("auto", plan.form):
        raise ValueError(f"plan has form={plan.form!r} but solver={algo.name!r} asks for form={asked!r}; pass a "
                         f"plan made with form={asked!r}, or leave the solver's form to the plan")


def _validate(X, D, alpha, solver, positive, tol, max_iter, init, options):
    """(X, D, init, the solver object): every check before any work."""
    cls = solver_class(solver)
    if set(options) - set(cls.OPTIONS):
        cls.check(options)  # the unknown option, named with the solver's options, before any array is read
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
    if X.shape[1] != D.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but D has {D.shape[1]}: D must be (n_atoms, n_features) "
            f"with one atom per row (did you pass D.T?)"
        )
    D = backend.match(D, X)
    xp = backend.namespace(X)
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
    n, m = X.shape[0], D.shape[0]
    init_fits = init is not None and backend.same_place(init, X) and tuple(init.shape) == (n, m)
    # Every value check from one read of the device (on a GPU each read waits for the queue).
    # ‖x‖² must be finite too: the objective and the gap are computed from it, and an overflow
    # there leaves every certificate NaN.
    # (booleans joined as they are: on a GPU a conversion of each part would be one launch more)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is a finding, reported below
        parts = [backend.isfinite(D).all().reshape(1), (D * D).sum(axis=1) != 0, backend.isfinite(X).all(axis=1),
                 backend.isfinite((X * X).sum(axis=1))] + ([backend.isfinite(init).all(axis=1)] if init_fits else [])
        flags = backend.to_numpy(backend.concat(parts)).astype(bool)
    nonzero, x_rows, x_fits, init_rows = np.split(flags[1:], [m, m + n, m + 2 * n])
    if not flags[0]:
        raise ValueError("D contains NaN or Inf; check how the dictionary was built")
    if n:
        finite_rows(x_rows, "X")
        if not x_fits.all():
            raise ValueError(
                f"X is too large for {backend.dtype_name(X)}: ‖x‖² overflows (first at row "
                f"{int(np.argmin(x_fits))}); rescale X, e.g. X / abs(X).max(), and alpha with it"
            )
    if not nonzero.all():
        raise ValueError(
            f"D has zero-norm atoms (rows {np.flatnonzero(~nonzero)[:10].tolist()}); remove them or "
            "re-initialise them, e.g. with random unit-norm rows"
        )
    opts = cls.check(options, positive=bool(positive), X=X, D=D)
    if init is not None:
        if not backend.same_place(init, X):
            raise ValueError("init must be the same kind of array, on the same device, as X")
        if tuple(init.shape) != (n, m):
            raise ValueError(f"init must have shape (n_samples, n_atoms) = {(n, m)}, got {tuple(init.shape)}")
        if n:
            finite_rows(init_rows, "init")
        init = backend.astype(init, backend.dtype_name(X))
    return X, D, init, cls(positive=bool(positive), **opts)
