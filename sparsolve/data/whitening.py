"""Invertible PCA and ZCA whitening of patches (rows are samples)."""

from __future__ import annotations

import numbers

import numpy as np

from ..checks import positive_int
from .patches import _check_matrix


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
