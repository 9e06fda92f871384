"""The offset b of ``fit(center=True)``: the data's mean, subtracted before the learner sees a batch.

A sparse code explains x − b, x ≈ zD + b (the decoder bias ``b_dec`` of an SAE).  With the
offset fixed, every step is the lasso and dictionary update on the centred rows x − b, so the
duality gap certifies the codes of the centred data.  b is estimated once:

* an array (numpy, memmap, torch, cupy): the mean of its rows, all of them when there are at
  most ``limit`` (``FitConfig.center_samples``), else of ``limit`` rows drawn with the run's
  seed (the same rows on every rank of a data-parallel run), before the first step;
* an iterable: a running mean of the batches as they arrive (in a data-parallel run, of every
  rank's batches, all-reduced), frozen once ``limit`` rows have been seen; the batches before
  that are centred by the mean so far (the first one by its own mean).

Checkpoints hold the sum and the count, so a resumed run centres as the uninterrupted one.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..checks import finite_rows
from .batches import check_finite


class Offset:
    """b = total / rows, growing with the batches until ``frozen`` (module docstring)."""

    def __init__(self, limit: int, total=None, rows: int = 0, frozen: bool = False):
        self.limit = int(limit)
        self.total = None if total is None else np.asarray(total, dtype=np.float64)
        self.rows = int(rows)
        self.frozen = bool(frozen)

    @classmethod
    def of_array(cls, X, limit: int, entropy: int) -> Offset:
        """The mean of the rows of the array X (a seeded sample of ``limit`` rows when it has more)."""
        n = X.shape[0]
        rows = np.arange(n) if n <= limit else np.sort(np.random.default_rng([entropy, 2]).choice(n, limit, replace=False))
        total = np.zeros(int(X.shape[1]))
        for lo in range(0, rows.size, 8192):  # a memmap reads a block of rows at a time
            part = backend.astype(backend.take_rows(X, rows[lo:lo + 8192]), "float64")
            total += backend.to_numpy(part.sum(0))
            if not np.isfinite(total).all():  # center=True reads these rows before the first step: name X's row
                ok = np.ones(n, dtype=bool)
                ok[rows[lo:lo + 8192]] = backend.to_numpy(backend.namespace(part).isfinite(part).all(1))
                finite_rows(ok, "X")
        return cls(limit, total, rows.size, frozen=True)

    def value(self) -> np.ndarray | None:
        """b (n_features,) in float64, or None before any row was seen."""
        return None if self.total is None else self.total / self.rows

    def center(self, batch, reducer, name="the batch"):
        """batch − b, after the batch has joined the running mean (until frozen; summed over the
        ranks by ``reducer``, a learning.reducer.Reducer).  bfloat16 rows
        are centred in float32: the learner rounds them to its storage type afterwards."""
        if backend.dtype_name(batch) == "bfloat16":
            batch = backend.astype(batch, "float32")
        if not self.frozen:
            sums = np.append(backend.to_numpy(backend.astype(batch, "float64").sum(0)), float(batch.shape[0]))
            if not np.isfinite(sums).all():
                check_finite(batch, name)  # before a NaN enters the mean that every later batch is centred by
            sums = reducer.sum(sums, "all-reduce of the centring's running mean")
            self.total = sums[:-1] if self.total is None else self.total + sums[:-1]
            self.rows += int(round(sums[-1]))
            self.frozen = self.rows >= self.limit
        return batch - backend.match(self.value(), batch)

    def state(self):
        """(arrays, meta) for a checkpoint."""
        arrays = {} if self.total is None else {"offset_total": self.total}
        return arrays, {"limit": self.limit, "rows": self.rows, "frozen": self.frozen}

    @classmethod
    def from_state(cls, arrays, meta) -> Offset:
        return cls(meta["limit"], arrays.get("offset_total"), meta["rows"], meta["frozen"])
