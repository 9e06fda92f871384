"""Dictionary learning: ``fit`` a :class:`SparseCodingModel` and ``load`` one back."""
from .fit import fit
from .model import SparseCodingModel, load

__all__ = ["fit", "load", "SparseCodingModel"]
