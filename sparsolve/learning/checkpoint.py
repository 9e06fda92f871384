"""Checkpoints of :func:`sparsolve.fit`: save, resume, and the checks around them.

A checkpoint holds the full state of a :class:`~.learner.Learner` -- dictionary, the update
rule's state (its ``state_dict``: the online statistics, Adam's moments), idle counters, step,
epoch and batch position, the RNG state and the history -- plus ``asdict`` of its
:class:`~sparsolve.config.FitConfig`, the data's identity and a digest of every batch the run read
(digests.py).
Arrays split among ranks (atoms, codes) are joined by the learner's reducer before they are
written, and split again on resume; rank 0 writes.  On resume every array is checked against the
shape and dtype the config and the dictionary imply, before any of it is used.  It is written
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
from ..rules.base import checked_arrays
from . import dead as dead_atoms
from .batches import fingerprint
from .digests import COLUMNS, difference
from .history import History, history_arrays, history_from_arrays
from .learner import Learner
from .offset import Offset

CHECKPOINT_KIND = "fit_checkpoint"


def npz_path(path) -> Path:
    """The path sparsolve writes for ``path``: ``.npz`` appended unless it is there."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def check_writable(path, name: str) -> Path:
    """Refuse, before any training, an output path that cannot be written (a directory given as
    ``path`` itself, not only as its ``.npz`` form: ``--out existing_dir`` is not ``existing_dir.npz``)."""
    if Path(path).is_dir():
        io.check_writable(path, name)
    return io.check_writable(npz_path(path), name)


def save(learner: Learner, path, position, data_fingerprint, stream=None, consumed=None) -> Path:
    """Write the learner's state; ``stream``: a stateful stream's ``state_dict()`` (a ShardStream's
    position in its epoch), which a resume hands back to the stream's ``load_state_dict``;
    ``consumed``: the digest table of the batches read (digests.py)."""
    learner.sync()  # the steps since the last read: their history, and their finite checks first
    reducer = learner.reducer
    rule_arrays, rule_values = learner.rule.state_dict(learner.state)
    arrays = {"dictionary": reducer.all_atoms(learner.dictionary()), "idle": reducer.all_atoms(learner.idle.idle),
              **{k: reducer.all_atoms(v) for k, v in rule_arrays.items()}}
    if learner.warm is not None:
        arrays["warm_Z"] = reducer.all_codes(learner.warm[1])
    if not reducer.is_root:  # every rank took part in the gathers above; rank 0 alone writes
        return None
    arrays = {k: backend.to_numpy(v) for k, v in arrays.items()}
    arrays.update(history_arrays(learner.history.as_dict()))
    if consumed is not None:
        arrays["consumed"] = consumed
    if learner.top is not None:
        arrays["top_vector"] = backend.to_numpy(learner.top)
    offset_arrays, offset_meta = learner.offset.state() if learner.offset is not None else ({}, None)
    arrays.update(offset_arrays)
    meta = {"config": dataclasses.asdict(learner.config), "n_features": learner.n_features,
            "entropy": str(learner.entropy), "data": data_fingerprint, "t": learner.t,
            "samples_seen": learner.samples_seen, "seconds": learner.seconds,
            "rng": learner.rng.bit_generator.state, "position": list(position),
            "warm_key": None if learner.warm is None else learner.warm[0], "stream": stream, "offset": offset_meta,
            **rule_values}
    return io.save_npz(path, CHECKPOINT_KIND, arrays, meta)


def restore(path, reducer=None):
    """(learner, (epoch, batch), data identity, stream state or None, digest table of the batches
    read or None) from a checkpoint file, for a fit under ``reducer`` (default: one process)."""
    arrays, meta = io.load_npz(npz_path(path), CHECKPOINT_KIND)
    try:
        config = FitConfig(**meta["config"])
        D = io.require_matrix(arrays, "dictionary", path)
        m, p, dtype = config.n_atoms, D.shape[1], str(D.dtype)
        checked_arrays(arrays, {"dictionary": (m, p)}, dtype)
        checked_arrays(arrays, {"idle": (m,)}, "int64")
        checked_arrays(arrays, {"top_vector": (min(m, p),)}, dtype)
        if "warm_Z" in arrays:
            checked_arrays(arrays, {"warm_Z": (arrays["warm_Z"].shape[0], m)}, dtype)
        if meta["n_features"] not in (None, p):
            raise ValueError(f"the dictionary has {p} features but the checkpoint says {meta['n_features']}")
        learner = Learner(config, meta["n_features"], int(meta["entropy"]), D, reducer)
        reducer = learner.reducer
        state = learner.rule.load_state_dict(arrays, meta, m, p, dtype)
        learner.state = {k: reducer.own_atoms(v) if backend.is_array(v) else v for k, v in state.items()}
        learner.t = int(meta["t"])
        learner.samples_seen, learner.seconds = int(meta["samples_seen"]), float(meta["seconds"])
        learner.rng.bit_generator.state = meta["rng"]
        learner.idle = dead_atoms.IdleCounter(reducer.n_atoms(m), config.dead_after, reducer.own_atoms(arrays["idle"]))
        if "warm_Z" in arrays:
            learner.warm = (meta["warm_key"], reducer.own_codes(arrays["warm_Z"]))
        learner.top = arrays.get("top_vector")  # absent in older checkpoints: the next L starts cold
        learner.history = History(history_from_arrays(arrays))
        if meta.get("offset") is not None:  # center=True; older checkpoints have no entry
            learner.offset = Offset.from_state(arrays, meta["offset"])
        position = tuple(int(v) for v in meta["position"])
        fingerprint = meta["data"]
        stream = meta.get("stream")
        consumed = arrays.get("consumed")
        if consumed is not None:
            checked_arrays(arrays, {"consumed": (consumed.shape[0], len(COLUMNS))}, "int64")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise io.ModelFileError(f"checkpoint {path} is incomplete, damaged or from an older sparsolve ({e}); "
                                "delete it to start afresh") from e
    return learner, position, fingerprint, stream, consumed


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
        raise ValueError(f"checkpoint {path} was written on other data: {difference(saved_data, data)}; use that "
                         "data or another checkpoint path")


def earlier_identity(X):
    """What a checkpoint of the earlier format (before digests.py) recorded of the data ``X`` (an
    array, an iterable or a shard directory's path): shape, dtype and a hash of a sample of rows
    (batches.fingerprint), or a directory's path.  Such a checkpoint is resumed on that check alone;
    its next save records the digests of every batch read from the resume on."""
    if isinstance(X, (str, os.PathLike)):
        return {"identity": f"the shards in {os.fspath(X)}"}
    return fingerprint(X)


def model_from_checkpoint(path):
    """The model a checkpoint holds so far."""
    return restore(path)[0].model()
