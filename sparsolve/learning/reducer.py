"""The reducer a fit is handed: how a step's work is shared among processes and its sums combined.

The learner (learner.py), the batch source (batches.py), the checkpoint and the driver (fit.py) ask
their reducer wherever the answer depends on how the work is split, and nowhere else do they know
that there are other processes:

* start-up:  ``survey`` (what each rank's data is: the mode, and the global rows), ``agree`` (every
             rank holds the same settings; rank 0's seed for all), ``check_batches``;
* data:      ``local`` (each rank its own data), ``rank`` / ``world_size`` (this rank's part of the
             data and the number of parts), ``local_rows`` (a rank's share of a global batch's rows of
             shared data), ``local_batches`` (its batches of a stream);
* the step:  ``global_rows`` (the global batch's rows: the first dictionary, resampling), ``plan``
             (the memory plan), ``lipschitz``, ``encode`` and ``reconstruct`` (inference under the
             dictionary), ``statistics`` (the update rule's statistics of the global batch),
             ``apply`` (its M-step), ``reset_atoms`` (resampled atoms' state), ``figures`` (the
             record over the global batch and the whole dictionary);
* atoms:     ``n_atoms`` (how many this rank holds), ``own_atoms`` / ``all_atoms`` (an array
             indexed by atoms: this rank's share of it, or every rank's shares joined);
* codes:     ``own_codes`` / ``all_codes`` (a checkpoint's warm-start codes);
* control:   ``is_root`` (rank 0 writes and reports), ``stop_together`` (a callback's stop ends
             every rank), ``any`` and ``sum`` (a flag or a host vector over the ranks), ``gather``
             and ``gather_objects`` (every data rank's rows of a host table, or objects: digests,
             stream positions), ``layout`` (what a checkpoint records of the split).

:class:`Identity` is one process: every answer is the input.  :class:`DataParallel` splits the data
over the P ranks of a torch.distributed process group, each holding the whole dictionary; the
atom-sharded reducer (sharded.py) splits the atoms too, over a data × atoms grid of ranks.

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

from .. import backend, memory
from ..inference import encode
from ..inference.problem import lipschitz_and_vector
from . import distributed

log = logging.getLogger("sparsolve")


class Reducer:
    """The protocol (module docstring), with the answers of a single process."""

    rank, world_size = 0, 1
    #: Each data rank has its own data (rank_data="local" over more than one data rank).
    local = False
    #: How many ranks share the atoms (shard="atoms"); 1: every rank holds them all.
    atom_shards = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # ---- start-up and control ---------------------------------------------------------------

    def survey(self, describe, rows, rank_data="auto"):
        """(the data's mode, "shared" or "local"; its rows over every rank, None for a stream): what
        each rank was given -- ``describe()`` says it (batches.summary), ``rows`` this rank's rows of
        an array (else None) -- compared across the ranks before any work."""
        return "shared", rows

    def check_batches(self, batch_size):
        """Refuse a batch size that would leave some rank a step without rows."""

    def agree(self, settings, entropy, **launch) -> int:
        """The seed entropy every rank uses, after checking that the ranks were launched alike."""
        return entropy

    def layout(self) -> dict:
        """How the work is split, for a checkpoint: a resume on another split warns where it changes
        the order of the data (fit.py)."""
        return {"data_ranks": self.world_size, "atom_shards": self.atom_shards, "local": self.local}

    def any(self, flag) -> bool:
        """True on every rank if ``flag`` is true on some rank."""
        return bool(flag)

    def sum(self, values, what):
        """Σ_r values_r: a host vector summed over the data ranks (``what`` names it in a failure)."""
        return values

    def gather(self, table):
        """Every data rank's rows of the host array ``table``, joined in rank order (on every rank)."""
        return table

    def gather_objects(self, obj) -> list:
        """``obj`` (picklable) of every data rank, in rank order."""
        return [obj]

    def stop_together(self, callback):
        """``callback`` (``callback(step, D, record)``, False stops; None: none) as one that stops
        every rank when it stops one, so no rank waits in a collective for a rank that left."""
        return callback

    # ---- data ---------------------------------------------------------------------------------

    def local_rows(self, rows):
        """This rank's share of the sorted host indices ``rows`` of a global batch of shared data."""
        return rows

    def local_batches(self, iterable):
        """(index, batch) of this rank's batches of a stream, shared or its own (module docstring)."""
        yield from enumerate(iterable)

    def together(self, iterable, start=0):
        """(index, batch) of a stream this rank reads whole (one that keeps its own position: a shard
        stream), counted from ``start``, while every data rank has a batch."""
        yield from enumerate(iterable, start)

    # ---- the step ---------------------------------------------------------------------------

    def global_rows(self, *arrays):
        """Each array's rows from every data rank, in global-batch order (one array in, one out)."""
        return arrays[0] if len(arrays) == 1 else arrays

    def plan(self, like, n_features, n_atoms, batch_size, update, form):
        """The memory plan (sparsolve.memory.plan_for) of this rank's share of the step."""
        return memory.plan_for(like, n_features, self.n_atoms(n_atoms), batch_size, update=update, form=form)

    def lipschitz(self, D, top):
        """(L, top eigenvector) of the dictionary (inference.problem.lipschitz_and_vector)."""
        return lipschitz_and_vector(D, top)

    def encode(self, X, D, alpha, **options):
        """The codes of this rank's rows X under the dictionary (sparsolve.encode)."""
        return encode(X, D, alpha, **options)

    def reconstruct(self, Z, D):
        """Z D, the rows' reconstruction."""
        return Z @ D

    def statistics(self, rule, X, Z, R, D, used, rows):
        """(the update ``rule``'s statistics, ``used``, ``rows``) of the global batch, from this rank's
        batch of ``rows`` rows and ``used`` (bool per atom: some code of the batch used it)."""
        return rule.statistics(X, Z, R, D), used, rows

    def apply(self, rule, D, stats, state, step):
        """The update rule's (new D, new state)."""
        return rule.apply(D, stats, state, step)

    def reset_atoms(self, rule, state, replaced):
        """The rule's state with the atoms of the host mask ``replaced`` (over every atom) started afresh."""
        return rule.reset_atoms(state, np.flatnonzero(self.own_atoms(replaced)))

    def figures(self, record, rows):
        """The step's record with its figures taken over the global batch and the whole dictionary:
        ``record`` has this rank's per-row means over its ``rows`` rows (objective, mse, l1, nnz_frac,
        converged_frac) and its per-atom figures over the atoms it holds (norm_min, norm_mean,
        norm_max, dead_frac)."""
        return record

    # ---- atoms and codes ----------------------------------------------------------------------

    def n_atoms(self, m) -> int:
        """How many of the dictionary's m atoms this rank holds."""
        return m

    def atom_block(self, m):
        """(first, stop): the atoms of the dictionary's m that this rank holds."""
        return 0, m

    def own_atoms(self, a):
        """This rank's share of ``a``, an array indexed by atoms (its first axis): D, a rule's state."""
        return a

    def all_atoms(self, a):
        """Every rank's share of an array indexed by atoms, joined (what a model holds)."""
        return a

    def saved_atoms(self, a):
        """:meth:`all_atoms` on rank 0, the checkpoint's writer (elsewhere what it may skip: None)."""
        return a

    def own_codes(self, Z):
        """This rank's part of the codes ``Z`` of a global batch (a checkpoint's warm start); None
        where they do not fit this split of the work."""
        return Z

    def all_codes(self, Z):
        """The global batch's codes from every rank's part ``Z``."""
        return Z


class Identity(Reducer):
    """One process: every answer is the input."""


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


def default_reducer(config=None) -> Reducer:
    """The reducer for a fit in this process: under an initialised default process group
    (torchrun; sparsolve.learning.distributed.init_from_env) :class:`DataParallel`, or with
    ``config.shard == "atoms"`` the atom-sharded reducer (sharded.py); else :class:`Identity`."""
    if not distributed.active():
        return Identity()
    if config is not None and config.shard == "atoms":
        from .sharded import AtomSharded

        return AtomSharded(config)
    return DataParallel()


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
