"""Convolutional sparse coding: a small bank of filters shared across the positions of whole signals
and images,

    min_z  ½‖x − Σ_k d_k ∗ z_k‖² + α Σ_k ‖z_k‖₁      (optionally z ≥ 0),   ‖d_k‖ = 1 when learning

* :func:`encode_conv` -- certified codes for batches of 1-D signals (n, C, T) or images (n, C, H, W)
  (encode.py), by cd (cd.py) or inference's fista, ista and lca (solvers.py) on the convolutional
  problem (problem.py), whose products are FFTs or direct convolutions (operator.py);
* :func:`duality_gap`, :func:`objective` -- per signal, from the codes (gap.py).
"""
from .encode import encode_conv
from .gap import duality_gap, objective
from .operator import BOUNDARIES
from .solvers import REGISTRY

__all__ = ["encode_conv", "duality_gap", "objective", "BOUNDARIES", "REGISTRY"]
