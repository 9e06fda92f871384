"""The reducer a fit is handed: how a step's work is shared among processes and its sums combined.

The learner (learner.py), the batch source (batches.py), the checkpoint and the driver (fit.py) ask
their reducer wherever the answer depends on how the work is split, and nowhere else do they know
that there are other processes:

* start-up:  ``survey`` (what each rank's data is: the mode, and the global rows), ``agree`` (every
             rank holds the same settings; rank 0's seed for all), ``check_batches``;
* data:      ``local`` (each rank its own data), ``rank`` / ``world_size`` (this rank's part of the
             data and the number of parts), ``local_rows`` (a rank's share of a global batch's rows of
             shared data), ``local_batches`` (its batches of a stream), ``together`` (a stream each
             rank reads whole, while every rank has a batch);
* the step:  ``global_rows`` (the global batch's rows: the first dictionary, resampling), ``plan``
             (the memory plan), ``lipschitz``, ``encode`` and ``reconstruct`` (inference under the
             dictionary), ``statistics`` (the update rule's statistics of the global batch),
             ``apply`` (its M-step), ``reset_atoms`` (resampled atoms' state), ``figures`` (the
             record over the global batch and the whole dictionary);
* atoms:     ``n_atoms`` and ``atom_block`` (how many this rank holds, which), ``own_atoms`` /
             ``all_atoms`` (an array indexed by atoms: this rank's share of it, or every rank's
             shares joined), ``saved_atoms`` (joined on rank 0 alone, for a checkpoint);
* codes:     ``own_codes`` / ``all_codes`` (a checkpoint's warm-start codes);
* control:   ``is_root`` (rank 0 writes and reports), ``stop_together`` (a callback's stop ends
             every rank), ``any`` and ``sum`` (a flag or a host vector over the ranks), ``gather``
             and ``gather_objects`` (every data rank's rows of a host table, or objects: digests,
             stream positions), ``layout`` (what a checkpoint records of the split).

:class:`Identity` is one process: every answer is the input.  :class:`~.data_parallel.DataParallel`
splits the data over the ranks of a torch.distributed process group, each holding the whole
dictionary (data_parallel.py: shared data or each rank's own, and why the update stays exact);
:class:`~.sharded.AtomSharded` splits the atoms too, over a data × atoms grid of ranks (sharded.py).
Only these modules and distributed.py know that there are other processes.
"""
from __future__ import annotations

import numpy as np

from .. import backend, memory
from ..inference import encode
from ..inference.problem import lipschitz_and_vector


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
        """Z D, the rows' reconstruction (from Z's nonzeros where it is sparse: backend.codes_times)."""
        return backend.codes_times(Z, D)

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
