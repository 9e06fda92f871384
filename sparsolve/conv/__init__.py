"""Convolutional sparse coding: a small bank of filters shared across the positions of whole signals
and images,

    min_z  ½‖x − Σ_k d_k ∗ z_k‖² + α Σ_k ‖z_k‖₁      (optionally z ≥ 0),   ‖d_k‖ = 1 when learning

* :func:`encode_conv` -- certified codes for batches of 1-D signals (n, C, T) or images (n, C, H, W)
  (encode.py): cd (cd.py), admm (admm.py) and inference's fista, ista and lca (solvers.py) on the
  convolutional problem (problem.py), whose products are FFTs or direct convolutions (operator.py);
* :func:`duality_gap`, :func:`objective` -- per signal, from the codes (gap.py);
* :func:`fit_conv` -- online learning of the filters (fit.py, with its settings in config.py and the
  filter update in update.py), returning a :class:`ConvModel` (model.py).
"""
from .encode import encode_conv
from .gap import duality_gap, objective
from .operator import BOUNDARIES
from .solvers import REGISTRY

# Learning imports sparsolve.learning (and torch): loaded on first use.
_LAZY = {"fit_conv": "sparsolve.conv.fit", "ConvModel": "sparsolve.conv.model",
         "ConvFitConfig": "sparsolve.conv.config"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sparsolve.conv' has no attribute {name!r}")


__all__ = ["encode_conv", "duality_gap", "objective", "BOUNDARIES", "REGISTRY", *_LAZY]
