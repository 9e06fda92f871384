"""sparsolve: sparse coding -- certified inference, dictionary learning and amortized encoders.

Shapes follow scikit-learn: X is (n_samples, n_features), a dictionary D is
(n_atoms, n_features) with one atom per row, codes Z are (n_samples, n_atoms),
and X ≈ Z @ D.
"""
from .gap import duality_gap, kkt_residual, objective
from .inference import ConvergenceWarning, DivergenceError, EncodeInfo, alpha_for_l0, encode

__version__ = "0.1.0"

# Learning and amortized inference import torch and friends; load them on first use.
_LAZY = {
    "fit": "sparsolve.learning",
    "load": "sparsolve.learning",
    "SparseCodingModel": "sparsolve.learning",
    "DictionaryLearning": "sparsolve.estimator",
    "LearnedG": "sparsolve.amortized",
    "fit_amortized": "sparsolve.amortized",
    "compare": "sparsolve.amortized",
    "from_sae": "sparsolve.sae",
    "FitConfig": "sparsolve.config",
    "AmortizedConfig": "sparsolve.config",
    "encode_conv": "sparsolve.conv",
    "fit_conv": "sparsolve.conv",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sparsolve' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "encode",
    "alpha_for_l0",
    "objective",
    "duality_gap",
    "kkt_residual",
    "EncodeInfo",
    "ConvergenceWarning",
    "DivergenceError",
]
