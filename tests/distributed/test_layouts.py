"""How the work is split, checked in one process: the shares of each rank's own data and of a shard
directory, atom blocks' inference and online pass against the whole dictionary's (blocks run as
threads that exchange their partial results), and the settings and memory plans of atom sharding."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import sparsolve
from sparsolve import memory
from sparsolve.config import FitConfig
from sparsolve.data import ShardStream
from sparsolve.inference import lipschitz, solver_class
from sparsolve.learning.batches import Source
from sparsolve.learning.data_parallel import DataParallel
from sparsolve.rules import norm_rule
from sparsolve.rules.online import online, online_sharded

torch = pytest.importorskip("torch")


# ---- each rank its own data, and a dealt-out shard directory --------------------------------------

@pytest.mark.parametrize("sizes", [(230, 170), (100, 97, 203), (64, 64, 64, 64)])
def test_local_arrays_share_every_step_in_proportion_and_read_every_row_once(sizes):
    """Each rank's epoch has the single process's ⌈N/batch_size⌉ steps, its rows are read once an epoch,
    and a step's global batch is batch_size rows give or take one a rank."""
    N, bs = sum(sizes), 50
    config = FitConfig(8, 0.1, batch_size=bs, n_epochs=1).resolved(N)
    steps = []
    for r, n in enumerate(sizes):
        reducer = DataParallel(data_rank=r, data_ranks=len(sizes))
        reducer.local, reducer.total_rows = True, N
        source = Source(np.arange(n, dtype=np.float64)[:, None] + 1, config, entropy=5, reducer=reducer)
        batches = [b for _, _, b, _ in source.batches((0, 0))]
        assert len(batches) == -(-N // bs)
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)[:, 0]), np.arange(n) + 1)
        steps.append([len(b) for b in batches])
    for k, rows in enumerate(zip(*steps)):
        want = bs if k < len(steps[0]) - 1 else N - bs * (len(steps[0]) - 1)
        assert abs(sum(rows) - want) <= len(sizes)


@pytest.fixture
def shard_dir(tmp_path):
    rng = np.random.default_rng(0)
    for i, n in enumerate((70, 80, 110, 40, 100, 13)):
        np.save(tmp_path / f"s{i}.npy", rng.standard_normal((n, 3)).astype(np.float32))
    return tmp_path


@pytest.mark.parametrize("ranks", [2, 3])
def test_shard_directory_dealt_out_reads_every_shard_once_an_epoch(shard_dir, ranks):
    """Whole shards per rank, every row once over the ranks in every epoch, and the same number of
    batches on every rank."""
    streams = [ShardStream(shard_dir, 32, seed=4, block_rows=16, window_blocks=2, rank=r, ranks=ranks)
               for r in range(ranks)]
    starts = np.cumsum([0, 70, 80, 110, 40, 100, 13])
    for epoch in range(2):
        rows = [s.epoch_rows(epoch) for s in streams]
        np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(413))
        for k in range(6):  # each shard on one rank
            shard = set(range(starts[k], starts[k + 1]))
            assert sum(bool(shard & set(r.tolist())) for r in rows) == 1
        batches = [list(s) for s in streams]
        assert len({len(b) for b in batches}) == 1 and len(batches[0]) == len(streams[0]) == -(-413 // 32)
        for s, b in zip(streams, batches):
            read = np.concatenate(b)
            want = np.concatenate([np.load(shard_dir / f"s{k}.npy") for k in range(6)])[s.epoch_rows(epoch)]
            np.testing.assert_array_equal(read, want)


def test_a_dealt_stream_resumes_at_its_batch_on_another_number_of_ranks(shard_dir):
    two = ShardStream(shard_dir, 32, seed=4, rank=1, ranks=2)
    it = iter(two)
    for _ in range(5):
        next(it)
    state = two.state_dict()
    assert state["batches_done"] == 5
    three = ShardStream(shard_dir, 32, seed=4, rank=2, ranks=3)
    with pytest.raises(ValueError, match="seed"):
        ShardStream(shard_dir, 32, seed=5, rank=2, ranks=3).load_state_dict(state)
    three.load_state_dict(state)
    rest = list(three)
    assert len(rest) == len(three) - 5
    fresh = list(ShardStream(shard_dir, 32, seed=4, rank=2, ranks=3))
    for a, b in zip(rest, fresh[5:]):
        np.testing.assert_array_equal(a, b)


def test_too_few_shards_or_rows_for_the_ranks_are_refused(shard_dir):
    with pytest.raises(ValueError, match="6 shards cannot be dealt to 7 ranks"):
        ShardStream(shard_dir, 32, seed=4, rank=0, ranks=7)
    with pytest.raises(ValueError, match="too few for a row in every one"):
        ShardStream(shard_dir, 2, seed=4, rank=0, ranks=5)


# ---- atom blocks, as threads ------------------------------------------------------------------------

class Blocks:
    """k threads, one a block of atoms, exchanging arrays through a barrier: AtomGroup's interface
    (learning/sharded.py) without processes."""

    def __init__(self, k, m):
        self.k, self.slots = k, [None] * k
        self.barrier = threading.Barrier(k)
        self.bounds = np.concatenate([[0], np.cumsum([len(b) for b in np.array_split(np.arange(m), k)])])

    def member(self, index):
        blocks = self

        class Member:
            count = blocks.k

            def __init__(self):
                self.index = index

            def block(self, t):
                return int(blocks.bounds[t]), int(blocks.bounds[t + 1])

            def _all(self, a):
                blocks.slots[index] = a
                blocks.barrier.wait()
                out = list(blocks.slots)
                blocks.barrier.wait()
                return out

            def sum(self, a):
                parts = self._all(a)
                total = parts[0] + 0
                for p in parts[1:]:
                    total = total + p
                return total

            def max(self, a):
                return np.max(np.stack(self._all(a)), axis=0)

            def atoms(self, a):
                return np.concatenate(self._all(a))

            def codes(self, Z):
                return np.concatenate(self._all(Z), axis=1)

            def broadcast(self, a, t):
                return self._all(a)[t] + 0

        return Member()

    def run(self, work):
        """work(member, lo, hi) in every block's thread; their results in block order."""
        out, failed = [None] * self.k, []

        def one(i):
            try:
                member = self.member(i)
                out[i] = work(member, *member.block(i))
            except BaseException as e:  # noqa: BLE001 -- re-raised in the test's thread
                failed.append(e)
                self.barrier.abort()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(self.k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise failed[0]
        return out


@pytest.mark.parametrize("solver,options", [("fista", {}), ("ista", {}), ("lca", {}), ("lca", {"accelerate": False}),
                                            ("fista", {"positive": True})])
@pytest.mark.parametrize("k", [2, 3])
def test_the_solvers_over_atom_blocks_equal_the_whole_dictionary(X, D_learned, alpha, solver, options, k):
    """A solver run on each block with ``shards`` (the seam encode hands it: the problem's products
    summed over the blocks) gives the whole dictionary's codes, block by block, in as many
    iterations (to float rounding: the sums over atoms are grouped by block).  The solvers are called
    as encode calls them: encode itself holds a process-wide BLAS lock that threads would queue on."""
    options = dict(options)
    positive = options.pop("positive", False)
    L = lipschitz(D_learned)
    cls = solver_class(solver)

    def solve(D, **more):
        algo = cls(positive=positive, **cls.check({**options, "form": "factored", "L": L, **more}, positive=positive))
        return algo.solve(X, D, alpha, init=np.zeros((X.shape[0], D.shape[0])), tol=1e-6, max_iter=400,
                          form="factored", shared=algo.prepare(D, "factored"))

    whole = solve(D_learned)
    blocks = Blocks(k, D_learned.shape[0])
    parts = blocks.run(lambda member, lo, hi: solve(D_learned[lo:hi], shards=member))
    np.testing.assert_allclose(np.concatenate([part.Z for part in parts], axis=1), whole.Z, rtol=0, atol=1e-9)
    for part in parts:
        np.testing.assert_array_equal(part.n_iter, whole.n_iter)
        np.testing.assert_allclose(part.crit, whole.crit, rtol=1e-6, atol=1e-12)


def test_encode_over_blocks_refuses_the_gram_form_and_a_missing_L(X, D_learned, alpha):
    member = Blocks(1, 64).member(0)
    with pytest.raises(ValueError, match="form='factored'"):
        sparsolve.encode(X, D_learned, alpha, solver="fista", shards=member, form="gram", L=10.0)
    with pytest.raises(ValueError, match="the whole dictionary's"):
        sparsolve.encode(X, D_learned, alpha, solver="fista", shards=member)


@pytest.mark.parametrize("norm", ["unit", "penalty"])
@pytest.mark.parametrize("k", [2, 3])
def test_online_pass_over_atom_blocks_equals_the_whole_pass(norm, k):
    """rules.online.online_sharded: the same Gauss–Seidel pass in atom order, block by block."""
    rng = np.random.default_rng(1)
    m, p = 23, 7
    Z = rng.standard_normal((60, m)) * (rng.random((60, m)) < 0.3)
    Z[:, 5] = 0  # an unused atom keeps its row
    X = rng.standard_normal((60, p))
    A, B = Z.T @ Z / 60, Z.T @ X / 60
    D = rng.standard_normal((m, p))
    rule = norm_rule(norm)
    whole = online(D, A, B, rule, 0.1)
    blocks = Blocks(k, m)
    parts = blocks.run(lambda member, lo, hi: online_sharded(D[lo:hi] + 0, A[lo:hi], B[lo:hi], rule, 0.1, member))
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)


# ---- settings and memory -------------------------------------------------------------------------

def test_atom_sharding_refuses_what_needs_every_atom_on_every_rank():
    for solver in ("cd", "omp"):
        with pytest.raises(ValueError, match=f"solver='{solver}'.*use solver='fista', 'ista' or 'lca'"):
            FitConfig(16, 0.1, solver=solver, shard="atoms")
    with pytest.raises(ValueError, match="update='mod'.*one m×m system.*use update='online' or 'sgd'"):
        FitConfig(16, 0.1, solver="fista", update="mod", shard="atoms")
    with pytest.raises(ValueError, match="form='gram'"):
        FitConfig(16, 0.1, solver="fista", shard="atoms", solver_options={"form": "gram"})
    with pytest.raises(ValueError, match="atom_shards=2 needs shard='atoms'"):
        FitConfig(16, 0.1, atom_shards=2)
    assert FitConfig(16, 0.1, shard="atoms").resolved(100).solver == "fista"  # auto: fista, not cd
    assert FitConfig(16, 0.1).resolved(100).solver == "auto"
    with pytest.raises(ValueError, match="rank_data"):
        FitConfig(16, 0.1, rank_data="mine")


@pytest.mark.parametrize("update", ["online", "sgd"])
def test_memory_plan_per_rank_of_four_atom_shards_is_under_a_third(update):
    """m = 65,536, p = 768: a rank of 4 atom shards holds at most a third of an unsharded rank's
    dictionary, statistics and solver state (the plan's bytes; benchmarks/distributed.py checks the
    plan against what the ranks allocate)."""
    one = memory.plan(1 << 50, 768, 65536, 1024, update=update)
    four = memory.plan(1 << 50, 768, 65536, 1024, update=update, atom_shards=4)
    assert four.form == "factored"
    assert four.fixed_bytes + 1024 * four.per_row_bytes <= (one.fixed_bytes + 1024 * one.per_row_bytes) / 3


def test_a_plan_that_does_not_fit_names_the_atom_shards_that_would():
    free = 8 << 30
    with pytest.raises(memory.MemoryPlanError, match=r"shard='atoms' over (\d+) ranks") as e:
        memory.plan(free, 768, 65536, 1024, update="online")
    k = int(__import__("re").search(r"over (\d+) ranks", str(e.value)).group(1))
    memory.plan(free, 768, 65536, 1024, update="online", atom_shards=k)  # fits
    with pytest.raises(memory.MemoryPlanError):
        memory.plan(free, 768, 65536, 1024, update="online", atom_shards=k - 1)
