"""Amortized inference: the seed's learned-G encoder, its training, and its comparison
with exact inference."""
from .compare import Rows, compare
from .learned_g import LearnedG
from .train import fit_amortized

__all__ = ["LearnedG", "fit_amortized", "compare", "Rows"]
