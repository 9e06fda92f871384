"""The whole-image data of convolutional sparse coding: whitened crops of the photos."""
from __future__ import annotations

import numpy as np
import pytest

from sparsolve.data import natural_image_crops, whitening_filter


def _radial_power(X):
    """Mean power spectrum of the crops, low (|k| < N/8) over high (|k| > N/4) frequencies."""
    P = (np.abs(np.fft.fft2(X[:, 0])) ** 2).mean(axis=0)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(X.shape[-1]), np.fft.fftfreq(X.shape[-2])))
    return P[(k > 0) & (k < 1 / 8)].mean() / P[k > 1 / 4].mean()


def test_whitening_filter_is_the_shift_invariant_zca():
    k = whitening_filter(8)
    assert k.shape == (15, 15)
    assert abs(k.sum()) < 1e-9 * np.abs(k).max()  # passes no constant
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-12)  # W is symmetric, so k(δ) = k(−δ)
    assert np.unravel_index(np.abs(k).argmax(), k.shape) == (7, 7)  # the centre pixel dominates


def test_crops_are_whitened_and_split():
    raw = natural_image_crops(32, 40, whiten=False, seed=1)
    white = natural_image_crops(32, 40, seed=1)
    assert raw.shape == white.shape == (40, 1, 32, 32) and np.isfinite(white).all()
    # natural images put their power at low frequencies; whitening flattens the spectrum
    assert _radial_power(raw) > 10 * _radial_power(white)
    train = natural_image_crops(32, 20, split="train", seed=2)
    test = natural_image_crops(32, 20, split="test", seed=2)
    assert not np.allclose(train, test)
    with pytest.raises(ValueError, match="split"):
        natural_image_crops(32, 2, split="validation")
    with pytest.raises(ValueError, match="crop=500 is larger"):
        natural_image_crops(500, 2, split="test")
