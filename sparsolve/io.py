"""Safe model files, atomic checkpoints, and the registry of file kinds.

Every file sparsolve writes is a plain ``.npz``: arrays, plus one JSON object
under ``__meta__`` for settings and a ``__kind__`` tag.  Loading never unpickles
(``allow_pickle=False``), so a file cannot run code, and every entry's header is
checked against the bytes the entry holds before anything is allocated, so a
crafted header cannot ask for terabytes.  Writes go to a temporary file in the
same folder (created with the process's umask), are flushed to disk, and are
then renamed over the target: a crash mid-save leaves the old file intact, never
a half-written one, and the next save removes the temporary files such crashes
left behind.

:func:`load` reads any sparsolve file by its kind: each kind's module calls
:func:`register` with its loader, so this module imports nothing above it.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import re
import secrets
import zipfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
NPY_MAGIC = b"\x93NUMPY"

# The kinds sparsolve itself writes, and the package whose import registers each.
# Importing on first use keeps this module free of imports from the layers above.
_BUILTIN_KINDS = {
    "sparse_coding_model": "sparsolve.learning",
    "fit_checkpoint": "sparsolve.learning",
    "learned_g": "sparsolve.amortized",
    "conv_model": "sparsolve.conv.model",
    "conv_fit_checkpoint": "sparsolve.conv.fit",
}
_LOADERS: dict = {}

# The temporary name is ``<target name>.<8 random characters>.tmp``; the character set covers
# both the hex names written here and tempfile.mkstemp's, which older versions used.
_TMP_MIDDLE = re.compile(r"[a-z0-9_]{8}")


class ModelFileError(ValueError):
    """The file is missing pieces, corrupt, truncated, or not the expected kind."""


class DataFileError(ValueError):
    """A data file is not one matrix (n_samples, n_features) that sparsolve can read."""


def register(kind: str, loader) -> None:
    """Make :func:`load` read files of ``kind`` with ``loader(path)``."""
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind: expected a non-empty str, got {kind!r}")
    if not callable(loader):
        raise TypeError(f"loader: expected a callable loader(path), got {type(loader).__name__}")
    _LOADERS[kind] = loader


def load(path):
    """The object stored in a sparsolve file, read by the loader registered for its kind.

    Raises :class:`ModelFileError` for anything that is not a complete file of a known kind."""
    kind = read_kind(path)
    if kind not in _LOADERS and kind in _BUILTIN_KINDS:
        importlib.import_module(_BUILTIN_KINDS[kind])
    if kind not in _LOADERS:
        known = ", ".join(repr(k) for k in sorted(set(_LOADERS) | set(_BUILTIN_KINDS)))
        raise ModelFileError(f"{path} holds a {kind!r}, which sparsolve.load does not know; expected one of {known}")
    with reading(path):
        return _LOADERS[kind](path)


@contextlib.contextmanager
def reading(path):
    """Turn the KeyError, IndexError, TypeError, AttributeError or RuntimeError (torch's
    shape mismatch) of a file whose pieces have the wrong names, shapes or types into a
    :class:`ModelFileError` naming the file."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, RuntimeError) as e:
        if "OutOfMemory" in type(e).__name__:  # torch's OutOfMemoryError is a RuntimeError, not a file's fault
            raise
        raise ModelFileError(f"{path} is incomplete or damaged ({type(e).__name__}: {e}); "
                             "write it again with the matching save") from e


def require(meta: dict, path, **types) -> None:
    """Check that ``meta`` has each named entry, of the given type (or tuple of types)."""
    for key, expected in types.items():
        if key not in meta:
            raise ModelFileError(f"{path} lacks the metadata entry {key!r}; it is not a complete file")
        value = meta[key]
        # JSON has no separate bool, and True is an int to Python: refuse it where a number is meant.
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in _as_tuple(expected)):
            names = " or ".join(t.__name__ for t in _as_tuple(expected))
            raise ModelFileError(f"{path}: metadata entry {key!r} should be {names}, got {value!r}")


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def require_matrix(arrays: dict, name: str, path) -> np.ndarray:
    """The 2-D, finite, real, non-empty array ``arrays[name]``, or a :class:`ModelFileError`."""
    if name not in arrays:
        raise ModelFileError(f"{path} lacks the {name!r} array; it is not a complete file")
    A = arrays[name]
    if A.ndim != 2 or 0 in A.shape:
        raise ModelFileError(f"{path}: {name!r} should be a non-empty 2-D array, got shape {A.shape}")
    if not (np.issubdtype(A.dtype, np.floating) or np.issubdtype(A.dtype, np.integer)):
        raise ModelFileError(f"{path}: {name!r} should hold real numbers, got dtype {A.dtype}")
    if not np.isfinite(A).all():
        raise ModelFileError(f"{path}: {name!r} holds NaN or infinite values")
    return A


def save_npz(path, kind: str, arrays: dict, meta: dict) -> Path:
    """Atomically write ``arrays`` (name -> array) and ``meta`` (JSON-able) to ``path``.

    If the write fails (a full disk, a folder that turned out unwritable), the file is written
    to a fallback folder instead -- the current directory, the home directory or the temporary
    directory, the first that takes it -- and :class:`SaveError` says where: what was trained is
    never lost to a failed save."""
    path = npz_path(path)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in payload.items():
        if v.dtype == object:
            raise TypeError(f"array {k!r} has dtype object, which cannot be saved without pickle")
    payload["__kind__"] = np.array(kind)
    payload["__meta__"] = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, payload)
    except OSError as e:
        raise _rescue(path, payload, e) from e
    _remove_stale_temporaries(path)
    return path


class SaveError(OSError):
    """A file could not be written where asked; ``fallback`` is where it was written instead
    (None if nowhere could take it)."""

    def __init__(self, message, path, fallback):
        super().__init__(message)
        self.path, self.fallback = path, fallback

    def __str__(self):
        return self.args[0]


def _write(path: Path, payload: dict) -> None:
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fallback_folders(path: Path) -> list:
    """Where a file that could not be written at ``path`` goes instead, in order: the current
    directory, the home directory, the temporary directory (each once, none of them path's own)."""
    import tempfile

    folders = []
    for folder in (Path.cwd(), Path.home(), Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError, RuntimeError):
            folder = folder.resolve()
            if folder != path.parent.resolve() and folder not in folders:
                folders.append(folder)
    return folders


def _rescue(path: Path, payload: dict, error: OSError) -> SaveError:
    """Write ``payload`` to the first fallback folder that takes it; the SaveError to raise."""
    import time

    reason = error.strerror or str(error)
    name = f"{path.name[:-4]}.rescued-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.npz"
    tried = []
    for folder in fallback_folders(path):
        try:
            _write(folder / name, payload)
        except OSError as e:
            tried.append(f"{folder} ({e.strerror or e})")
            continue
        fallback = folder / name
        return SaveError(f"could not write {path} ({reason}); it was written to {fallback} instead: move it where it "
                         f"belongs, or use that path wherever you would have used {path.name}", path, fallback)
    return SaveError(f"could not write {path} ({reason}), nor to any fallback folder: {'; '.join(tried)}; free some "
                     "space or choose a writable path", path, None)


def check_writable(path, name: str) -> Path:
    """Refuse, before any work, an output ``path`` (as it will be written) that cannot be: a
    directory, a file in no writable folder, a read-only file; ``name`` is the argument's."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}={str(path)!r} is a directory; give a file path such as "
                         f"{str(path / ('model' + (path.suffix or '.npz')))!r}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the first folder that exists: the save creates the rest
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}={str(path)!r} cannot be written ({folder} is not a writable folder); "
                         "choose another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{name}={str(path)!r} exists and is read-only; choose another path")
    return path


def npz_path(path) -> Path:
    """``path`` with ``.npz`` appended unless it already ends so (numpy's own rule for savez)."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _create_temporary(path: Path):
    """(fd, name) of a new file beside ``path``.  Unlike tempfile.mkstemp, which always
    creates mode 0600, ``os.open`` lets the process's umask decide, as for any other file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files of ``path`` that a killed save left behind.  Saves of one
    path are not concurrent (one process owns a checkpoint), so every such file is stale."""
    prefix, suffix = path.name + ".", ".tmp"
    for entry in os.scandir(path.parent):
        name = entry.name
        if (name.startswith(prefix) and name.endswith(suffix)
                and _TMP_MIDDLE.fullmatch(name[len(prefix):-len(suffix)]) and entry.is_file()):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def read_kind(path) -> str:
    """The ``__kind__`` tag of a sparsolve file (raises ModelFileError if it has none)."""
    return _open(path)[0]


def load_npz(path, kind: str | None = None):
    """(arrays, meta) from a file written by :func:`save_npz`, checking its kind."""
    found, arrays, meta = _open(path)
    if kind is not None and found != kind:
        raise ModelFileError(f"{path} holds a {found!r}, not a {kind!r}; load it with the matching loader")
    return arrays, meta


#: What sparsolve.load reads of a compressed file: at most this many bytes, or this many times the
#: file's size.  sparsolve writes its files uncompressed (the declared sizes are the file's), and
#: float arrays compress by a few times at most; zeros compress a thousandfold, which is how a
#: 1.9 MB file asked for 2 GB.
LOAD_FLOOR_BYTES = 64 << 20
LOAD_INFLATION = 8


def check_npz_entries(path, error=ModelFileError, what: str = "sparsolve file", max_bytes=None,
                      advice: str = "") -> list[str]:
    """The entry names of the ``.npz`` archive ``path``, after checking that each entry is a
    numeric ``.npy`` whose header declares exactly the bytes it holds, so that reading it can
    neither unpickle nor allocate more than the sizes its zip directory declares -- and, first,
    that those sizes add up to at most ``max_bytes`` (None: no bound), so that a small compressed
    file cannot ask for gigabytes.  Raises ``error`` (a ValueError class), calling the file a
    ``what``; ``advice`` ends the message of a file over the bound."""
    names = []
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
            if max_bytes is not None and declared > max_bytes:
                size = os.path.getsize(path)
                raise error(f"{path} declares {declared:,} bytes uncompressed in a {size:,}-byte file; a {what} "
                            f"over {max_bytes:,} bytes is refused unread{advice}")
            for info in zf.infolist():
                with zf.open(info) as f:
                    problem = _npy_header_problem(f, info.file_size)
                if problem:
                    raise error(f"{path}: entry {info.filename!r} {problem}")
                names.append(info.filename[:-4] if info.filename.endswith(".npy") else info.filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
        if isinstance(e, error):
            raise
        raise error(f"{path} is not a readable {what} (corrupt or truncated?): {e}") from e
    return names


def _npy_header_problem(f, size: int) -> str | None:
    """What is wrong with the .npy entry ``f`` of ``size`` bytes, or None."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        return f"has .npy format version {version}, which sparsolve does not read"
    if dtype.hasobject:
        return "holds Python objects, which could only be read by unpickling; sparsolve never unpickles"
    declared = math.prod(shape) * dtype.itemsize
    held = size - f.tell()
    if declared != held:
        return (f"declares shape {shape} of {dtype} ({declared:,} bytes) but holds {held:,} bytes: "
                "the file is truncated or was not written by numpy")
    return None


def _open(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a sparsolve file")
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) == NPY_MAGIC:
            raise ModelFileError(f"{path} is a bare numpy array (.npy), not a sparsolve file; models, "
                                 "encoders and checkpoints are .npz files written by their save()")
    bound = max(LOAD_FLOOR_BYTES, LOAD_INFLATION * path.stat().st_size)
    check_npz_entries(path, max_bytes=bound, advice=" (a decompression bomb, or a file recompressed by another tool: "
                      "sparsolve writes its files uncompressed); if you trust it, store it uncompressed (zip -0)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ModelFileError(f"{path} is not a readable sparsolve file (corrupt or truncated?): {e}") from e
    if "__kind__" not in arrays or "__meta__" not in arrays:
        raise ModelFileError(f"{path} is not a sparsolve file: it lacks the __kind__/__meta__ entries")
    kind, meta = arrays.pop("__kind__"), arrays.pop("__meta__")
    if kind.ndim != 0 or meta.ndim != 0 or kind.dtype.kind != "U" or meta.dtype.kind != "U":
        raise ModelFileError(f"{path} has a __kind__ or __meta__ entry that is not a string")
    try:
        meta = json.loads(str(meta))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path} has unreadable metadata: {e}") from e
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path} has metadata of type {type(meta).__name__}, not a JSON object")
    return str(kind), arrays, meta
