"""Whitening: Olshausen & Field's filter of whole images (:func:`whiten_images`), and
invertible PCA and ZCA whitening of patches (:class:`Whitening`; rows are samples)."""

from __future__ import annotations

import numbers

import numpy as np

from ..checks import positive_int
from .patches import _as_image_list, _check_matrix

# The cutoff f0 (cycles per pixel) of whiten_images's roll-off.  On the scikit-learn photos
# (benchmarks/picture.py) 0.3 and Olshausen & Field's 0.4 (200 cycles per 512-pixel picture)
# learn atoms as Gabor-like and localised, but with 0.4 the codes leave 45% of the patches'
# energy unexplained against 30%: more JPEG noise passes; 0.2 learns fewer Gabors (0.82).
WHITEN_CUTOFF = 0.3


def whiten_images(images, cutoff: float = WHITEN_CUTOFF) -> list[np.ndarray]:
    """Olshausen & Field's whitening of whole images: a 1/f-whitening filter with a low-pass roll-off.

    Each image ``I`` (each channel of a colour image) is filtered in the frequency domain,

        Î'(f) = Î(f) · |f| · exp(−(|f| / f0)⁴),     f = (f_x, f_y) in cycles per pixel,

    and then scaled to unit variance.  Natural images have an amplitude spectrum close to
    1/|f|, so the ramp |f| flattens it (whitens): every scale carries the same power and
    sparse coding is not dominated by the low frequencies.  The roll-off
    ``exp(−(|f|/f0)⁴)`` (``f0 = cutoff``) then removes the highest frequencies, where
    sampling artefacts, sensor and compression noise dominate, smoothly (Olshausen & Field
    1997, *Vision Research* 37:3311; their f0 = 200 cycles per 512-pixel picture is 0.39
    cycles per pixel).  Patches whitened by a hard cut of their principal components
    instead (:func:`sparsolve.data.image_whitening`, ``whiten="zca"``) lose the high
    frequencies that a small envelope needs, and many of their atoms are gratings across
    the whole patch (benchmarks/picture.py).  Cut patches from the filtered images, remove each patch's
    mean, and learn.

    The FFT treats an image as periodic; each image is first mirrored to twice its size
    (its symmetric extension has no jump at the borders), filtered, and cropped back.

    Parameters
    ----------
    images : array or list of arrays
        One grey image ``(H, W)``, one colour image ``(H, W, C)``, a stack ``(N, H, W, C)``
        or a list of images, as :func:`extract_patches` takes them.
    cutoff : float
        ``f0`` in cycles per pixel, in (0, 0.5]; default ``WHITEN_CUTOFF`` (0.3).

    Returns
    -------
    list of float64 arrays, one per image, of the images' shapes, each with mean 0 and
    variance 1 (a constant image stays 0).
    """
    if isinstance(cutoff, bool) or not isinstance(cutoff, numbers.Real) or not 0 < cutoff <= 0.5:
        raise ValueError(f"cutoff: expected f0 in (0, 0.5] cycles per pixel, got {cutoff!r}; the default is "
                         f"{WHITEN_CUTOFF}.")
    out = []
    for i, image in enumerate(_as_image_list(images)):
        image = np.asarray(image, dtype=np.float64)
        if not np.all(np.isfinite(image)):
            raise ValueError(f"images[{i}]: contains NaN or infinite values.")
        h, w = image.shape[:2]
        mirrored = np.pad(image, ((0, h), (0, w)) + ((0, 0),) * (image.ndim - 2), mode="symmetric")
        f = np.hypot(np.fft.fftfreq(2 * h)[:, None], np.fft.rfftfreq(2 * w)[None, :])
        gain = f * np.exp(-((f / cutoff) ** 4))
        if image.ndim == 3:
            gain = gain[..., None]
        filtered = np.fft.irfft2(np.fft.rfft2(mirrored, axes=(0, 1)) * gain, s=(2 * h, 2 * w),
                                 axes=(0, 1))[:h, :w]
        std = filtered.std()
        out.append(filtered / std if std > 0 else filtered)
    return out


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

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return hasattr(self, "whitening_")

    def _check_fitted(self):
        if not self.fitted:
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
