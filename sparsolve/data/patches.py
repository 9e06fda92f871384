"""Patches: cut them out of images, normalise them, and know their shape.

Rows are samples: a batch of patches is ``X`` of shape ``(n_samples, n_features)``.
A patch of ``s x s`` pixels (and ``C`` channels for colour) is flattened in
row-major ``(row, column[, channel])`` order, so ``X[i].reshape(s, s)`` or
``X[i].reshape(s, s, C)`` recovers it; :func:`patch_shape` gives that shape back
from ``n_features``.
"""

from __future__ import annotations

import numpy as np

from ..checks import positive_int


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


def patch_shape(n_features: int, shape=None) -> tuple[int, ...]:
    """The shape of one patch (or atom) of ``n_features`` values.

    ``shape`` is checked against ``n_features`` when given; otherwise the patch is
    taken to be square, grey ``(s, s)`` with ``s² = n_features`` or RGB
    ``(s, s, 3)`` with ``3 s² = n_features``.
    """
    if shape is not None:
        shape = tuple(int(v) for v in shape)
        if len(shape) not in (2, 3) or int(np.prod(shape)) != n_features:
            raise ValueError(
                f"patch_shape: {shape} does not match atoms of {n_features} features; "
                "give (height, width) or (height, width, channels) whose product is n_features."
            )
        return shape
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
