"""The memory plan: Gram or factored form, chunking, and the refusal of runs that cannot fit,
decided from a (mocked) free-memory figure before any work."""
import numpy as np
import pytest

from sparsolve import backend, memory

GIB = 1 << 30


def test_gram_where_it_pays_and_fits():
    # undercomplete (m < p): the flop count prefers the Gram form, and G is tiny
    plan = memory.plan(8 * GIB, n_features=256, n_atoms=64, batch_size=4096)
    assert plan.form == "gram"
    assert plan.chunk_rows == 4096
    # D and its two copies, Ā, A and two temporaries, B̄ and B, the batch's x, z and residual, G
    assert plan.fixed_bytes == 4 * (3 * 64 * 256 + 4 * 64 * 64 + 2 * 64 * 256 + 4096 * (2 * 256 + 64) + 64 * 64)
    assert plan.per_row_bytes == 4 * (8 * 64 + 2 * 256)  # encode's working rows


def test_factored_where_the_gram_would_not_fit():
    args = dict(n_features=2048, n_atoms=1024, batch_size=65536, dtype="float32", update="sgd")
    assert memory.plan(64 * GIB, **args).form == "gram"  # m < p: the Gram form pays when it fits
    gram = 1024 * 1024 * 4
    fixed, _, per_row, _ = memory._sizes(2048, 1024, "sgd", 4, 65536)
    # just enough for the fixed arrays and MIN_CHUNK rows, not for G as well
    free = int((fixed + per_row * memory.MIN_CHUNK + gram // 2) / memory.FRACTION)
    plan = memory.plan(free, **args)
    assert plan.form == "factored"
    assert memory.MIN_CHUNK <= plan.chunk_rows < 65536
    assert plan.needed_bytes(plan.chunk_rows) <= plan.budget_bytes
    with pytest.raises(memory.MemoryPlanError, match="form='factored'"):
        memory.plan(free, **args, form="gram")


def test_chunks_shrink_with_the_free_memory():
    args = dict(n_features=768, n_atoms=16384, batch_size=16384, update="sgd")
    big, small = memory.plan(80 * GIB, **args), memory.plan(4 * GIB, **args)
    assert big.form == small.form == "factored"  # 16,384 atoms over 768 features: overcomplete
    assert small.chunk_rows < big.chunk_rows
    assert small.needed_bytes(small.chunk_rows) <= small.budget_bytes < small.needed_bytes(small.chunk_rows + 1)


def test_online_statistics_that_do_not_fit_are_refused_with_the_way_out():
    # 65,536 atoms: A alone is 16 GiB in float32, and the online update holds four m×m arrays
    with pytest.raises(memory.MemoryPlanError) as err:
        memory.plan(40 * GIB, n_features=4096, n_atoms=65536, batch_size=8192, update="online", device="cuda:0")
    text = str(err.value)
    assert "65536×65536" in text and "GiB" in text and "cuda:0" in text
    assert "update='sgd'" in text
    bound = memory.largest_n_atoms(int(40 * GIB * memory.FRACTION), 4096, 8192, "float32", "online")
    assert f"n_atoms ≤ {bound:,}" in text and 0 < bound < 65536
    # the ways out it names do fit
    memory.plan(40 * GIB, n_features=4096, n_atoms=65536, batch_size=8192, update="sgd")
    memory.plan(40 * GIB, n_features=4096, n_atoms=bound, batch_size=8192, update="online")
    with pytest.raises(memory.MemoryPlanError):
        memory.plan(40 * GIB, n_features=4096, n_atoms=bound + 1, batch_size=8192, update="online")


def test_when_even_sgd_does_not_fit_it_is_not_offered():
    with pytest.raises(memory.MemoryPlanError) as err:
        memory.plan(GIB // 2, n_features=4096, n_atoms=65536, batch_size=8192, update="online")
    assert "update='sgd'" not in str(err.value) and "n_atoms ≤" in str(err.value)


def test_plan_for_reads_the_free_memory_of_the_arrays_device(monkeypatch):
    monkeypatch.setattr(backend, "free_bytes", lambda x: 2 * GIB)
    X = np.zeros((1, 768), dtype=np.float64)
    plan = memory.plan_for(X, 768, 4096, 4096, update="sgd")
    assert plan.budget_bytes == int(2 * GIB * memory.FRACTION)
    assert plan.per_row_bytes == 8 * (8 * 4096 + 2 * 768)  # float64, from X
    with pytest.raises(memory.MemoryPlanError, match="on cpu"):
        memory.plan_for(X, 768, 32768, 4096, update="online")


@pytest.mark.parametrize("bad, match", [(dict(update="adam"), "update"), (dict(dtype="int8"), "dtype"),
                                        (dict(form="dense"), "form"), (dict(n_atoms=0), "n_atoms")])
def test_bad_arguments_are_named(bad, match):
    args = dict(n_features=16, n_atoms=32, batch_size=8)
    with pytest.raises(ValueError, match=match):
        memory.plan(GIB, **{**args, **bad})


def test_inference_alone_counts_no_update_state():
    alone = memory.plan(2 * GIB, n_features=768, n_atoms=16384, batch_size=4096, update=None)
    fit = memory.plan(2 * GIB, n_features=768, n_atoms=16384, batch_size=4096, update="sgd")
    assert alone.statistics_bytes == 0 and alone.fixed_bytes == 4 * 768 * 16384
    assert alone.fixed_bytes < fit.fixed_bytes and alone.chunk_rows > fit.chunk_rows
    with pytest.raises(memory.MemoryPlanError, match="the dictionary takes") as err:
        memory.plan(GIB // 64, n_features=4096, n_atoms=65536, batch_size=4096, update=None)
    assert "update='sgd'" not in str(err.value)


# ---- the plan in fit ------------------------------------------------------------------------------

def test_fit_refuses_a_size_that_cannot_fit_before_any_encode(monkeypatch):
    import sparsolve
    from sparsolve.learning import reducer

    monkeypatch.setattr(backend, "free_bytes", lambda x: 512 << 20)  # 512 MiB free: room for sgd, not for online
    monkeypatch.setattr(reducer, "encode", lambda *a, **k: pytest.fail("encode ran before the plan refused"))
    X = np.zeros((8, 512), dtype=np.float32)
    with pytest.raises(memory.MemoryPlanError, match="update='sgd'"):
        sparsolve.fit(X, 8192, 0.1, batch_size=8, progress=False)


def _chunks(monkeypatch):
    """A list that gets (rows, form) of every chunk FISTA solves."""
    from sparsolve.inference import FISTA

    seen = []
    real = FISTA.solve

    def spy(self, Xc, *args, **kwargs):
        seen.append((Xc.shape[0], kwargs["form"]))
        return real(self, Xc, *args, **kwargs)

    monkeypatch.setattr(FISTA, "solve", spy)
    return seen


def test_fit_encodes_in_what_the_learners_arrays_leave(monkeypatch):
    """96 atoms of 64 features, batches of 8,192 rows: the flop count prefers the Gram form.  With
    the free memory mocked so that the learner's statistics, copies of D and batch (most of it)
    leave room for just over MIN_CHUNK rows and not for G, fit's encode runs factored, in chunks
    that fit there; encode alone, given the same free memory, takes the Gram form and thicker chunks."""
    import sparsolve

    p, m, b = 64, 96, 8192
    X = np.random.default_rng(0).standard_normal((b, p)).astype(np.float32)
    fixed, statistics, per_row, gram = memory._sizes(p, m, "online", 4, b)
    free = int((fixed + memory.MIN_CHUNK * per_row + gram // 2) / memory.FRACTION) + 1
    assert fixed - m * p * 4 > 0.6 * free * memory.FRACTION  # the learner's own arrays take most of it
    monkeypatch.setattr(backend, "free_bytes", lambda x: free)
    chunks = _chunks(monkeypatch)
    sparsolve.encode(X, X[:m], 0.1, tol=0, max_iter=5)  # the chunks are the point, not the codes
    alone = list(chunks)
    assert {form for _, form in alone} == {"gram"} and alone[0][0] > 2 * memory.MIN_CHUNK
    chunks.clear()
    sparsolve.fit(X, m, 0.1, solver="fista", batch_size=b, max_steps=1, max_iter=5, progress=False)
    plan = memory.plan(free, p, m, b, "float32")
    assert plan.form == "factored" and memory.MIN_CHUNK <= plan.chunk_rows < alone[0][0]
    assert plan.needed_bytes(plan.chunk_rows) <= plan.budget_bytes
    rows = plan.chunk_rows
    assert chunks == [(rows, "factored")] * (b // rows) + [(b % rows, "factored")] * (b % rows > 0)
    # a form the user names is planned for, and followed
    monkeypatch.setattr(backend, "free_bytes", lambda x: 4 * free)
    chunks.clear()
    sparsolve.fit(X, m, 0.1, solver="fista", batch_size=b, max_steps=1, max_iter=5, form="factored",
                  progress=False)
    assert {form for _, form in chunks} == {"factored"}
    monkeypatch.setattr(backend, "free_bytes", lambda x: free)
    with pytest.raises(memory.MemoryPlanError, match="form='gram' needs G"):
        sparsolve.fit(X, m, 0.1, solver="fista", batch_size=b, max_steps=1, form="gram", progress=False)


def test_fit_that_cannot_fit_names_the_memory_and_the_ways_out(monkeypatch):
    import sparsolve

    monkeypatch.setattr(backend, "free_bytes", lambda x: 64 << 20)  # 64 MiB
    X = np.zeros((8, 256), dtype=np.float32)
    with pytest.raises(memory.MemoryPlanError) as err:
        sparsolve.fit(X, 4096, 0.1, batch_size=8, progress=False)  # Ā and A: 4,096² floats each
    text = str(err.value)
    assert "needs 0.2" in text and "GiB" in text and "4096×4096" in text and "0.05 GiB" in text
    assert "update='sgd'" in text and "n_atoms ≤ 1," in text
    with pytest.raises(memory.MemoryPlanError, match=r"the batch of 65,536 rows .* batch_size ≤"):
        memory.plan(4 * GIB, n_features=768, n_atoms=16384, batch_size=65536, update="sgd")


def test_encode_refuses_a_plan_of_another_form():
    import sparsolve

    X, D = np.ones((4, 8)), np.eye(8)
    factored = memory.plan(GIB, 8, 8, 4, "float64", update=None, form="factored")
    with pytest.raises(ValueError, match="plan has form='factored' but solver='fista' asks for form='gram'"):
        sparsolve.encode(X, D, 0.1, plan=factored, form="gram")
    with pytest.raises(TypeError, match="plan must be a sparsolve.memory.MemoryPlan"):
        sparsolve.encode(X, D, 0.1, plan={"form": "gram"})


# ---- the plan in encode ---------------------------------------------------------------------------

def _encode_plan(X, n, m, solver="fista", **options):
    from sparsolve.inference import memory_plan, solver_class

    cls = solver_class(solver)
    return memory_plan(X, n, m, cls(**cls.check(options)))


def test_encode_plans_interpretability_sizes_from_the_free_memory(monkeypatch):
    # d = 4,096 features; only a 1×4,096 row is allocated, the plan works from sizes alone
    X = np.zeros((1, 4096), dtype=np.float32)
    # 4,096 atoms (m < 2p): the flop count prefers G = DDᵀ (64 MiB), and with room it is taken whole
    monkeypatch.setattr(backend, "free_bytes", lambda x: 64 * GIB)
    roomy = _encode_plan(X, 65536, 4096)
    assert roomy.form == "gram" and roomy.chunk_rows == 65536
    # with 300 MiB free, D and 1,024 rows fit but G does not beside them: factored, in chunks
    monkeypatch.setattr(backend, "free_bytes", lambda x: 300 << 20)
    tight = _encode_plan(X, 65536, 4096)
    assert tight.form == "factored" and 1024 <= tight.chunk_rows < 65536
    assert tight.needed_bytes(tight.chunk_rows) <= tight.budget_bytes < tight.needed_bytes(tight.chunk_rows + 1)
    # 65,536 atoms on an 80 GiB device: factored (G alone would be 16 GiB), chunks of ~30,000 rows
    monkeypatch.setattr(backend, "free_bytes", lambda x: 80 * GIB)
    wide = _encode_plan(X, 65536, 65536)
    assert wide.form == "factored" and 16384 < wide.chunk_rows < 65536
    # cd and omp work on G only: refused where it cannot fit, with the solvers that can go without
    monkeypatch.setattr(backend, "free_bytes", lambda x: 4 * GIB)
    with pytest.raises(memory.MemoryPlanError, match="cd and omp always need G"):
        _encode_plan(X, 65536, 65536, solver="cd")


def test_encode_keeps_its_form_and_one_chunk_at_small_sizes():
    from sparsolve.inference.problem import choose_form

    for n, m, p in ((150, 64, 64), (256, 256, 64), (1000, 1024, 256)):
        plan = _encode_plan(np.zeros((1, p)), n, m)
        assert plan.form == choose_form(n, m, p) and plan.chunk_rows == n


def test_encode_refuses_a_dictionary_that_cannot_fit_before_any_work(monkeypatch):
    import sparsolve
    from sparsolve.inference import FISTA

    monkeypatch.setattr(backend, "free_bytes", lambda x: 1 << 20)  # 1 MiB: not the 4 MiB dictionary
    monkeypatch.setattr(FISTA, "solve", lambda *a, **k: pytest.fail("the solver ran before the plan refused"))
    X, D = np.ones((4, 1024), dtype=np.float32), np.ones((1024, 1024), dtype=np.float32)
    with pytest.raises(memory.MemoryPlanError, match=r"n_atoms ≤"):
        sparsolve.encode(X, D, 0.1)


def test_encode_chunks_as_the_plan_says(monkeypatch):
    import sparsolve

    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((40, 16)), rng.standard_normal((32, 16))
    seen = _chunks(monkeypatch)
    fixed, _, per_row, _ = memory._sizes(16, 32, None, 8, 40)
    monkeypatch.setattr(backend, "free_bytes", lambda x: int((fixed + 15 * per_row) / memory.FRACTION) + 1)
    sparsolve.encode(X, D, 0.1, tol=1e-3)
    assert seen == [(15, "factored"), (15, "factored"), (10, "factored")]
