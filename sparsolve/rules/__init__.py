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


def norm_rule(name) -> NormRule:
    """The norm rule called ``name``."""
    return NORM_RULES[name]()


def update_rule(config) -> UpdateRule:
    """The update rule of a (resolved) FitConfig, under its norm rule."""
    return UPDATE_RULES[config.update](config, norm_rule(config.norm))


__all__ = ["UPDATE_RULES", "NORM_RULES", "UpdateRule", "NormRule", "norm_rule", "update_rule"]
