"""CIFAR-10 from the official python archive, read by an unpickler that never runs code."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..checks import positive_int

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR10_SIDE = 32
_CIFAR10_FEATURES = 3 * _CIFAR10_SIDE * _CIFAR10_SIDE
_CIFAR10_N_TRAIN_BATCHES = 5


def _numpy_reconstruct():
    # The function numpy itself uses to rebuild pickled arrays; it lives in
    # numpy.core (numpy 1.x) or numpy._core (numpy 2.x).
    return np.zeros(1).__reduce__()[0]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild plain containers and numpy arrays.

    A pickle may name any importable callable and have it called on load
    (``os.system`` included).  The CIFAR batches need only the three globals
    numpy uses to rebuild an ``ndarray``; every other global is refused before
    anything is imported or called.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR-10 batch only "
                "contains dicts, lists, bytes, ints and numpy uint8 arrays"
            )
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return np.ndarray if name == "ndarray" else np.dtype


def _safe_load_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle one CIFAR batch with :class:`_CifarUnpickler` and validate it."""
    try:
        # The official files were written by Python 2: their str keys must be
        # read as bytes (b"data"), not decoded as text.
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any failure here means the file is not a valid batch
        raise ValueError(f"{source}: not a valid CIFAR-10 batch ({exc})") from exc

    if not isinstance(batch, dict):
        raise ValueError(f"{source}: expected a dict, found {type(batch).__name__}.")
    keys = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in keys or "labels" not in keys:
        raise ValueError(
            f"{source}: missing 'data' or 'labels' entry (keys: {sorted(map(str, keys))})."
        )
    data, labels = keys["data"], keys["labels"]
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != _CIFAR10_FEATURES):
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(
            f"{source}: 'data' must be a uint8 array of shape (N, {_CIFAR10_FEATURES}), got {desc}."
        )
    if (not isinstance(labels, list) or len(labels) != data.shape[0]
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10
                       for v in labels)):
        raise ValueError(
            f"{source}: 'labels' must be a list of {data.shape[0]} ints in 0..9."
        )
    return data, np.asarray(labels, dtype=np.int64)


def _missing_cifar(path) -> FileNotFoundError:
    return FileNotFoundError(
        f"CIFAR-10 not found at {str(path)!r}. Download the python version "
        f"{CIFAR10_URL} and pass the .tar.gz file or its extracted "
        f"'{_CIFAR10_DIR}' folder, or call load_cifar10_torchvision(root, download=True)."
    )


def load_cifar10(path, *, train: bool = True, max_batches: int | None = None):
    """Load CIFAR-10 from the official python-format archive, safely.

    Parameters
    ----------
    path : str or Path
        ``cifar-10-python.tar.gz``, its extracted ``cifar-10-batches-py``
        folder, or a folder containing either.
    train : bool
        The 50 000 training images (``data_batch_1..5``) or the 10 000 test
        images (``test_batch``).
    max_batches : int or None
        Read only the first ``max_batches`` training batches (10 000 images
        each); ignored for the test set.

    Returns
    -------
    images : ndarray of float32, shape (N, 32, 32, 3), values ``v / 255`` in [0, 1]
        float32 because the full training set is 600 MB already.
    labels : ndarray of int64, shape (N,)

    The batches are unpickled by an unpickler that refuses every global except
    numpy's array reconstruction, so a tampered file raises ValueError instead
    of running code; the archive is read in memory, nothing is extracted.
    """
    if max_batches is not None:
        max_batches = positive_int(max_batches, "max_batches")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or Path, got {type(path).__name__}.")
    path = Path(path)
    if train:
        n = _CIFAR10_N_TRAIN_BATCHES
        if max_batches is not None:
            n = min(max_batches, n)
        names = [f"data_batch_{i}" for i in range(1, n + 1)]
    else:
        names = ["test_batch"]

    if path.is_dir():
        if (path / _CIFAR10_DIR).is_dir():
            path = path / _CIFAR10_DIR
        elif (path / _CIFAR10_ARCHIVE).is_file():
            path = path / _CIFAR10_ARCHIVE
    if path.is_dir():
        raws = []
        for name in names:
            if not (path / name).is_file():
                raise _missing_cifar(path / name)
            raws.append((str(path / name), (path / name).read_bytes()))
    elif path.is_file():
        raws = _read_tar_members(path, names)
    else:
        raise _missing_cifar(path)

    parts = [_safe_load_batch(raw, source) for source, raw in raws]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([lab for _, lab in parts])
    images = data.reshape(-1, 3, _CIFAR10_SIDE, _CIFAR10_SIDE).transpose(0, 2, 3, 1)
    return images.astype(np.float32) / np.float32(255.0), labels


def _read_tar_members(path: Path, names: list[str]) -> list[tuple[str, bytes]]:
    """Read the named batch files from the archive without extracting it."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in names if n not in members]
            if missing:
                raise ValueError(
                    f"path: archive {str(path)!r} lacks {missing}; expected the official "
                    f"CIFAR-10 python archive from {CIFAR10_URL}."
                )
            return [(f"{path}:{members[n].name}", tar.extractfile(members[n]).read())
                    for n in names]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(
            f"path: {str(path)!r} is not a readable CIFAR-10 archive ({exc}); "
            f"re-download it from {CIFAR10_URL}."
        ) from exc


def load_cifar10_torchvision(root, download: bool = True, *, train: bool = True,
                             max_batches: int | None = None):
    """Download CIFAR-10 into ``root`` with torchvision, then load it safely.

    torchvision is used only to fetch and md5-check the official archive and
    extract it to ``root/cifar-10-batches-py``; the batches are then read by
    :func:`load_cifar10` (torchvision's own dataset class would unpickle them
    without restriction).  Returns ``(images, labels)`` like :func:`load_cifar10`.
    """
    root = Path(root)
    if download and not (root / _CIFAR10_DIR).is_dir():
        try:
            from torchvision.datasets.utils import download_and_extract_archive
        except ImportError as exc:
            raise ImportError(
                "load_cifar10_torchvision needs torchvision: `pip install torchvision`, "
                f"or download {CIFAR10_URL} yourself and call load_cifar10(path)."
            ) from exc
        download_and_extract_archive(CIFAR10_URL, str(root), filename=_CIFAR10_ARCHIVE,
                                     md5=_CIFAR10_MD5)
    return load_cifar10(root, train=train, max_batches=max_batches)
