"""Data sets and preprocessing for sparse coding.

Everything follows the library convention: rows are samples, so a batch of
patches is an array ``X`` of shape ``(n_samples, n_features)``.

* :mod:`.patches` -- :func:`extract_patches` from grey/colour images,
  :func:`remove_mean`, :func:`contrast_normalize`, and :func:`patch_shape`.
* :mod:`.whitening` -- :func:`whiten_images`, Olshausen & Field's whitening of whole images
  (1/f with a low-pass roll-off), and :class:`Whitening`, invertible PCA/ZCA whitening of patches.
* :mod:`.images` -- :func:`load_natural_images` (the two photographs shipped with
  scikit-learn) and :func:`natural_image_patches`, the library's default data, with
  :func:`image_whitening`, the rank-k ZCA of ``whiten="zca"``, and the default picture's
  recipe (``PICTURE_PATCH``, ``PICTURE_ATOMS``, ``WHITENED_ALPHA``).
* :mod:`.cifar` -- :func:`load_cifar10`, a loader for the CIFAR-10 python archive
  that never unpickles arbitrary objects; :func:`load_cifar10_torchvision` downloads it.
* :mod:`.files` -- :func:`read_matrix`, a data matrix from a ``.npy`` or ``.npz`` file.
* :mod:`.synthetic` -- :class:`SyntheticActivations`, planted unit features with
  power-law frequencies, correlated groups and noise (the SAE benchmarks' data).
* :mod:`.shards` -- :class:`ShardStream`, a directory of activation shards streamed
  in shuffled blocks with a background prefetch.
"""

from .cifar import CIFAR10_URL, load_cifar10, load_cifar10_torchvision
from .files import read_matrix
from .images import (PICTURE_ATOMS, PICTURE_PATCH, SPLITS, TRAIN_WIDTH, WHITENED_ALPHA, image_whitening,
                     load_natural_images, natural_image_crops, natural_image_patches, whitening_filter)
from .patches import contrast_normalize, extract_patches, patch_shape, remove_mean
from .shards import ShardStream
from .synthetic import SyntheticActivations
from .whitening import WHITEN_CUTOFF, Whitening, whiten_images

__all__ = [
    "load_natural_images",
    "extract_patches",
    "remove_mean",
    "contrast_normalize",
    "patch_shape",
    "Whitening",
    "whiten_images",
    "WHITEN_CUTOFF",
    "natural_image_patches",
    "natural_image_crops",
    "whitening_filter",
    "image_whitening",
    "WHITENED_ALPHA",
    "PICTURE_PATCH",
    "PICTURE_ATOMS",
    "SPLITS",
    "TRAIN_WIDTH",
    "read_matrix",
    "load_cifar10",
    "load_cifar10_torchvision",
    "CIFAR10_URL",
    "SyntheticActivations",
    "ShardStream",
]
