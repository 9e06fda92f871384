"""Data-parallel fit on 2 gloo ranks, each a subprocess under a hard time limit.

One 2-rank run (module fixture) fits every case of cases.py; the tests compare each with a
single-process fit on the same global batches, continue its checkpoints at world size 1,
and read the startup mismatch errors it recorded.  Two more runs kill or hang rank 1."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import sparsolve
from sparsolve.cli import main
from sparsolve.learning import distributed
from sparsolve.learning.checkpoint import model_from_checkpoint
from sparsolve.learning.reducer import DataParallel, Identity, default_reducer

from cases import CASES, GPU_KWARGS, data, global_batches

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
# The collective timeout the failure runs give their process group.
TIMEOUT_S = 4.0
# How long the ranks may take to start (import torch and sparsolve) before the run's own limit
# begins: generous, for a loaded machine; numba's kernels are compiled before any rank starts
# (conftest.py), so a rank's run itself is seconds.
STARTUP_S = 300


def launch(scenario, out, *, wait_for=(0, 1), limit_s=90, world=2, startup_s=STARTUP_S):
    """Start ``world`` ranks of _worker.py; once every rank has started (imported torch and sparsolve:
    at most startup_s), wait at most limit_s for the ranks in ``wait_for``, kill the rest, and return
    (what each waited-for rank saved, its output, seconds waited after start-up)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    init = out / "rendezvous"
    procs = [subprocess.Popen([sys.executable, str(HERE / "_worker.py"), scenario, str(r), str(world), str(init),
                               str(out), str(TIMEOUT_S)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
             for r in range(world)]
    try:
        # Start-up is not what the limit is about: on a loaded machine importing torch alone can take
        # a minute.  The workers say they are up by touching a file each (_worker.main).
        up = time.perf_counter()
        while not all(Path(f"{init}.ready{r}").exists() for r in range(world)):
            if any(p.poll() is not None for p in procs) or time.perf_counter() - up > startup_s:
                break
            time.sleep(0.05)
        start = time.perf_counter()
        outputs = {}
        for r in wait_for:
            try:
                outputs[r] = procs[r].communicate(timeout=max(1.0, limit_s - (time.perf_counter() - start)))[0]
            except subprocess.TimeoutExpired:
                pytest.fail(f"rank {r} of the {scenario!r} run was still running {limit_s} s after start-up: a hang")
            assert procs[r].returncode == 0, f"rank {r} failed:\n{outputs[r][-3000:]}"
        waited = time.perf_counter() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return {r: dict(np.load(out / f"rank{r}.npz")) for r in wait_for}, outputs, waited


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, compiled_kernels):
    out = tmp_path_factory.mktemp("two_ranks")
    saved, _, _ = launch("fits", out)
    return saved, out


@pytest.mark.slow  # ranks are subprocesses
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if "resume_after" not in c])
def test_two_ranks_equal_one_process_on_the_same_global_batches(two_ranks, name):
    saved, _ = two_ranks
    case = CASES[name]
    X = global_batches(2) if case.get("iterable") else data()
    single = sparsolve.fit(X, progress=False, **case["kwargs"])
    for r in (0, 1):
        np.testing.assert_allclose(saved[r][f"{name}/D"], single.dictionary, rtol=0, atol=1e-7)
        if single.offset is not None:  # center=True: both ranks centre by the single process's b
            np.testing.assert_allclose(saved[r][f"{name}/offset"], single.offset, rtol=0, atol=1e-12)
        np.testing.assert_allclose(saved[r][f"{name}/mse"], single.history["mse"], rtol=1e-7)
        np.testing.assert_allclose(saved[r][f"{name}/nnz_frac"], single.history["nnz_frac"], rtol=1e-7)
        np.testing.assert_array_equal(saved[r][f"{name}/samples_seen"], single.history["samples_seen"])
        np.testing.assert_array_equal(saved[r][f"{name}/resampled"], single.history["resampled"])
    if name == "online":  # the gathered-resampling path ran, and drew the same atoms
        assert sum(single.history["resampled"]) > 0


@pytest.mark.slow  # ranks are subprocesses
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if "resume_after" in c])
def test_checkpoint_from_two_ranks_resumes_on_one(two_ranks, name, tmp_path):
    saved, out = two_ranks
    case = CASES[name]
    path = tmp_path / "resume.npz"
    shutil.copy(out / f"{name}.npz", path)
    resumed = sparsolve.fit(data(), progress=False, checkpoint=path, **case["kwargs"])
    whole = sparsolve.fit(data(), progress=False, **case["kwargs"])
    assert resumed.history["step"][0] == 1 and len(resumed.history["step"]) == len(whole.history["step"])
    assert resumed.history["step"][-1] > case["resume_after"]
    np.testing.assert_allclose(resumed.dictionary, whole.dictionary, rtol=0, atol=1e-7)
    np.testing.assert_allclose(resumed.history["mse"], whole.history["mse"], rtol=1e-7)


@pytest.mark.slow  # ranks are subprocesses
def test_a_resume_on_changed_data_is_refused_on_every_rank(two_ranks):
    """Rank 1 alone read the changed row (its part of step 1); rank 0 refuses with it, not later
    in a collective."""
    saved, _ = two_ranks
    for r in (0, 1):
        assert "the batch of step 1 (epoch 0, batch 0) differs" in str(saved[r]["resume_error"])


@pytest.mark.slow  # ranks are subprocesses
def test_startup_mismatches_name_both_values(two_ranks):
    saved, _ = two_ranks
    for r in (0, 1):
        alpha, seed, width, init, stream_width, small = (str(e) for e in saved[r]["errors"])
        assert "alpha is 0.1 on rank 0 but 0.2 on rank 1" in alpha
        assert "seed is 0 on rank 0 but 1 on rank 1" in seed
        assert "n_features is 24 on rank 0 but 16 on rank 1" in width
        assert init.startswith("data-parallel fit: dict_init is '") and "on rank 1" in init
        assert "rank 0 has batches of shape (50, 24) (float64) but rank 1 (50, 16)" in stream_width
        assert "needs at least 2 rows in every batch" in small and "a batch has 1" in small


@pytest.mark.slow  # ranks are subprocesses
@pytest.mark.parametrize("how", ["kill", "hang"])
def test_a_lost_rank_ends_the_other_within_the_timeout(tmp_path, how, compiled_kernels):
    saved, _, _ = launch(how, tmp_path, wait_for=(0,), limit_s=60)
    error, seconds = str(saved[0]["error"]), float(saved[0]["seconds"])
    assert "another rank died, hung" in error and "checkpoint is intact" in error, error
    # The whole fit took less than the timeout plus start-up and three quick steps.
    assert seconds < TIMEOUT_S + 10, seconds
    model = model_from_checkpoint(tmp_path / "fail.npz")  # intact and readable
    assert model.history["step"][-1] >= 2


def test_single_process_is_untouched():
    """Without a process group the fit's reducer is the identity: every answer is its input."""
    assert not distributed.active() and distributed.world_size() == 1
    reducer = default_reducer()
    assert isinstance(reducer, Identity) and reducer.is_root
    rows, used = np.arange(5), np.array([True, False])
    assert reducer.local_rows(rows) is rows and reducer.global_rows(rows) is rows
    assert distributed.gather_rows(rows) is rows
    assert list(reducer.local_batches("ab")) == [(0, "a"), (1, "b")]
    assert reducer.own_atoms(rows) is rows and reducer.all_atoms(rows) is rows and reducer.n_atoms(5) == 5

    class Rule:
        def statistics(self, X, Z, R, D):
            return (X,)

    assert reducer.statistics(Rule(), rows, None, None, None, used, 7) == ((rows,), used, 7)


@pytest.mark.slow  # ranks are subprocesses
def test_cli_under_torchrun_saves_the_single_process_model(tmp_path):
    """``torchrun -m sparsolve fit`` as users type it: rank 0 alone reports and saves."""
    np.save(tmp_path / "X.npy", data())
    flags = ["fit", "X.npy", "--atoms", "16", "--alpha", "0.3", "--batch-size", "100", "--epochs", "2",
             "--tol", "1e-8", "--no-progress"]
    one = [str(tmp_path / "X.npy") if f == "X.npy" else f for f in flags] + ["--out", str(tmp_path / "one.npz")]
    assert main(one) == 0  # first: it compiles (and caches on disk) the kernels the ranks use
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "sparsolve", *flags, "--out", "two.npz"], cwd=tmp_path, env=env, timeout=300,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.count("saved:") == 1
    np.testing.assert_allclose(sparsolve.load(tmp_path / "two.npz").dictionary,
                               sparsolve.load(tmp_path / "one.npz").dictionary, rtol=0, atol=1e-7)


def test_rank_parts_tile_the_global_batch(monkeypatch):
    """Any world size: the ranks' parts of a batch, in rank order, are the batch; of a stream,
    rank r gets batch kP + r of each whole group, and a broken last group is dropped."""
    rows = np.arange(11)
    reducer = DataParallel()
    for P in (2, 3, 4):
        monkeypatch.setattr(distributed, "world_size", lambda P=P: P)
        parts, streams = [], []
        for r in range(P):
            monkeypatch.setattr(distributed, "rank", lambda r=r: r)
            parts.append(reducer.local_rows(rows))
            with pytest.warns(UserWarning, match="dropped") if (r == 0 and 10 % P) else _no_warning():
                streams.append(list(reducer.local_batches(range(10))))
        np.testing.assert_array_equal(np.concatenate(parts), rows)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        whole = 10 // P * P
        assert sorted(b for s in streams for _, b in s) == list(range(whole))
        for r, s in enumerate(streams):
            assert [b for _, b in s] == list(range(r, whole, P))
            assert [i for i, _ in s] == list(range(P - 1, whole, P))  # the next position counts batches


@contextlib.contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.gpu
def test_nccl_on_the_gpus_equals_one_process(tmp_path):
    """NCCL over every GPU (one rank each; on a one-GPU machine a group of one, which still runs
    every collective through CUDA tensors) against the fit without a group."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    world = torch.cuda.device_count()
    saved, _, _ = launch("cuda", tmp_path, wait_for=tuple(range(world)), limit_s=240, world=world)
    single = sparsolve.fit(torch.tensor(data(), device="cuda"), progress=False, **GPU_KWARGS)
    for r in range(world):
        assert str(saved[r]["device"]) == f"cuda:{r}"
        np.testing.assert_allclose(saved[r]["D"], single.dictionary.cpu().numpy(), rtol=0, atol=1e-6)
