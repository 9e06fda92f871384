"""Threads: every entry point runs its small work on one BLAS, torch and numba thread, and gives
the caller's settings back (thread_rule.threads_for, sparsolve.set_threads).

Speed is benchmarks/threads.py's; here, the counts each call sees inside and leaves behind.  The
counts start at two wherever the libraries allow it, so that a one-core CI machine still shows
the scope."""
from __future__ import annotations

import importlib
import os

import numba
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

import sparsolve
from sparsolve import threads as thread_rule
from sparsolve.inference import cd as cd_module

needs_two_numba_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                             reason="numba started with one thread (NUMBA_NUM_THREADS)")


def blas_threads():
    importlib.import_module("scipy.linalg")  # its OpenBLAS too, which sparsolve loads and limits (numba's np.dot)
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def counts():
    """(BLAS, torch, numba) threads as a call sees them."""
    return tuple(blas_threads()), torch.get_num_threads(), numba.get_num_threads()


@pytest.fixture
def two_threads(monkeypatch):
    """torch and numba at two threads for the test (numba's count is per calling thread), and the
    caller's counts restored after; yields the counts a call must leave behind.  The machine reads
    as quiet (a large product takes every core only where one is idle: thread_rule.cores_idle)."""
    monkeypatch.setattr(thread_rule.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    torch_before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(2)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    assert sparsolve.set_threads(None) is None  # the rule by size: no override left by another test
    try:
        yield counts()
    finally:
        sparsolve.set_threads(None)
        torch.set_num_threads(torch_before)
        numba.set_num_threads(numba_before)


def one_thread(seen):
    return seen[0] == (1,) * len(seen[0]) and seen[1] == 1 and seen[2] == 1


# ---- the context ------------------------------------------------------------------------

@needs_two_numba_threads
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_small_work_runs_on_one_thread_of_each_library_and_restores(two_threads, kind):
    a = np.zeros((2, 2)) if kind == "numpy" else torch.zeros(2, 2)
    with thread_rule.threads_for(a, 256 * 256 * 256, kernels=True):  # a call of numba's kernels (cd, omp)
        assert one_thread(counts())
        with thread_rule.threads_for(a, 256 * 256 * 64):  # re-entrant
            assert one_thread(counts())
        assert one_thread(counts())
    assert counts() == two_threads
    with thread_rule.threads_for(a, 256 * 256 * 256):  # no kernels: numba's count is not asked for
        blas, torch_threads, numba_threads = counts()
        assert blas == (1,) * len(blas) and torch_threads == 1 and numba_threads == two_threads[2]
    assert counts() == two_threads
    with thread_rule.threads_for(a, thread_rule.SMALL_TORCH_WORK):  # large work: the libraries' own
        assert counts() == two_threads
    with thread_rule.threads_for(a, thread_rule.SMALL_PRODUCT):  # the BLAS's own threads, torch on one still
        blas, torch_threads, numba_threads = counts()
        assert blas == two_threads[0] and torch_threads == 1 and numba_threads == two_threads[2]
    with thread_rule.threads_for(a, 10 * thread_rule.SMALL_PRODUCT, kernels=True):  # numba's kernels use every core
        blas, torch_threads, numba_threads = counts()
        assert blas == (1,) * len(blas) and numba_threads == two_threads[2]
    assert counts() == two_threads


@needs_two_numba_threads
def test_restored_when_the_call_fails(two_threads):
    with pytest.raises(RuntimeError), thread_rule.threads_for(np.zeros(1), 1.0):
        raise RuntimeError("inside")
    assert counts() == two_threads


@needs_two_numba_threads
def test_set_threads_fixes_every_call(two_threads):
    assert sparsolve.set_threads(1) is None
    with thread_rule.threads_for(np.zeros(1), 10 * thread_rule.SMALL_PRODUCT, kernels=True):
        assert one_thread(counts())  # even where the rule would leave two
        with thread_rule.blas_threads_for(np.zeros(1), 10 * thread_rule.SMALL_PRODUCT):  # a large product inside (cd's check)
            assert one_thread(counts())  # the quiet machine's rule would give it every core
    assert sparsolve.set_threads(2) == 1
    with thread_rule.threads_for(np.zeros(1), 1.0, kernels=True):
        blas, torch_threads, numba_threads = counts()
        assert blas == (2,) * len(blas) and torch_threads == 2 and numba_threads == 2
    assert sparsolve.set_threads(None) == 2
    assert counts() == two_threads
    with pytest.raises(ValueError, match="n must be"):
        sparsolve.set_threads(0)


def test_the_environment_variable(monkeypatch, two_threads):
    monkeypatch.setenv(thread_rule.THREADS_ENV, "1")
    thread_rule._threads_from_env()
    assert sparsolve.set_threads(None) == 1
    monkeypatch.setenv(thread_rule.THREADS_ENV, "auto")
    thread_rule._threads_from_env()
    assert sparsolve.set_threads(None) is None
    monkeypatch.setenv(thread_rule.THREADS_ENV, "many")
    with pytest.raises(ValueError, match="SPARSOLVE_THREADS='many'"):
        thread_rule._threads_from_env()


# ---- the entry points --------------------------------------------------------------------

@pytest.fixture
def cd_sees(monkeypatch):
    """The counts cd's parallel kernel runs under, one entry a call."""
    seen, kernel = [], cd_module._cd_batch

    def recorded(*args):
        seen.append(counts())
        return kernel(*args)

    monkeypatch.setattr(cd_module, "_cd_batch", recorded)
    return seen


class Recording(sparsolve.LearnedG):
    """A learned-G encoder that notes the counts its network runs under."""

    seen: list

    def _encode(self, x):
        self.seen.append(counts())
        return super()._encode(x)


def recording(D, alpha, t_star=3):
    enc = Recording.from_dictionary(D, alpha, t_star)
    enc.seen = []
    return enc


@needs_two_numba_threads
def test_encode_runs_cd_on_one_numba_thread_for_a_small_batch(two_threads, cd_sees, X, D_learned, alpha):
    sparsolve.encode(X[:256], D_learned, alpha, solver="cd")
    assert cd_sees and all(one_thread(s) for s in cd_sees)
    assert counts() == two_threads


@needs_two_numba_threads
def test_fit_steps_on_one_thread(two_threads, cd_sees, X):
    model = sparsolve.fit(X[:512], 32, 0.1, solver="cd", batch_size=128, max_steps=2, seed=0, progress=False)
    assert len(model.history["step"]) == 2
    assert cd_sees and all(one_thread(s) for s in cd_sees)
    assert counts() == two_threads


def test_learned_g_encode_and_forward_on_one_thread(two_threads, X, D_learned, alpha):
    enc = recording(D_learned, alpha)
    enc.encode(X[:500])                 # numpy in
    enc(torch.as_tensor(X[:500], dtype=torch.float32))   # forward, on a tensor
    assert len(enc.seen) == 2 and all(s[1] == 1 for s in enc.seen)
    assert counts() == two_threads


def test_learned_g_keeps_the_libraries_threads_for_large_work(two_threads, D_learned, alpha):
    enc = recording(D_learned, alpha, t_star=1)
    per_row = enc.n_atoms * max(enc.n_atoms, enc.n_features)
    enc.encode(np.zeros((int(thread_rule.SMALL_TORCH_WORK // per_row) + 1, enc.n_features), dtype=np.float32))
    assert enc.seen[-1][1] == 2
    # between the BLAS's threshold and torch's: one torch thread still
    enc.encode(np.zeros((int(thread_rule.SMALL_PRODUCT // per_row) + 1, enc.n_features), dtype=np.float32))
    assert enc.seen[-1][1] == 1
    assert counts() == two_threads


def test_fit_amortized_steps_on_one_torch_thread(two_threads, X, D_learned, alpha):
    enc = recording(D_learned, alpha)
    sparsolve.fit_amortized(X[:512], D_learned, t_star=3, alpha=alpha, init=enc, max_steps=3, batch_size=128,
                            progress=False, seed=0)
    assert len(enc.seen) == 3 and all(s[1] == 1 for s in enc.seen)
    assert counts() == two_threads


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_compare_times_encoders_under_their_threads(two_threads, X, D_learned, alpha):
    enc = recording(D_learned, alpha)
    sparsolve.compare(X[:300], D_learned, {"T=3": enc}, alpha=alpha, exact=(), max_fista_iter=20)
    assert enc.seen and all(s[1] == 1 for s in enc.seen)
    assert counts() == two_threads


class FakeClock:
    """time.perf_counter for compare: the first timed run of each method reads 10 s, the others 1 ms."""

    def __init__(self):
        self.now, self.calls = 0.0, 0

    def perf_counter(self):
        self.calls += 1
        if self.calls % 2 == 0:  # _timed reads the clock twice a run: at its start and at its end
            self.now += 10.0 if self.calls == 2 else 1e-3
        return self.now


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_compare_reports_the_best_of_several_runs(monkeypatch, X, D_learned, alpha):
    compare_module = importlib.import_module("sparsolve.amortized.compare")  # the package exports the function

    enc = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 2)
    clocks = []
    real = compare_module._timed

    def timed(fn, A, repeats):
        clock = FakeClock()  # a fresh clock a method: its first run is the slow one
        clocks.append(clock)
        real_time, compare_module.time = compare_module.time, clock
        try:
            return real(fn, A, repeats)
        finally:
            compare_module.time = real_time

    monkeypatch.setattr(compare_module, "_timed", timed)
    n = 100
    rows = sparsolve.compare(X[:n], D_learned, {"T=2": enc}, alpha=alpha, exact=("fista",), max_fista_iter=20)
    for row in rows:
        # a one-off 10 s run is not what compare reports: 1 ms a run is 10 ms per 1,000 rows
        assert row["ms_per_1000"] == pytest.approx(1e6 * 1e-3 / n), row["method"]
    assert all(c.calls >= 2 * 2 for c in clocks)  # at least two timed runs a method


def test_single_threaded_blas_limits_and_restores():
    # cd and omp run their products under it so that no BLAS worker spins into the numba kernel
    before = blas_threads()
    assert before, "numpy's BLAS should be visible to threadpoolctl"
    with thread_rule.single_threaded_blas():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_single_threaded_blas_one_thread_at_a_time():
    # OpenBLAS ignores a restore from another thread while the one that set the limit
    # lives, so overlapping uses would leave BLAS on one thread for good: a second
    # thread must wait until the first has left and restored
    import threading
    import time

    before = blas_threads()
    entered, order, seen = threading.Event(), [], []

    def first():
        with thread_rule.single_threaded_blas():
            entered.set()
            time.sleep(0.3)
            order.append("first leaves")

    def second():
        entered.wait()
        with thread_rule.single_threaded_blas():
            order.append("second enters")
            seen.append(blas_threads())  # checked below: an assert in a thread would not fail the test

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert order == ["first leaves", "second enters"]
    assert seen == [[1] * len(before)]
    assert blas_threads() == before
    with thread_rule.single_threaded_blas(), thread_rule.single_threaded_blas():  # nested in one thread
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_blas_threads_for_a_product_size(monkeypatch):
    """One thread for small host products -- host BLAS and torch's pool, for numpy arrays and
    torch CPU tensors alike -- the libraries' threads for large ones where a core is idle."""
    monkeypatch.setattr(thread_rule.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # a quiet machine
    before, torch_before = blas_threads(), torch.get_num_threads()
    torch.set_num_threads(2)  # the machine may have one core: the scope must still show
    try:
        for a in (np.zeros((2, 2)), torch.zeros(2, 2)):
            with thread_rule.blas_threads_for(a, 256 * 256 * 256):
                assert blas_threads() == [1] * len(before) and torch.get_num_threads() == 1
            with thread_rule.blas_threads_for(a, 10 * thread_rule.SMALL_PRODUCT):
                assert blas_threads() == before and torch.get_num_threads() == 2
            assert blas_threads() == before and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(torch_before)


def test_a_large_product_takes_every_core_only_where_one_is_idle(monkeypatch):
    """Even inside single_threaded_blas (cd's numba kernels) a large product gets host BLAS's own
    threads back -- unless the machine is busy, where a second thread only waits to be scheduled."""
    before = blas_threads()
    a = np.zeros((2, 2))
    with thread_rule.single_threaded_blas():
        monkeypatch.setattr(thread_rule.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        with thread_rule.blas_threads_for(a, 10 * thread_rule.SMALL_PRODUCT):
            assert blas_threads() == before
        assert blas_threads() == [1] * len(before)
        monkeypatch.setattr(thread_rule.os, "getloadavg", lambda: (float(os.cpu_count()), 0.0, 0.0))
        with thread_rule.blas_threads_for(a, 10 * thread_rule.SMALL_PRODUCT):
            assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_single_threaded_blas_leaves_torch_alone_if_unloaded(monkeypatch):
    # numpy users never pay for importing torch
    import sys

    monkeypatch.delitem(sys.modules, "torch")
    with thread_rule.single_threaded_blas():
        assert "torch" not in sys.modules


@pytest.mark.parametrize("threads", [1, 2])
def test_blas_limits_leave_torchs_threads_as_they_found_them(threads, monkeypatch):
    """scipy's OpenBLAS runs on OpenMP: setting its threads set torch's too, and a fit left torch on
    two threads where the caller had put it on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with thread_rule.single_threaded_blas():
            pass
        assert torch.get_num_threads() == threads
        monkeypatch.setattr(thread_rule.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        with thread_rule.single_threaded_blas(), thread_rule.blas_threads_for(np.zeros(2), 10 * thread_rule.SMALL_PRODUCT):
            pass
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
