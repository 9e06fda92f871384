"""Synthetic activations with known features, as the interpretability literature plants them
(Sharkey et al. 2022, "Taking features out of superposition"; Elhage et al. 2022, "Toy models
of superposition"): each token is a sparse, non-negative combination of planted unit-norm
features plus noise,

    x = Σ_i z_i f_i + ε,     z_i = s_i · m_i,     ε ~ N(0, σ² I_d),

with f_i ∈ R^d, ‖f_i‖ = 1 (random directions: with more features than dimensions they are in
superposition), the magnitude m_i ~ Uniform[magnitude], and the activity s_i ∈ {0, 1}:

* **power-law frequencies**: P(s_i = 1) = p_i = c · (i + 1)^(−a), with c set so that the
  expected number of active features per token, Σ p_i, is ``mean_active``;
* **correlated groups**: features come in consecutive groups G of ``group_size``; a group is
  open in a token with probability π_G = (max_{i∈G} p_i)^ρ, and a feature of an open group
  fires with probability p_i / π_G, independently given the gates, so that
      P(s_i = 1) = p_i,    P(s_i = s_j = 1) = p_i p_j / π_G  (i ≠ j in one group),
  and features of different groups are independent.  ρ = ``correlation`` = 0 opens every
  group always (independent features); as ρ → 1 the features of a group fire together.
  (A Gaussian copula would do the same with a smooth ρ, but costs a normal CDF per token and
  feature: 10× the time of this at 4,096 features.)

Everything is drawn from ``seed``: the features from one generator, and batch k of split s
from its own generator keyed (seed, s, k), so a stream is the same whatever the batch it is
read from, a training split (0) and a held-out split (1) never share a token, and nothing
needs to be held in memory (:meth:`SyntheticActivations.stream`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from ..checks import choice, nonnegative_float, positive_float, positive_int

__all__ = ["SyntheticActivations"]


@dataclass(frozen=True)
class SyntheticActivations:
    """A seeded source of synthetic activations over planted features (module docstring)."""

    n_features: int
    """d, the width of an activation vector."""
    n_planted: int
    """The number of planted unit-norm features (more than ``n_features``: superposition)."""
    mean_active: float = 5.0
    """The expected number of active features per token, Σ p_i (the true L0)."""
    exponent: float = 1.0
    """a in p_i ∝ (i + 1)^(−a): 0 gives equal frequencies; larger makes rare features rarer."""
    group_size: int = 4
    """Features per correlated group (1: no correlation)."""
    correlation: float = 0.5
    """ρ in [0, 1): a group opens with probability (its largest p_i)^ρ (module docstring)."""
    magnitude: tuple = (0.5, 1.5)
    """(low, high) of the uniform distribution of an active feature's coefficient, 0 ≤ low ≤ high."""
    noise: float = 0.01
    """σ, the standard deviation of the isotropic Gaussian noise per dimension."""
    seed: int = 0
    """Seeds the features and every batch."""
    dtype: str = "float32"
    """"float32" or "float64", the dtype of the activations returned."""
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        positive_int(self.n_features, "n_features", "the width d of an activation")
        positive_int(self.n_planted, "n_planted", "the number of planted features")
        positive_float(self.mean_active, "mean_active")
        nonnegative_float(self.exponent, "exponent")
        positive_int(self.group_size, "group_size", "features per correlated group")
        rho = nonnegative_float(self.correlation, "correlation")
        if rho >= 1:
            raise ValueError(f"correlation must be in [0, 1), got {rho}; use group_size=1 for no groups "
                             "and a value below 1 for correlated ones")
        if len(self.magnitude) != 2:
            raise ValueError(f"magnitude must be a (low, high) pair, got {self.magnitude!r}")
        low = nonnegative_float(self.magnitude[0], "magnitude[0]")
        high = nonnegative_float(self.magnitude[1], "magnitude[1]")
        if high < low or high == 0:
            raise ValueError(f"magnitude must be (low, high) with 0 ≤ low ≤ high and high > 0, got {self.magnitude!r}")
        nonnegative_float(self.noise, "noise")
        positive_int(self.seed, "seed", minimum=0)
        choice(self.dtype, "dtype", ("float32", "float64"))
        ranks = np.arange(1, self.n_planted + 1, dtype=np.float64) ** -self.exponent
        scale = self.mean_active / ranks.sum()
        if scale * ranks[0] > 1:
            raise ValueError(
                f"mean_active={self.mean_active} needs the most frequent feature to fire with probability "
                f"{scale * ranks[0]:.3g} > 1 at exponent={self.exponent} and n_planted={self.n_planted}; "
                "lower mean_active or exponent, or plant more features")

    # ---- the truth ----------------------------------------------------------------------
    @property
    def features(self) -> np.ndarray:
        """(n_planted, n_features) float64, the planted unit-norm features f_i, one per row."""
        if "features" not in self._cache:
            F = np.random.default_rng([self.seed, 0]).standard_normal((self.n_planted, self.n_features))
            F /= np.linalg.norm(F, axis=1, keepdims=True)
            self._cache["features"] = F
        return self._cache["features"]

    @property
    def frequencies(self) -> np.ndarray:
        """(n_planted,) the firing probabilities p_i = c (i + 1)^(−a), summing to ``mean_active``."""
        ranks = np.arange(1, self.n_planted + 1, dtype=np.float64) ** -self.exponent
        return ranks * (self.mean_active / ranks.sum())

    @property
    def groups(self) -> np.ndarray:
        """(n_planted,) the correlated group of each feature (consecutive blocks of ``group_size``)."""
        return np.arange(self.n_planted) // self.group_size

    # ---- the data -----------------------------------------------------------------------
    def batch(self, index: int, batch_size: int, *, split: int = 0, return_codes: bool = False):
        """Batch ``index`` of ``split``: X (batch_size, n_features), and with ``return_codes``
        also the true codes Z (batch_size, n_planted) with X = Z F + noise."""
        index = positive_int(index, "index", minimum=0)
        batch_size = positive_int(batch_size, "batch_size")
        split = positive_int(split, "split", "0 for training, 1 for held out, or any other stream", minimum=0)
        rng = np.random.default_rng([self.seed, 1, split, index])
        p, groups = self.frequencies, self.groups
        gate = p.reshape(-1)[np.r_[0:self.n_planted:self.group_size]] ** self.correlation  # π_G: p falls with i
        is_open = rng.random((batch_size, gate.size), dtype=np.float32) < gate.astype(np.float32)
        fires = rng.random((batch_size, self.n_planted), dtype=np.float32) < (p / gate[groups]).astype(np.float32)
        rows, cols = np.nonzero(fires)
        keep = is_open[rows, groups[cols]]
        rows, cols = rows[keep], cols[keep]
        low, high = self.magnitude
        Z = scipy.sparse.csr_matrix((rng.uniform(low, high, size=rows.size), (rows, cols)),
                                    shape=(batch_size, self.n_planted))
        X = Z @ self.features
        if self.noise > 0:
            X += self.noise * rng.standard_normal(X.shape)
        X = X.astype(self.dtype, copy=False)
        return (X, Z.toarray()) if return_codes else X

    def stream(self, batch_size: int, n_batches: int | None = None, *, split: int = 0, start: int = 0):
        """Yield batches ``start, start + 1, ...`` of ``split`` (forever when ``n_batches`` is
        None): a stream that never holds more than one batch."""
        batch_size = positive_int(batch_size, "batch_size")
        start = positive_int(start, "start", minimum=0)
        if n_batches is not None:
            positive_int(n_batches, "n_batches")
        k = start
        while n_batches is None or k < start + n_batches:
            yield self.batch(k, batch_size, split=split)
            k += 1

    def sample(self, n_samples: int, *, split: int = 0, batch_size: int = 4096, return_codes: bool = False):
        """The first ``n_samples`` tokens of ``split`` as one array (the stream's batches of
        ``batch_size``, concatenated and cut), with the true codes if ``return_codes``."""
        n_samples = positive_int(n_samples, "n_samples")
        batch_size = positive_int(batch_size, "batch_size")
        parts = [self.batch(k, batch_size, split=split, return_codes=True)
                 for k in range(-(-n_samples // batch_size))]
        X = np.concatenate([p[0] for p in parts])[:n_samples]
        if not return_codes:
            return X
        return X, np.concatenate([p[1] for p in parts])[:n_samples]
