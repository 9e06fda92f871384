"""The convolutional solvers, by name: ISTA, FISTA and LCA are inference's own classes (their update
rules, options, checks and loop unchanged), with the ``form`` option naming how the convolutions are
computed; CD is the locally greedy coordinate descent of :mod:`.cd`.

Each class says which boundaries it takes in ``BOUNDARIES``; encode_conv refuses another one with an
error that names them.
"""
from __future__ import annotations

from ..inference.fista import FISTA
from ..inference.ista import ISTA
from ..inference.lca import LCA
from .admm import ADMM
from .cd import ConvCD
from .operator import BOUNDARIES, FORMS


def _convolutional(cls):
    """``cls`` (an :class:`~sparsolve.inference.base.Iterative` solver) for the convolutional problem:
    the same class but for what ``form`` may be; every boundary."""
    return type(cls.__name__, (cls,), {
        "__module__": __name__, "__doc__": cls.__doc__, "FORMS": FORMS, "BOUNDARIES": BOUNDARIES,
        "OPTION_TYPES": {**cls.OPTION_TYPES, "form": FORMS}})

REGISTRY = {cls.name: cls for cls in (_convolutional(ISTA), _convolutional(FISTA), _convolutional(LCA), ADMM,
                                      ConvCD)}
