"""``fit``: learn a dictionary by EM-style alternation over batches.

The driver: a :class:`~sparsolve.config.FitConfig` in, the batches of the data
(batches.py) through the :class:`~.learner.Learner`'s step (learner.py) under the
shared training loop (training.py: progress, checkpoints, callback, Ctrl-C), and a
:class:`~.model.SparseCodingModel` out.  Checkpoints (checkpoint.py) are written
every ``checkpoint_every`` steps, at the end and on Ctrl-C/SIGTERM; a fit with an
existing checkpoint resumes it, on the same config and data only.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from .. import backend
from ..config import FitConfig
from ..data.shards import ShardStream, open_shards
from ..rules import norm_rule
from . import checkpoint as ckpt
from . import training
from .batches import Source, as_batch, check_data, check_storage, is_array, scan_finite, stateful, take
from .digests import Digests, identity
from .history import host_record, on_host
from .learner import Learner
from .reducer import default_reducer
from .offset import Offset

log = logging.getLogger("sparsolve")


def fit(X, n_atoms, alpha, *, dict_init=None, callback=None, progress=True, checkpoint=None, config=None, **options):
    """Learn a dictionary D (n_atoms, n_features) for sparse codes of the rows of X,

        min_D  mean_x  min_z  ½‖x − zD‖² + α‖z‖₁      under the norm rule on the rows of D,

    alternating inference of a batch's codes with a dictionary update (learner.py).

    Parameters
    ----------
    X : (n_samples, n_features) numpy array, numpy memmap, torch tensor or cupy array; or an
        iterable of such batches (streaming, for data larger than memory).  An iterable may
        declare an ``identity`` attribute, which its checkpoints record.  A
        :class:`sparsolve.data.ShardStream`, or the path of a directory of ``.npy`` shards
        (streamed by one in batches of ``batch_size``, ordered by the seed), resumes mid-epoch
        from its checkpointed ``state_dict()``.
    n_atoms, alpha, **options : the fields of :class:`sparsolve.config.FitConfig` (solver,
        update, norm, batch_size, n_epochs, max_steps, positive, tol, max_iter, beta, lr,
        forget, shuffle, resample_dead, dead_after, checkpoint_every, device, storage, sync_every,
        center, center_samples, seed); any
        other keyword is an option of the inference solver (e.g. ``gamma`` for lca).
    config : a FitConfig instead of n_atoms, alpha and the options (pass None for those).
    dict_init : (n_atoms, n_features) starting dictionary (default: rows of the first batch).
    callback : ``callback(step, D, record)`` after every step; returning False stops.
    progress : a tqdm progress bar.
    checkpoint : a path; resumed from when it exists (same config and data required).

    Returns a :class:`SparseCodingModel`; its ``history`` has one entry per step.
    """
    if config is None:
        fields = {f.name for f in dataclasses.fields(FitConfig)}
        solver_options = {k: options.pop(k) for k in list(options) if k not in fields}
        config = FitConfig(n_atoms, alpha, solver_options={**options.pop("solver_options", {}), **solver_options},
                           **options)
    learner, source, position, data_id = _start(X, config, dict_init, checkpoint)
    callback = learner.reducer.stop_together(callback)  # a stop on any rank stops every rank
    X = source.X
    if learner.config.center and learner.offset is None:  # a resumed run keeps its checkpoint's offset
        learner.offset = (Offset.of_array(X, learner.config.center_samples, learner.entropy) if is_array(X)
                          else Offset(learner.config.center_samples))
    max_steps = learner.config.max_steps
    total = source.total_steps()

    def steps():
        nonlocal position
        if max_steps is not None and learner.t >= max_steps:
            return
        for epoch, index, batch, key in source.batches(position):
            if learner.offset is not None:  # center=True: the learner sees x − b (offset.py)
                batch = learner.offset.center(batch, learner.reducer, f"batch {index}")
            record = learner.step(batch, index=index, warm_key=key)
            position = (epoch, index + 1)
            if callback is not None or learner.t == total:
                learner.sync()  # a callback gets every record on the host; the last step is read anyway
            yield learner.t, learner.D, record
            if max_steps is not None and learner.t >= max_steps:
                return

    def save():
        if learner.D is not None:
            digests = source.digests
            consumed = None if digests is None else digests.flush()  # every rank: it gathers theirs
            data = {**data_id, "digest": None if digests is None else digests.how}
            ckpt.save(learner, checkpoint, position, data, X.state_dict() if stateful(X) else None, consumed)

    try:
        training.run(steps(), total=total, initial=learner.t, desc="sparsolve.fit",
                     progress=progress and learner.reducer.is_root,  # one bar, rank 0's
                     save=None if checkpoint is None else save, checkpoint_every=learner.config.checkpoint_every,
                     callback=callback, to_host=host_record, postfix_every=10, ready=on_host, interruptible=True,
                     postfix=lambda r: {"loss": f"{r['objective']:.4g}", "nnz": f"{r['nnz_frac']:.3f}",
                                        "dead": f"{r['dead_frac']:.2f}"})
    except KeyboardInterrupt as e:
        if checkpoint is not None or learner.D is None or isinstance(e, Interrupted):
            raise
        raise Interrupted(learner.model()) from None
    if learner.D is None:
        raise ValueError("X yielded no batches; pass a non-empty array or iterable of batches")
    return learner.model()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a fit that had no checkpoint: nothing is on disk, and ``model`` holds what
    the finished steps learned (at a prompt: ``sys.last_exc.model``, ``sys.last_value.model``
    before Python 3.12)."""

    def __init__(self, model):
        self.model = model
        steps = len(model.history.get("step", []))
        super().__init__(f"fit interrupted after step {steps}; nothing was saved (pass checkpoint='run.npz' to keep a "
                         "run across Ctrl-C and resume it).  The model so far is on this exception: "
                         "`except KeyboardInterrupt as e: model = e.model`, or sys.last_exc.model at the prompt")


def _start(X, config, dict_init, checkpoint, whole_data=True):
    """(learner, source, position, data fingerprint): every check first, then a fresh
    learner or the checkpoint's.  ``whole_data``: X is the data set, the same on every rank of
    a data-parallel run (fit); False: this rank's own first batch (new_learner)."""
    if isinstance(X, (str, os.PathLike)):
        open_shards(X)  # a path must be a directory of shards, checked here before any work
    else:
        check_data(X)
    if is_array(X) and not isinstance(X, np.memmap):  # a memmap's rows are checked as they are read
        scan_finite(X)
    if config.device == "cuda" and not backend.cuda_available():
        raise ValueError("device='cuda' but no CUDA device is available; use device='cpu' or device=None")
    n_rows, n_features = (X.shape[0], int(X.shape[1])) if is_array(X) else (None, None)
    resolved = config.resolved(n_rows)
    if config.batch_size is None and n_rows is not None and resolved.batch_size == n_rows:
        log.info("batch_size=%d: the data's %d rows (batch_size was not given)", n_rows, n_rows)
    config = resolved
    D0 = None if dict_init is None else initial(dict_init, config, n_features)
    n_features = n_features or (None if D0 is None else D0.shape[1])
    entropy = int(np.random.SeedSequence(config.seed).entropy)
    reducer = default_reducer(config)
    entropy = reducer.agree(  # the ranks' settings must match; rank 0's entropy for all
        {**dataclasses.asdict(config), "n_features": n_features}, entropy, X if whole_data and is_array(X) else None,
        checkpoint=None if checkpoint is None else str(checkpoint), dict_init=dict_init,
        resuming=checkpoint is not None and ckpt.npz_path(checkpoint).exists())
    given = X  # a shard directory's path, before it becomes a stream: what the earlier checkpoints recorded
    learner, position, stream = None, (0, 0), None
    if checkpoint is not None:
        ckpt.check_writable(checkpoint, "checkpoint")
        if ckpt.npz_path(checkpoint).exists():
            learner, position, saved_data, stream, consumed = ckpt.restore(checkpoint, reducer)
    resumed = learner is not None
    if learner is None:
        learner = Learner(config, n_features, entropy, D0, reducer)
    if isinstance(X, (str, os.PathLike)):  # the order's seed is the run's, so a resume reads the same order
        X = ShardStream(X, config.batch_size, seed=learner.entropy % (1 << 63), shuffle=config.shuffle,
                        device=config.device)
    data_id = None if checkpoint is None else identity(X)  # a shard stream's: its contents, read once
    digests = None if checkpoint is None else Digests(reducer)
    if resumed:
        current = data_id
        if saved_data is not None and "digest" in saved_data:
            saved_data = dict(saved_data)
            digests = Digests(reducer, saved_data.pop("digest"), consumed)
        else:  # the earlier format: checked on what it recorded; the digests start at this resume
            current = ckpt.earlier_identity(given)
        ckpt.check_resume(checkpoint, learner, config, n_features, saved_data, current, entropy)
        learner.config = config
    if stream is not None and stateful(X):
        X.load_state_dict(stream)
    if is_array(X):  # a size or storage that cannot fit its device is refused here, before any batch is read
        first = backend.to_device(as_batch(take(X, np.arange(1)), 0), config.device)
        check_storage(first, config.storage)
        learner.plan_memory(learner.computed(first))
    source = Source(X, config, learner.entropy, reducer, digests, where=f"checkpoint {checkpoint}", step=learner.t)
    return learner, source, position, data_id


def new_learner(X, config, dict_init=None):
    """The :class:`Learner` that ``fit(X, config=config)`` would start from, for driving the
    training one batch at a time with :meth:`Learner.step` (X: a first batch)."""
    return _start(X, config, dict_init, None, whole_data=False)[0]


def initial(dict_init, config, n_features):
    """The user's starting dictionary, checked and put under the norm rule."""
    D = dict_init if is_array(dict_init) else np.asarray(dict_init, dtype=np.float64)
    m = config.n_atoms
    if D.ndim != 2 or D.shape[0] != m or (n_features is not None and D.shape[1] != n_features):
        raise ValueError(f"dict_init must have shape (n_atoms, n_features) = ({m}, {n_features}), "
                         f"got {tuple(D.shape)}")
    Dh = backend.to_numpy(D).astype(np.float64)
    if not np.isfinite(Dh).all() or (np.linalg.norm(Dh, axis=1) == 0).any():
        raise ValueError("dict_init contains NaN/Inf or zero rows; every atom needs a finite, nonzero row")
    return norm_rule(config.norm).project(Dh)
