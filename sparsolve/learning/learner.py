"""One dictionary-learning step, as a chain of small stages over explicit state.

For a batch X (b, p) and the current dictionary D (m, p), :meth:`Learner.step` runs

1. ``encode``     Z = encode(X, D, α, solver, tol): the codes minimising ½‖x − zD‖² + α‖z‖₁
                  per row, to the relative gap ``tol`` (learning needs good codes, not
                  certified optima).  When a step sees the very same rows as the one
                  before (full-batch data), the previous codes warm-start the solver.
2. ``statistics`` batch_A = ZᵀZ/b, batch_B = ZᵀX/b ("online", "mod"); for "sgd" the
                  gradient from the residual, g = tangent(−ZᵀR/b + decay·D), and no m×m
                  array.  In a data-parallel run (distributed.py) they, the atoms' use and the
                  row count b are all-reduced over the ranks into the global batch's, so every
                  rank takes the same step.
3. ``update``     the dictionary update named by the config, from :data:`UPDATE_RULES`
                  (updates.py); "online" first folds the batch statistics into the running
                  ones, stats_A and stats_B; "sgd" is the Adam step D ← adam.step(D, g).
4. ``norm rule``  norms.project.
5. ``dead atoms`` dead.py: atoms unused for ``dead_after`` samples are resampled and their
                  rows of stats_A, stats_B zeroed.
6. ``history``    the step's record (:class:`History`).

The dictionary, the statistics and the step count are committed at the end of a step,
so a step that fails in its checks, its encode or its update leaves the learner as it was.
"""
from __future__ import annotations

import copy
import time
import warnings

import numpy as np

from .. import backend, memory
from ..inference import ConvergenceWarning, encode, solver_class
from . import dead as dead_atoms
from . import distributed
from . import norms, updates
from .batches import check_batch, check_finite

# Inner-loop iteration caps for learning.  A cap, not the tol, ends LCA/ISTA/FISTA
# on early, badly conditioned dictionaries; the codes are still good enough for
# an M-step, and the cap keeps one step's cost bounded.  cd and omp use encode's own.
# LCA's is low because its accelerated form gets an M-step's worth of accuracy in a few
# dozen iterations: at 50, fit reaches cd's held-out objective in 1.3× cd's time, and
# ends lower (benchmarks/fit.py; at 500, 5×).
LEARNING_MAX_ITER = {"lca": 50, "ista": 500, "fista": 300}

HISTORY_KEYS = ("step", "objective", "mse", "l1", "nnz_frac", "dead_frac", "norm_min", "norm_mean",
                "norm_max", "samples_seen", "seconds", "resampled", "converged_frac")
INT_KEYS = ("step", "samples_seen", "resampled")


def solver_for(solver, X):
    """The solver a step or an encode runs: ``"auto"`` is cd on the host, fista on a GPU
    (the fastest certified solver for the device); a named solver is itself."""
    if solver != "auto":
        return solver
    return "fista" if backend.on_gpu(X) else "cd"


def check_solver_options(solver, options, where="fit"):
    if solver == "auto":
        return
    known = solver_class(solver).OPTIONS
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {where} with solver={solver!r}; the solver accepts "
                        f"{sorted(known)}")


class History:
    """The per-step records.  Values may be device scalars: they are kept as they come and
    read to the host only when the history is read (:meth:`as_dict`), so a GPU run need
    not sync each step for its history; the numbers are the same either way."""

    def __init__(self, values=None):
        self._values = {k: list((values or {}).get(k, [])) for k in HISTORY_KEYS}

    def append(self, record):
        for k in HISTORY_KEYS:
            self._values[k].append(record[k])

    def as_dict(self):
        for k, v in self._values.items():
            cast = int if k in INT_KEYS else float
            v[:] = [cast(backend.item(x)) for x in v]
        return self._values

    def __len__(self):
        return len(self._values["step"])


def history_arrays(history: dict) -> dict:
    """The history as file arrays ``history/<key>`` (model files and both trainers' checkpoints)."""
    return {f"history/{k}": np.asarray(v, dtype=np.float64) for k, v in history.items()}


def history_from_arrays(arrays: dict) -> dict:
    history = {k.split("/", 1)[1]: v.tolist() for k, v in arrays.items() if k.startswith("history/")}
    for k in INT_KEYS:
        if k in history:
            history[k] = [int(v) for v in history[k]]
    return history


def host_record(record):
    return {k: (int if k in INT_KEYS else float)(backend.item(v)) for k, v in record.items()}


def initial_dictionary(X, n_atoms, rng):
    """Distinct rows of the first batch, scaled to unit norm, topped up with Gaussian
    atoms when the batch has fewer usable rows than n_atoms."""
    Xh = backend.to_numpy(X).astype(np.float64)
    lengths = np.sqrt((Xh * Xh).sum(axis=1))
    usable = np.flatnonzero(lengths > 1e-12)
    take = rng.permutation(usable)[:n_atoms]
    D = np.empty((n_atoms, X.shape[1]))
    D[:take.size] = Xh[take] / lengths[take, None]
    if take.size < n_atoms:
        extra = rng.standard_normal((n_atoms - take.size, X.shape[1]))
        D[take.size:] = extra / np.linalg.norm(extra, axis=1, keepdims=True)
    return backend.match(D, X)


# ---- the statistics stage: name -> (D, X, Z, R, decay, norm) -> this batch's per-row means ---------------

def _batch_statistics(D, X, Z, R, decay, norm):
    return updates.batch_statistics(X, Z)


def _gradient(D, X, Z, R, decay, norm):
    return (norms.tangent(updates.gradient(D, Z, R, decay), D, norm),)


STATISTICS = {"online": _batch_statistics, "sgd": _gradient, "mod": _batch_statistics}


# ---- the update stage: name -> (learner, D, statistics, decay, adam) -> (new D, running stats) -------------

def _update_online(learner, D, stats, decay, adam):
    cfg = learner.config
    batch_A, batch_B = stats
    stats_A, stats_B, weight = updates.running_statistics(learner.stats_A, learner.stats_B, learner.weight,
                                                          batch_A, batch_B, learner.t + 1, cfg.forget)
    return updates.online(D, stats_A, stats_B, cfg.norm, decay), (stats_A, stats_B, weight)


def _update_sgd(learner, D, stats, decay, adam):
    (grad,) = stats
    return adam.step(D, grad), None


def _update_mod(learner, D, stats, decay, adam):
    return updates.mod(D, *stats, decay), None


UPDATE_RULES = {"online": _update_online, "sgd": _update_sgd, "mod": _update_mod}


class Learner:
    """The state of one dictionary-learning run, advanced one batch at a time by :meth:`step`.

    State: the dictionary ``D``; ``stats_A``, ``stats_B`` (the online update's running
    means of ZᵀZ/b and ZᵀX/b) and their ``weight``; ``adam``, the sgd update's
    :class:`~.updates.Adam` (its moments); the step count ``t``;
    ``samples_seen``; ``seconds``; the idle counters of the atoms; the RNG; the last
    codes for warm starts; the history.  :func:`sparsolve.fit` drives it over a data
    set, ``DictionaryLearning.partial_fit`` one call at a time.
    """

    def __init__(self, config, n_features, entropy, D=None):
        self.config = config  # resolved: batch_size, dead_after and beta are set
        self.n_features = n_features
        self.entropy = int(entropy)
        self.D = D
        self.stats_A = self.stats_B = None
        self.weight = 0.0
        self.adam = updates.Adam(updates.AdamSettings(lr=config.lr))
        self.t = 0
        self.samples_seen = 0
        self.seconds = 0.0
        self.idle = dead_atoms.IdleCounter(config.n_atoms, config.dead_after)
        self.rng = np.random.default_rng([self.entropy, 0])
        self.history = History()
        self.warm = None  # (key, Z) of the last step, for full-batch warm starts
        self.plan = None  # the memory plan for the batches' device (plan_memory); derived, not checkpointed

    def step(self, X, *, index=0, warm_key=None):
        """Encode the batch X, update the dictionary, and return the step's record.
        ``index`` names the batch in errors; ``warm_key`` marks batches that repeat exactly."""
        solver = solver_for(self.config.solver, X)
        # The step's own products (residual, statistics) would leave multi-threaded BLAS
        # workers spinning into the next batch's numba kernel (backend.single_threaded_blas),
        # and small ones lose to BLAS threads on a shared machine (backend.blas_threads_for).
        m = self.config.n_atoms
        if solver_class(solver).runs_on_host:
            blas = backend.single_threaded_blas()
        else:
            blas = backend.blas_threads_for(X, X.shape[0] * m * max(m, X.shape[1]))
        with blas:
            return self._step(X, index, warm_key, solver)

    def _step(self, X, index, warm_key, solver):
        cfg = self.config
        check_batch(X, f"batch {index}")
        if X.shape[1] != (self.n_features or X.shape[1]):
            raise ValueError(f"batch {index} has shape {tuple(X.shape)}; expected (rows, {self.n_features})")
        check_finite(X, f"batch {index}")
        if self.n_features is None:
            self.n_features = int(X.shape[1])
        self.plan_memory(X)
        start = time.perf_counter()
        D = (initial_dictionary(distributed.gather_rows(X), cfg.n_atoms, self.rng)  # distributed seam: global rows
             if self.D is None else backend.match(self.D, X))
        stats_A, stats_B = ((None, None) if self.stats_A is None
                            else (backend.match(self.stats_A, X), backend.match(self.stats_B, X)))
        self.stats_A, self.stats_B = stats_A, stats_B
        # a copy, committed with the rest: Adam.step rebinds its moments rather than writing them
        adam = copy.copy(self.adam)
        if adam.mean is not None:
            adam.mean, adam.square = backend.match(adam.mean, X), backend.match(adam.square, X)

        Z, converged = self._encode(X, D, solver, warm_key)
        b = X.shape[0]
        R = X - Z @ D
        r2 = (R * R).sum(axis=1)
        decay = norms.decay(cfg.norm, cfg.beta)
        stats, used, rows = distributed.step_sums(  # distributed seam: the global batch's sums
            STATISTICS[cfg.update](D, X, Z, R, decay, cfg.norm), backend.to_numpy((Z != 0).any(axis=0)), b)
        new, running = UPDATE_RULES[cfg.update](self, D, stats, decay, adam)
        new = norms.project(new, cfg.norm, previous=D)
        weight = self.weight
        if running is not None:
            stats_A, stats_B, weight = running
        new, resampled, dead = self._dead_atoms(new, X, r2, used, rows, stats_A, stats_B, adam)

        self.D, self.stats_A, self.stats_B, self.weight, self.adam = new, stats_A, stats_B, weight, adam
        self.warm = (warm_key, Z) if warm_key is not None else None
        self.t += 1
        self.samples_seen += rows
        backend.synchronize(new)
        self.seconds += time.perf_counter() - start
        record = distributed.mean_figures(  # distributed seam: global means of the per-row figures
            self._record(X, Z, r2, new, dead, resampled, converged), b)
        self.history.append(record)
        return record

    def plan_memory(self, X):
        """The memory plan (sparsolve.memory) for batches like X on X's device, made once, before
        any encode: a run that cannot fit raises MemoryPlanError, with the way out, here."""
        if self.plan is None:
            cfg = self.config
            self.plan = memory.plan_for(X, int(X.shape[1]), cfg.n_atoms, max(cfg.batch_size, int(X.shape[0])),
                                        update=cfg.update)
        return self.plan

    def _encode(self, X, D, solver, warm_key):
        cfg = self.config
        init = self.warm[1] if (warm_key is not None and self.warm is not None and self.warm[0] == warm_key) else None
        if init is not None:
            init = backend.match(init, X)
        options = cfg.solver_options if solver == cfg.solver else {}
        if "form" in solver_class(solver).OPTIONS and "form" not in options:
            options = {**options, "form": self.plan.form}  # the plan's: the Gram form only where G fits
        max_iter = cfg.max_iter if cfg.max_iter is not None else LEARNING_MAX_ITER.get(solver)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            Z, info = encode(X, D, cfg.alpha, solver=solver, positive=cfg.positive, tol=cfg.tol,
                             max_iter=max_iter, init=init, return_info=True, **options)
        return Z, info.converged

    def _dead_atoms(self, new, X, r2, used, rows, stats_A, stats_B, adam):
        """(D, atoms resampled, dead mask): the idle counters see which atoms the (global)
        batch of ``rows`` rows used (``used``: host booleans), and the dead ones are resampled;
        their statistics and Adam moments start afresh, as a new atom's would."""
        self.idle.observe(used, rows)
        dead = self.idle.dead()
        if not (self.config.resample_dead and dead.any()):
            return new, 0, dead
        new, atoms = dead_atoms.resample(new, *distributed.gather_rows(X, r2),  # distributed seam: every rank's rows
                                         dead, self.rng, self.config.norm)
        self.idle.reset(atoms)
        if stats_A is not None and atoms.size:
            idx = backend.like(atoms, stats_A)
            stats_A[idx, :] = 0
            stats_A[:, idx] = 0
            stats_B[idx, :] = 0
        if adam.mean is not None and atoms.size:
            idx = backend.like(atoms, adam.mean)
            adam.mean[idx, :] = 0
            adam.square[idx, :] = 0
        return new, int(atoms.size), dead

    def _record(self, X, Z, r2, new, dead, resampled, converged):
        """The step's record; the batch means stay device scalars (History reads them later)."""
        xp = backend.namespace(X)
        p = self.n_features or X.shape[1]
        atom_norms = xp.sqrt((new * new).sum(axis=1))
        sq, l1 = r2.mean(), abs(Z).sum(axis=1).mean()
        return {
            "step": self.t,
            "objective": 0.5 * sq + self.config.alpha * l1,
            "mse": sq / p,
            "l1": l1,
            "nnz_frac": backend.astype(Z != 0, backend.dtype_name(X)).mean(),
            "dead_frac": float(dead.mean()),
            "norm_min": atom_norms.min(),
            "norm_mean": atom_norms.mean(),
            "norm_max": atom_norms.max(),
            "samples_seen": self.samples_seen,
            "seconds": self.seconds,
            "resampled": resampled,
            "converged_frac": float(np.mean(backend.to_numpy(converged))),
        }

    def model(self):
        from .model import SparseCodingModel

        cfg = self.config
        settings = {**_asdict(cfg), "n_features": self.n_features}
        return SparseCodingModel(self.D, cfg.alpha, solver=cfg.solver, positive=cfg.positive,
                                 solver_options=cfg.solver_options, settings=settings,
                                 history=self.history.as_dict())


def _asdict(config):
    import dataclasses

    return dataclasses.asdict(config)
