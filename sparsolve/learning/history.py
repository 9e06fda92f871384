"""The training history: one record per step, kept as host numbers, and its file arrays.

A step's record (learner.py) holds the batch's figures -- ``objective`` (mean ½‖x − zD‖² + α‖z‖₁),
``mse``, ``l1``, ``nnz_frac``, ``dead_frac``, the atom norms, ``samples_seen``, ``seconds``,
``resampled``, ``converged_frac`` -- first as device scalars; :meth:`Learner.sync` reads them to
the host, and :class:`History` keeps them.  Model files and both trainers' checkpoints store a
history as the arrays ``history/<key>`` (:func:`history_arrays`).
"""
from __future__ import annotations

import numpy as np

from .. import backend

HISTORY_KEYS = ("step", "objective", "mse", "l1", "nnz_frac", "dead_frac", "norm_min", "norm_mean",
                "norm_max", "samples_seen", "seconds", "resampled", "converged_frac")
INT_KEYS = ("step", "samples_seen", "resampled")


class History:
    """The per-step records, as host numbers (a step's record joins once :meth:`Learner.sync`
    has read it from the device)."""

    def __init__(self, values=None):
        self._values = {k: list((values or {}).get(k, [])) for k in HISTORY_KEYS}

    def append(self, record):
        for k in HISTORY_KEYS:
            self._values[k].append(record[k])

    def as_dict(self):
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


def on_host(record) -> bool:
    """Whether every figure of ``record`` has been read to the host (:meth:`Learner.sync`)."""
    return not any(backend.is_array(v) for v in record.values())
