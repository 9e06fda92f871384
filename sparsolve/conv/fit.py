"""``fit_conv``: online convolutional dictionary learning, and its checkpoints.

Each step codes a batch of signals with :func:`encode_conv` (to the relative gap ``tol``), folds the
codes' statistics into running means (:mod:`.update`; the online update's forgetting), sweeps block
coordinate descent over the filters, and puts each filter under the norm rule -- Mairal et al.'s online
dictionary learning in convolutional form, as alphacsc's online learner.  The run is driven by the
training loop that ``fit`` and ``fit_amortized`` share (progress bar, checkpoints every
``checkpoint_every`` steps and at the end, the callback, Ctrl-C and SIGTERM).

The norm rules are sparsolve.rules' objects (each filter a row of D flattened), the running means
those of its online rule.  This is the one module of :mod:`sparsolve.conv` that uses
:mod:`sparsolve.learning`: the loop (``training.run``), the data's fingerprint, the checks of the
checkpoint's path, and the reducer (``learning.reducer.default_reducer``): under a torch.distributed
process group (torchrun) each rank codes its share of every batch, and the statistics -- per-signal
means -- are summed over the ranks weighted by their signals, as ``fit``'s are, so every rank takes
the step a single process would take on the whole batch; rank 0 writes the checkpoints.
"""
from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from .. import backend, io
from ..checks import finite_rows
from ..inference import ConvergenceWarning
from ..learning import training
from ..learning.batches import describe, fingerprint
from ..learning.checkpoint import check_writable, npz_path
from ..learning.reducer import default_reducer
from ..rules import norm_rule
from ..rules.online import running_statistics
from .config import ConvFitConfig
from .encode import encode_conv, resolve_solver
from .model import ConvModel
from .operator import ConvOperator, geometry_of
from .update import FilterUpdate, statistics

CHECKPOINT_KIND = "conv_fit_checkpoint"
HISTORY_KEYS = ("step", "objective", "mse", "l1", "nnz_frac", "norm_min", "norm_mean", "norm_max",
                "converged_frac", "samples_seen", "seconds")


def fit_conv(X, n_filters=None, filter_size=None, alpha=None, *, config=None, dict_init=None, callback=None,
             progress=True, checkpoint=None, **options):
    """Learn K filters D (K, C, *f) for convolutional sparse codes of the signals X,

        min_D  mean_x  min_z  ½‖x − Σ_k d_k ∗ z_k‖² + α Σ_k ‖z_k‖₁      under the norm rule on the filters.

    Parameters
    ----------
    X : (n_signals, channels, length) or (n_images, channels, height, width); numpy, torch or cupy.
    n_filters, filter_size, alpha, **options : the fields of :class:`~sparsolve.conv.config.ConvFitConfig`
        (boundary, solver, norm, batch_size, n_epochs, max_steps, positive, tol, max_iter, beta, forget,
        passes, shuffle, checkpoint_every, device, seed); any other keyword is an option of the solver.
    config : a ConvFitConfig instead of n_filters, filter_size, alpha and the options.
    dict_init : starting filters (n_filters, channels, *filter shape); default: windows of the data.
    callback : ``callback(step, D, record)`` after every step; returning False stops.
    progress : a tqdm progress bar.
    checkpoint : a path, written atomically every ``checkpoint_every`` steps, at the end and on Ctrl-C; a fit
        whose checkpoint exists resumes it -- with the same settings and data only.

    Returns a :class:`~sparsolve.conv.model.ConvModel`.
    """
    if config is None:
        fields = {f.name for f in dataclasses.fields(ConvFitConfig)}
        solver_options = {k: options.pop(k) for k in list(options) if k not in fields}
        config = ConvFitConfig(n_filters, filter_size, alpha,
                               solver_options={**options.pop("solver_options", {}), **solver_options}, **options)
    elif options or n_filters is not None or filter_size is not None or alpha is not None:
        raise TypeError("pass either config= or the settings (n_filters, filter_size, alpha, ...), not both")
    _check_data(X, config)
    config = config.resolved(int(X.shape[0]))
    reducer = default_reducer()
    if checkpoint is not None:
        check_writable(checkpoint, "checkpoint")
    data_id = fingerprint(X)
    entropy = reducer.agree({**dataclasses.asdict(config), "n_channels": int(X.shape[1])},
                            int(np.random.SeedSequence(config.seed).entropy), X, checkpoint=str(checkpoint),
                            dict_init=dict_init)
    state = None
    if checkpoint is not None and npz_path(checkpoint).exists():
        state = _restore(checkpoint, config, data_id, entropy)
    if state is None:
        state = _State.fresh(X, config, dict_init, entropy)
    state.reducer = reducer
    total = _total_steps(config, X.shape[0])

    def steps():
        for epoch, index, rows in _batches(config, X.shape[0], state):
            if config.max_steps is not None and state.t >= config.max_steps:
                return
            batch = backend.to_device(backend.take_rows(X, reducer.local_rows(rows)), config.device)
            record = state.step(batch)
            state.position = (epoch, index + 1)
            yield state.t, state.D, record

    def save():
        if reducer.is_root:
            _save(checkpoint, state, data_id)

    training.run(steps(), total=total, initial=state.t, desc="sparsolve.fit_conv", progress=progress and reducer.is_root,
                 save=None if checkpoint is None else save, checkpoint_every=config.checkpoint_every,
                 callback=reducer.stop_together(callback),
                 postfix=lambda r: {"loss": f"{r['objective']:.4g}", "nnz": f"{r['nnz_frac']:.4f}"})
    return state.model()


def _check_data(X, config):
    """Every check of X before any work: an array of signals or images, float, finite, large enough."""
    if not backend.is_array(X):
        raise TypeError(f"X must be a numpy array, torch tensor or cupy array of signals, got {type(X).__name__}")
    if X.ndim not in (3, 4):
        raise ValueError(f"X must be (n_signals, channels, length) or (n_images, channels, height, width), got shape "
                         f"{tuple(X.shape)}{' (one channel: X[:, None])' if X.ndim == 2 else ''}")
    if backend.dtype_name(X) not in backend.SUPPORTED_DTYPES:
        raise TypeError(f"X has dtype {backend.dtype_name(X)}; use float32 or float64")
    f = config.filter_size
    grid = tuple(int(s) for s in X.shape[2:])
    if min(grid) < 2 * f - 1:
        raise ValueError(f"the signals {grid} are too small for filter_size={f}: fit_conv needs at least 2·f − 1 = "
                         f"{2 * f - 1} samples an axis (the codes' statistics span lags −(f − 1) … f − 1); use "
                         "smaller filters or larger signals")
    n = X.shape[0]
    finite_rows(backend.to_numpy(backend.isfinite(X.reshape(n, -1)).all(axis=1)), "X", "signals")


def _total_steps(config, n):
    per_epoch = -(-n // config.batch_size)
    total = None if config.n_epochs is None else config.n_epochs * per_epoch
    if config.max_steps is not None:
        total = config.max_steps if total is None else min(total, config.max_steps)
    return total


def _batches(config, n, state):
    """(epoch, index, rows) from the state's position on: each epoch's order from the seed and the epoch."""
    epoch, index = state.position
    per_epoch = -(-n // config.batch_size)
    while config.n_epochs is None or epoch < config.n_epochs:
        order = (np.random.default_rng([state.entropy, 1, epoch]).permutation(n) if config.shuffle
                 else np.arange(n))
        for i in range(index, per_epoch):
            yield epoch, i, np.sort(order[i * config.batch_size:(i + 1) * config.batch_size])
        epoch, index = epoch + 1, 0
        state.position = (epoch, 0)


class _State:
    """The learner's state: filters, running statistics, step, position, history."""

    def __init__(self, config, D, entropy):
        self.config = config
        self.D = D
        self.entropy = int(entropy)
        self.A = self.B = None
        self.weight = 0.0
        self.t = 0
        self.samples_seen = 0
        self.seconds = 0.0
        self.position = (0, 0)
        self.history = {k: [] for k in HISTORY_KEYS}
        self.reducer = None  # set by fit_conv (learning.reducer: one process, or data-parallel ranks)

    @classmethod
    def fresh(cls, X, config, dict_init, entropy):
        shape = (config.n_filters, int(X.shape[1]), *(config.filter_size,) * (X.ndim - 2))
        if dict_init is None:
            D = _windows(X, shape, np.random.default_rng([entropy, 0]))
        else:
            D = np.asarray(backend.to_numpy(dict_init), dtype=np.float64)
            if D.shape != shape:
                raise ValueError(f"dict_init must have shape (n_filters, channels, *filter) = {shape}, got {D.shape}")
            if not np.isfinite(D).all() or (np.abs(D.reshape(shape[0], -1)).sum(axis=1) == 0).any():
                raise ValueError("dict_init has NaN/Inf values or all-zero filters; every filter must be finite and "
                                 "nonzero")
        rule = norm_rule(config.norm)
        D = rule.project(rule.start(D.reshape(shape[0], -1))).reshape(shape)
        return cls(config, D, entropy)

    def step(self, X):
        cfg = self.config
        start = time.perf_counter()
        D = backend.match(self.D, X)
        solver = resolve_solver(cfg.solver, X, cfg.boundary)
        with backend.no_grad(X):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                Z, info = encode_conv(X, D, cfg.alpha, boundary=cfg.boundary, solver=solver, positive=cfg.positive,
                                      tol=cfg.tol, max_iter=cfg.max_iter, return_info=True, **cfg.solver_options)
            n = X.shape[0]
            g = geometry_of(X, D, cfg.boundary)
            # the batch's per-signal means, summed over the ranks weighted by their signals (the reducer)
            stats, _, rows = self.reducer.statistics(_Statistics(g, cfg.alpha, info.converged), X, Z, None, D,
                                                     np.zeros(0, bool), n)
            A_b, B_b, figures = stats
            xsq, l1, nnz, converged = (float(v) for v in backend.to_numpy(figures))
            half_r2 = 0.5 * xsq + backend.item(FilterUpdate(A_b, B_b, g.filters).loss(D))
            A, B = (None, None) if self.A is None else (backend.match(self.A, X), backend.match(self.B, X))
            A, B, weight = running_statistics(A, B, self.weight, A_b, B_b, self.t + 1, cfg.forget)
            rule = norm_rule(cfg.norm)

            def project(d, previous):
                return rule.project(d.reshape(1, -1), previous.reshape(1, -1)).reshape(d.shape)

            new = FilterUpdate(A, B, g.filters).run(D, project, rule.decay(cfg.beta), cfg.passes)
        self.D, self.A, self.B, self.weight = new, A, B, weight
        self.t += 1
        self.samples_seen += rows
        backend.synchronize(new)
        self.seconds += time.perf_counter() - start
        lengths = np.sqrt((backend.to_numpy(new).reshape(new.shape[0], -1) ** 2).sum(axis=1))
        record = {"step": self.t, "objective": half_r2 + cfg.alpha * l1, "mse": 2 * half_r2 / int(np.prod(X.shape[1:])),
                  "l1": l1, "nnz_frac": nnz,
                  "norm_min": float(lengths.min()), "norm_mean": float(lengths.mean()),
                  "norm_max": float(lengths.max()), "converged_frac": converged,
                  "samples_seen": self.samples_seen, "seconds": self.seconds}
        for k in HISTORY_KEYS:
            self.history[k].append(record[k])
        return record

    def model(self):
        return ConvModel(backend.to_numpy(self.D), self.config.alpha, boundary=self.config.boundary,
                         positive=self.config.positive, settings=dataclasses.asdict(self.config), history=self.history)


class _Statistics:
    """The step's statistics as the reducer asks an update rule for them (``statistics(X, Z, R, D)``:
    per-signal means): the codes' A and B (update.statistics), and the batch's mean ‖x‖², ‖z‖₁, share
    of nonzero codes and share of converged signals, for the record."""

    def __init__(self, geometry, alpha, converged):
        self.geometry, self.alpha, self.converged = geometry, alpha, converged

    def statistics(self, X, Z, R, D):
        n = X.shape[0]
        xp = backend.namespace(X)
        A, B = statistics(ConvOperator(D, self.geometry, "fft"), X, Z)
        flat_x, flat_z = X.reshape(n, -1), Z.reshape(n, -1)
        figures = xp.stack([(flat_x * flat_x).sum() / n, abs(flat_z).sum() / n,
                            backend.astype(flat_z != 0, backend.dtype_name(X)).mean(),
                            flat_x[0, 0] * 0 + float(np.mean(self.converged))])
        return A, B, figures


def _windows(X, shape, rng):
    """Filters cut from the data: windows of the filter's size at random signals and positions, unit norm
    (Gaussian filters where a window is flat)."""
    K, C, *f = shape
    Xh = X
    D = np.empty(shape)
    for k in range(K):
        i = int(rng.integers(X.shape[0]))
        corner = [int(rng.integers(s - w + 1)) for s, w in zip(X.shape[2:], f)]
        window = backend.to_numpy(Xh[(i, slice(None), *(slice(c, c + w) for c, w in zip(corner, f)))])
        D[k] = window
    lengths = np.sqrt((D.reshape(K, -1) ** 2).sum(axis=1))
    flat = lengths <= 1e-12 * max(1.0, lengths.max())
    if flat.any():
        D[flat] = rng.standard_normal((int(flat.sum()), C, *f))
    return D / np.sqrt((D.reshape(K, -1) ** 2).sum(axis=1)).reshape(K, *(1,) * (len(shape) - 1))


def _save(path, state, data_id):
    arrays = {"filters": backend.to_numpy(state.D),
              **{f"history/{k}": np.asarray(v, dtype=np.float64) for k, v in state.history.items()}}
    if state.A is not None:
        arrays["stats_A"], arrays["stats_B"] = backend.to_numpy(state.A), backend.to_numpy(state.B)
    meta = {"config": dataclasses.asdict(state.config), "data": data_id, "entropy": str(state.entropy), "t": state.t,
            "weight": state.weight, "samples_seen": state.samples_seen, "seconds": state.seconds,
            "position": list(state.position)}
    return io.save_npz(path, CHECKPOINT_KIND, arrays, meta)


def _restore(path, config, data_id, entropy):
    """The state saved at ``path``, after refusing another config, seed or data."""
    arrays, meta = io.load_npz(npz_path(path), CHECKPOINT_KIND)
    with io.reading(path):
        saved = meta["config"]
        for key in config.resume_mismatch(saved):
            raise ValueError(f"checkpoint {path} was written with {key}={saved.get(key)!r} but this fit has "
                             f"{key}={getattr(config, key)!r}; use the same settings or another checkpoint path")
        if meta["data"] != data_id:
            raise ValueError(f"checkpoint {path} was written on other data: it saw {describe(meta['data'])}, this fit "
                             f"has {describe(data_id)}; use that data or another checkpoint path")
        saved_entropy = int(meta["entropy"])
        if config.seed is not None and saved_entropy != entropy:
            raise ValueError(f"checkpoint {path} was written with another seed; use the same seed or another path")
        entropy = saved_entropy
        state = _State(dataclasses.replace(config), arrays["filters"], entropy)
        if "stats_A" in arrays:
            state.A, state.B = arrays["stats_A"], arrays["stats_B"]
        state.t, state.weight = int(meta["t"]), float(meta["weight"])
        state.samples_seen, state.seconds = int(meta["samples_seen"]), float(meta["seconds"])
        state.position = tuple(int(v) for v in meta["position"])
        state.history = {k: arrays[f"history/{k}"].tolist() for k in HISTORY_KEYS}
        for k in ("step", "samples_seen"):
            state.history[k] = [int(v) for v in state.history[k]]
    return state


def model_from_checkpoint(path):
    """The model a checkpoint holds so far (what sparsolve.load reads from one)."""
    arrays, meta = io.load_npz(npz_path(path), CHECKPOINT_KIND)
    with io.reading(path):
        config = ConvFitConfig(**meta["config"])
        state = _State(config, arrays["filters"], int(meta["entropy"]))
        state.history = {k: arrays[f"history/{k}"].tolist() for k in HISTORY_KEYS}
    return state.model()


io.register(CHECKPOINT_KIND, model_from_checkpoint)
