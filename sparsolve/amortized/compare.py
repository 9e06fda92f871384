"""``compare``: what an amortized encoder costs in objective and sparsity, and saves in time.

Every method codes the same rows X under the same dictionary D and is scored on
the lasso objective  F(z) = ½‖x − zD‖² + α‖z‖₁  (z ≥ 0 for ReLU encoders).  The
reference is the certified optimum F* (coordinate descent to a relative duality
gap of 1e-8); a method's amortization gap is (F̄ − F̄*) / F̄* on the mean objective.

The iteration-matched curve answers "how many FISTA iterations is a depth-T encoder
worth": the first k at which FISTA's mean objective F̄_k ≤ the encoder's F̄, and the
time FISTA takes for those k iterations against the encoder's time.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .. import backend
from ..checks import choice
from ..gap import objective
from ..inference import REGISTRY, ConvergenceWarning, encode, solver_class
from .learned_g import LearnedG, data_array, dictionary_array

REFERENCE_TOL = 1e-8
_WARMUP_ROWS = 64
_TIMING_BUDGET_S = 1.0
_MAX_RUNS = 20


class Rows(list):
    """One dict per method (keys ``COLUMNS`` plus extras); ``str()`` is a table.
    ``curve`` is the iteration-matched curve and ``optimum`` the mean F*."""

    COLUMNS = ("method", "ms_per_1000", "objective", "rel_gap", "mse", "l0", "dead_frac")

    def __init__(self, rows, curve, optimum):
        super().__init__(rows)
        self.curve = curve
        self.optimum = optimum

    def __str__(self):
        table = [list(self.COLUMNS)] + [[_fmt(r[c]) for c in self.COLUMNS] for r in self]
        widths = [max(len(line[i]) for line in table) for i in range(len(self.COLUMNS))]
        lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths)))
                 for line in table]
        lines.insert(1, "-" * len(lines[0]))
        c = self.curve
        if c["depth"]:
            lines.append("")
            lines.append("iteration-matched: encoder depth T -> FISTA iterations for the same mean objective")
            for i, name in enumerate(c["method"]):
                lines.append(f"  {name}: T={c['depth'][i]} -> {_fmt(c['fista_iters'][i])} FISTA iterations, "
                             f"{_fmt(c['fista_ms_per_1000'][i])} ms vs {_fmt(c['encoder_ms_per_1000'][i])} ms "
                             f"per 1000 samples (speedup {_fmt(c['speedup'][i])}x)")
        return "\n".join(lines)

    __repr__ = __str__


def compare(X, dictionary, encoders=None, *, alpha, exact=("fista", "lca"), tol=1e-4, positive=None,
            device="cpu", dtype="float32", max_fista_iter=1000, repeats=1, then=()):
    """Rows (a printable list of dicts) comparing exact solvers with learned encoders.

    Parameters
    ----------
    X : (n_samples, n_features) held-out data.
    dictionary : (n_atoms, n_features) array or a fitted model with ``.dictionary``.
    encoders : {name: LearnedG}; each runs on its own device and dtype.
    alpha : the lasso's α.
    exact : solver names for :func:`sparsolve.encode`, each run to relative gap ``tol``.
    then : solver names run to ``tol`` from each encoder's codes (amortized start, exact
        finish: ``encode(X, D, alpha, init=encoder)``); a row "<encoder>, then <solver>
        tol=<tol>" each, whose time includes the encoder's.
    positive : the z ≥ 0 lasso; default: True when every encoder is ReLU (not signed).
    device, dtype : where and in what precision the exact solvers run ("cpu" uses
        numpy, anything else torch; "cd" and "omp" always run on the CPU).
    max_fista_iter : the longest FISTA run the iteration-matched curve tries.
    repeats : each timing is the best of at least this many runs (more for fast methods).

    Each row holds ``method``, ``ms_per_1000`` (wall time per 1000 samples),
    ``objective`` (mean F), ``rel_gap`` ((F̄ − F̄*)/F̄*), ``mse`` (mean squared error
    per entry of x − zD), ``l0`` (mean nonzeros per sample) and ``dead_frac``
    (atoms never used on X).  ``rows.curve`` is a dict of parallel lists:
    ``method``, ``depth``, ``objective``, ``fista_iters`` (None where FISTA did not
    reach it within ``max_fista_iter``), ``fista_ms_per_1000``,
    ``encoder_ms_per_1000``, ``speedup``; plus ``fista_objective``, FISTA's mean F
    after k = 0, 1, … iterations.
    """
    D = dictionary_array(dictionary).astype(np.float64)
    X = data_array(X, D)
    encoders = dict(encoders or {})
    for name, enc in encoders.items():
        if not isinstance(enc, LearnedG):
            raise TypeError(f"encoders[{name!r}] must be a LearnedG, got {type(enc).__name__}")
        if (enc.n_atoms, enc.n_features) != D.shape:
            raise ValueError(f"encoders[{name!r}] has (n_atoms, n_features) = {(enc.n_atoms, enc.n_features)} but "
                             f"the dictionary is {D.shape}; compare it under the dictionary it was trained for")
    if positive is None:
        positive = not any(enc.signed for enc in encoders.values())
    for name, enc in encoders.items():
        if enc.signed == positive:
            raise ValueError(f"encoders[{name!r}] is {'signed' if enc.signed else 'ReLU'} but positive={positive}: "
                             "compare signed and ReLU encoders in separate calls")
    if dtype not in backend.SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of {backend.SUPPORTED_DTYPES}, got {dtype!r}")
    for solver in then:
        choice(solver, "then= solver", sorted(REGISTRY))
    alpha = float(alpha)
    n = X.shape[0]

    def score(method, Z, seconds, **extra):
        Z = np.asarray(backend.to_numpy(Z), dtype=np.float64)
        F = float(objective(X, D, Z, alpha).mean())
        R = X - Z @ D
        return {"method": method, "ms_per_1000": 1e6 * seconds / n, "objective": F,
                "rel_gap": (F - optimum) / optimum if optimum > 0 else 0.0, "mse": float((R * R).mean()),
                "l0": float((Z != 0).sum(axis=1).mean()), "dead_frac": float((Z == 0).all(axis=0).mean()), **extra}

    def solve(A, B, solver, **kw):
        return _timed(lambda rows_: encode(rows_, B, alpha, solver=solver, positive=positive, **kw), A, repeats)

    Zs, t = solve(X, D, "cd", tol=REFERENCE_TOL)
    optimum = float(objective(X, D, Zs, alpha).mean())
    rows = [score(f"cd tol={REFERENCE_TOL:g} (reference)", Zs, t)]

    Xe, De = _on(X, device, dtype), _on(D, device, dtype)
    for solver in exact:
        host = solver_class(solver).runs_on_host
        Z, t = solve(X, D, solver, tol=tol) if host else solve(Xe, De, solver, tol=tol)
        rows.append(score(f"{solver} tol={tol:g}", Z, t))

    curve = {k: [] for k in ("method", "depth", "objective", "fista_iters", "fista_ms_per_1000",
                             "encoder_ms_per_1000", "speedup")}
    for name, enc in encoders.items():
        ref = enc.W_e
        Xt = torch.as_tensor(X, dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            Z, t = _timed(enc._encode, Xt, repeats)
        row = score(name, Z, t, depth=enc.t_star)
        rows.append(row)
        curve["method"].append(name)
        curve["depth"].append(enc.t_star)
        curve["objective"].append(row["objective"])
        curve["encoder_ms_per_1000"].append(row["ms_per_1000"])
        for solver in then:
            A, B = (X, D) if solver_class(solver).runs_on_host else (Xe, De)
            Z, t = solve(A, B, solver, tol=tol, init=enc)
            rows.append(score(f"{name}, then {solver} tol={tol:g}", Z, t))

    curve["fista_objective"] = _fista_trajectory(Xe, De, alpha, positive, min(curve["objective"], default=np.inf),
                                                 max_fista_iter)
    for target, enc_ms in zip(curve["objective"], curve["encoder_ms_per_1000"]):
        hit = np.flatnonzero(np.asarray(curve["fista_objective"]) <= target)
        k = int(hit[0]) if hit.size else None
        ms = None
        if k is not None:
            _, t = solve(Xe, De, "fista", tol=0, max_iter=k)
            ms = 1e6 * t / n
        curve["fista_iters"].append(k)
        curve["fista_ms_per_1000"].append(ms)
        curve["speedup"].append(None if ms is None else ms / enc_ms)
    return Rows(rows, curve, optimum)


def _fista_trajectory(X, D, alpha, positive, target, max_iter):
    """Mean F(z_k) for k = 0, 1, … until it is ≤ target or k = max_iter: the FISTA of
    :func:`sparsolve.encode` itself, traced at every step (a row certified optimal
    early keeps its last F)."""
    F_rows = np.zeros(X.shape[0])
    trajectory = []

    def record(step, rows, Z, F):
        F_rows[rows] = backend.to_numpy(F)
        trajectory.append(float(F_rows.mean()))
        return trajectory[-1] <= target

    encode(X, D, alpha, solver="fista", positive=positive, tol=0, max_iter=max_iter, check_every=1, trace=record)
    return trajectory


def _timed(fn, A, repeats):
    """(fn(A), seconds): the best of at least ``repeats`` runs -- more while they add up
    to under a second, since a fast method's single run is at the mercy of the
    scheduler -- warmed up on a few rows first so that one-off costs (numba
    compilation, first CUDA kernels) stay out of the timing; GPU work is waited for."""
    with warnings.catch_warnings():
        # tol=0 runs and solvers short of tol are timed as they are; their gap is in the row
        warnings.simplefilter("ignore", ConvergenceWarning)
        fn(A[:_WARMUP_ROWS])
        backend.synchronize(A)
        best, spent, runs = np.inf, 0.0, 0
        while runs < repeats or (spent < _TIMING_BUDGET_S and runs < _MAX_RUNS):
            start = time.perf_counter()
            out = fn(A)
            backend.synchronize(out)
            took = time.perf_counter() - start
            best, spent, runs = min(best, took), spent + took, runs + 1
        return out, best


def _on(a, device, dtype):
    return backend.to_device(a.astype(dtype), str(device))


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{v:.4g}"
