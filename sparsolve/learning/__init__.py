"""Dictionary learning: ``fit`` a :class:`SparseCodingModel` and ``load`` one back."""
from .. import io
from .fit import CHECKPOINT_KIND, fit, model_from_checkpoint
from .model import SparseCodingModel, load

io.register(CHECKPOINT_KIND, model_from_checkpoint)

__all__ = ["fit", "load", "SparseCodingModel"]
