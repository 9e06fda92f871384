"""Data-parallel fits: the data split over the ranks of a torch.distributed process group, each rank
holding the whole dictionary (the reducer protocol: reducer.py).

Data (``FitConfig.rank_data``, settled by :meth:`Reducer.survey`):

* **shared**, the same data set on every rank.  Step k's global batch is the one a single-process
  fit with the same seed and ``batch_size`` would see, cut into P parts: an array's rows of step k
  are drawn from the shared seed exactly as on one process, sorted, and rank r keeps the r-th of P
  contiguous runs of them (``local_rows``), so each rank reads only its rows; a stream's global step
  k is the batches kP, …, kP + P − 1, and rank r keeps batch kP + r (``local_batches``); a shard
  directory is dealt out to the ranks by whole shards (sparsolve.data.ShardStream's ``rank``).
* **local**, each rank its own data (the DDP convention: ``X[rank::world]``, a rank's own memmap,
  stream or shard directory, of any size).  The global batch is the union of the ranks' batches.
  An array's epoch has the single process's K = ⌈N/batch_size⌉ steps (N: the rows of all ranks) on
  every rank, and rank r's share of step k is the rows ⌊k·b·n_r/N⌋ … ⌊(k+1)·b·n_r/N⌋ − 1 of its
  epoch order (n_r its rows, b = batch_size; the last step takes the rest): proportional to its
  rows, so every rank ends its epoch at the same step and an epoch reads every row once.  A rank's
  order is its own seeded permutation (rank 0's is the single process's).  A stream gives one batch
  per rank per step; **when one rank's stream ends, the epoch ends on every rank** (the batches the
  other ranks drew for that step are dropped, and rank 0 warns naming the ranks): every rank learns
  at each step whether all have a batch (one all-reduce of a flag), so no rank waits on a rank
  that has finished.  With ``shuffle=False`` and X[rank::P] of equal sizes, the global batches are
  exactly the single process's on the whole of X.

The update is exact.  With b_r rows on rank r and b = Σ_r b_r, the statistics of the
global batch are the row-weighted sums of the ranks' own,

    A = ZᵀZ / b = Σ_r b_r A_r / b,      B = ZᵀX / b = Σ_r b_r B_r / b,

(sgd: its gradient alike), so one all-reduce (``statistics``) gives every rank the statistics,
and so the update, the norm rule and the next dictionary, of the single-process step (to float
rounding).  The same call sums the per-atom use counts that drive the dead-atom counters; the
history figures are row-weighted means (``figures``); the first dictionary and the resampled
atoms are drawn from inputs gathered from every rank (``global_rows``) in global-batch order,
with the seed shared at start (``agree``), so every rank draws the same atoms.
"""
from __future__ import annotations

import hashlib
import logging
import warnings

import numpy as np

from .. import backend
from . import distributed
from .reducer import Reducer

log = logging.getLogger("sparsolve")


class DataParallel(Reducer):
    """The data split over the P ranks of the default torch.distributed process group, each holding
    the whole dictionary (module docstring).  ``group``/``data_rank``/``data_ranks``: in a grid of
    ranks (sharded.py), the data ranks this one combines with, its place among them and their number;
    by default every rank."""

    # The history figures that are per-row means, so global means weight each rank by its rows.
    MEAN_FIGURES = ("objective", "mse", "l1", "nnz_frac", "converged_frac")

    def __init__(self, group=None, data_rank=None, data_ranks=None):
        self.group = group
        self._rank = distributed.rank() if data_rank is None else data_rank
        self._world = distributed.world_size() if data_ranks is None else data_ranks
        self.local = False
        self.rows_per_rank = None  # local arrays: every data rank's rows (survey)
        self.total_rows = None

    @property
    def rank(self):
        return self._rank

    @property
    def world_size(self):
        return self._world

    @property
    def is_root(self):
        return distributed.rank() == 0

    # ---- start-up ------------------------------------------------------------------------------

    def survey(self, describe, rows, rank_data="auto"):
        """Every rank's data, compared: widths and dtypes must agree (the error names both ranks and
        values); ``rank_data="shared"`` needs the same data everywhere, "local" takes each rank's own,
        and "auto" is shared where the arrays or shard directories are the same on every rank and
        local otherwise (streams: local).  Rank 0 logs the mode."""
        mine = describe()
        every = distributed.all_gather_objects(mine, "startup exchange of what each rank's data is")
        self._check_alike(every)
        parts = self._data_parts(every)  # one description per data rank, in data-rank order
        same = all(p == parts[0] for p in parts) and mine["kind"] != "stream"
        if rank_data == "shared" and mine["kind"] != "stream" and not same:
            key, r, a, b = _first_difference(parts)
            raise ValueError(f"data-parallel fit with rank_data='shared': {key} is {a!r} on rank 0 but {b!r} on rank "
                             f"{self._global_of_data_rank(r)}; pass every rank the same data, or rank_data='local' "
                             "(or 'auto') where each rank passes its own part (X[rank::world])")
        mode = rank_data if rank_data != "auto" else ("shared" if same else "local")
        self.local = mode == "local" and self.world_size > 1
        total = None
        if mine["kind"] == "array":
            rows = [p["shape"][0] for p in parts]
            self.rows_per_rank = rows
            total = sum(rows) if self.local else rows[0]
        elif mine["kind"] == "shards" and not self.local:
            total = sum(f[1] for f in mine["files"])
        self.total_rows = total
        if self.is_root and distributed.world_size() > 1:
            said = {"shared": "the same data on every rank: each step's rows are split among them",
                    "local": "each rank its own data: a step's global batch is the union of the ranks' batches"}
            log.info("rank_data=%r%s: %s", mode, " (detected)" if rank_data == "auto" else "", said[mode])
        return mode, total

    def _check_alike(self, every):
        for r, theirs in enumerate(every[1:], start=1):
            for key in ("kind", "n_features", "dtype"):
                a, b = every[0].get(key), theirs.get(key)
                if a is not None and b is not None and a != b:
                    raise ValueError(f"data-parallel fit: {_WORDS[key]} is {a!r} on rank 0 but {b!r} on rank {r}; "
                                     "every rank's data must have the same kind, width and dtype")

    def _data_parts(self, every):
        """One description per data rank (the data ranks' own: every rank, here)."""
        return every

    def _global_of_data_rank(self, r):
        return r

    def check_batches(self, batch_size):
        P = self.world_size
        if self.rows_per_rank is None or P == 1:
            return
        if self.local:
            n, bs = self.total_rows, batch_size
            for r, rows in enumerate(self.rows_per_rank):
                if rows * bs < n:
                    raise ValueError(f"rank {self._global_of_data_rank(r)} holds {rows} rows, but a step takes "
                                     f"batch_size·{rows}/{n} of them (its share of the {n} rows of all ranks), less "
                                     f"than one; use a batch_size ≥ {-(-n // rows)}, or give that rank more rows")
            return
        n, bs = self.rows_per_rank[0], batch_size
        smallest = min(bs, n % bs or bs)
        if smallest < P:
            raise ValueError(f"data-parallel fit on {P} ranks needs at least {P} rows in every batch, but with "
                             f"{n} rows and batch_size={bs} a batch has {smallest}; use a batch_size ≥ {P} that "
                             f"leaves a last batch of 0 or ≥ {P} rows (n_samples % batch_size)")

    def agree(self, settings, entropy, **launch):
        """Every rank must hold the same ``settings`` (a dict) and the same ``launch`` values
        (checkpoint, dict_init, ...).  A mismatch raises a ValueError on every rank naming rank 0's
        value and the other rank's."""
        mine = dict(settings)
        # Arrays among them (dict_init) are compared by a checksum of every entry.
        mine.update({k: _checksum(v) if hasattr(v, "__len__") and not isinstance(v, str) else v
                     for k, v in launch.items()})
        every = distributed.all_gather_objects((mine, entropy), "startup exchange of settings")
        for r, (theirs, _) in enumerate(every[1:], start=1):
            for key in list(every[0][0]) + [k for k in theirs if k not in every[0][0]]:  # settings first
                a, b = every[0][0].get(key), theirs.get(key)
                if a != b:
                    raise ValueError(f"data-parallel fit: {key} is {a!r} on rank 0 but {b!r} on rank {r}; launch "
                                     "every rank with the same arguments (and a checkpoint path all ranks can read)")
        return every[0][1]

    def any(self, flag):
        (v,) = distributed.all_reduce_sum(np.array([float(bool(flag))]), what="all-reduce of the callbacks' stop flags")
        return bool(v[0] > 0)

    def stop_together(self, callback):
        def on_every_rank(step, D, record):
            stop = callback is not None and callback(step, D, record) is False
            return False if self.any(stop) else None

        return on_every_rank

    # ---- data ------------------------------------------------------------------------------------

    def local_rows(self, rows):
        """The rank-th of P contiguous, near-equal runs of ``rows`` (np.array_split's), so the parts
        in rank order are ``rows``."""
        return np.array_split(rows, self.world_size)[self.rank]

    def local_batches(self, iterable):
        """Shared: rank r keeps batch kP + r of each group of P.  The index is the stream index of the
        group's last batch, so the next position index + 1 counts batches at every world size (a
        resume at another P restarts at the first group not wholly seen).  An incomplete last group
        is dropped, with a warning on rank 0.  Local: the rank's own batches, while every rank has
        one (module docstring)."""
        if self.local:
            yield from self.together(iterable)
            return
        P, r = self.world_size, self.rank
        group, index = [], -1
        for index, batch in enumerate(iterable):
            group.append(batch)
            if len(group) == P:
                yield index, group[r]
                group = []
        if group and self.is_root:
            warnings.warn(f"the last {len(group)} batch(es) of the stream (up to index {index}) were dropped: a "
                          f"step takes one batch on each of the {P} ranks", stacklevel=2)

    def together(self, iterable, start=0):
        P = self.world_size
        if P == 1:
            yield from enumerate(iterable, start)
            return
        stream = iter(iterable)
        for index in range(start, 1 << 62):
            batch = next(stream, None)
            flags = np.zeros(P)
            flags[self.rank] = batch is not None
            (flags,) = distributed.all_reduce_sum(flags, what="all-reduce of which ranks have a batch",
                                                  group=self.group)
            if flags.all():
                yield index, batch
                continue
            if flags.any() and self.is_root:
                ended = [int(self._global_of_data_rank(q)) for q in np.flatnonzero(flags == 0)]
                more = [int(self._global_of_data_rank(q)) for q in np.flatnonzero(flags)]
                warnings.warn(f"the epoch ended at its batch {index}: rank(s) {ended} had no more batches, so the "
                              f"batches that rank(s) {more} drew for it were dropped (a step takes one batch from "
                              "every rank; the epoch ends when the first rank's stream ends)", stacklevel=2)
            return

    # ---- the step ---------------------------------------------------------------------------------

    def global_rows(self, *arrays):
        return distributed.gather_rows(*arrays, group=self.group)

    def sum(self, values, what):
        (values,) = distributed.all_reduce_sum(values, what=what, group=self.group)
        return values

    def gather(self, table):
        return distributed.gather_rows(table, group=self.group)

    def gather_objects(self, obj):
        return distributed.all_gather_objects(obj, "exchange of the ranks' positions", self.group)

    def statistics(self, rule, X, Z, R, D, used, rows):
        """Each statistic as Σ_r b_r S_r / b (module docstring), ``used`` true where any rank used
        the atom, ``rows`` = b: one call, the all-reduces in flight together."""
        return self._weighted(rule.statistics(X, Z, R, D), used, rows)

    def _weighted(self, stats, used, rows):
        for s in stats:  # weighted by b_r in place: the statistics are the step's own fresh arrays
            s *= rows
        counts = np.append(backend.to_numpy(used).astype(np.float64), float(rows))
        *stats, counts = distributed.all_reduce_sum(*stats, counts, what="all-reduce of the step's statistics",
                                                    group=self.group)
        total = float(counts[-1])
        return tuple(s / total for s in stats), counts[:-1] > 0, int(round(total))

    def figures(self, record, rows):
        sums = np.array([backend.item(record[k]) * rows for k in self.MEAN_FIGURES] + [float(rows)])
        (sums,) = distributed.all_reduce_sum(sums, what="all-reduce of the step's history figures", group=self.group)
        record.update({k: float(v / sums[-1]) for k, v in zip(self.MEAN_FIGURES, sums)})
        return record

    def own_codes(self, Z):
        if not self.local:
            return self.local_rows(Z)
        counts = self.rows_per_rank  # full-batch codes: every rank's rows, in rank order
        if counts is None or Z.shape[0] != sum(counts):
            return None
        lo = sum(counts[:self.rank])
        return Z[lo:lo + counts[self.rank]]

    def all_codes(self, Z):
        return distributed.gather_rows(Z, group=self.group)


# ---- what a rank was given --------------------------------------------------------------------

_WORDS = {"kind": "the data's kind", "n_features": "n_features", "dtype": "the data's dtype", "shape": "its shape",
          "rows": "a hash of 16 of its rows", "files": "the shard files (name, rows, width, dtype)"}


def _first_difference(parts):
    for r, theirs in enumerate(parts[1:], start=1):
        for key in parts[0]:
            if parts[0][key] != theirs.get(key):
                return _WORDS.get(key, key), r, parts[0][key], theirs.get(key)
    return "the data", 0, None, None


def _checksum(a):
    return hashlib.sha1(np.ascontiguousarray(backend.to_numpy(a), dtype=np.float64).tobytes()).hexdigest()[:12]
