"""One dictionary-learning step, as a chain of small stages over explicit state.

For a batch X (b, p) and the current dictionary D (m, p), :meth:`Learner.step` runs

1. ``encode``      Z = encode(X, D, α, solver, tol): the codes minimising ½‖x − zD‖² + α‖z‖₁
                   per row, to the relative gap ``tol`` (learning needs good codes, not
                   certified optima).  When a step sees the very same rows as the one
                   before (full-batch data), the previous codes warm-start the solver.
2. ``statistics``  the update rule's statistics of the batch (sparsolve.rules: A = ZᵀZ/b and
                   B = ZᵀX/b for "online" and "mod"; sgd's gradient from the residual R = X − ZD),
                   combined by the reducer (reducer.py) into the global batch's, with the atoms'
                   use and the row count, so every rank of a data-parallel run takes the same step.
3. ``apply``       the update rule's M-step from its state (running statistics, Adam's moments),
                   which the learner keeps and commits.
4. ``norm rule``   the norm rule's projection.
5. ``dead atoms``  dead.py: atoms unused for ``dead_after`` samples are resampled, and the update
                   rule restarts their state (at the steps that read the device).
6. ``record``      the step's figures (history.py), as per-row means over the global batch.

The dictionary, the rule's state and the step count are committed at the end of a step,
so a step that fails in its checks, its encode or its update leaves the learner as it was.

Host reads.  On the steps whose number is a multiple of ``sync_every`` (:meth:`Learner.sync`)
the learner reads the device once: the records of the steps since the last read (their figures
stay device scalars until then, so the history is exact), their batches' finite checks and the
idle counts.  Between reads a batch's rows with NaN or Inf are set to zero for the computation
and the check waits; at the read it raises the same error as an immediate check would, naming
the batch and the row (the learner has then stepped on the zeroed rows: fit raises, and writes
no checkpoint past the last read).  Dead atoms are looked for at those steps only (dead.py):
when the idle counts' host ceiling says an atom may be dead, the step's one read takes the
counts with the pending records, before the resampling, and the step's own record waits for
the next read.  So a run reads the device once per ``sync_every`` steps, plus one
read (the batch's residuals) at each step that resamples.  The schedule follows the step
count, so a checkpoint, a callback or a resume does not move it, and ``sync_every=1`` (the
host default) looks for dead atoms at every step, as before.

Storage.  With ``storage="bfloat16"`` the batch and the dictionary are rounded to bfloat16
as they are stored; every product, the codes and the running statistics are float32.
"""
from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from .. import backend, memory
from ..checks import finite_rows
from ..config import GPU_SYNC_EVERY
from ..inference import ConvergenceWarning, solver_class, solver_for
from ..rules import update_rule
from . import dead as dead_atoms
from .batches import check_batch, check_finite, check_storage
from .history import HISTORY_KEYS, INT_KEYS, History
from .model import SparseCodingModel
from .reducer import Identity


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


class Learner:
    """The state of one dictionary-learning run, advanced one batch at a time by :meth:`step`.

    Settings: the (resolved) ``config``; ``rule``, its update rule, which holds the norm rule
    (``rule.norm``); ``reducer``, how the work is shared among processes (reducer.py).  State: the
    dictionary ``D``; ``state``, the update rule's (its running statistics, its optimiser's
    moments); the step count ``t``; ``samples_seen``; ``seconds``; the idle counters of the atoms;
    the RNG; the last codes for warm starts; the history.  :func:`sparsolve.fit` drives it over a
    data set, ``DictionaryLearning.partial_fit`` one call at a time.
    """

    def __init__(self, config, n_features, entropy, D=None, reducer=None):
        self.config = config  # resolved: batch_size, dead_after and beta are set
        self.reducer = Identity() if reducer is None else reducer
        self.rule = update_rule(config)
        self.n_features = n_features
        self.entropy = int(entropy)
        self.D = None if D is None else self.reducer.own_atoms(D)
        self.state = self.rule.init(self.D)
        self.t = 0
        self.samples_seen = 0
        self.seconds = 0.0
        self.idle = dead_atoms.IdleCounter(self.reducer.n_atoms(config.n_atoms), config.dead_after)
        self.rng = np.random.default_rng([self.entropy, 0])
        self.history = History()
        self.warm = None  # (key, Z) of the last step, for full-batch warm starts
        self.top = None  # the top eigenvector behind the last step's L: the next step's power iteration starts there
        self.plan = None  # the memory plan for the batches' device (plan_memory); derived, not checkpointed
        self.offset = None  # center=True: the data's offset b (offset.Offset), which fit subtracts before a step
        self.pending = []  # (record, finite check or None) of the steps since the last host read

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
        rule, reducer = self.rule, self.reducer
        X, check, syncing = self._checked(X, index)
        start = time.perf_counter()
        D = self._current(X)
        state = rule.to(self.state, X)

        # 1. encode
        Z, converged, top = self._encode(X, D, solver, warm_key)
        b = X.shape[0]
        R = X - reducer.reconstruct(Z, D)
        r2 = (R * R).sum(axis=1)
        nonzero = Z != 0
        # 2. the update rule's statistics, of the global batch
        stats, used, rows = reducer.statistics(rule, X, Z, R, D, nonzero.any(axis=0), b)
        # 3. its M-step, 4. the norm rule, 5. dead atoms
        new, state = reducer.apply(rule, D, stats, state, self.t + 1)
        new = rule.norm.project(new, previous=D)
        new, resampled, dead, read = self._dead_atoms(new, X, r2, used, rows, state, syncing)

        stored = new
        if self.config.storage is not None:
            stored = backend.astype(new, self.config.storage)
            new = backend.astype(stored, "float32")  # the record describes the stored atoms
        self.D, self.state, self.top = stored, state, top
        self.warm = (warm_key, Z) if warm_key is not None else None
        self.t += 1
        self.samples_seen += rows
        if syncing:
            backend.synchronize(new)  # otherwise the queued update counts in the next step's seconds
        self.seconds += time.perf_counter() - start
        # 6. the record
        record = reducer.figures(self._record(X, Z, nonzero, r2, new, dead, resampled, converged), b)
        self.pending.append((record, check))
        if syncing and (not read or self.sync_every(X) == 1):  # else this record joins the next read
            self.sync()
        return record

    def _checked(self, X, index):
        """(X as the step computes with it, its deferred finite check or None, whether this step
        reads the device): the batch's checks, and the memory plan made before the first encode."""
        check_batch(X, f"batch {index}")
        if X.shape[1] != (self.n_features or X.shape[1]):
            raise ValueError(f"batch {index} has shape {tuple(X.shape)}; expected (rows, {self.n_features})")
        check_storage(X, self.config.storage)
        syncing = (self.t + 1) % self.sync_every(X) == 0  # by step count: saves and resumes keep the schedule
        check = None
        if syncing and not self.pending:
            check_finite(X, f"batch {index}")
        else:  # checked at the next read; meanwhile its bad rows must not poison the state
            xp = backend.namespace(X)
            finite = backend.isfinite(X).all(axis=1)
            check = (f"batch {index}", finite)
            X = xp.where(finite[:, None], X, 0)
        X = self.computed(X)
        if self.n_features is None:
            self.n_features = int(X.shape[1])
        self.plan_memory(X)
        return X, check, syncing

    def _current(self, X):
        """The dictionary the step starts from, like X: the last one, or at the first step distinct
        rows of the (global) batch under the norm rule."""
        if self.D is not None:
            return backend.match(self.D, X)
        first = initial_dictionary(self.reducer.global_rows(X), self.config.n_atoms, self.rng)
        return self.reducer.own_atoms(self.rule.norm.start(first))

    def sync_every(self, X):
        """Steps between host reads for batches like X (config.sync_every, else 1 on the host
        and :data:`GPU_SYNC_EVERY` on a GPU)."""
        if self.config.sync_every is not None:
            return self.config.sync_every
        return GPU_SYNC_EVERY if backend.on_gpu(X) else 1

    def computed(self, X):
        """The batch as the step computes with it: under ``storage`` rounded to that type and
        held in float32 (the products and statistics accumulate in float32); else X itself."""
        if self.config.storage is None:
            return X
        return backend.astype(backend.astype(X, self.config.storage), "float32")

    def dictionary(self):
        """D in a dtype every library and file holds (bfloat16 storage: its exact float32 values)."""
        if self.config.storage is None or self.D is None:
            return self.D
        return backend.astype(self.D, "float32")

    def sync(self, counts=None):
        """Read the device once for every step since the last read: the records' figures (each
        record dict is updated in place, then joins the history), the batches' deferred finite
        checks (the first failing one raises, as :func:`~.batches.check_finite` would) and the
        largest idle count (dead.IdleCounter.bound).  ``counts``: a device vector (the idle
        counts) read in the same transfer instead of the largest count, and returned on the host.
        Nothing to do when nothing is pending and no counts are asked for."""
        pending, self.pending = self.pending, []
        if not pending and counts is None:
            return None
        slots, values = [], []
        for record, check in pending:
            if check is not None:
                slots.append((None, check))
                values.append(check[1].all())
            for key, v in record.items():
                if backend.is_array(v):
                    slots.append((record, key))
                    values.append(v)
        values.append(self.idle.idle.max() if counts is None else counts)
        # float64 holds the counts exactly (below 2⁵³ samples)
        host = backend.to_numpy(backend.concat([backend.astype(v.reshape(-1), "float64") for v in values]))
        for (owner, what), value in zip(slots, host):
            if owner is None:
                if not value:
                    finite_rows(backend.to_numpy(what[1]), what[0])
            else:
                owner[what] = int(value) if what in INT_KEYS else float(value)
        tail = host[len(slots):].astype(np.int64)
        self.idle.settle(tail.max(initial=0))
        for record, _ in pending:
            self.history.append(record)
        return None if counts is None else tail

    def plan_memory(self, X):
        """The memory plan (sparsolve.memory) for batches like X on X's device, made once, before
        any encode: a run that cannot fit raises MemoryPlanError, with the way out, here.  It is
        the encode's plan in the memory that the learner's own arrays (statistics, copies of D,
        the batch) leave, and every step's encode follows it: its form, its rows per chunk."""
        if self.plan is None:
            cfg = self.config
            m = self.reducer.n_atoms(cfg.n_atoms)
            self.plan = memory.plan_for(X, int(X.shape[1]), m, max(cfg.batch_size, int(X.shape[0])),
                                        update=cfg.update, form=self._solver_form(solver_for(cfg.solver, X)))
        return self.plan

    def _solver_options(self, solver):
        return self.config.solver_options if solver == self.config.solver else {}

    def _solver_form(self, solver):
        """The form the step's solver asks for: its ``form`` option (default "auto"), or the Gram
        form for the solvers that have no other (cd, omp)."""
        if "form" not in solver_class(solver).OPTIONS:
            return "gram"
        return self._solver_options(solver).get("form", "auto")

    def _encode(self, X, D, solver, warm_key):
        cfg = self.config
        init = self.warm[1] if (warm_key is not None and self.warm is not None and self.warm[0] == warm_key) else None
        if init is not None:
            init = backend.match(init, X)
        max_iter = cfg.max_iter_for(solver)
        options, top = self._solver_options(solver), self.top
        if "L" in solver_class(solver).OPTIONS and options.get("L") is None:
            # D moves little per step, so its last top eigenvector starts the power iteration
            # next to the answer: one read of the device for L instead of ~2 (the step commits top)
            L, top = self.reducer.lipschitz(D, None if top is None else backend.match(top, D))
            options = {**options, "L": L}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            Z, info = self.reducer.encode(X, D, cfg.alpha, solver=solver, positive=cfg.positive, tol=cfg.tol,
                                          max_iter=max_iter, init=init, return_info=True, plan=self.plan, **options)
        return Z, info.converged, top

    def _dead_atoms(self, new, X, r2, used, rows, state, syncing):
        """(D, atoms resampled, the dead mask of this rank's atoms, whether the device was read): the
        idle counters see which atoms the (global) batch of ``rows`` rows used (``used``: booleans on
        any device), and on a ``syncing`` step the dead ones are resampled (dead.py) and the update
        rule starts their ``state`` afresh (in place), as a new atom's.  The counts are read, with
        the pending records, only when their host ceiling says that an atom may be dead."""
        self.idle.observe(used, rows)
        if not (self.config.resample_dead and syncing and self.idle.may_be_dead()):
            return new, 0, self.idle.dead(), False
        idle = self.sync(counts=self.idle.idle)  # an atom may be dead: which ones
        reducer = self.reducer
        mine = idle >= self.idle.dead_after
        dead = reducer.all_atoms(mine)  # every rank decides on every atom, and draws alike
        if not dead.any():
            return new, 0, mine, True
        every, atoms = dead_atoms.resample(reducer.all_atoms(new), *reducer.global_rows(X, r2), dead, self.rng,
                                           self.rule.norm)
        replaced = np.zeros(dead.shape, bool)
        replaced[atoms] = True
        ours = np.flatnonzero(reducer.own_atoms(replaced))  # this rank's atoms among them
        self.idle.reset(ours)
        idle[ours] = 0
        self.idle.settle(idle.max(initial=0))
        self.rule.reset_atoms(state, ours)
        return reducer.own_atoms(every), int(atoms.size), mine, True

    def _record(self, X, Z, nonzero, r2, new, dead, resampled, converged):
        """The step's record (``nonzero``: Z ≠ 0; ``new``: the step's new atoms); the batch
        means stay device scalars (History reads them later)."""
        xp = backend.namespace(X)
        p = self.n_features or X.shape[1]
        atom_norms = xp.sqrt((new * new).sum(axis=1))
        sq, l1 = r2.mean(), abs(Z).sum(axis=1).mean()
        figures = {
            "objective": 0.5 * sq + self.config.alpha * l1,
            "mse": sq / p,
            "l1": l1,
            "nnz_frac": backend.astype(nonzero, backend.dtype_name(X)).mean(),
            "norm_min": atom_norms.min(),
            "norm_mean": atom_norms.mean(),
            "norm_max": atom_norms.max(),
        }
        if backend.is_array(sq):  # device scalars: as views of one float64 vector, which the host
            # read (sync) then takes whole, rather than converting each figure (a launch each on a GPU)
            stacked = backend.astype(xp.stack(list(figures.values())), "float64")
            figures = {key: stacked[i] for i, key in enumerate(figures)}
        figures["dead_frac"] = backend.astype(dead, "float64").mean()
        return {
            "step": self.t,
            **{key: figures[key] for key in HISTORY_KEYS if key in figures},
            "samples_seen": self.samples_seen,
            "seconds": self.seconds,
            "resampled": resampled,
            "converged_frac": float(np.mean(backend.to_numpy(converged))),
        }

    def model(self):
        """The model so far: the whole dictionary, the settings and the history."""
        cfg = self.config
        settings = {**dataclasses.asdict(cfg), "n_features": self.n_features}
        self.sync()
        return SparseCodingModel(self.reducer.all_atoms(self.dictionary()), cfg.alpha, solver=cfg.solver,
                                 positive=cfg.positive, solver_options=cfg.solver_options, settings=settings,
                                 history=self.history.as_dict(),
                                 offset=None if self.offset is None else self.offset.value())
