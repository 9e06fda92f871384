"""How Gabor-like are the atoms of a dictionary?

Sparse coding of natural image patches is expected to learn localised,
oriented, band-pass atoms that are well described by 2-D Gabor functions
(Olshausen & Field, 1996).  This module fits a Gabor function to each atom by
bounded nonlinear least squares and summarises the fits:

* :func:`gabor` -- the Gabor generator;
* :func:`fit_gabor` -- the fit of one atom, with its coefficient of
  determination R^2;
* :func:`envelope_area` -- the share of the patch a Gabor's envelope covers
  (localisation: 1 for a whole-patch grating);
* :func:`gabor_stats` -- R^2 and tuning statistics over a whole dictionary;
* :func:`control_dictionaries` -- reference dictionaries (random, PCA, true
  Gabor) that put a learned dictionary's score in context.
"""

from .fit import PARAM_NAMES, envelope_area, fit_gabor, gabor
from .stats import GaborStats, control_dictionaries, gabor_stats

__all__ = ["PARAM_NAMES", "gabor", "fit_gabor", "envelope_area", "gabor_stats", "GaborStats", "control_dictionaries"]
