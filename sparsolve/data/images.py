"""The default data: the two photographs shipped with scikit-learn, and random patches of them."""

from __future__ import annotations

import functools

import numpy as np

from .patches import _center_rows, extract_patches
from .whitening import Whitening

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

