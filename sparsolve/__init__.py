"""sparsolve: sparse coding -- certified inference, dictionary learning and amortized encoders.

Shapes follow scikit-learn: X is (n_samples, n_features), a dictionary D is
(n_atoms, n_features) with one atom per row, codes Z are (n_samples, n_atoms),
and X ≈ Z @ D.
"""
from .gap import duality_gap, kkt_residual, objective
from .inference import ConvergenceWarning, DivergenceError, EncodeInfo, encode

__version__ = "0.1.0"

__all__ = [
    "encode",
    "objective",
    "duality_gap",
    "kkt_residual",
    "EncodeInfo",
    "ConvergenceWarning",
    "DivergenceError",
]
