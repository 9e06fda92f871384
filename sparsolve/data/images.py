"""The default data: the two photographs shipped with scikit-learn, and random patches of them."""

from __future__ import annotations

import functools

import numpy as np

from .patches import _center_rows, extract_patches
from .whitening import WHITEN_CUTOFF, Whitening, whiten_images

# ITU-R BT.601 luma weights, the usual definition of "grey" for sRGB photos.
_LUMA = np.array([0.299, 0.587, 0.114])



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


# The share of each photo's width, from the left, that split="train" draws from;
# split="test" draws from the rest, so that no pixel is in both.
TRAIN_WIDTH = 0.8
SPLITS = (None, "train", "test")


# The whitening whiten="zca"/"pca" applies.  The photos are JPEGs: their high spatial
# frequencies hold mostly compression noise, which full-rank whitening lifts to the level
# of the image structure, so that sparse coding learns noise and checkerboards.  Keeping the
# leading 3/8 of the principal components (24 of 64) and bounding the gain of the weakest kept
# ones (eps 0.1) gives oriented atoms, but many of them are gratings across the whole patch:
# the hard cut leaves too few high frequencies for a small envelope.  whiten="of" (the
# default picture's) rolls the high frequencies off smoothly instead (benchmarks/picture.py).
WHITEN_RANK = 3 / 8
WHITEN_EPS = 0.1

# The default picture: `sparsolve fit` without data, the README's "Learning a dictionary" and the
# notebook learn on PICTURE_PATCH × PICTURE_PATCH patches of photos whitened by whiten_images
# (whiten="of") with α = WHITENED_ALPHA and, where time allows, PICTURE_ATOMS atoms and 100,000
# samples.  On the photos 94–99% of the atoms are Gabor-like and 85–92% Gabor-like and localised,
# against 55–61% and 29–36% for the recipe before (8×8, rank-24 ZCA, 128 atoms, 40,000 samples;
# 3 seeds, benchmarks/picture.py, which varies each choice on its own).  12×12 rather than 8×8:
# the envelopes are about the same size in pixels (23–27 at half maximum), so on 8×8 patches they
# cover 37% of the patch (median) against 19%, and only 58% of the atoms count as localised;
# 16×16 scores no better (0.85 and 0.80).  Complete (144 atoms) rather than overcomplete: with
# the same samples, 192 and 288 atoms are 0.89 and 0.75 Gabor-like (each sees fewer updates).
PICTURE_PATCH = 12
PICTURE_ATOMS = 144
# α for PICTURE_PATCH patches whitened by whiten="of" (unit variance per pixel): about 6
# nonzero codes per patch.  α grows with the patch side (more structure to explain per patch):
# about 1 suits 8×8 patches, 3 suits 16×16.
WHITENED_ALPHA = 2.0


@functools.lru_cache(maxsize=4)
def _photos(grey: bool, split, filtered: bool) -> tuple[np.ndarray, ...]:
    """The photos of one split, filtered by :func:`whiten_images` when ``filtered``: read-only,
    and kept because filtering them costs a few tenths of a second a call."""
    images = load_natural_images(grey=grey)
    if split is not None:
        cut = [int(TRAIN_WIDTH * im.shape[1]) for im in images]
        images = [im[:, :c] if split == "train" else im[:, c:] for im, c in zip(images, cut)]
    if filtered:  # after the split's cut, so that no filtered pixel mixes the two sides
        images = whiten_images(images, WHITEN_CUTOFF)
    for im in images:
        im.setflags(write=False)
    return tuple(images)


def image_whitening(n_features: int, method: str = "zca") -> Whitening:
    """The unfitted :class:`Whitening` that ``natural_image_patches(whiten=method)`` uses for
    patches of ``n_features`` pixels: ``n_components = round(3/8 · n_features)`` (24 for 8×8)
    and ``eps = 0.1``."""
    if method not in ("zca", "pca"):
        raise ValueError(f"method: expected 'zca' or 'pca', got {method!r}.")
    return Whitening(method, eps=WHITEN_EPS, n_components=max(1, round(WHITEN_RANK * n_features)))


def natural_image_patches(patch_size: int = 8, n_patches: int = 10000, *, seed=0,
                          remove_mean: bool = True, whiten=None,
                          grey: bool = True, split=None) -> np.ndarray:
    """The library's default dataset: random patches of the scikit-learn photos.

    Returns ``X`` of shape ``(n_patches, patch_size**2)`` (``patch_size**2 * 3``
    when ``grey=False``), float64, pixels in ``[0, 1]`` before preprocessing:

    1. the two images of :func:`load_natural_images` -- with ``split="train"``
       only the left 80% of each photo's width, with ``split="test"`` only the
       right 20%, so that held-out patches share no pixel with training patches
       (random positions in the whole photos repeat: 17% of 5,000 held-out 8×8
       patches also occur among 100,000 training ones) -- are, with
       ``whiten="of"`` (the setting for learning a dictionary), whitened by
       :func:`whiten_images`: Olshausen & Field's filter
       ``Î(f) |f| exp(−(|f|/f0)⁴)``, ``f0 = WHITEN_CUTOFF`` (0.3 cycles per
       pixel), each split's images on their own, then scaled to unit variance;
    2. ``n_patches`` patches are drawn uniformly over their positions
       (reproducible from ``seed``);
    3. if ``remove_mean``: ``x_i <- x_i - mean(x_i)`` per patch.  With
       ``whiten="of"``, ``patch_size = PICTURE_PATCH`` (12) and ``alpha =
       WHITENED_ALPHA`` (2), ``sparsolve.fit(X, 144, 2.0, n_epochs=5)`` on 20,000
       patches learns localised Gabor-like atoms;
    4. ``whiten="zca"`` fits and applies :func:`image_whitening` to the patches:
       ZCA ``Y = (X − μ) W^T`` with ``W = U_k diag(r) U_k^T`` on the leading
       ``k = 3/8 · n_features`` principal components (24 of 64) and ``eps = 0.1``,
       which keeps the patches in pixel coordinates and drops the JPEG noise of
       the high frequencies, but also what a small envelope needs (many of its
       atoms are gratings across the patch; the picture's recipe before
       ``"of"``).  ``whiten="pca"`` keeps the same components in PCA
       coordinates (``k`` outputs).  Pass an *unfitted* :class:`Whitening`
       instance instead to choose its settings and keep it (it is fitted on
       these patches, in place), e.g. to map learned atoms back to pixels; pass
       a *fitted* one to apply it as it is, e.g. to whiten held-out patches
       the way the training patches were.  ``whiten=None`` (the default) leaves
       the patches as they are after step 3.
    """
    whitening = None
    if isinstance(whiten, Whitening):
        whitening = whiten
    elif whiten in ("zca", "pca"):
        whitening = image_whitening(patch_size ** 2 * (1 if grey else 3), whiten)
    elif whiten is not None and not (isinstance(whiten, str) and whiten == "of"):
        raise ValueError(
            f"whiten: expected None, 'of', 'zca', 'pca' or a Whitening instance, got {whiten!r}."
        )
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    images = _photos(grey, split, whiten == "of")
    X = extract_patches(images, patch_size, n_patches, seed=seed)
    if remove_mean:
        X = _center_rows(X)
    if whitening is not None:
        X = whitening.transform(X) if whitening.fitted else whitening.fit_transform(X)
    return X


def whitening_filter(size: int = 8, *, n_patches: int = 20000, seed=0) -> np.ndarray:
    """The patch recipe's whitening as a convolution filter, (2·size − 1, 2·size − 1).

    The ZCA matrix W of :func:`image_whitening` (rank 3/8, fitted on ``n_patches`` mean-removed
    size×size patches of the photos, as ``natural_image_patches(whiten="zca")`` does) maps a patch to its
    whitened pixels, pixel p taking Σ_q W[p, q] x_q.  On natural images it is close to shift-invariant,
    W[p, q] ≈ k(q − p); the filter is that k, each offset's entries W[p, p + δ] averaged over the pixels p
    that have it (the single centre row would carry the rank cut's position-dependent noise).  Correlating
    a whole photo with k whitens every pixel as the patch recipe whitens a patch's pixels; k passes no
    constant, as W does not (the patches' means were removed before it was fitted)."""
    whitening = image_whitening(size * size)
    natural_image_patches(size, n_patches, seed=seed, whiten=whitening)  # fits it, in place
    W = whitening.whitening_.reshape(size, size, size, size)  # W[p_row, p_col, q_row, q_col]
    k = np.zeros((2 * size - 1, 2 * size - 1))
    count = np.zeros_like(k)
    for i in range(size):
        for j in range(size):
            k[size - 1 - i:2 * size - 1 - i, size - 1 - j:2 * size - 1 - j] += W[i, j]
            count[size - 1 - i:2 * size - 1 - i, size - 1 - j:2 * size - 1 - j] += 1
    k /= count
    return k - k.mean()


def natural_image_crops(crop: int = 64, n_crops: int = 256, *, seed=0, whiten: bool = True, split=None,
                        filter_size: int = 8) -> np.ndarray:
    """Whole-image data for convolutional sparse coding: ``n_crops`` grey crop×crop windows of the photos,
    shape (n_crops, 1, crop, crop), float64.

    Each photo is first correlated with :func:`whitening_filter` (``whiten=True``, the patch recipe as a
    convolution; only the pixels whose whole filter window lies in the photo are kept) or has its mean
    removed (``whiten=False``); then the crops are drawn uniformly over the positions, from ``seed``.
    ``split`` as :func:`natural_image_patches`: "train" draws from the left 80% of each photo's width,
    "test" from the rest, so held-out crops share no pixel with training ones."""
    from scipy.signal import correlate2d

    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng(seed)
    kernel = whitening_filter(filter_size) if whiten else None
    images = []
    for im in load_natural_images(grey=True):
        cut = int(TRAIN_WIDTH * im.shape[1])
        if split is not None:
            im = im[:, :cut] if split == "train" else im[:, cut:]
        images.append(correlate2d(im, kernel, mode="valid") if whiten else im - im.mean())
    if any(min(im.shape) < crop for im in images):
        smallest = min(min(im.shape) for im in images)
        raise ValueError(f"crop={crop} is larger than the photos' {split or 'whole'} region ({smallest} pixels on "
                         f"its short side after whitening); use crop <= {smallest}")
    sizes = np.array([(im.shape[0] - crop + 1) * (im.shape[1] - crop + 1) for im in images], dtype=np.float64)
    which = rng.choice(len(images), size=n_crops, p=sizes / sizes.sum())
    out = np.empty((n_crops, 1, crop, crop))
    for i, k in enumerate(which):
        im = images[k]
        top, left = rng.integers(im.shape[0] - crop + 1), rng.integers(im.shape[1] - crop + 1)
        out[i, 0] = im[top:top + crop, left:left + crop]
    return out
