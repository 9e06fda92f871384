"""Data matrices from files: what ``sparsolve fit DATA`` reads."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..io import NPY_MAGIC, DataFileError, check_npz_entries


def read_matrix(path) -> np.ndarray:
    """The data matrix ``X`` (n_samples, n_features) stored in ``path``.

    * a ``.npy`` file (``np.save``) is memory-mapped read-only, so a file larger than
      memory streams through :func:`sparsolve.fit` batch by batch;
    * an ``.npz`` archive (``np.savez``) must hold exactly one array, which is read into
      memory (a compressed entry cannot be memory-mapped).

    Nothing is ever unpickled.  Raises FileNotFoundError for a missing path, and
    :class:`sparsolve.io.DataFileError` naming the fix for a directory, an archive with
    no array or several, a file of another format, or an array that is not a 2-D numeric
    matrix -- before any array is read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise DataFileError(f"{path} is a directory; pass a .npy file of shape (n_samples, n_features), "
                            "or an .npz holding one such array")
    with open(path, "rb") as f:
        is_npy = f.read(len(NPY_MAGIC)) == NPY_MAGIC
    if is_npy:
        try:
            X = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataFileError(f"{path} is not a readable .npy array ({e}); write it with np.save") from e
    elif zipfile.is_zipfile(path):
        X = _read_single_npz_array(path)
    else:
        raise DataFileError(f"{path} is neither a .npy file nor an .npz archive; save the data with "
                            "np.save(path, X) (or np.savez with a single array)")
    if X.ndim != 2 or 0 in X.shape:
        raise DataFileError(f"{path} holds an array of shape {X.shape}; expected a non-empty "
                            "(n_samples, n_features) matrix, e.g. patches flattened to rows")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise DataFileError(f"{path} holds dtype {X.dtype}; expected real numbers (float or int)")
    return X


def _read_single_npz_array(path: Path) -> np.ndarray:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    names = check_npz_entries(path, DataFileError, ".npz archive", max_bytes=memory,
                              advice=" (more than this machine's memory); save the data with np.save, which "
                              "sparsolve fit reads memory-mapped")
    if len(names) != 1:
        raise DataFileError(f"{path} holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                            "sparsolve fit reads one: save only X (np.savez(path, X=X)) or "
                            "save it alone with np.save")
    try:
        with np.load(path, allow_pickle=False) as f:
            return f[f.files[0]]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataFileError(f"{path} is not a readable .npz archive ({e})") from e
