"""Where one ``fit`` step's time goes at interpretability width (issue 23 §1).

    python benchmarks/fit_step.py [--sizes 256x4096 768x16384] [--steps 24] [--label before]

Data: :class:`sparsolve.data.SyntheticActivations` as ``versus_saes.py --size cpu`` makes it
(mean L0 4, power-law frequencies, groups of 4, noise 0.01; the planted features as many as
the atoms), and ``fit`` as that benchmark runs it: non-negative codes, unit-norm atoms,
batches of 1,024, ``forget=20``, α = 0.2, the solver ``"auto"`` picks (cd on the CPU).

Each phase of :meth:`sparsolve.learning.learner.Learner.step` is timed by wrapping the
function that does it (:data:`PHASES`: the one place that names them, so a refactor of the
learner changes only that table):

* ``inference``: ``encode`` as the learner calls it, split into the solver's set-up
  (``prepare``: the Gram matrix G = DDᵀ for cd and omp), its ``solve`` (the products XDᵀ and
  the kernel), and the rest (checks, dtype and memory plan);
* ``statistics``, ``update``, ``norm rule``, ``dead atoms``: the learner's stages;
* ``bookkeeping``: everything else in the step (the residual R = X − ZD, the record, the idle
  counts, the copies).

The split is reported over all steps and over the last half (the codes are denser while D is
young, so the two differ).  Every timing is wall time on this machine, with the load average.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sparsolve  # noqa: E402
from sparsolve.data import SyntheticActivations  # noqa: E402

MEAN_ACTIVE = 4.0  # versus_saes.py's


#: The clock every timing reads: wall time by default; ``--clock cpu`` reads the process's CPU time
#: (time.process_time), which a shared machine's load hardly moves -- meaningful with one thread.
NOW = time.perf_counter


class Clock:
    """Seconds per phase, per step; nested phases are subtracted from their parent."""

    def __init__(self):
        self.steps = []
        self.current = None
        self.stack = []

    def begin_step(self):
        self.current = defaultdict(float)
        self.steps.append(self.current)

    @contextlib.contextmanager
    def phase(self, name):
        start = NOW()
        self.stack.append(0.0)
        try:
            yield
        finally:
            spent = NOW() - start
            inner = self.stack.pop()
            if self.current is not None:
                self.current[name] += spent - inner
            if self.stack:
                self.stack[-1] += spent


def wrap(owner, attribute, name, clock, *, method=False):
    """Replace owner.attribute by a version that counts its time under ``name``."""
    original = owner[attribute] if isinstance(owner, dict) else getattr(owner, attribute)

    def timed(*args, **kwargs):
        with clock.phase(name):
            return original(*args, **kwargs)

    if isinstance(owner, dict):
        owner[attribute] = timed
    else:
        setattr(owner, attribute, timed)
    return original


def phases(clock, update):
    """Wrap each phase of the learner's step (the table a refactor of learner.py updates)."""
    from sparsolve.inference import REGISTRY
    from sparsolve.learning import learner as L
    from sparsolve.learning import reducer
    from sparsolve.rules import NORM_RULES, UPDATE_RULES

    wrap(reducer, "encode", "inference: other", clock)
    for cls in REGISTRY.values():
        if "prepare" in cls.__dict__:
            wrap(cls, "prepare", "inference: prepare (Gram)", clock)
        if "solve" in cls.__dict__:
            wrap(cls, "solve", "inference: solve", clock)
    wrap(UPDATE_RULES[update], "statistics", "statistics", clock)
    wrap(UPDATE_RULES[update], "apply", "update", clock)
    for cls in NORM_RULES.values():
        if "project" in cls.__dict__:
            wrap(cls, "project", "norm rule", clock)
    wrap(L.Learner, "_dead_atoms", "dead atoms", clock)


def run(d, m, args, update):
    gen = SyntheticActivations(d, m, mean_active=MEAN_ACTIVE, seed=args.seed)
    X = gen.sample(args.batch * args.steps, split=0)
    clock = Clock()
    phases(clock, update)
    totals = []

    def callback(step, D, record):
        return True

    from sparsolve.learning import learner as L

    step = L.Learner.step

    def timed_step(self, *a, **k):
        clock.begin_step()
        start = NOW()
        out = step(self, *a, **k)
        totals.append(NOW() - start)
        return out

    L.Learner.step = timed_step
    try:
        model = sparsolve.fit(X, n_atoms=m, alpha=args.alpha, positive=True, batch_size=args.batch, n_epochs=1,
                              forget=20.0, seed=args.seed, progress=False, update=update, **args.fit_options)
    finally:
        L.Learner.step = step
    return clock.steps, totals, model


def sparsify_seconds(X, m, k, threads, seed):
    """Wall time of sparsify's TopK training (versus_saes.run_sparsify: its own loss, optimiser and
    decoder-norm steps, batches of 256) over the tokens X, on ``threads`` torch threads."""
    import torch
    from types import SimpleNamespace

    import versus_saes

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        args = SimpleNamespace(seed=seed, device="cpu", epochs=1, batch=256)
        versus_saes.run_sparsify(X[:2048], m, k, args)  # warm-up: a process's first run costs 3× (torch's first calls)
        start = NOW()
        versus_saes.run_sparsify(X, m, k, args)
        return NOW() - start
    finally:
        torch.set_num_threads(before)


def split_rows(steps, totals, label, size, update):
    rows = []
    n = len(totals)
    for part, sl in (("all steps", slice(0, n)), ("last half", slice(n // 2, n))):
        chosen = steps[sl]
        total = float(np.mean(totals[sl]))
        names = sorted({k for s in steps for k in s})
        spent = {k: float(np.mean([s.get(k, 0.0) for s in chosen])) for k in names}
        spent["bookkeeping"] = total - sum(spent.values())
        for k, v in spent.items():
            rows.append({"size": size, "update": update, "run": label, "steps": part, "phase": k,
                         "ms a step": 1e3 * v, "share": v / total})
        rows.append({"size": size, "update": update, "run": label, "steps": part, "phase": "step",
                     "ms a step": 1e3 * total, "share": 1.0})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["256x4096", "768x16384"], help="d x m")
    p.add_argument("--steps", type=int, nargs="+", default=[24, 3], help="steps per size (one number or one a size)")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--alpha", type=float, default=0.2)
    p.add_argument("--updates", nargs="+", default=["online"], help="the update rules to time")
    p.add_argument("--option", action="append", default=[], help="extra fit option NAME=VALUE (python literal)")
    p.add_argument("--label", default="now", help="names the run in the table (before / after)")
    p.add_argument("--case", default="fit_step_split", help="the harness case (results/<case>.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sparsify", type=int, default=None, metavar="K",
                   help="also time sparsify's TopK (k=K) on the same tokens, per token, for the ratio")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="numba/torch threads to time each at")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or the process's CPU time (stable under load; use with --threads 1)")
    p.add_argument("--note", default="", help="a sentence added to the record's notes (e.g. which code ran)")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args(argv)
    import ast

    args.fit_options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.option)}
    global NOW
    NOW = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu" and args.threads != [1]:
        p.error("--clock cpu sums the CPU time of every thread: use --threads 1")
    import numba
    import torch

    import importlib

    importlib.import_module("scipy.linalg")  # its BLAS too (numba's np.dot), before the limit below
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(min(args.threads[0], numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads[0])
    threadpool_limits(args.threads[0], user_api="blas")  # every library on the same count
    load_before = os.getloadavg()[0]
    steps_for = args.steps * len(args.sizes) if len(args.steps) == 1 else args.steps
    rows = []
    figures = {}
    for size, n_steps in zip(args.sizes, steps_for):
        d, m = (int(v) for v in size.split("x"))
        for update in args.updates:
            args.steps = n_steps
            steps, totals, model = run(d, m, args, update)
            rows += split_rows(steps, totals, args.label, size, update)
            h = model.history
            per_token = float(np.mean(totals[len(totals) // 2:])) / args.batch
            figures[f"{size}_{update}_us_per_token_last_half"] = 1e6 * per_token
            figures[f"{size}_{update}_ms_per_step"] = 1e3 * float(np.mean(totals))
            figures[f"{size}_{update}_ms_per_step_last_half"] = 1e3 * float(np.mean(totals[len(totals) // 2:]))
            figures[f"{size}_{update}_final_nnz"] = float(h["nnz_frac"][-1]) * m
            print(f"{size} {update}: {1e3 * np.mean(totals):.0f} ms a step over {len(totals)} steps "
                  f"(last half {1e3 * np.mean(totals[len(totals) // 2:]):.0f}); L0 at the end "
                  f"{h['nnz_frac'][-1] * m:.1f}; load {os.getloadavg()[0]:.1f}", flush=True)
        if args.sparsify:
            gen = SyntheticActivations(d, m, mean_active=MEAN_ACTIVE, seed=args.seed)
            X = gen.sample(args.batch * n_steps, split=0)
            for threads in args.threads:
                seconds = sparsify_seconds(X, m, args.sparsify, threads, args.seed)
                figures[f"{size}_sparsify_k{args.sparsify}_us_per_token_{threads}t"] = 1e6 * seconds / len(X)
                print(f"{size} sparsify TopK k={args.sparsify} on {threads} thread(s): "
                      f"{1e6 * seconds / len(X):.1f} µs a token; load {os.getloadavg()[0]:.1f}", flush=True)
    for r in rows:
        print(f"{r['size']:>10} {r['update']:>6} {r['steps']:>9} {r['phase']:<28} {r['ms a step']:9.1f} ms "
              f"{100 * r['share']:5.1f} %")
    if not args.no_record:
        from harness import record

        record(args.case + ("" if args.label == "now" else f"_{args.label}"),
               title=f"One fit step's time split at interpretability width ({args.label}; benchmarks/fit_step.py)",
               tables={"ms a step by phase": rows}, figures=figures, comparison="the same steps, phase by phase",
               load_before=load_before,
               notes=f"SyntheticActivations (mean L0 {MEAN_ACTIVE:g}), batch {args.batch}, α = {args.alpha}, "
                     f"positive codes, unit norm, forget 20, solver auto (cd); options {args.fit_options or 'none'}; "
                     f"clock {args.clock}, {args.threads[0]} thread(s). {args.note}")


if __name__ == "__main__":
    main(sys.argv[1:])
