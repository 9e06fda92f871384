"""``ConvModel``: a learned filter bank with the settings that code with it.

What :func:`sparsolve.conv.fit_conv` returns and :func:`sparsolve.load` reads back: a sparsolve npz
(:mod:`sparsolve.io`, never a pickle) of kind ``"conv_model"`` with the filters, the settings and the
history.
"""
from __future__ import annotations

import numpy as np

from .. import backend, io
from .encode import encode_conv

KIND = "conv_model"


class ConvModel:
    """Filters D (K, C, *f) and how to code with them.

    Attributes
    ----------
    filters : numpy array (n_filters, channels, h[, w]).
    alpha, boundary, positive : what :meth:`encode` uses by default.
    settings : every setting of the fit (a JSON-able dict).
    history : dict of equal-length lists, one entry per step -- ``objective`` (mean ½‖x − Σ d_k ∗ z_k‖²
        + α Σ‖z_k‖₁ of the step's batch, before its update), ``mse`` (mean squared residual per sample),
        ``l1`` (mean Σ‖z_k‖₁), ``nnz_frac`` (mean fraction of nonzero codes), ``norm_min``,
        ``norm_mean``, ``norm_max`` (filter norms after the update), ``converged_frac`` (signals whose
        inner loop met the learning tol), ``samples_seen``, ``seconds`` (cumulative).
    """

    def __init__(self, filters, alpha, *, boundary="valid", positive=False, settings=None, history=None):
        self.filters = np.asarray(backend.to_numpy(filters))
        self.alpha = float(alpha)
        self.boundary = boundary
        self.positive = bool(positive)
        self.settings = dict(settings or {})
        self.history = {k: list(v) for k, v in (history or {}).items()}

    @property
    def n_filters(self):
        return self.filters.shape[0]

    def encode(self, X, alpha=None, **kwargs):
        """encode_conv(X, filters, alpha) with the model's alpha, boundary and sign by default; the
        filters follow X's kind, device and dtype."""
        kwargs.setdefault("boundary", self.boundary)
        kwargs.setdefault("positive", self.positive)
        return encode_conv(X, backend.match(self.filters, X), self.alpha if alpha is None else alpha, **kwargs)

    def as_patch_dictionary(self):
        """The filters flattened to rows (n_filters, C·h·w), as a patch dictionary: what sparsolve.gabor
        and sparsolve.plot read (the patch shape is (h, w) for one channel)."""
        return self.filters.reshape(self.n_filters, -1)

    def save(self, path):
        """Write the model to ``path`` (``.npz`` appended if missing), atomically; returns the path."""
        arrays = {"filters": self.filters, **{f"history/{k}": np.asarray(v, dtype=np.float64)
                                              for k, v in self.history.items()}}
        meta = {"alpha": self.alpha, "boundary": self.boundary, "positive": self.positive,
                "settings": self.settings}
        return io.save_npz(path, KIND, arrays, meta)

    @classmethod
    def load(cls, path):
        arrays, meta = io.load_npz(path, KIND)
        io.require(meta, path, alpha=(int, float), boundary=str, positive=bool, settings=dict)
        filters = arrays["filters"]
        if filters.ndim not in (3, 4) or 0 in filters.shape or not np.isfinite(filters).all():
            raise io.ModelFileError(f"{path}: 'filters' should be a finite (n_filters, channels, h[, w]) array, "
                                    f"got shape {filters.shape}")
        history = {k.split("/", 1)[1]: v.tolist() for k, v in arrays.items() if k.startswith("history/")}
        return cls(filters, meta["alpha"], boundary=meta["boundary"], positive=meta["positive"],
                   settings=meta["settings"], history=history)

    def __repr__(self):
        return (f"ConvModel({self.n_filters} filters of shape {self.filters.shape[1:]}, alpha={self.alpha:g}, "
                f"boundary={self.boundary!r}, steps={len(self.history.get('objective', []))})")


io.register(KIND, ConvModel.load)
