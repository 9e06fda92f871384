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
import os

import numpy as np

from .. import backend
from ..config import FitConfig
from . import checkpoint as ckpt
from . import distributed, norms, training
from ..data.shards import ShardStream, open_shards
from .batches import Source, as_batch, check_data, check_storage, fingerprint, is_array, stateful, take
from .learner import Learner, host_record, on_host
from .offset import Offset


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
    callback = distributed.stop_together(callback)  # distributed seam: a stop on any rank stops every rank
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
                batch = learner.offset.center(batch, f"batch {index}")
            record = learner.step(batch, index=index, warm_key=key)
            position = (epoch, index + 1)
            if callback is not None or learner.t == total:
                learner.sync()  # a callback gets every record on the host; the last step is read anyway
            yield learner.t, learner.D, record
            if max_steps is not None and learner.t >= max_steps:
                return

    def save():
        if learner.D is not None:
            ckpt.save(learner, checkpoint, position, data_id, X.state_dict() if stateful(X) else None)

    training.run(steps(), total=total, initial=learner.t, desc="sparsolve.fit",
                 progress=progress and distributed.is_rank0(),  # distributed seam: one bar, rank 0's
                 save=None if checkpoint is None else save, checkpoint_every=learner.config.checkpoint_every,
                 callback=callback, to_host=host_record, postfix_every=10, ready=on_host,
                 postfix=lambda r: {"loss": f"{r['objective']:.4g}", "nnz": f"{r['nnz_frac']:.3f}",
                                    "dead": f"{r['dead_frac']:.2f}"})
    if learner.D is None:
        raise ValueError("X yielded no batches; pass a non-empty array or iterable of batches")
    return learner.model()


def _start(X, config, dict_init, checkpoint, whole_data=True):
    """(learner, source, position, data fingerprint): every check first, then a fresh
    learner or the checkpoint's.  ``whole_data``: X is the data set, the same on every rank of
    a data-parallel run (fit); False: this rank's own first batch (new_learner)."""
    if isinstance(X, (str, os.PathLike)):
        open_shards(X)  # a path must be a directory of shards, checked here before any work
    else:
        check_data(X)
    if config.device == "cuda" and not backend.cuda_available():
        raise ValueError("device='cuda' but no CUDA device is available; use device='cpu' or device=None")
    n_rows, n_features = (X.shape[0], int(X.shape[1])) if is_array(X) else (None, None)
    config = config.resolved(n_rows)
    D0 = None if dict_init is None else initial(dict_init, config, n_features)
    n_features = n_features or (None if D0 is None else D0.shape[1])
    entropy = int(np.random.SeedSequence(config.seed).entropy)
    entropy = distributed.agree(  # distributed seam: the ranks' settings must match; rank 0's entropy for all
        {**dataclasses.asdict(config), "n_features": n_features}, entropy, X if whole_data and is_array(X) else None,
        checkpoint=None if checkpoint is None else str(checkpoint), dict_init=dict_init,
        resuming=checkpoint is not None and ckpt.npz_path(checkpoint).exists())
    data_id = {"identity": f"the shards in {os.fspath(X)}"} if isinstance(X, (str, os.PathLike)) else fingerprint(X)
    learner, position, stream = None, (0, 0), None
    if checkpoint is not None:
        ckpt.check_writable(checkpoint, "checkpoint")
        if ckpt.npz_path(checkpoint).exists():
            learner, position, saved_data, stream = ckpt.restore(checkpoint)
            ckpt.check_resume(checkpoint, learner, config, n_features, saved_data, data_id, entropy)
            learner.config = config
    if learner is None:
        learner = Learner(config, n_features, entropy, D0)
    if isinstance(X, (str, os.PathLike)):  # the order's seed is the run's, so a resume reads the same order
        X = ShardStream(X, config.batch_size, seed=learner.entropy % (1 << 63), shuffle=config.shuffle,
                        device=config.device)
    if stream is not None and stateful(X):
        X.load_state_dict(stream)
    if is_array(X):  # a size or storage that cannot fit its device is refused here, before any batch is read
        first = backend.to_device(as_batch(take(X, np.arange(1)), 0), config.device)
        check_storage(first, config.storage)
        learner.plan_memory(learner.computed(first))
    return learner, Source(X, config, learner.entropy), position, data_id


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
    return norms.project(Dh, config.norm)
