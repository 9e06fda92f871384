"""Atom sharding (``FitConfig.shard="atoms"``): each rank holds a block of the dictionary's atoms.

The ranks form a grid of ``world_size / atom_shards`` data groups × ``atom_shards`` atom blocks:
rank r = d·k + a (k = atom_shards) holds block a of the atoms (rows of D, near-equal blocks of
⌈m/k⌉ or ⌊m/k⌋ atoms: any m ≥ k) and reads data part d (shared data: part d of each step's rows;
local data: the ranks of a data group must be given the same data, X[d::world/k]).  Consecutive
ranks share a dictionary, so on GPUs the all-reduce that every iteration needs stays inside a node.

A step, for the rows X (b × p) of data part d, on the rank of block J:

* inference (ista, fista, lca; factored form): the reconstruction ZD = Σ_r Z_r D_r is one
  all-reduce of a (b × p) array over the atom group per iteration (FISTA and LCA evaluate one
  correlation c_J = (X − ZD) D_Jᵀ an iteration; their momentum restart adds a b-vector all-reduce,
  and a certificate a reconstruction and two b-vectors: ‖z‖₁ and ‖c‖∞); L = ‖D‖₂² from
  DᵀD = Σ_r D_rᵀ D_r (a p × p all-reduce a step; where m ≤ p, from the gathered D as on one
  process).  cd and omp are refused (their coordinate order crosses the blocks at every
  coordinate), and so is the Gram form.  The solvers are the one-process ones: the reduction is
  :class:`AtomGroup`, which sparsolve.inference's LassoProblem takes as its ``shards``;
* the update rule's statistics of the block (UpdateRule.shard_statistics): sgd's rows of the
  gradient −Z_JᵀR/b + decay·D_J need nothing more; online's rows of A = ZᵀZ/b need every block's
  codes (Z_Jᵀ Z: one all-gather of Z, b × m, a step) and its pass every block's atoms
  (rules.online.online_sharded: one all-gather of D, m × p, and each block's new atoms broadcast
  in turn, so the pass stays Gauss–Seidel in atom order); mod (one m × m solve) is refused;
* the statistics are then all-reduced over the data group, row-weighted, as in data-parallel fits;
  the norm rule is per atom; dead atoms are decided on the joined mask and resampled on the joined
  dictionary, every rank drawing alike, each keeping its block.

So a step is the single-process step, to float rounding (sums over atoms are grouped by block).
Memory per rank: the block's atoms and their state (online: Ā_J,: and B̄_J, m²/k + m·p/k floats and
their temporaries), and what a step gathers (online: D and Z); sparsolve.memory plans it per rank.
A checkpoint joins the blocks on rank 0 alone (gathered there, not on every rank), so it resumes
on any grid or on one process; rank 0's host then holds the whole state while it writes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import backend, memory
from ..inference import encode
from ..inference.problem import lipschitz_and_vector
from . import distributed
from .data_parallel import DataParallel


class AtomGroup:
    """The k ranks whose blocks of atoms make up one dictionary: this rank holds block ``index`` of
    ``count`` (atoms ``block(index)``).  Its ``sum`` and ``max`` are what inference's LassoProblem
    combines partial results with; ``codes``, ``atoms`` and ``broadcast`` what an update rule's
    sharded step needs (rules.base.UpdateRule.shard_statistics)."""

    def __init__(self, group, index, count, sizes):
        self.group, self.index, self.count = group, int(index), int(count)
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    def block(self, t):
        """(first, stop) atom of block t."""
        return int(self.bounds[t]), int(self.bounds[t + 1])

    def sum(self, a):
        """Σ over the blocks of ``a`` (partial reconstructions Σ_r Z_r D_r, row sums over atoms)."""
        return distributed.all_reduce_sum(a, what="all-reduce of the atom blocks' partial sums (Σ_r Z_r D_r)",
                                          group=self.group)[0]

    def max(self, a):
        return distributed.all_reduce_max(a, what="all-reduce of the atom blocks' maxima", group=self.group)[0]

    def atoms(self, a):
        """Every block's rows of ``a`` (indexed by atoms), joined in atom order."""
        if backend.dtype_name(a) == "bool":  # collectives carry numbers
            return backend.astype(self.atoms(backend.astype(a, "uint8")), "bool")
        return distributed.gather_rows(a, group=self.group, what="dictionary")

    def codes(self, Z):
        """Every block's columns of the codes Z (rows × block), joined: the codes over every atom."""
        return distributed.gather_rows(Z.T, group=self.group, what="dictionary").T

    def broadcast(self, a, t):
        """Block t's ``a``, on every rank of the group (the others pass an array of its shape)."""
        return distributed.broadcast(a, t, what=f"broadcast of atom block {t}", group=self.group)


class AtomSharded(DataParallel):
    """Data × atoms over the ranks of the default process group (module docstring), for the
    (resolved or not) FitConfig ``config``: its n_atoms, alpha and atom_shards."""

    def __init__(self, config):
        world, me = distributed.world_size(), distributed.rank()
        k = world if config.atom_shards is None else config.atom_shards
        if world % k:
            fits = [d for d in range(1, world + 1) if world % d == 0]
            raise ValueError(f"atom_shards={k} does not divide the {world} ranks into data groups; use one of {fits}")
        m = config.n_atoms
        if m < k:
            raise ValueError(f"n_atoms={m} in atom_shards={k} blocks would leave a rank without atoms; use "
                             f"atom_shards ≤ {m}")
        d, a = divmod(me, k)
        groups = world // k
        atom_group = distributed.new_groups([[g * k + i for i in range(k)] for g in range(groups)])
        data_group = distributed.new_groups([[i + g * k for g in range(groups)] for i in range(k)])
        super().__init__(data_group, d, groups)
        self.atom_shards = k
        self.m, self.alpha = m, float(config.alpha)
        self.shards = AtomGroup(atom_group, a, k, [len(part) for part in np.array_split(np.arange(m), k)])

    # ---- start-up: a data group's ranks hold the same data -----------------------------------------

    def _data_parts(self, every):
        k = self.atom_shards
        for g in range(len(every) // k):
            first = every[g * k]
            for i in range(1, k):
                theirs = every[g * k + i]
                if first["kind"] != "stream" and theirs != first:
                    raise ValueError(f"shard='atoms': ranks {g * k} and {g * k + i} hold blocks of one dictionary, "
                                     "so they encode the same rows, but they were given different data; give the "
                                     f"{k} ranks of each data group the same data (X[d::{len(every) // k}] with "
                                     f"d = rank // {k}), or the whole data set to every rank")
        return every[::k]

    def _global_of_data_rank(self, r):
        return r * self.atom_shards + self.shards.index

    def local_batches(self, iterable):
        """The data group's batches (reducer.DataParallel), each checked to be the same on the ranks of
        the atom group (its shape and two sums: they encode it together)."""
        return self._alike(super().local_batches(iterable))

    def together(self, iterable, start=0):
        return self._alike(super().together(iterable, start))

    def _alike(self, batches):
        for index, batch in batches:
            if batch is not None and hasattr(batch, "shape"):
                b = backend.astype(batch, "float64")
                mine = (tuple(batch.shape), backend.item((b * 1).sum()), backend.item((b * b).sum()))
                every = distributed.all_gather_objects(mine, "exchange of the batch's checksum", self.shards.group)
                for i, theirs in enumerate(every):
                    if theirs != every[0]:
                        base = self._global_of_data_rank(self.rank) - self.shards.index
                        raise ValueError(f"shard='atoms': ranks {base} and {base + i} encode the same rows, but "
                                         f"their batch {index} differs (shape and sums {every[0]} against {theirs}); "
                                         "give the ranks of a data group the same stream")
            yield index, batch

    # ---- the step ------------------------------------------------------------------------------------

    def plan(self, like, n_features, n_atoms, batch_size, update, form):
        """The plan of this rank's block; every rank of the group takes the fewest rows per chunk
        (their encodes meet in every iteration's all-reduce)."""
        plan = memory.plan_for(like, n_features, n_atoms, batch_size, update=update, form=form,
                               atom_shards=self.atom_shards)
        rows = -self.shards.max(np.array([-float(plan.chunk_rows)]))[0]
        return dataclasses.replace(plan, chunk_rows=int(rows))

    def lipschitz(self, D, top):
        if self.m <= D.shape[1]:
            return lipschitz_and_vector(self.shards.atoms(D), top)
        return lipschitz_and_vector(None, top, DtD=self.shards.sum(D.T @ D))

    def encode(self, X, D, alpha, **options):
        return encode(X, D, alpha, shards=self.shards, **options)

    def reconstruct(self, Z, D):
        return self.shards.sum(backend.codes_times(Z, D))

    def statistics(self, rule, X, Z, R, D, used, rows):
        return self._weighted(rule.shard_statistics(X, Z, R, D, self.shards), used, rows)

    def apply(self, rule, D, stats, state, step):
        return rule.shard_apply(D, stats, state, step, self.shards)

    def reset_atoms(self, rule, state, replaced):
        own, every = np.flatnonzero(self.own_atoms(replaced)), np.flatnonzero(replaced)
        return rule.shard_reset_atoms(state, own, every, self.shards)

    def figures(self, record, rows):
        """The block's figures joined over the atom group (‖z‖₁ summed and the objective with it; the
        per-atom figures weighted by the blocks' sizes), then over the data group."""
        k, m = self.n_atoms(self.m), self.m
        v = {key: backend.item(record[key]) for key in ("objective", "l1", "nnz_frac", "norm_min", "norm_mean",
                                                        "norm_max", "dead_frac")}
        sums = self.shards.sum(np.array([v["l1"], v["nnz_frac"] * k, v["norm_mean"] * k, v["dead_frac"] * k]))
        most = self.shards.max(np.array([v["norm_max"], -v["norm_min"]]))
        record.update(objective=v["objective"] + self.alpha * (sums[0] - v["l1"]), l1=float(sums[0]),
                      nnz_frac=float(sums[1] / m), norm_mean=float(sums[2] / m), dead_frac=float(sums[3] / m),
                      norm_max=float(most[0]), norm_min=float(-most[1]))
        return super().figures(record, rows)

    # ---- atoms and codes -----------------------------------------------------------------------------

    def n_atoms(self, m):
        lo, hi = self.atom_block(m)
        return hi - lo

    def atom_block(self, m):
        return self.shards.block(self.shards.index)

    def own_atoms(self, a):
        lo, hi = self.shards.block(self.shards.index)
        return backend.copy(a[lo:hi])  # a copy: the whole array need not stay alive

    def all_atoms(self, a):
        return self.shards.atoms(a)

    def saved_atoms(self, a):
        """Joined on rank 0 alone: the other data groups hold copies, and online's Ā joined is m × m."""
        if self._rank != 0:  # rank 0 is block 0 of data group 0
            return None
        if backend.dtype_name(a) == "bool":
            a = backend.astype(a, "uint8")
        return distributed.gather_rows_to_first(a, self.shards.group)

    def own_codes(self, Z):
        rows = super().own_codes(Z)
        lo, hi = self.shards.block(self.shards.index)
        return None if rows is None or rows.shape[1] != self.m else rows[:, lo:hi]

    def all_codes(self, Z):
        return super().all_codes(self.shards.codes(Z))
