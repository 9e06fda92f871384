"""Dictionary learning: ``fit`` a :class:`SparseCodingModel` and ``load`` one back."""
from .. import io
from .checkpoint import CHECKPOINT_KIND, model_from_checkpoint
from .fit import fit
from .model import SparseCodingModel, load

io.register(CHECKPOINT_KIND, model_from_checkpoint)

__all__ = ["fit", "load", "SparseCodingModel"]
