"""One rank of the data-parallel tests: ``python _worker.py SCENARIO RANK WORLD INIT_FILE OUT_DIR TIMEOUT_S``.

Joins a gloo process group through a file (no port to pick), runs SCENARIO and writes
what it saw to OUT_DIR/rank{RANK}.npz; the test process compares it with single-process fits."""
from __future__ import annotations

import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch.distributed as dist

import sparsolve
from sparsolve.learning import distributed

# This folder is on sys.path as the script's own.
from cases import CASES, GPU_KWARGS, P_FEATURES, data, iterable_batches


def fits(rank, out):
    """The equality cases, the first half of each resume case, and the mismatch errors."""
    saved = {}
    for name, case in CASES.items():
        kwargs = dict(case["kwargs"])
        X = iterable_batches() if case.get("iterable") else data()
        if "resume_after" in case:
            kwargs["max_steps"] = case["resume_after"]
            kwargs["checkpoint"] = os.path.join(out, f"{name}.npz")
            kwargs.pop("n_epochs", None)
        model = sparsolve.fit(X, progress=False, **kwargs)
        saved[f"{name}/D"] = model.dictionary
        if model.offset is not None:
            saved[f"{name}/offset"] = model.offset
        for k in ("mse", "nnz_frac", "samples_seen", "resampled", "dead_frac"):
            saved[f"{name}/{k}"] = np.asarray(model.history[k], dtype=np.float64)
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
    base = dict(n_atoms=8, alpha=0.1, solver="cd", batch_size=50, max_steps=1, seed=0, progress=False)
    errors = []
    for args in ({**base, "alpha": 0.1 + 0.1 * rank}, {**base, "seed": rank}):
        try:
            sparsolve.fit(data(), **args)
            errors.append("no error")
        except ValueError as e:
            errors.append(str(e))
    try:
        sparsolve.fit(data()[:, :P_FEATURES - 8 * rank], **base)
        errors.append("no error")
    except ValueError as e:
        errors.append(str(e))
    try:
        sparsolve.fit(data(), **base, dict_init=np.random.default_rng(rank).standard_normal((8, P_FEATURES)))
        errors.append("no error")
    except ValueError as e:
        errors.append(str(e))
    try:  # an iterable's width shows only in its first batch
        sparsolve.fit([b[:, :P_FEATURES - 8 * rank] for b in iterable_batches()], **base)
        errors.append("no error")
    except ValueError as e:
        errors.append(str(e))
    try:  # 399-row batches leave a last batch of 1 row: nothing for rank 1
        sparsolve.fit(data(), **{**base, "batch_size": 399, "max_steps": None})
        errors.append("no error")
    except ValueError as e:
        errors.append(str(e))
    saved["errors"] = np.array(errors)
    return saved


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
    saved = {"fits": fits, "cuda": cuda}.get(scenario, lambda r, o: failure(r, o, scenario))(rank, out)
    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)
    if scenario in ("fits", "cuda"):
        dist.destroy_process_group()
    else:
        os._exit(0)  # the group lost a peer: its teardown could wait on it


if __name__ == "__main__":
    main()
