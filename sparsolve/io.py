"""Safe model files and atomic checkpoints.

Every file sparsolve writes is a plain ``.npz``: arrays, plus one JSON string
under ``__meta__`` for settings and a ``__kind__`` tag.  Loading never unpickles
(``allow_pickle=False``), so a file cannot run code.  Writes go to a temporary
file in the same folder, are flushed to disk, and are then renamed over the
target: a crash mid-save leaves the old file intact, never a half-written one.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """The file is missing pieces, corrupt, truncated, or not the expected kind."""


def save_npz(path, kind: str, arrays: dict, meta: dict) -> Path:
    """Atomically write ``arrays`` (name -> array) and ``meta`` (JSON-able) to ``path``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in payload.items():
        if v.dtype == object:
            raise TypeError(f"array {k!r} has dtype object, which cannot be saved without pickle")
    payload["__kind__"] = np.array(kind)
    payload["__meta__"] = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_kind(path) -> str:
    """The ``__kind__`` tag of a sparsolve file (raises ModelFileError if it has none)."""
    return _open(path)[0]


def load_npz(path, kind: str | None = None):
    """(arrays, meta) from a file written by :func:`save_npz`, checking its kind."""
    found, arrays, meta = _open(path)
    if kind is not None and found != kind:
        raise ModelFileError(f"{path} holds a {found!r}, not a {kind!r}; load it with the matching loader")
    return arrays, meta


def _open(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ModelFileError(f"{path} is not a readable sparsolve file (corrupt or truncated?): {e}") from e
    if "__kind__" not in arrays or "__meta__" not in arrays:
        raise ModelFileError(f"{path} is not a sparsolve file: it lacks the __kind__/__meta__ entries")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path} has unreadable metadata: {e}") from e
    return str(arrays.pop("__kind__")), arrays, meta
