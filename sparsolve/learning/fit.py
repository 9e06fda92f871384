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
import functools
import logging
import os
import warnings

import numpy as np

from .. import backend
from ..config import FitConfig, alpha_or_l0
from ..data.shards import ShardStream, open_shards
from ..rules import norm_rule
from . import checkpoint as ckpt
from . import choose, distributed, training
from .batches import Source, as_batch, check_data, check_storage, is_array, scan_finite, stateful, summary, take
from .data_parallel import DataParallel
from .digests import Digests, identity
from .history import host_record, on_host
from .learner import Learner
from .offset import Offset
from .reducer import Identity, Reducer
from .sharded import AtomSharded

log = logging.getLogger("sparsolve")


def fit(X, n_atoms=None, alpha=None, *, dict_init=None, callback=None, progress=True, checkpoint=None, config=None,
        **options):
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
    n_atoms, alpha, **options : the fields of :class:`sparsolve.config.FitConfig` (l0, solver,
        update, norm, batch_size, n_epochs, max_steps, positive, tol, max_iter, beta, lr,
        forget, shuffle, resample_dead, dead_after, checkpoint_every, device, storage, sync_every,
        center, center_samples, seed); any
        other keyword is an option of the inference solver (e.g. ``gamma`` for lca).  Without
        n_atoms or alpha, each is chosen from the data: 2 · n_features atoms (at most the rows),
        α = 0.1 · √(mean ‖x‖²), or the α for ``l0=`` non-zeros a row (sparsolve.learning.choose,
        which says why and how to choose them yourself); the model's ``settings`` keep them.
    config : a FitConfig instead of n_atoms, alpha and the options (pass None for those).
    dict_init : (n_atoms, n_features) starting dictionary (default: rows of the first batch).
    callback : ``callback(step, D, record)`` after every step; returning False stops.
    progress : a tqdm progress bar.
    checkpoint : a path; resumed from when it exists (same config and data required).

    Returns a :class:`SparseCodingModel`; its ``history`` has one entry per step.
    """
    if config is None:
        alpha_or_l0(alpha, options.get("l0"))
        fields = {f.name for f in dataclasses.fields(FitConfig)}
        solver_options = {k: options.pop(k) for k in list(options) if k not in fields}
        config = FitConfig(n_atoms, alpha, solver_options={**options.pop("solver_options", {}), **solver_options},
                           **options)
    learner, source, position, data_id = _start(X, config, dict_init, checkpoint)
    callback = learner.reducer.stop_together(callback)  # a stop on any rank stops every rank
    X = source.X
    if learner.config.center and learner.offset is None:  # a resumed run keeps its checkpoint's offset
        learner.offset = (Offset.of_array(X, learner.config.center_samples, learner.entropy, learner.reducer)
                          if is_array(X) else Offset(learner.config.center_samples))
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
            streams = learner.reducer.gather_objects(X.state_dict() if stateful(X) else None)  # each rank's position
            ckpt.save(learner, checkpoint, position, data, streams, consumed)

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
    reducer = default_reducer(config)
    # what each rank holds: the data's mode, and its rows over every rank (local arrays: the sum)
    n_rows, n_features = (int(X.shape[0]), int(X.shape[1])) if is_array(X) else (None, None)
    config = _chosen(X, config, dict_init, checkpoint, reducer)
    mode = config.rank_data  # new_learner: X is a first batch, each rank's own (statistics are row-weighted)
    if whole_data:
        mode, n_rows = reducer.survey(functools.partial(summary, X), n_rows, config.rank_data)
    resolved = dataclasses.replace(config.resolved(n_rows), rank_data=mode)
    if config.batch_size is None and n_rows is not None and resolved.batch_size == n_rows:
        log.info("batch_size=%d: the data's %d rows (batch_size was not given)", n_rows, n_rows)
    config = resolved
    reducer.check_batches(config.batch_size)
    D0 = None if dict_init is None else initial(dict_init, config, n_features)
    n_features = n_features or (None if D0 is None else D0.shape[1])
    entropy = int(np.random.SeedSequence(config.seed).entropy)
    entropy = reducer.agree(  # the ranks' settings must match; rank 0's entropy for all
        {**dataclasses.asdict(config), "n_features": n_features}, entropy,
        checkpoint=None if checkpoint is None else str(checkpoint), dict_init=dict_init,
        resuming=checkpoint is not None and ckpt.npz_path(checkpoint).exists())
    given = X  # a shard directory's path, before it becomes a stream: what the earlier checkpoints recorded
    learner, position, streams, layout = None, (0, 0), None, None
    if checkpoint is not None:
        ckpt.check_writable(checkpoint, "checkpoint")
        if ckpt.npz_path(checkpoint).exists():
            learner, position, saved_data, streams, consumed, layout = ckpt.restore(checkpoint, reducer)
    resumed = learner is not None
    if learner is None:
        learner = Learner(config, n_features, entropy, D0, reducer)
    if isinstance(X, (str, os.PathLike)):  # the order's seed is the run's, so a resume reads the same order
        share = {} if reducer.local else {"rank": reducer.rank, "ranks": reducer.world_size}  # shared: dealt out
        X = ShardStream(X, config.batch_size, seed=learner.entropy % (1 << 63), shuffle=config.shuffle,
                        device=config.device, **share)
    data_id = None if checkpoint is None else _identity(X, reducer)  # a shard stream's: its contents, read once
    digests = None if checkpoint is None else Digests(reducer)
    replay = True
    if resumed:
        current = data_id
        if saved_data is not None and "digest" in saved_data:
            saved_data = dict(saved_data)
            digests = Digests(reducer, saved_data.pop("digest"), consumed)
        else:  # the earlier format: checked on what it recorded; the digests start at this resume
            current = ckpt.earlier_identity(given)
        ckpt.check_resume(checkpoint, learner, config, n_features, saved_data, current, entropy)
        learner.config = config
        replay = _same_order(checkpoint, layout, reducer, stateful(X))
    if streams is not None and stateful(X):
        mine = streams[reducer.rank] if len(streams) == reducer.world_size else streams[0]
        if mine is not None:
            X.load_state_dict(mine)
    if is_array(X):  # a size or storage that cannot fit its device is refused here, before any batch is read
        first = backend.to_device(as_batch(take(X, np.arange(1)), 0), config.device)
        check_storage(first, config.storage)
        learner.plan_memory(learner.computed(first))
    source = Source(X, config, learner.entropy, reducer, digests, where=f"checkpoint {checkpoint}", step=learner.t,
                    replay=replay)
    return learner, source, position, data_id


def _chosen(X, config, dict_init, checkpoint, reducer):
    """``config`` with the n_atoms and alpha it lacks: a resumed checkpoint's (chosen from the same
    data when it was begun; check_resume then compares the rest), else chosen from the data
    (choose.py).  Under a process group every rank takes rank 0's choice: each rank's own data
    would choose its own."""
    if config.n_atoms is not None and config.alpha is not None:
        return config
    if checkpoint is not None and ckpt.npz_path(checkpoint).exists():
        saved = ckpt.saved_config(checkpoint)
        taken = {k: saved[k] for k in ("n_atoms", "alpha") if getattr(config, k) is None and saved.get(k) is not None}
        if taken and saved.get("l0") == config.l0:  # another l0 is another α: chosen afresh, and refused below
            log.info("resuming with the checkpoint's %s", " and ".join(f"{k}={v:g}" for k, v in taken.items()))
            config = dataclasses.replace(config, **taken)
    config = choose.for_source(config, X, dict_init)
    n_atoms, alpha = reducer.gather_objects((config.n_atoms, config.alpha))[0]
    return dataclasses.replace(config, n_atoms=n_atoms, alpha=alpha)


def _identity(X, reducer):
    """The data's identity for a checkpoint (digests.identity); local arrays: of the union of the
    ranks' rows, so that the run resumes on any split of them (or on one process given all)."""
    if reducer.local and is_array(X):
        return {"shape": [int(reducer.total_rows), int(X.shape[1])], "dtype": backend.dtype_name(X)}
    return identity(X)


def _same_order(checkpoint, layout, reducer, partitioned):
    """Whether the resumed run reads the data in the order of the run that wrote ``checkpoint`` (its
    ``layout``, reducer.layout): always for shared arrays and streams, whose order is the single
    process's; for each rank's own data and for a dealt-out shard directory, only on the same data
    ranks.  Otherwise every rank warns that the order changes, and the consumed batches, which were
    other ranks' data, are not checked again (False)."""
    saved = layout or {"data_ranks": 1, "atom_shards": 1, "local": False}
    by_rank = reducer.local or saved["local"] or partitioned
    if not by_rank or (saved["data_ranks"], saved["local"]) == (reducer.world_size, reducer.local):
        return True
    if reducer.is_root:
        before = "each rank its own data" if saved["local"] else "one data set dealt out"
        now = "each rank its own data" if reducer.local else "one data set dealt out"
        warnings.warn(f"checkpoint {checkpoint} was written by {saved['data_ranks']} data rank(s), {before}; this run "
                      f"has {reducer.world_size}, {now}: the order of the data changes from the resumed step on.  The "
                      "run resumes at the same epoch and step of it, so rows of that epoch may be read twice or not "
                      "at all, and the batches read before cannot be checked again (they were other ranks' shares)",
                      stacklevel=4)
    return False


def default_reducer(config=None) -> Reducer:
    """The reducer for a fit in this process: under an initialised default process group
    (torchrun; sparsolve.learning.distributed.init_from_env) :class:`DataParallel`, or with
    ``config.shard == "atoms"`` :class:`AtomSharded`; else :class:`Identity`."""
    if not distributed.active():
        return Identity()
    if config is not None and config.shard == "atoms":
        return AtomSharded(config)
    return DataParallel()


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
