"""Checkpoints of :func:`sparsolve.fit`: save, resume, and the checks around them.

A checkpoint holds the full state of a :class:`~.learner.Learner` -- dictionary,
running statistics, Adam's moments (update="sgd"), idle counters, step, epoch and batch position, the RNG state
and the history -- plus ``asdict`` of its :class:`~sparsolve.config.FitConfig`
and the data's fingerprint (:func:`.batches.fingerprint`).  It is written
atomically (sparsolve.io).  A later fit with the same path resumes from it and
gives the same dictionary as an uninterrupted run, provided the config and the
data are the same; otherwise the resume is refused with both named.

The helpers for history arrays, ``.npz`` paths and writable outputs are shared
with the model file and with fit_amortized's checkpoints.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .. import backend, io
from ..config import FitConfig
from . import dead as dead_atoms
from . import distributed
from .batches import describe
from .learner import History, Learner, history_arrays, history_from_arrays
from .offset import Offset
from .updates import Adam

CHECKPOINT_KIND = "fit_checkpoint"


def npz_path(path) -> Path:
    """The path sparsolve writes for ``path``: ``.npz`` appended unless it is there."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def check_writable(path, name: str) -> Path:
    """Refuse, before any training, an output path that cannot be written."""
    path = npz_path(path)
    if path.is_dir():
        raise ValueError(f"{name}={str(path)!r} is a directory; give a file path such as {str(path / 'model.npz')!r}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the first folder that exists: save_npz creates the rest
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}={str(path)!r} cannot be written ({folder} is not a writable folder); "
                         "choose another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{name}={str(path)!r} exists and is read-only; choose another path")
    return path


def save(learner: Learner, path, position, data_fingerprint, stream=None) -> Path:
    """Write the learner's state; ``stream``: a stateful stream's ``state_dict()`` (a ShardStream's
    position in its epoch), which a resume hands back to the stream's ``load_state_dict``."""
    learner.sync()  # the steps since the last read: their history, and their finite checks first
    warm_Z = None if learner.warm is None else distributed.gather_rows(learner.warm[1])  # distributed seam
    if not distributed.is_rank0():  # distributed seam: rank 0 alone writes (None elsewhere)
        return None
    arrays = {"dictionary": backend.to_numpy(learner.dictionary()), "idle": backend.to_numpy(learner.idle.idle),
              **history_arrays(learner.history.as_dict())}
    if learner.stats_A is not None:
        arrays["stats_A"] = backend.to_numpy(learner.stats_A)
        arrays["stats_B"] = backend.to_numpy(learner.stats_B)
    if learner.warm is not None:
        arrays["warm_Z"] = backend.to_numpy(warm_Z)
    if learner.top is not None:
        arrays["top_vector"] = backend.to_numpy(learner.top)
    adam = learner.adam.state()
    if adam is not None:
        arrays["adam_mean"], arrays["adam_square"] = adam["mean"], adam["square"]
    offset_arrays, offset_meta = learner.offset.state() if learner.offset is not None else ({}, None)
    arrays.update(offset_arrays)
    meta = {"config": dataclasses.asdict(learner.config), "n_features": learner.n_features,
            "entropy": str(learner.entropy), "data": data_fingerprint, "t": learner.t, "weight": learner.weight,
            "samples_seen": learner.samples_seen, "seconds": learner.seconds,
            "rng": learner.rng.bit_generator.state, "position": list(position),
            "warm_key": None if learner.warm is None else learner.warm[0],
            "adam_t": None if adam is None else adam["t"], "stream": stream, "offset": offset_meta}
    return io.save_npz(path, CHECKPOINT_KIND, arrays, meta)


def restore(path):
    """(learner, (epoch, batch), data fingerprint, stream state or None) from a checkpoint file."""
    arrays, meta = io.load_npz(npz_path(path), CHECKPOINT_KIND)
    try:
        config = FitConfig(**meta["config"])
        learner = Learner(config, meta["n_features"], int(meta["entropy"]), arrays["dictionary"])
        learner.t, learner.weight = int(meta["t"]), float(meta["weight"])
        learner.samples_seen, learner.seconds = int(meta["samples_seen"]), float(meta["seconds"])
        learner.rng.bit_generator.state = meta["rng"]
        learner.idle = dead_atoms.IdleCounter(config.n_atoms, config.dead_after, arrays["idle"])
        if "stats_A" in arrays:
            learner.stats_A, learner.stats_B = arrays["stats_A"], arrays["stats_B"]
        if "warm_Z" in arrays:
            learner.warm = (meta["warm_key"], distributed.local_part(arrays["warm_Z"]))  # distributed seam
        learner.top = arrays.get("top_vector")  # absent in older checkpoints: the next L starts cold
        adam = ({"mean": arrays["adam_mean"], "square": arrays["adam_square"], "t": meta["adam_t"]}
                if "adam_mean" in arrays else None)
        learner.adam = Adam.from_state(adam, like=learner.D, settings=learner.adam.settings)
        learner.history = History(history_from_arrays(arrays))
        if meta.get("offset") is not None:  # center=True; older checkpoints have no entry
            learner.offset = Offset.from_state(arrays, meta["offset"])
        position = tuple(int(v) for v in meta["position"])
        fingerprint = meta["data"]
        stream = meta.get("stream")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise io.ModelFileError(f"checkpoint {path} is incomplete, damaged or from an older sparsolve ({e!r}); "
                                "delete it to start afresh") from e
    return learner, position, fingerprint, stream


def check_resume(path, learner: Learner, config: FitConfig, n_features, saved_data, data, entropy):
    """Refuse to resume ``learner`` (from ``path``) with another config, seed or data."""
    saved = dataclasses.asdict(learner.config)
    for key in config.resume_mismatch(saved):
        raise ValueError(f"checkpoint {path} was written with {key}={saved.get(key)!r} but this fit has "
                         f"{key}={getattr(config, key)!r}; use the same settings or another checkpoint path")
    if n_features is not None and learner.n_features not in (None, n_features):
        raise ValueError(f"checkpoint {path} was written for {learner.n_features} features but the data has "
                         f"{n_features}; use another checkpoint path")
    if config.seed is not None and entropy != learner.entropy:
        raise ValueError(f"checkpoint {path} was written with another seed; use the same seed or another path")
    if saved_data is not None and data is not None and saved_data != data:
        raise ValueError(f"checkpoint {path} was written on other data: it saw {describe(saved_data)}, this fit "
                         f"has {describe(data)}; use that data or another checkpoint path")


def model_from_checkpoint(path):
    """The model a checkpoint holds so far."""
    return restore(path)[0].model()
