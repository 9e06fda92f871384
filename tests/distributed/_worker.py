"""One rank of the distributed tests: ``python _worker.py SCENARIO RANK WORLD INIT_FILE OUT_DIR TIMEOUT_S``.

Joins a gloo process group through a file (no port to pick), runs SCENARIO and writes
what it saw to OUT_DIR/rank{RANK}.npz; the test process compares it with single-process fits."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch.distributed as dist

import sparsolve
from sparsolve.learning import distributed

# This folder is on sys.path as the script's own.
from cases import CASES, GPU_KWARGS, GRID_CASES, P_FEATURES, data, iterable_batches, rank_data, write_shards


def run_cases(cases, rank, world, out):
    """Fit every case; a resume case fits its first ``resume_after`` steps into a checkpoint (the
    test resumes it on one process) and resumes a copy of it here, on these ranks, to the end."""
    shard_dir = Path(out) / "shards"
    if rank == 0 and any(c.get("data") == "shards" for c in cases.values()):
        shard_dir.mkdir(exist_ok=True)
        write_shards(shard_dir)
    dist.barrier()
    saved = {}
    for name, case in cases.items():
        kwargs = dict(case["kwargs"])
        X = rank_data(case, rank, world, shard_dir)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if "resume_after" in case:
                path = os.path.join(out, f"{name}.npz")
                sparsolve.fit(X, progress=False, checkpoint=path,
                              **{**kwargs, "n_epochs": None, "max_steps": case["resume_after"]})
                if rank == 0:
                    shutil.copy(path, path.replace(".npz", "_here.npz"))
                dist.barrier()
                kwargs["checkpoint"] = path.replace(".npz", "_here.npz")
            model = sparsolve.fit(X, progress=False, **kwargs)
        saved[f"{name}/D"] = model.dictionary
        saved[f"{name}/warnings"] = np.array([str(w.message) for w in seen] or [""])
        if model.offset is not None:
            saved[f"{name}/offset"] = model.offset
        for k in ("mse", "nnz_frac", "samples_seen", "resampled", "dead_frac", "objective", "norm_min", "step"):
            saved[f"{name}/{k}"] = np.asarray(model.history[k], dtype=np.float64)
    return saved


def errors(rank, world):
    """The bad starts: each must raise the same ValueError on every rank, naming both ranks' values."""
    base = dict(n_atoms=8, alpha=0.1, solver="cd", batch_size=50, max_steps=1, seed=0, progress=False)
    X = data()
    runs = [
        dict(X=X, **{**base, "alpha": 0.1 + 0.1 * rank}),
        dict(X=X, **{**base, "seed": rank}),
        dict(X=X[:, :P_FEATURES - 8 * rank], **base),
        dict(X=X, **base, dict_init=np.random.default_rng(rank).standard_normal((8, P_FEATURES))),
        # an iterable's width shows only in its first batch
        dict(X=[b[:, :P_FEATURES - 8 * rank] for b in iterable_batches()], **base),
        # 399-row batches leave a last batch of 1 row: nothing for rank 1
        dict(X=X, **{**base, "batch_size": 399, "max_steps": None}),
        dict(X=X[rank::2].astype(np.float32 if rank else np.float64), **base),  # dtypes differ
        dict(X=X[rank::2], **base, rank_data="shared"),  # "shared", but each rank passed its half
        dict(X=X[rank::2], **{**base, "solver": "fista"}, shard="atoms"),  # one dictionary's ranks, other rows
        dict(X=X, **{**base, "solver": "fista"}, shard="atoms", atom_shards=3),
        dict(X=X[:30] if rank == 0 else X[30:], **{**base, "batch_size": 10}),  # rank 0's share < 1 row
    ]
    said = []
    for run in runs:
        try:
            sparsolve.fit(run.pop("X"), **run)
            said.append("no error")
        except ValueError as e:
            said.append(str(e))
    return said


def fits(rank, out):
    """The 2-rank cases, the first half of each resume case, and the mismatch errors."""
    saved = run_cases(CASES, rank, 2, out)
    # A resume on data changed in one row that only rank 1 read in step 1: both ranks must refuse.
    case = CASES["online_resume"]["kwargs"]
    rows = np.sort(np.random.default_rng([case["seed"], 1, 0]).permutation(len(data()))[:case["batch_size"]])
    changed = data()
    changed[rows[-1]] += 1.0
    try:
        sparsolve.fit(changed, progress=False, checkpoint=os.path.join(out, "online_resume.npz"),
                      **{**case, "n_epochs": None, "max_steps": CASES["online_resume"]["resume_after"] + 1})
        saved["resume_error"] = np.array("no error")
    except ValueError as e:
        saved["resume_error"] = np.array(str(e))
    saved["errors"] = np.array(errors(rank, 2))
    return saved


def grid(rank, out):
    """The 4-rank cases: atoms over 4 ranks, and a 2 × 2 grid of data groups × atom blocks."""
    return run_cases(GRID_CASES, rank, 4, out)


def failure(rank, out, how):
    """Rank 1 dies (``kill``) or hangs (``hang``) in step 3; rank 0 must end with a DistributedError."""

    def callback(step, D, record):
        if rank == 1 and step == 3:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(600)

    start = time.perf_counter()
    try:
        sparsolve.fit(data(), n_atoms=8, alpha=0.1, solver="cd", batch_size=50, n_epochs=10, seed=0,
                      progress=False, callback=callback, checkpoint=os.path.join(out, "fail.npz"), checkpoint_every=1)
        return {"error": np.array("no error"), "seconds": np.array(time.perf_counter() - start)}
    except distributed.DistributedError as e:
        return {"error": np.array(str(e)), "seconds": np.array(time.perf_counter() - start)}


def cuda(rank, out):
    """The ``online`` case on the GPU in float64 with FISTA (cd runs on the host), over NCCL."""
    import torch

    X = torch.tensor(data(), device="cuda")
    model = sparsolve.fit(X, progress=False, **GPU_KWARGS)
    return {"D": model.dictionary.cpu().numpy(), "device": np.array(str(model.dictionary.device))}


def main():
    scenario, rank, world, init_file, out, timeout = sys.argv[1:7]
    rank, world = int(rank), int(world)
    # The group's timeout also bounds the rendezvous, and a loaded machine can start one rank
    # seconds after the other: meet through files first, so that the short timeout of the
    # failure runs is spent on collectives only.
    Path(f"{init_file}.ready{rank}").touch()
    deadline = time.monotonic() + 60
    while not all(Path(f"{init_file}.ready{r}").exists() for r in range(world)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if scenario == "cuda":
        import torch

        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if scenario == "cuda" else "gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=float(timeout)))
    saved = {"fits": fits, "grid": grid, "cuda": cuda}.get(scenario, lambda r, o: failure(r, o, scenario))(rank, out)
    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)
    if scenario in ("fits", "grid", "cuda"):
        dist.destroy_process_group()
    else:
        os._exit(0)  # the group lost a peer: its teardown could wait on it


if __name__ == "__main__":
    main()
