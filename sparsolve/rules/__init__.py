"""The update rules and norm rules a dictionary learns under: one module a rule, one line a registry.

``UPDATE_RULES`` and ``NORM_RULES`` map each name to its class (base.py gives the protocols).  The
config checks names against them and takes their defaults, the command line lists them, the memory
plan sizes an update rule's state with its ``nbytes``, and checkpoints hold its ``state_dict``.

A package of its own, beside ``inference/`` (the solvers' registry), rather than inside
``learning/``: config.py and memory.py read these registries, and learning/ imports both.
"""
from __future__ import annotations

from .ball import Ball
from .base import NormRule, UpdateRule
from .mod import MOD
from .none import NoRule
from .online import Online
from .penalty import Penalty
from .sgd import SGD
from .unit import Unit
from .unit_nonneg import UnitNonneg

UPDATE_RULES = {cls.name: cls for cls in (Online, SGD, MOD)}
NORM_RULES = {cls.name: cls for cls in (Unit, Ball, Penalty, NoRule, UnitNonneg)}

#: The update names every entry point accepts: the registry's, and "auto" (:func:`update_for`).
AUTO = "auto"
UPDATE_CHOICES = (AUTO, *UPDATE_RULES)
#: update="auto" is "sgd" above this many atoms, "online" up to it.  At m = 4,096, p = 256 (131,072
#: tokens of synthetic activations, one pass; benchmarks/fit_quality.py) online recovered 80 % of the
#: planted features at FVU 0.072, sgd (Adam) 7 % / 32 % / 64 % / 37 % at lr 1e-3 / 3e-3 / 1e-2 / 3e-2
#: (FVU 0.20 / 0.12 / 0.095 / 0.13) in a third of the CPU time: online is the default there.  Its
#: pass costs O(m²p) a step and its statistics 4m² floats (1 GiB at m = 8,192): above that, sgd.
SGD_ABOVE = 8192


def update_for(update, n_atoms) -> str:
    """The update rule a fit of ``n_atoms`` atoms runs: ``"auto"`` is "online" up to
    :data:`SGD_ABOVE` atoms and "sgd" above; a named rule is itself."""
    if update != AUTO:
        return update
    return "sgd" if n_atoms > SGD_ABOVE else "online"


def norm_rule(name) -> NormRule:
    """The norm rule called ``name``."""
    return NORM_RULES[name]()


def update_rule(config) -> UpdateRule:
    """The update rule of a (resolved) FitConfig, under its norm rule."""
    return UPDATE_RULES[config.update](config, norm_rule(config.norm))


__all__ = ["UPDATE_RULES", "UPDATE_CHOICES", "SGD_ABOVE", "update_for", "NORM_RULES", "UpdateRule", "NormRule", "norm_rule", "update_rule"]
