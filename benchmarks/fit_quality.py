"""Held-out quality of ``fit`` at interpretability width under the settings that make it cheap
(issue 23 §2 and §4): the update rule, Adam's step, the inexact-EM tolerance schedule.

    python benchmarks/fit_quality.py --runs 'update=online' 'update=sgd,lr=0.003' 'tol_warmup=64'

Data and fit as ``versus_saes.py --size cpu --tokens 131072 --fit-batch 1024`` (d = 256, 4,096
planted features, mean L0 4; non-negative codes, unit-norm atoms, batches of 1,024, forget 20,
α = 0.2); every run on the same tokens, scored on the same 8,000 held-out tokens with exact
inference (cd to a relative gap of 1e-4): recovery (planted features with an atom at |cos| > 0.9),
mean max cosine, FVU, L0, dead atoms; and the training time (wall and CPU).  ``--seeds`` repeats
each run on other data and starting dictionaries, for the noise.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sparsolve  # noqa: E402
from sparsolve import metrics  # noqa: E402
from sparsolve.data import SyntheticActivations  # noqa: E402
from sparsolve.inference import ConvergenceWarning  # noqa: E402


def parse(run: str) -> dict:
    out = {}
    for part in filter(None, run.split(",")):
        key, value = part.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="fit options per run, 'key=value,key=value'")
    p.add_argument("--tokens", type=int, default=131072)
    p.add_argument("--test", type=int, default=8000)
    p.add_argument("--size", default="256x4096")
    p.add_argument("--alpha", type=float, default=0.2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--case", default=None, help="record under this harness case (default: print only)")
    args = p.parse_args(argv)
    import numba
    import torch

    import importlib

    importlib.import_module("scipy.linalg")  # its BLAS too (numba's np.dot), before the limit below
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads, user_api="blas")  # every library on the same count
    d, m = (int(v) for v in args.size.split("x"))
    load_before = os.getloadavg()[0]
    rows = []
    for seed in args.seeds:
        gen = SyntheticActivations(d, m, mean_active=4.0, seed=seed)
        X, X_test = gen.sample(args.tokens, split=0), gen.sample(args.test, split=1)
        for run in args.runs:
            options = {"batch_size": 1024, "forget": 20.0, **parse(run)}
            wall, cpu = time.perf_counter(), time.process_time()
            model = sparsolve.fit(X, n_atoms=m, alpha=args.alpha, positive=True, n_epochs=1, seed=seed,
                                  progress=False, **options)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            D = np.asarray(model.dictionary, dtype=np.float32)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                Z = sparsolve.encode(X_test, D, args.alpha, solver="cd", positive=True, tol=1e-4)
            r = metrics.recovery(D, gen.features)
            row = {"run": run, "seed": seed, "recovered": r.recovered, "mean max cos": r.mean_max_cos,
                   "FVU": metrics.fvu(X_test, Z @ D), "L0": metrics.l0(Z), "dead": metrics.dead_fraction(Z),
                   "train s (wall)": wall, "train s (CPU)": cpu, "load": os.getloadavg()[0]}
            rows.append(row)
            print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    if args.case:
        from harness import record

        record(args.case, title=f"fit's held-out quality at {args.size} under cheaper settings (benchmarks/fit_quality.py)",
               tables={"held-out quality": rows}, comparison="equal data (the same tokens, one pass)",
               load_before=load_before,
               notes=f"{args.tokens:,} training tokens, {args.test:,} held out; α = {args.alpha}; "
                     f"threads {args.threads}.")


if __name__ == "__main__":
    main(sys.argv[1:])
