"""Choosing n_atoms and α from the data, when ``fit`` is not told them.

``sparsolve.fit(X, solver="lca")`` (the CLI with a DATA file, and ``DictionaryLearning(alpha=None)``
alike) takes the number of atoms and the L1 weight from the data, logs what it chose (logger
``sparsolve``, level INFO) and keeps it: ``model.settings`` and a checkpoint's config hold the chosen
values, so a resume runs on exactly them (and a resume that is not told them takes the checkpoint's).
Given values are used as they are.

The rule
--------
* ``n_atoms`` = min(ATOMS_PER_FEATURE · n_features, n_rows) = 2 · n_features, at most the rows
  (:data:`sparsolve.config.ATOMS_PER_FEATURE`); ``dict_init``'s rows when it is given.
* ``alpha`` = ALPHA_PER_SCALE · s = 0.1 · s, where s = √(mean ‖x‖²) is the data's scale, the root
  mean square of the rows' norms, over SCALE_ROWS = 4,096 evenly spaced rows (all of them when there
  are fewer; centred by their mean with ``center=True``, as the learner's rows are).  α scales with
  the data, as the lasso's does: X·c gives α·c and the same dictionary (up to rounding).
* ``l0=k`` instead: α is the one at which the codes of the sampled rows have a mean of k non-zeros
  (:func:`sparsolve.alpha_for_l0`) under a first dictionary like the learner's, n_atoms of the
  sampled rows scaled to unit norm.  The learned dictionary explains the data with fewer atoms than
  that first one, so its codes come out somewhat sparser than k (below).

Why these numbers
-----------------
Measured by ``benchmarks/choose.py`` (benchmarks/RESULTS.md, "Choosing n_atoms and α"): one epoch of
``fit(X, solver="lca")`` on 20,000 rows, scored on 2,000 held-out rows, for α = c · s with c ∈
{0.05, 0.1, 0.2} and n_atoms = f · n_features with f ∈ {1, 2, 4}, on the library's own data:

* 8×8 ZCA-whitened natural-image patches (``natural_image_patches(whiten="zca")``, s ≈ 4.7): under
  the rule (α ≈ 0.47, 128 atoms) 54–56% of the atoms are Gabor-like (R² ≥ 0.8), with 4.8 non-zeros
  a patch and 3.4% of the variance unexplained (FVU).  c = 0.05 gives 5.8 non-zeros, 1.1% FVU and
  42% Gabor-like; c = 0.2 gives 3.5, 11% and 59%.  64 atoms gave 61% Gabor-like at 4.5% FVU, 256
  atoms 41% at 2.7%: the whitening keeps 24 dimensions, which many atoms over-cover.
* The same patches unwhitened (mean removed only, s ≈ 0.67, so α ≈ 0.07): 52–56% Gabor-like,
  7.6 non-zeros a patch, 12% FVU (c = 0.05: 35%, 11.6, 3.9%; c = 0.2: 59%, 3.8, 29%).
* Synthetic activations (``SyntheticActivations``): with as many planted features as dimensions
  (64), 2× recovers every one (|cos| > 0.9) at every c, and 1× 83%.  In superposition, 128 planted
  in 64 dimensions with power-law frequencies (exponent 1: some are rare), 2× recovers 71–72% and 4×
  98%; 512 planted in 256 dimensions (exponent 0.5), 2× recovers 97%.  The rule cannot see how many
  features are planted: where they outnumber the dimensions, pass ``n_atoms`` of at least twice the
  number you expect.
* ``l0=k`` for k = 3, 5, 10: the learned codes had 0.65–0.9 k non-zeros on the patches, and on the
  synthetic data 1.05 k (k = 3) and 0.85 k (k = 5), their own 5.9 for k = 10.  For an exact L0, code
  the trained model at it: ``model.encode(X, l0=k)``.

c = 0.1 is the middle of that range: on every set more than half the patches' atoms are Gabor-like
with the variance explained to within 12%, and planted features are found; a smaller c buys a closer
fit with denser codes and fewer Gabor-like atoms, a larger one sparser codes and a poorer fit.  On
the shared 2-core machine (load 10–14) each of these fits took 2–9 s, the 512-atom one 18 s.

Choosing them yourself
----------------------
* α sets how sparse the codes are and what they leave out: a sample's codes are all zero once
  α ≥ ‖x Dᵀ‖∞, and, for a dictionary of unit atoms, a feature whose coefficient is below about α
  goes unexplained.  Set it in the units of your data, as the rule does: about a tenth of the rows'
  RMS norm is where the measurements above put the balance of sparsity and fit; lower it for a
  closer fit, raise it for sparser codes.  To state sparsity as non-zeros per row (as SAE users do),
  pass ``l0=`` here, or code a trained model at any L0 with ``model.encode(X, l0=...)``.
* Unwhitened data (raw patches, activations): the scale is dominated by the rows with the most
  energy -- for images, the high-contrast patches, low spatial frequencies first -- so the codes
  explain those and set the many faint rows to zero, and the atoms follow the data's strongest
  directions (smooth, larger receptive fields than on whitened patches).  Whitening (or
  ``center=True`` for data with an offset) first makes every direction count alike, which is what
  gives localized Gabor-like atoms on images.  On the picture's 12×12 patches whitened by Olshausen
  & Field's filter (``whiten="of"``) the rule gives α ≈ 1.2; the picture's recipe uses
  WHITENED_ALPHA = 2, sparser codes (about 6 non-zeros a patch) that localize the atoms further
  (benchmarks/picture.py).
* n_atoms: more atoms make codes sparser at the same fit and cost time and memory in proportion
  (cd and the online update are quadratic in n_atoms).  2× n_features is the classical overcomplete
  start for images; for model activations, where the features outnumber the dimensions, the field
  uses 4× to 64×: pass it.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os

import numpy as np

from .. import backend
from ..config import ALPHA_PER_SCALE, ATOMS_PER_FEATURE, SCALE_ROWS, FitConfig
from ..inference import alpha_for_l0
from .batches import is_array, take
from .learner import initial_dictionary

log = logging.getLogger("sparsolve")

__all__ = ["for_data", "sample_rows"]


def for_data(config: FitConfig, X, n_rows=None, *, n_atoms=None) -> FitConfig:
    """``config`` with ``n_atoms`` and ``alpha`` chosen from the rows of the array ``X`` where they are
    None (the rule in the module docstring), and what it chose logged.  ``n_rows``: the rows of the
    data when ``X`` is a sample of them (default: X's own); ``n_atoms``: the atoms a ``dict_init``
    fixes.  Use it to choose them from a first batch before streaming an iterable:
    ``fit(batches, config=for_data(FitConfig(solver="lca"), first_batch))``."""
    if config.n_atoms is not None and config.alpha is not None:
        return config
    if not is_array(X) or X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"the rows to choose n_atoms and alpha from must be a non-empty 2-D array, got "
                         f"{getattr(X, 'shape', type(X).__name__)}")
    n_rows = int(X.shape[0]) if n_rows is None else int(n_rows)
    n_features = int(X.shape[1])
    said = []
    m = config.n_atoms if config.n_atoms is not None else n_atoms
    if m is None:
        m = max(1, min(ATOMS_PER_FEATURE * n_features, n_rows))
        said.append(f"n_atoms={m} ({ATOMS_PER_FEATURE} × {n_features} features" +
                    (f", capped at the {n_rows} rows)" if m == n_rows < ATOMS_PER_FEATURE * n_features else ")"))
    alpha = config.alpha
    if alpha is None:
        rows = sample_rows(X)
        if config.center:
            rows = rows - rows.mean(axis=0)
        scale = math.sqrt(float((rows * rows).sum(axis=1).mean()))
        if not scale > 0:
            raise ValueError("every row of the data is zero" + (" after centring (center=True)" if config.center
                             else "") + ": there is nothing to learn, and no α to choose")
        if config.l0 is None:
            alpha = ALPHA_PER_SCALE * scale
            said.append(f"alpha={alpha:.4g} ({ALPHA_PER_SCALE} × the data's scale √(mean ‖x‖²) = {scale:.4g})")
        else:
            alpha = _alpha_for_l0(rows, m, config)
            said.append(f"alpha={alpha:.4g} (the α that gives l0={config.l0:g} non-zeros a row under a first "
                        f"dictionary of the data's rows; {alpha / scale:.3g} × the data's scale {scale:.4g})")
    if said:
        log.info("fit chose %s from the data; pass them to set your own (sparsolve.learning.choose)",
                 " and ".join(said))
    return dataclasses.replace(config, n_atoms=m, alpha=alpha)


def sample_rows(X) -> np.ndarray:
    """At most :data:`~sparsolve.config.SCALE_ROWS` evenly spaced rows of X (an array: a memmap reads
    only these), as float64 on the host; a ValueError names the first of them with NaN or Inf."""
    n = int(X.shape[0])
    rows = np.unique(np.linspace(0, n - 1, min(n, SCALE_ROWS)).round().astype(np.int64))
    picked = take(X, rows)
    if backend.dtype_name(picked) not in backend.SUPPORTED_DTYPES:  # bfloat16: numpy has none
        picked = backend.astype(picked, "float64")
    sample = np.asarray(backend.to_numpy(picked), dtype=np.float64)
    finite = np.isfinite(sample).all(axis=1)
    if not finite.all():
        raise ValueError(f"X has NaN or Inf values (first in row {int(rows[np.argmin(finite)])}); drop or impute "
                         "those rows first")
    return sample


def _alpha_for_l0(rows, n_atoms, config):
    """α for ``config.l0`` on half the sampled rows, under a first dictionary made, as the learner
    makes its own (learner.initial_dictionary), of the other half's rows at unit norm."""
    coded, atoms = (rows[1::2], rows[::2]) if rows.shape[0] > 1 else (rows, rows)
    D = initial_dictionary(atoms, n_atoms, np.random.default_rng(0))
    most = min(n_atoms, rows.shape[1])
    if not config.l0 < most:
        raise ValueError(f"l0={config.l0:g} cannot be reached with {n_atoms} atoms of {rows.shape[1]} features: "
                         f"pass 0 < l0 < {most} (the lasso's codes have at most n_features non-zeros)")
    return alpha_for_l0(coded, D, config.l0, positive=config.positive)


def shard_sample(shards) -> tuple[np.ndarray, int]:
    """(the evenly spaced sample rows of a list of 2-D shards taken as one array, their total rows)."""
    sizes = np.array([s.shape[0] for s in shards])
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = np.unique(np.linspace(0, n - 1, min(n, SCALE_ROWS)).round().astype(np.int64))
    which = np.searchsorted(starts, rows, side="right") - 1
    parts = [np.asarray(shards[k][rows[which == k] - starts[k]], dtype=np.float64) for k in np.unique(which)]
    return np.concatenate(parts), n


def for_source(config: FitConfig, X, dict_init=None) -> FitConfig:
    """``config`` with n_atoms and alpha chosen from what fit reads -- an array, a shard directory (its
    path) or a ShardStream -- where they are None; an iterable of batches cannot show its rows before
    training, so it needs them given (or :func:`for_data` on a first batch)."""
    fixed = None if dict_init is None else int(np.shape(dict_init)[0]) if np.ndim(dict_init) == 2 else None
    if config.n_atoms is not None and config.alpha is not None:
        return config
    if config.alpha is not None and fixed is not None:
        return dataclasses.replace(config, n_atoms=fixed)
    if is_array(X):
        return for_data(config, X, n_atoms=fixed)
    shards = None
    if isinstance(X, (str, os.PathLike)):
        from ..data.shards import open_shards

        shards = open_shards(X)
    elif hasattr(X, "shards") and isinstance(getattr(X, "shards"), list):  # a ShardStream
        shards = X.shards
    if shards is not None:
        sample, n = shard_sample(shards)
        return for_data(config, sample, n, n_atoms=fixed)
    missing = [name for name in ("n_atoms", "alpha") if getattr(config, name) is None and
               not (name == "n_atoms" and fixed is not None)]
    raise ValueError(f"fit on an iterable of batches cannot choose {' and '.join(missing)} from the data before "
                     f"it reads it: pass {', '.join(f'{k}=...' for k in missing)} (alpha or l0), or choose them from a "
                     "first batch with sparsolve.learning.choose.for_data(config, batch)")
