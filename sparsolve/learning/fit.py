"""``fit``: learn a dictionary by EM-style alternation over batches.

For each batch X (b, p), with the current dictionary D (m, p):

1. E-step: Z = encode(X, D, α, solver=solver, tol=tol) -- the codes minimising
   ½‖x − zD‖² + α‖z‖₁ per row, to the relative duality gap ``tol`` (1e-3 by
   default: learning needs good codes, not certified optima, and each halving of
   the gap costs inner iterations).  When a step sees the very same rows as the
   one before (full-batch data), the previous codes warm-start the solver;
   minibatches hold new samples, so they start cold.
2. M-step: the dictionary update (updates.py) on the batch statistics
   A = ZᵀZ/b, B = ZᵀX/b.
3. The norm rule (norms.py), then the dead-atom policy (dead.py).

Data order.  Arrays (numpy, memmap, torch, cupy) are cut into batches of
``batch_size`` rows; each epoch visits the rows in a permutation drawn from the
seed and the epoch number (``shuffle=False``: in order), the rows of a batch kept
in increasing index order.  An iterable yields its batches as they are; a
re-iterable (a list, a Dataset) is walked once per epoch, a one-pass iterator once.

Checkpoints.  ``checkpoint=path`` writes the full state -- dictionary, running
statistics, idle counters, step, epoch and batch position, the RNG state and the
history -- atomically (sparsolve.io) every ``checkpoint_every`` steps and at the
end.  A later fit with the same path and settings resumes from it and gives the
same dictionary as an uninterrupted run; an iterable is re-walked from its start
and the batches already seen in the epoch are skipped.
"""
from __future__ import annotations

import inspect
import math
import time
import warnings

import numpy as np

from .. import backend, io
from ..checks import positive_int
from ..inference import HOST_KERNELS, SOLVERS, ConvergenceWarning, encode
from . import dead as dead_atoms
from . import distributed
from . import norms, updates
from .model import HISTORY_KEYS, SparseCodingModel

CHECKPOINT_KIND = "fit_checkpoint"
DEVICES = ("auto", "cpu", "cuda")

# Inner-loop iteration caps for learning.  A cap, not the tol, ends LCA/ISTA/FISTA
# on early, badly conditioned dictionaries; the codes are still good enough for
# an M-step, and the cap keeps one step's cost bounded.  cd and omp use encode's own.
LEARNING_MAX_ITER = {"lca": 500, "ista": 500, "fista": 300}

# Settings that must agree between a checkpoint and the fit that resumes it.
_RESUME_KEYS = ("n_atoms", "n_features", "alpha", "solver", "update", "norm", "batch_size", "positive",
                "tol", "max_iter", "beta", "lr", "forget", "shuffle", "dead_after", "resample_dead",
                "solver_options")


class Learner:
    """The state of one dictionary-learning run, advanced one batch at a time by :meth:`step`.

    :func:`fit` drives it over a data set; ``sparsolve.DictionaryLearning.partial_fit``
    drives it one call at a time.
    """

    def __init__(self, settings, D=None):
        self.settings = settings
        self.D = D
        m = settings["n_atoms"]
        self.A = self.B = None
        self.weight = 0.0
        self.t = 0
        self.samples_seen = 0
        self.seconds = 0.0
        self.idle = dead_atoms.IdleCounter(m, settings["dead_after"])
        self.rng = np.random.default_rng([settings["entropy"], 0])
        self.history = {k: [] for k in HISTORY_KEYS}
        self.warm = None  # (key, Z) of the last step, for full-batch warm starts

    # ---- one step -----------------------------------------------------------------
    def step(self, X, *, index=0, warm_key=None):
        """Encode the batch X, update the dictionary, and return the step's history record.
        ``index`` names the batch in errors; ``warm_key`` marks batches that repeat exactly."""
        if self.settings["solver"] not in HOST_KERNELS:
            return self._step(X, index, warm_key)
        # The step's own products (residual, statistics) would leave multi-threaded BLAS
        # workers spinning into the next batch's numba kernel (backend.single_threaded_blas).
        with backend.single_threaded_blas():
            return self._step(X, index, warm_key)

    def _step(self, X, index, warm_key):
        s = self.settings
        xp = backend.namespace(X)
        if X.ndim != 2 or X.shape[1] != (s["n_features"] or X.shape[1]):
            raise ValueError(f"batch {index} has shape {tuple(X.shape)}; expected (rows, {s['n_features']})")
        if X.shape[0] == 0:
            raise ValueError(f"batch {index} is empty; drop empty batches from the data")
        if not bool(xp.isfinite(X).all()):
            row = int(np.argmax(~np.isfinite(backend.to_numpy(X)).all(axis=1)))
            raise ValueError(f"batch {index} contains NaN or Inf (first at its row {row}); "
                             "clean or drop those samples before fitting")
        if s["n_features"] is None:
            s["n_features"] = int(X.shape[1])
        start = time.perf_counter()
        if self.D is None:
            self.D = initial_dictionary(distributed.gather_rows(X), s["n_atoms"], self.rng)  # distributed seam
        self._move_to(X)
        D = self.D
        init = self.warm[1] if (warm_key is not None and self.warm is not None and self.warm[0] == warm_key) else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            Z, info = encode(X, D, s["alpha"], solver=s["solver"], positive=s["positive"], tol=s["tol"],
                             max_iter=s["max_iter"], init=init, return_info=True, **s["solver_options"])
        self.warm = (warm_key, Z) if warm_key is not None else None
        b = X.shape[0]
        R = X - Z @ D
        r2 = (R * R).sum(axis=1)
        l1 = abs(Z).sum(axis=1)
        nonzero = Z != 0
        used = backend.to_numpy(nonzero.any(axis=0))

        self.t += 1
        A, B = updates.batch_statistics(X, Z)
        A, B, used, rows = distributed.step_sums(A, B, used, b)  # distributed seam: the global batch's sums
        decay = norms.decay(s["norm"], s["beta"])
        if s["update"] == "online":
            self.A, self.B, self.weight = updates.running_statistics(self.A, self.B, self.weight, A, B, self.t,
                                                                     s["forget"])
            new = updates.online(D, self.A, self.B, s["norm"], decay)
        elif s["update"] == "sgd":
            new = updates.sgd(D, A, B, decay, s["lr"])
        else:
            new = updates.mod(D, A, B, decay)
        new = norms.project(new, s["norm"], previous=D)

        self.idle.observe(used, rows)
        dead = self.idle.dead()
        resampled = 0
        if s["resample_dead"] and dead.any():
            batch = distributed.gather_rows(X, r2)  # distributed seam: resample from every rank's inputs
            new, atoms = dead_atoms.resample(new, *batch, dead, self.rng, s["norm"])
            resampled = int(atoms.size)
            self.idle.reset(atoms)
            if self.A is not None and resampled:
                idx = backend.like(atoms, self.A)
                self.A[idx, :] = 0
                self.A[:, idx] = 0
                self.B[idx, :] = 0
        self.D = new
        self.samples_seen += rows
        atom_norms = backend.to_numpy(xp.sqrt((new * new).sum(axis=1)))
        backend.synchronize(new)
        self.seconds += time.perf_counter() - start
        mse = float(backend.item(r2.mean())) / s["n_features"]
        l1_mean = float(backend.item(l1.mean()))
        record = {
            "step": self.t,
            "objective": 0.5 * mse * s["n_features"] + s["alpha"] * l1_mean,
            "mse": mse,
            "l1": l1_mean,
            "nnz_frac": float(backend.item(backend.astype(nonzero, backend.dtype_name(X)).mean())),
            "dead_frac": float(dead.mean()),
            "norm_min": float(atom_norms.min()),
            "norm_mean": float(atom_norms.mean()),
            "norm_max": float(atom_norms.max()),
            "samples_seen": self.samples_seen,
            "seconds": self.seconds,
            "resampled": resampled,
            "converged_frac": float(info.converged.mean()),
        }
        distributed.mean_figures(record, b)  # distributed seam: global means of the per-row figures
        for k, v in record.items():
            self.history[k].append(v)
        return record

    def _move_to(self, X):
        """Keep the state in the kind, device and dtype of the batches."""
        dtype = backend.dtype_name(X)

        def to(a):
            if a is None:
                return None
            if backend.kind(a) != backend.kind(X) or backend.device_of(a) != backend.device_of(X):
                a = backend.like(backend.to_numpy(a), X)
            return backend.astype(a, dtype) if backend.dtype_name(a) != dtype else a

        self.D, self.A, self.B = to(self.D), to(self.A), to(self.B)
        if self.warm is not None:
            self.warm = (self.warm[0], to(self.warm[1]))

    def model(self):
        s = self.settings
        return SparseCodingModel(self.D, s["alpha"], solver=s["solver"], positive=s["positive"],
                                 solver_options=s["solver_options"], settings=_public(s), history=self.history)

    # ---- checkpoints --------------------------------------------------------------
    def save(self, path, position):
        warm_Z = None if self.warm is None else distributed.gather_rows(self.warm[1])  # distributed seam
        if not distributed.is_rank0():  # distributed seam: rank 0 alone writes
            return
        arrays = {"dictionary": backend.to_numpy(self.D), "idle": self.idle.idle}
        if self.A is not None:
            arrays["A"] = backend.to_numpy(self.A)
            arrays["B"] = backend.to_numpy(self.B)
        if self.warm is not None:
            arrays["warm_Z"] = backend.to_numpy(warm_Z)
        arrays.update({f"history/{k}": np.asarray(v, dtype=np.float64) for k, v in self.history.items()})
        meta = {"settings": self.settings, "t": self.t, "weight": self.weight, "samples_seen": self.samples_seen,
                "seconds": self.seconds, "rng": self.rng.bit_generator.state, "position": list(position),
                "warm_key": None if self.warm is None else self.warm[0]}
        io.save_npz(path, CHECKPOINT_KIND, arrays, meta)

    @classmethod
    def restore(cls, path):
        """(learner, (epoch, batch)) from a checkpoint file."""
        arrays, meta = io.load_npz(path, CHECKPOINT_KIND)
        try:
            self = cls(meta["settings"], arrays["dictionary"])
            self.t, self.weight = int(meta["t"]), float(meta["weight"])
            self.samples_seen, self.seconds = int(meta["samples_seen"]), float(meta["seconds"])
            self.rng.bit_generator.state = meta["rng"]
            self.idle = dead_atoms.IdleCounter(self.settings["n_atoms"], self.settings["dead_after"], arrays["idle"])
            if "A" in arrays:
                self.A, self.B = arrays["A"], arrays["B"]
            if "warm_Z" in arrays:
                self.warm = (meta["warm_key"], distributed.local_part(arrays["warm_Z"]))  # distributed seam
            for k in HISTORY_KEYS:
                values = arrays[f"history/{k}"].tolist()
                self.history[k] = [int(v) for v in values] if k in ("step", "samples_seen", "resampled") else values
            epoch, batch = (int(v) for v in meta["position"])
        except (KeyError, TypeError, ValueError) as e:
            raise io.ModelFileError(f"checkpoint {path} is incomplete or damaged ({e!r}); "
                                    "delete it to start afresh") from e
        return self, (epoch, batch)


def model_from_checkpoint(path):
    """The model a checkpoint holds so far."""
    learner, _ = Learner.restore(path)
    return learner.model()


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
    return backend.astype(backend.like(D, X), backend.dtype_name(X))


def fit(X, n_atoms, alpha, *, solver="lca", update="online", norm="unit", batch_size=None, n_epochs=None,
        max_steps=None, device="auto", seed=None, dict_init=None, positive=False, resample_dead=True,
        dead_after=None, callback=None, progress=True, checkpoint=None, checkpoint_every=100, tol=1e-3,
        max_iter=None, beta=None, lr=1.0, forget=5.0, shuffle=True, **solver_options):
    """Learn a dictionary D (n_atoms, n_features) for sparse codes of the rows of X,

        min_D  mean_x  min_z  ½‖x − zD‖² + α‖z‖₁      under the norm rule on the rows of D,

    alternating inference of a batch's codes with a dictionary update (module docstring).

    Parameters
    ----------
    X : (n_samples, n_features) numpy array, numpy memmap, torch tensor or cupy array; or an
        iterable of such batches (streaming, for data larger than memory).
    n_atoms : number of atoms m ≥ 1.
    alpha : the L1 weight α > 0.
    solver : the inference solver of :func:`sparsolve.encode` ("lca", "fista", "ista", "cd", "omp").
    update : "online" (Mairal et al.), "sgd" (Olshausen–Field) or "mod" (full batch); see updates.py.
    norm : "unit", "ball", "penalty" (weight decay β Σ‖d‖²) or "none"; see norms.py.
    batch_size : rows per step for array data (default 256, or every row for "mod").
    n_epochs, max_steps : stop after so many passes / steps, whichever comes first.  Neither
        given: one epoch (30 for "mod", where an epoch of full-batch data is one step).
    device : "auto" keeps each batch where it is; "cpu" or "cuda" moves batches there.
    seed : int or None; fixes the initial atoms, the data order and the resampling.
    dict_init : (n_atoms, n_features) initial dictionary (the norm rule is applied to it).
    positive : nonnegative codes.
    resample_dead, dead_after : the dead-atom policy (dead.py); ``dead_after`` in samples.
    callback : ``callback(step, D, record)`` after every step; returning False stops the fit.
    progress : show a tqdm bar with the objective, the sparsity and the dead atoms.
    checkpoint, checkpoint_every : resume from / save to this path every so many steps.
    tol, max_iter : the inner loop's relative duality gap and iteration cap (defaults
        1e-3 and ``LEARNING_MAX_ITER`` for the iterative solvers).
    beta : the weight decay β of ``norm="penalty"`` (default α).
    lr : the sgd step as a fraction of 1/λ_max(ZᵀZ/b).
    forget : the exponent of the online update's forgetting factor (1 − 1/t)^forget: the running
        statistics average over roughly the last t/(forget + 1) batches.  The default 5 suits
        natural images (a long memory averages out batch noise); when the atoms must travel far
        from their start (e.g. a planted dictionary), codes from early dictionaries mislead the
        statistics for long, and a shorter memory (forget ≈ 20) recovers the atoms sooner.
    shuffle : visit array rows in a fresh random order each epoch.
    **solver_options : passed to :func:`sparsolve.encode` (e.g. ``gamma``, ``threshold`` for LCA).
    """
    settings = _settings(X, n_atoms, alpha, solver=solver, update=update, norm=norm, batch_size=batch_size,
                         n_epochs=n_epochs, max_steps=max_steps, device=device, seed=seed, positive=positive,
                         resample_dead=resample_dead, dead_after=dead_after, checkpoint_every=checkpoint_every,
                         tol=tol, max_iter=max_iter, beta=beta, lr=lr, forget=forget, shuffle=shuffle,
                         solver_options=solver_options)
    distributed.agree(settings, X if _is_array(X) else None, device=device, checkpoint=checkpoint,  # distributed seam
                      resuming=checkpoint is not None and _exists(checkpoint), callback=callback is not None,
                      dict_init=dict_init)
    source = _Source(X, settings, device)
    n_epochs, max_steps = settings.pop("n_epochs"), settings.pop("max_steps")
    learner, position = None, (0, 0)
    if checkpoint is not None and _exists(checkpoint):
        learner, position = Learner.restore(checkpoint)
        _check_resume(learner.settings, settings, checkpoint)
        settings["entropy"] = learner.settings["entropy"]
        learner.settings = settings
    if learner is None:
        learner = Learner(settings, None if dict_init is None else _initial(dict_init, settings))
    total = source.total_steps(n_epochs, max_steps)
    bar = _progress_bar(progress and distributed.is_rank0(), total, learner.t)  # distributed seam
    next_position, saved_at = position, None
    try:
        if max_steps is None or learner.t < max_steps:
            for epoch, index, batch, key in source.batches(position, n_epochs):
                record = learner.step(batch, index=index, warm_key=key)
                next_position = (epoch, index + 1)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['objective']:.4g}", nnz=f"{record['nnz_frac']:.3f}",
                                    dead=f"{record['dead_frac']:.2f}")
                if checkpoint is not None and learner.t % checkpoint_every == 0:
                    learner.save(checkpoint, next_position)
                    saved_at = learner.t
                stop = callback is not None and callback(learner.t, learner.D, record) is False
                stop = distributed.any_rank(stop) if callback is not None else stop  # distributed seam
                if stop or (max_steps is not None and learner.t >= max_steps):
                    break
        if checkpoint is not None and learner.D is not None and saved_at != learner.t:
            learner.save(checkpoint, next_position)
    finally:
        if bar is not None:
            bar.close()
    if learner.D is None:
        raise ValueError("X yielded no batches; pass a non-empty array or iterable of batches")
    return learner.model()


# ---- data -----------------------------------------------------------------------------


class _Source:
    """Batches of an array (by permutation) or an iterable (as given), with positions."""

    def __init__(self, X, settings, device):
        self.device = device
        self.settings = settings
        self.array = _is_array(X)
        self.X = X
        if self.array:
            self.n = X.shape[0]
            self.per_epoch = math.ceil(self.n / settings["batch_size"])
        else:
            self.n = None
            self.per_epoch = None

    def total_steps(self, n_epochs, max_steps):
        by_epochs = None if (n_epochs is None or self.per_epoch is None) else n_epochs * self.per_epoch
        if by_epochs is None:
            return max_steps
        return by_epochs if max_steps is None else min(by_epochs, max_steps)

    def batches(self, position, n_epochs):
        """Yield (epoch, index in epoch, batch, warm key) from ``position`` = (epoch, index) on."""
        start_epoch, start_index = position
        epoch = start_epoch
        while n_epochs is None or epoch < n_epochs:
            skip = start_index if epoch == start_epoch else 0
            produced = False
            for index, batch, key in self._epoch(epoch, skip):
                produced = True
                yield epoch, index, batch, key
            if not produced and skip == 0:
                return  # an exhausted iterator: nothing more will come
            epoch += 1

    def _epoch(self, epoch, skip):
        s = self.settings
        if self.array:
            bs = s["batch_size"]
            order = (np.random.default_rng([s["entropy"], 1, epoch]).permutation(self.n) if s["shuffle"]
                     else np.arange(self.n))
            full = bs >= self.n
            for index in range(skip, self.per_epoch):
                rows = distributed.local_part(np.sort(order[index * bs:(index + 1) * bs]))  # distributed seam
                yield index, self._prepare(_take(self.X, rows)), ("full" if full else None)
        else:
            for index, batch in distributed.enumerate_batches(self.X):  # distributed seam
                if index < skip:
                    continue
                yield index, self._prepare(_as_batch(batch, index)), None

    def _prepare(self, batch):
        if self.device == "cpu":
            if backend.is_torch(batch):
                return batch.cpu()
            if backend.is_cupy(batch):
                return batch.get()
        elif self.device == "cuda":
            if isinstance(batch, np.ndarray):
                return backend._torch().from_numpy(np.ascontiguousarray(batch)).cuda()
            if backend.is_torch(batch):
                return batch.cuda()
        return batch


def _is_array(X):
    return isinstance(X, np.ndarray) or backend.is_torch(X) or backend.is_cupy(X)


def _take(X, rows):
    if isinstance(X, np.ndarray):
        batch = np.asarray(X[rows])  # a memmap reads just these rows
        return batch if batch.dtype.kind == "f" else batch.astype(np.float64)
    return X[backend.like(rows, X)]


def _as_batch(batch, index):
    if not _is_array(batch):
        try:
            batch = np.asarray(batch, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"batch {index} is a {type(batch).__name__}, not an array of numbers") from e
    if isinstance(batch, np.ndarray) and batch.dtype.kind != "f":
        batch = batch.astype(np.float64)
    if batch.ndim != 2:
        raise ValueError(f"batch {index} must be 2-D (rows, n_features), got shape {tuple(batch.shape)}")
    return batch


def _exists(path):
    from pathlib import Path

    path = Path(path)
    return path.exists() or path.with_name(path.name + ".npz").exists()


# ---- settings and validation ------------------------------------------------------------


def new_learner(X, n_atoms, alpha, *, dict_init=None, **options):
    """The :class:`Learner` that ``fit(X, n_atoms, alpha, **options)`` would start from, for
    driving the training one batch at a time with :meth:`Learner.step` (X: a first batch)."""
    bound = inspect.signature(fit).bind(X, n_atoms, alpha, **options)
    bound.apply_defaults()
    args = bound.arguments
    names = inspect.signature(_settings).parameters
    settings = _settings(**{k: v for k, v in args.items() if k in names})
    settings.pop("n_epochs"), settings.pop("max_steps")
    return Learner(settings, None if dict_init is None else _initial(dict_init, settings))


def _settings(X, n_atoms, alpha, *, solver, update, norm, batch_size, n_epochs, max_steps, device, seed, positive,
              resample_dead, dead_after, checkpoint_every, tol, max_iter, beta, lr, forget, shuffle, solver_options):
    n_atoms = positive_int(n_atoms, "n_atoms", "the number of atoms, e.g. n_atoms=256")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a number > 0, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}; with alpha=0 the codes are not sparse")
    updates.check_update(update)
    norms.check_norm(norm)
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is not known; choose one of {sorted(SOLVERS)}")
    unknown = sorted(set(solver_options) - set(SOLVERS[solver][0]))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for fit with solver={solver!r}; the solver accepts "
                        f"{sorted(SOLVERS[solver][0])}")
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not known; choose one of {list(DEVICES)}")
    if device == "cuda" and not (_torch_cuda()):
        raise ValueError("device='cuda' but no CUDA device is available; use device='cpu' or 'auto'")
    array = _is_array(X)
    if not array and (isinstance(X, (str, bytes)) or not hasattr(X, "__iter__")):
        raise TypeError(f"X must be an array or an iterable of batches, got {type(X).__name__}")
    if array:
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
        if X.shape[0] == 0:
            raise ValueError("X has no rows")
        n_features = int(X.shape[1])
    else:
        n_features = None
    if batch_size is None:
        batch_size = X.shape[0] if (array and update == "mod") else 256
    batch_size = positive_int(batch_size, "batch_size", "the rows per step")
    if array and batch_size > X.shape[0]:
        raise ValueError(f"batch_size={batch_size} is larger than the data ({X.shape[0]} rows); "
                         f"use batch_size <= {X.shape[0]}")
    if n_epochs is not None:
        n_epochs = positive_int(n_epochs, "n_epochs", "the passes over the data")
    if max_steps is not None:
        max_steps = positive_int(max_steps, "max_steps", "the number of steps")
    if n_epochs is None and max_steps is None:
        n_epochs = 30 if update == "mod" else 1
    if not array and n_epochs is not None and n_epochs > 1 and iter(X) is X:
        raise ValueError("X is a one-pass iterator, so it cannot give n_epochs > 1; pass a list or another "
                         "re-iterable of batches, or use max_steps")
    if max_iter is None:
        max_iter = LEARNING_MAX_ITER.get(solver)
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    positive_int(checkpoint_every, "checkpoint_every", "steps between checkpoints")
    if dead_after is None:
        dead_after = dead_atoms.default_dead_after(n_atoms, batch_size)
    dead_after = positive_int(dead_after, "dead_after", "samples an atom may stay unused")
    beta = alpha if beta is None else float(beta)
    if not beta >= 0:
        raise ValueError(f"beta must be ≥ 0, got {beta}")
    if not float(lr) > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not float(forget) >= 0:
        raise ValueError(f"forget must be ≥ 0, got {forget}")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    entropy = int(np.random.SeedSequence(None if seed is None else int(seed)).entropy)
    return {
        "n_atoms": n_atoms, "n_features": n_features, "alpha": alpha, "solver": solver, "update": update,
        "norm": norm, "batch_size": batch_size, "n_epochs": n_epochs, "max_steps": max_steps,
        "positive": bool(positive), "resample_dead": bool(resample_dead), "dead_after": dead_after,
        "tol": float(tol), "max_iter": max_iter, "beta": beta, "lr": float(lr), "forget": float(forget),
        "shuffle": bool(shuffle), "solver_options": dict(solver_options), "entropy": entropy,
        "seeded": seed is not None,
    }


def _initial(dict_init, settings):
    D = dict_init
    if not _is_array(D):
        D = np.asarray(D, dtype=np.float64)
    m = settings["n_atoms"]
    if D.ndim != 2 or D.shape[0] != m or (settings["n_features"] is not None and D.shape[1] != settings["n_features"]):
        raise ValueError(f"dict_init must have shape (n_atoms, n_features) = ({m}, {settings['n_features']}), "
                         f"got {tuple(D.shape)}")
    Dh = backend.to_numpy(D).astype(np.float64)
    if not np.isfinite(Dh).all() or (np.linalg.norm(Dh, axis=1) == 0).any():
        raise ValueError("dict_init contains NaN/Inf or zero rows; every atom needs a finite, nonzero row")
    if settings["n_features"] is None:
        settings["n_features"] = Dh.shape[1]
    return norms.project(Dh, settings["norm"])


def _check_resume(saved, current, path):
    current["n_features"] = current["n_features"] or saved.get("n_features")
    for key in _RESUME_KEYS:
        if saved.get(key) != current.get(key):
            raise ValueError(f"checkpoint {path} was written with {key}={saved.get(key)!r} but this fit has "
                             f"{key}={current.get(key)!r}; use the same settings or another checkpoint path")
    if current["seeded"] and saved["entropy"] != current["entropy"]:
        raise ValueError(f"checkpoint {path} was written with another seed; use the same seed or another path")


def _public(settings):
    return {k: v for k, v in settings.items() if k not in ("entropy", "seeded")}


def _torch_cuda():
    try:
        return backend._torch().cuda.is_available()
    except ImportError:
        return False


def _progress_bar(progress, total, initial):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="sparsolve.fit", unit="step", leave=False)
