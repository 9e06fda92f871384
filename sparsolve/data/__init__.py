"""Datasets and preprocessing for sparse coding.

Everything follows the library convention: rows are samples, so a batch of
patches is an array ``X`` of shape ``(n_samples, n_features)``.  A patch of
``s x s`` pixels (and ``C`` channels for colour) is flattened in row-major
``(row, column[, channel])`` order, i.e. ``X[i].reshape(s, s)`` or
``X[i].reshape(s, s, C)`` recovers the image patch.

Contents
--------
* :func:`load_natural_images` -- the two photographs shipped with scikit-learn.
* :func:`extract_patches` -- random or grid patches from grey/colour images.
* :func:`remove_mean`, :func:`contrast_normalize` -- per-patch normalisation.
* :class:`Whitening` -- invertible PCA/ZCA whitening.
* :func:`natural_image_patches` -- the default dataset of the library.
* :func:`load_cifar10` -- a loader for the CIFAR-10 python archive that never
  unpickles arbitrary objects; :func:`load_cifar10_torchvision` downloads it.
"""

from __future__ import annotations

import functools
import io
import numbers
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..checks import positive_int

__all__ = [
    "load_natural_images",
    "extract_patches",
    "remove_mean",
    "contrast_normalize",
    "Whitening",
    "natural_image_patches",
    "load_cifar10",
    "load_cifar10_torchvision",
    "CIFAR10_URL",
]

# ITU-R BT.601 luma weights, the usual definition of "grey" for sRGB photos.
_LUMA = np.array([0.299, 0.587, 0.114])

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR10_SIDE = 32
_CIFAR10_FEATURES = 3 * _CIFAR10_SIDE * _CIFAR10_SIDE
_CIFAR10_N_TRAIN_BATCHES = 5


# --------------------------------------------------------------------------
# Natural images and patches
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _sample_images_uint8() -> tuple[np.ndarray, ...]:
    # Decoding the JPEGs costs tens of milliseconds; tests and benchmarks call
    # the patch sampler many times, so the raw pixels are decoded once.
    from sklearn.datasets import load_sample_images

    images = tuple(np.asarray(im) for im in load_sample_images().images)
    for im in images:
        im.setflags(write=False)
    return images


def load_natural_images(grey: bool = True) -> list[np.ndarray]:
    """Return the two photographs shipped with scikit-learn as float64 arrays.

    The images ("china" and "flower", 427 x 640 pixels) come from
    :func:`sklearn.datasets.load_sample_images`; nothing is downloaded.
    Pixel values are mapped to ``[0, 1]`` by ``v / 255``.  With ``grey=True``
    each image is reduced to its luminance ``Y = 0.299 R + 0.587 G + 0.114 B``
    and has shape ``(H, W)``; otherwise it keeps shape ``(H, W, 3)``.
    """
    images = []
    for raw in _sample_images_uint8():
        img = raw.astype(np.float64) / 255.0
        if grey:
            img = img @ _LUMA
        images.append(img)
    return images


def _as_image_list(images) -> list[np.ndarray]:
    """Normalise the ``images`` argument of :func:`extract_patches`."""
    if isinstance(images, np.ndarray):
        if images.ndim in (2, 3):
            image_list = [images]
        elif images.ndim == 4:
            image_list = list(images)
        else:
            raise ValueError(
                "images: expected one image of shape (H, W) or (H, W, C), a stack "
                f"of shape (N, H, W, C), or a list of images; got an array of "
                f"shape {images.shape}. Pass grey stacks as a list of (H, W) arrays."
            )
    elif isinstance(images, (list, tuple)):
        image_list = [np.asarray(im) for im in images]
    else:
        raise TypeError(
            "images: expected a numpy array or a list of arrays, "
            f"got {type(images).__name__}."
        )
    if not image_list:
        raise ValueError("images: the list of images is empty; pass at least one image.")

    ndim = image_list[0].ndim
    for i, im in enumerate(image_list):
        if im.ndim not in (2, 3):
            raise ValueError(
                f"images[{i}]: expected shape (H, W) or (H, W, C), got {im.shape}."
            )
        if im.ndim != ndim or (ndim == 3 and im.shape[2] != image_list[0].shape[2]):
            raise ValueError(
                f"images[{i}]: shape {im.shape} does not match images[0] shape "
                f"{image_list[0].shape} in number of channels; pass images that are "
                "all grey (H, W) or all with the same number of channels."
            )
        if not (np.issubdtype(im.dtype, np.number) or im.dtype == bool):
            raise TypeError(f"images[{i}]: expected a numeric array, got dtype {im.dtype}.")
    return image_list


def extract_patches(images, patch_size: int, n_patches: int | None = None, *,
                    seed=None, stride: int | None = None) -> np.ndarray:
    """Cut square patches out of images and flatten them to rows.

    Parameters
    ----------
    images : array or list of arrays
        One grey image ``(H, W)``, one colour image ``(H, W, C)``, a stack
        ``(N, H, W, C)``, or a list of images that all have the same number of
        channels (their sizes may differ).
    patch_size : int
        Side ``s`` of the square patches.
    n_patches : int or None
        If given, draw this many patches at random: every valid top-left
        position of every image is equally likely (so bigger images give more
        patches), positions are drawn with replacement.  If None, return every
        patch whose top-left corner lies on the grid ``(i * stride, j * stride)``.
    seed : None, int or numpy Generator
        Randomness for the random mode.
    stride : int or None
        Grid step in grid mode, default ``patch_size`` (non-overlapping tiles).
        Not allowed together with ``n_patches``.

    Returns
    -------
    X : ndarray of float64, shape (n, s*s) or (n, s*s*C)
        ``X[k].reshape(s, s[, C])`` is the k-th patch.
    """
    image_list = _as_image_list(images)
    patch_size = positive_int(patch_size, "patch_size")
    for i, im in enumerate(image_list):
        if im.shape[0] < patch_size or im.shape[1] < patch_size:
            raise ValueError(
                f"patch_size={patch_size} is larger than images[{i}] of shape "
                f"{im.shape[:2]}; use a patch_size <= {min(im.shape[:2])}."
            )
    if n_patches is not None and stride is not None:
        raise ValueError(
            "n_patches and stride: give n_patches for random patches or stride "
            "for a grid of patches, not both."
        )

    windows = [
        np.lib.stride_tricks.sliding_window_view(im, (patch_size, patch_size), axis=(0, 1))
        for im in image_list
    ]
    # sliding_window_view puts the window axes last, after any channel axis;
    # (row, col, channel) order is needed so that rows reshape to (s, s, C).
    if image_list[0].ndim == 3:
        windows = [w.transpose(0, 1, 3, 4, 2) for w in windows]
    n_features = int(np.prod(windows[0].shape[2:]))

    if n_patches is None:
        stride = patch_size if stride is None else positive_int(stride, "stride")
        parts = [w[::stride, ::stride].reshape(-1, n_features) for w in windows]
        return np.concatenate(parts).astype(np.float64)

    n_patches = positive_int(n_patches, "n_patches")
    rng = np.random.default_rng(seed)
    n_positions = np.array([w.shape[0] * w.shape[1] for w in windows])
    flat = rng.integers(0, n_positions.sum(), size=n_patches)
    starts = np.concatenate([[0], np.cumsum(n_positions)])
    which = np.searchsorted(starts, flat, side="right") - 1
    X = np.empty((n_patches, n_features), dtype=np.float64)
    for k, w in enumerate(windows):
        sel = np.flatnonzero(which == k)
        if sel.size:
            rows, cols = np.divmod(flat[sel] - starts[k], w.shape[1])
            X[sel] = w[rows, cols].reshape(sel.size, n_features)
    return X


def _check_matrix(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}; "
            "flatten patches to rows first."
        )
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array, got dtype {X.dtype}.")
    return X.astype(np.float64, copy=False)


def _infer_patch_shape(n_features: int, patch_shape) -> tuple[int, ...]:
    """Shape of one atom/patch: ``patch_shape`` checked, or a square grey/RGB patch."""
    if patch_shape is not None:
        patch_shape = tuple(int(v) for v in patch_shape)
        if len(patch_shape) not in (2, 3) or int(np.prod(patch_shape)) != n_features:
            raise ValueError(
                f"patch_shape: {patch_shape} does not match atoms of {n_features} features; "
                "give (height, width) or (height, width, channels) whose product is n_features."
            )
        return patch_shape
    for channels in (1, 3):
        side = int(round(np.sqrt(n_features / channels)))
        if side * side * channels == n_features:
            return (side, side) if channels == 1 else (side, side, 3)
    raise ValueError(
        f"patch_shape: cannot infer a square patch from {n_features} features; "
        "pass patch_shape=(height, width)."
    )


def _center_rows(X: np.ndarray) -> np.ndarray:
    return X - X.mean(axis=1, keepdims=True)


def remove_mean(X) -> np.ndarray:
    """Remove the DC component of each patch: ``x_i <- x_i - mean_j(x_ij)``.

    ``X`` has shape ``(n_samples, n_features)``; returns a new float64 array.
    """
    return _center_rows(_check_matrix(X))


def contrast_normalize(X, eps: float = 1e-4) -> np.ndarray:
    """Local contrast normalisation of each patch.

    ``x_i <- (x_i - mean(x_i)) / sqrt(var(x_i) + eps)``

    ``eps`` (in squared pixel units, pixels in ``[0, 1]``) keeps nearly flat
    patches from having their noise blown up to unit contrast.
    """
    X = _check_matrix(X)
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps: must be a finite number >= 0, got {eps!r}.")
    Xc = _center_rows(X)
    return Xc / np.sqrt(Xc.var(axis=1, keepdims=True) + eps)


# --------------------------------------------------------------------------
# Whitening
# --------------------------------------------------------------------------


class Whitening:
    """Invertible PCA or ZCA whitening (rows are samples).

    ``fit`` estimates the feature mean ``mu`` and covariance
    ``C = (X - mu)^T (X - mu) / n = U diag(lam) U^T`` (eigenvalues sorted in
    decreasing order).  With ``r_i = 1 / sqrt(lam_i + eps * mean(lam))`` and
    ``U_k`` the first ``k = n_components`` eigenvectors:

    * ``method="pca"``: ``W = diag(r_1..r_k) U_k^T`` (k outputs);
    * ``method="zca"``: ``W = U_k diag(r_1..r_k) U_k^T`` (p outputs, the
      whitened data stays in pixel coordinates, which is why ZCA atoms look
      like localised image features).

    ``transform(X) = (X - mu) W^T`` and
    ``inverse_transform(Y) = Y A^T + mu`` with the de-whitening matrix
    ``A = U_k diag(1/r_1..1/r_k)`` (PCA) or ``U_k diag(1/r) U_k^T`` (ZCA), so that
    ``A W = U_k U_k^T``: the round trip is exact when ``k = p`` and is the
    projection onto the top-k principal subspace otherwise.

    ``eps`` is relative to the mean eigenvalue so its effect does not depend on
    the pixel scale; it bounds the gain of the near-zero-variance directions
    (e.g. the DC direction after :func:`remove_mean`), whose whitened variance
    is ``lam_i / (lam_i + eps * mean(lam)) < 1``.

    Dictionary atoms learned on whitened data map to pixel space with
    :meth:`unwhiten_atoms`.
    """

    def __init__(self, method: str = "zca", eps: float = 1e-2, n_components: int | None = None):
        if method not in ("zca", "pca"):
            raise ValueError(f"method: expected 'zca' or 'pca', got {method!r}.")
        if not isinstance(eps, numbers.Real) or not np.isfinite(eps) or eps < 0:
            raise ValueError(f"eps: must be a finite number >= 0, got {eps!r}.")
        if n_components is not None:
            n_components = positive_int(n_components, "n_components")
        self.method = method
        self.eps = float(eps)
        self.n_components = n_components

    def __repr__(self) -> str:
        return (f"Whitening(method={self.method!r}, eps={self.eps!r}, "
                f"n_components={self.n_components!r})")

    def fit(self, X) -> "Whitening":
        """Estimate ``mu``, the eigen-decomposition of the covariance, ``W`` and ``A``."""
        X = _check_matrix(X)
        n, p = X.shape
        if n < 2:
            raise ValueError(f"X: need at least 2 samples to estimate a covariance, got {n}.")
        k = p if self.n_components is None else self.n_components
        if k > p:
            raise ValueError(
                f"n_components={k} exceeds the number of features {p}; use at most {p}."
            )
        mean = X.mean(axis=0)
        Xc = X - mean
        cov = Xc.T @ Xc / n
        eigvals, eigvecs = np.linalg.eigh(cov)
        order = np.argsort(eigvals)[::-1]
        # Round-off can make the smallest eigenvalues slightly negative.
        eigvals = np.clip(eigvals[order], 0.0, None)
        eigvecs = eigvecs[:, order]
        # Fix each eigenvector's sign (largest entry positive) so PCA outputs
        # are reproducible across LAPACK builds.
        signs = np.sign(eigvecs[np.abs(eigvecs).argmax(axis=0), np.arange(p)])
        eigvecs = eigvecs * np.where(signs == 0, 1.0, signs)

        reg = self.eps * eigvals.mean()
        scale = np.sqrt(eigvals[:k] + reg)
        if np.any(scale == 0):
            raise ValueError(
                "X: the covariance has zero-variance directions and eps=0; "
                "use eps > 0 or a smaller n_components."
            )
        Uk = eigvecs[:, :k]
        if self.method == "pca":
            self.whitening_ = Uk.T / scale[:, None]
            self.dewhitening_ = Uk * scale
        else:
            self.whitening_ = (Uk / scale) @ Uk.T
            self.dewhitening_ = (Uk * scale) @ Uk.T
        self.mean_ = mean
        self.eigenvalues_ = eigvals
        self.components_ = Uk.T
        self.n_features_in_ = p
        return self

    def _check_fitted(self):
        if not hasattr(self, "whitening_"):
            raise ValueError("Whitening: call fit(X) before transform/inverse_transform.")

    def transform(self, X) -> np.ndarray:
        """``Y = (X - mu) W^T``."""
        self._check_fitted()
        X = _check_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X: has {X.shape[1]} features but the whitening was fitted on "
                f"{self.n_features_in_}."
            )
        return (X - self.mean_) @ self.whitening_.T

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, Y) -> np.ndarray:
        """``X = Y A^T + mu`` (exact inverse of :meth:`transform` when ``k = p``)."""
        return self.unwhiten_atoms(Y) + self.mean_

    def unwhiten_atoms(self, D) -> np.ndarray:
        """Map dictionary atoms from whitened space to pixel space: ``D A^T``.

        If whitened data are coded as ``Y ~= Z D``, then in pixels
        ``X = Y A^T + mu ~= Z (D A^T) + mu``; the rows of ``D A^T`` are therefore
        the pixel-space atoms.  The mean is not added because atoms are
        directions, not data points.
        """
        self._check_fitted()
        D = _check_matrix(D, "D")
        n_out = self.dewhitening_.shape[1]
        if D.shape[1] != n_out:
            raise ValueError(
                f"D: has {D.shape[1]} features but the whitened space has {n_out}."
            )
        return D @ self.dewhitening_.T


# --------------------------------------------------------------------------
# Default dataset
# --------------------------------------------------------------------------


# The share of each photo's width, from the left, that split="train" draws from;
# split="test" draws from the rest, so that no pixel is in both.
TRAIN_WIDTH = 0.8
SPLITS = (None, "train", "test")


def natural_image_patches(patch_size: int = 8, n_patches: int = 10000, *, seed=0,
                          remove_mean: bool = True, whiten=None,
                          grey: bool = True, split=None) -> np.ndarray:
    """The library's default dataset: random patches of the scikit-learn photos.

    Returns ``X`` of shape ``(n_patches, patch_size**2)`` (``patch_size**2 * 3``
    when ``grey=False``), float64, pixels in ``[0, 1]`` before preprocessing:

    1. ``n_patches`` patches are drawn uniformly over positions of the two
       images of :func:`load_natural_images` (reproducible from ``seed``) --
       with ``split="train"`` only from the left 80% of each photo's width, with
       ``split="test"`` only from the right 20%: held-out patches that share no
       pixel with training patches (random positions in the whole photos repeat:
       17% of 5,000 held-out 8×8 patches also occur among 100,000 training ones);
    2. if ``remove_mean``: ``x_i <- x_i - mean(x_i)`` per patch;
    3. if ``whiten`` is ``"zca"``/``"pca"``, a :class:`Whitening` with default
       settings is fitted on the patches and applied.  Pass an *unfitted*
       :class:`Whitening` instance instead to choose its settings and keep it
       (it is fitted in place), e.g. to map learned atoms back to pixels.
    """
    if whiten is None:
        whitening = None
    elif isinstance(whiten, Whitening):
        whitening = whiten
    elif whiten in ("zca", "pca"):
        whitening = Whitening(whiten)
    else:
        raise ValueError(
            f"whiten: expected None, 'zca', 'pca' or a Whitening instance, got {whiten!r}."
        )
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    images = load_natural_images(grey=grey)
    if split is not None:
        cut = [int(TRAIN_WIDTH * im.shape[1]) for im in images]
        images = [im[:, :c] if split == "train" else im[:, c:] for im, c in zip(images, cut)]
    X = extract_patches(images, patch_size, n_patches, seed=seed)
    if remove_mean:
        X = _center_rows(X)
    if whitening is not None:
        X = whitening.fit_transform(X)
    return X


# --------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------


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
from .synthetic import SyntheticActivations  # noqa: E402,F401  (planted features for the SAE benchmarks)
