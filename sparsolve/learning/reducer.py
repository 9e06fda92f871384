"""The reducer a fit is handed: how a step's work is shared among processes and its sums combined.

The learner (learner.py), the batch source (batches.py), the checkpoint and the driver (fit.py) ask
their reducer wherever the answer depends on how the work is split, and nowhere else do they know
that there are other processes:

* start-up:  ``agree`` (every rank holds the same settings; rank 0's seed for all);
* data:      ``local_rows`` (a rank's share of a global batch's rows of shared data),
             ``local_batches`` (its share of a shared stream);
* the step:  ``global_rows`` (the global batch's rows: the first dictionary, resampling),
             ``lipschitz``, ``encode`` and ``reconstruct`` (inference under the dictionary),
             ``statistics`` (the update rule's statistics of the global batch), ``apply`` (the
             update rule's M-step), ``figures`` (the record's per-row means over the global batch);
* atoms:     ``n_atoms`` (how many this rank holds), ``own_atoms`` / ``all_atoms`` (an array
             indexed by atoms: this rank's share of it, or every rank's shares joined);
* codes:     ``own_codes`` / ``all_codes`` (a checkpoint's warm-start codes);
* control:   ``is_root`` (rank 0 writes and reports), ``stop_together`` (a callback's stop ends
             every rank), ``any`` and ``sum`` (a flag or a host vector over the ranks), ``gather``
             (every rank's rows of a host table: the digests of the batches each read, digests.py).

:class:`Identity` is one process: every answer is the input.  :class:`DataParallel` is the same data
on P ranks under a torch.distributed process group (issue 14):

The global batch.  Step k's global batch is the one a single-process fit with the
same seed and ``batch_size`` would see, cut into P parts:

* an array or memmap (the whole data set, the same on every rank): the rows of
  step k are drawn from the shared seed exactly as on one process, sorted, and rank
  r keeps the r-th of P contiguous runs of them (``local_rows``), so each rank
  reads only its rows and an epoch reads every row once over all ranks;
* an iterable (the same stream on every rank): global step k is the batches
  kP, …, kP + P − 1, and rank r keeps batch kP + r (``local_batches``); the
  one-process equivalent is the stream of those groups concatenated.

The update is exact.  With b_r rows on rank r and b = Σ_r b_r, the statistics of the
global batch are the row-weighted sums of the ranks' own,

    A = ZᵀZ / b = Σ_r b_r A_r / b,      B = ZᵀX / b = Σ_r b_r B_r / b,

(sgd: its gradient alike), so one all-reduce (``statistics``) gives every rank the statistics,
and so the update, the norm rule and the next dictionary, of the single-process step (to float
rounding).  The same call sums the per-atom use counts that drive the dead-atom counters; the
history figures are row-weighted means (``figures``); the first dictionary and the resampled
atoms are drawn from inputs gathered from every rank (``global_rows``) in global-batch order,
with the seed shared at start (``agree``), so every rank draws the same atoms.

What comes next (issue 24) is more reducers, not changes to the learner: per-rank data (each rank
its own rows: ``local_rows`` and ``local_batches`` give everything, ``agree`` stops comparing the
data) and atom sharding (each rank owns m/P atoms: ``n_atoms``, ``own_atoms``/``all_atoms`` split
and join D and the rules' state, ``encode``/``reconstruct``/``lipschitz`` all-reduce Σ_r Z_r D_r
and DᵀD = Σ_r D_rᵀD_r, and ``statistics``/``apply`` take the update rule's cross-shard terms).
"""
from __future__ import annotations

import hashlib
import warnings

import numpy as np

from .. import backend
from ..inference import encode
from ..inference.problem import lipschitz_and_vector
from . import distributed


class Reducer:
    """The protocol (module docstring), with the answers of a single process."""

    rank, world_size = 0, 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # ---- start-up and control ---------------------------------------------------------------

    def agree(self, settings, entropy, data, **launch) -> int:
        """The seed entropy every rank uses, after checking that the ranks were launched alike."""
        return entropy

    def any(self, flag) -> bool:
        """True on every rank if ``flag`` is true on some rank."""
        return bool(flag)

    def sum(self, values, what):
        """Σ_r values_r: a host vector summed over the ranks (``what`` names it in a failure)."""
        return values

    def gather(self, table):
        """Every rank's rows of the host array ``table``, joined in rank order (on every rank)."""
        return table

    def stop_together(self, callback):
        """``callback`` (``callback(step, D, record)``, False stops; None: none) as one that stops
        every rank when it stops one, so no rank waits in a collective for a rank that left."""
        return callback

    # ---- data ---------------------------------------------------------------------------------

    def local_rows(self, rows):
        """This rank's share of the sorted host indices ``rows`` of a global batch of shared data."""
        return rows

    def local_batches(self, iterable):
        """(index, batch) of this rank's batches of a shared stream."""
        yield from enumerate(iterable)

    # ---- the step ---------------------------------------------------------------------------

    def global_rows(self, *arrays):
        """Each array's rows from every rank, in global-batch order (one array in, one out)."""
        return arrays[0] if len(arrays) == 1 else arrays

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

    def own_atoms(self, a):
        """This rank's share of ``a``, an array indexed by atoms (its first axis): D, a rule's state."""
        return a

    def all_atoms(self, a):
        """Every rank's share of an array indexed by atoms, joined (what a checkpoint or model holds)."""
        return a

    def own_codes(self, Z):
        """This rank's part of the codes ``Z`` of a global batch (a checkpoint's warm start)."""
        return Z

    def all_codes(self, Z):
        """The global batch's codes from every rank's part ``Z``."""
        return Z


class Identity(Reducer):
    """One process: every answer is the input."""


class DataParallel(Reducer):
    """The same data on P ranks of the default torch.distributed process group (module docstring)."""

    # The history figures that are per-row means, so global means weight each rank by its rows.
    MEAN_FIGURES = ("objective", "mse", "l1", "nnz_frac", "converged_frac")

    @property
    def rank(self):
        return distributed.rank()

    @property
    def world_size(self):
        return distributed.world_size()

    def agree(self, settings, entropy, data, **launch):
        """Every rank must hold the same ``settings`` (a dict with ``batch_size``), the same data
        (``data``: the array, or None for an iterable or a rank's own batch) and the same ``launch``
        values (checkpoint, dict_init, ...); every global batch must give each rank a row.  A
        mismatch raises a ValueError on every rank naming rank 0's value and the other rank's."""
        mine = dict(settings)
        # Arrays among them (dict_init) are compared by a checksum of every entry.
        mine.update({k: _checksum(v) if hasattr(v, "__len__") and not isinstance(v, str) else v
                     for k, v in launch.items()})
        if data is None:
            mine["data"] = "an iterable"
        else:
            mine["data shape"] = tuple(int(v) for v in data.shape)
            mine["data dtype"] = backend.dtype_name(data)
            mine["data checksum (rows 0, n/2, n-1)"] = _fingerprint(data)
        every = distributed.all_gather_objects((mine, entropy), "startup exchange of settings")
        for r, (theirs, _) in enumerate(every[1:], start=1):
            for key in list(every[0][0]) + [k for k in theirs if k not in every[0][0]]:  # settings first
                a, b = every[0][0].get(key), theirs.get(key)
                if a != b:
                    raise ValueError(f"data-parallel fit: {key} is {a!r} on rank 0 but {b!r} on rank {r}; launch "
                                     "every rank with the same arguments and data (and a checkpoint path all ranks "
                                     "can read)")
        P = self.world_size
        if data is not None:
            n, bs = int(data.shape[0]), settings["batch_size"]
            smallest = min(bs, n % bs or bs)
            if smallest < P:
                raise ValueError(f"data-parallel fit on {P} ranks needs at least {P} rows in every batch, but with "
                                 f"{n} rows and batch_size={bs} a batch has {smallest}; use a batch_size ≥ {P} that "
                                 f"leaves a last batch of 0 or ≥ {P} rows (n_samples % batch_size)")
        return every[0][1]

    def any(self, flag):
        (v,) = distributed.all_reduce_sum(np.array([float(bool(flag))]), what="all-reduce of the callbacks' stop flags")
        return bool(v[0] > 0)

    def stop_together(self, callback):
        def on_every_rank(step, D, record):
            stop = callback is not None and callback(step, D, record) is False
            return False if self.any(stop) else None

        return on_every_rank

    def local_rows(self, rows):
        """The rank-th of P contiguous, near-equal runs of ``rows`` (np.array_split's), so the parts
        in rank order are ``rows``."""
        return np.array_split(rows, self.world_size)[self.rank]

    def local_batches(self, iterable):
        """Rank r keeps batch kP + r of each group of P.  The index is the stream index of the
        group's last batch, so the next position index + 1 counts batches at every world size (a
        resume at another P restarts at the first group not wholly seen).  An incomplete last group
        is dropped, with a warning on rank 0."""
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

    def global_rows(self, *arrays):
        return distributed.gather_rows(*arrays)

    def sum(self, values, what):
        (values,) = distributed.all_reduce_sum(values, what=what)
        return values

    def gather(self, table):
        return distributed.gather_rows(table)

    def statistics(self, rule, X, Z, R, D, used, rows):
        """Each statistic as Σ_r b_r S_r / b (module docstring), ``used`` true where any rank used
        the atom, ``rows`` = b: one call, the all-reduces in flight together."""
        stats = rule.statistics(X, Z, R, D)
        for s in stats:  # weighted by b_r in place: the statistics are the step's own fresh arrays
            s *= rows
        counts = np.append(backend.to_numpy(used).astype(np.float64), float(rows))
        *stats, counts = distributed.all_reduce_sum(*stats, counts, what="all-reduce of the step's statistics")
        total = float(counts[-1])
        return tuple(s / total for s in stats), counts[:-1] > 0, int(round(total))

    def figures(self, record, rows):
        sums = np.array([backend.item(record[k]) * rows for k in self.MEAN_FIGURES] + [float(rows)])
        (sums,) = distributed.all_reduce_sum(sums, what="all-reduce of the step's history figures")
        record.update({k: float(v / sums[-1]) for k, v in zip(self.MEAN_FIGURES, sums)})
        return record

    def own_codes(self, Z):
        return self.local_rows(Z)

    def all_codes(self, Z):
        return distributed.gather_rows(Z)


def default_reducer(config=None) -> Reducer:
    """The reducer for a fit in this process: :class:`DataParallel` under an initialised default
    process group (torchrun; sparsolve.learning.distributed.init_from_env), else :class:`Identity`.
    ``config`` (a FitConfig) is where a choice among more reducers will be read from."""
    return DataParallel() if distributed.active() else Identity()


def _checksum(a):
    return hashlib.sha1(np.ascontiguousarray(backend.to_numpy(a), dtype=np.float64).tobytes()).hexdigest()[:12]


def _fingerprint(X):
    """A checksum of three rows of X (first, middle, last): cheap evidence that every rank has the same data."""
    n = X.shape[0]
    return _checksum(X[backend.like(np.array(sorted({0, n // 2, n - 1})), X)])
