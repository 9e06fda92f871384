"""Amortized start, exact finish: where does starting an exact solver from a learned encoder pay?

    python benchmarks/amortized_start.py [--quick] [--problems 8x8 16x16 synthetic] [--tols 1e-3 1e-4]

For each problem a learned-G encoder is trained (``fit_amortized(mode="amortize")``) on
training rows, then on held-out rows every certified solver runs to ``tol`` twice:
cold (z = 0) and from the encoder's codes (``encode(..., init=encoder)``), the latter
timed *with* the encoder's forward pass.  Cold and warm alternate, ``--repeats`` runs
each, best kept, so a slow spell of the shared machine hits both; wall and CPU time.  Problems (non-negative
lasso, float32 solvers, ReLU encoders):

* ``8x8``: natural-image patches 8×8, 256 atoms learned by scikit-learn (encode.py's
  cached dictionary), α = 0.1;
* ``16x16``: 16×16 patches, 1,024 atoms, the same way, α = 0.4;
* ``synthetic``: activations of width d = 256 from m = 4,096 planted unit features
  (``planted``: a stand-in for sparsolve.data.synthetic, which was not on this branch
  yet), about 8 active per row with heavy-tailed frequencies, 5% noise; the planted
  features are the dictionary; α = 0.2.

Encoders: depth T = 0 (the plain layer ReLU(W_e x + b_e), one (d × m) product) and T = 1
(one (m × m) product more), T = 0 only on the synthetic problem.  Why so shallow: a
learned-G step costs m² per row against 2md for a FISTA iteration in the factored form,
so at m = 4,096, d = 256 one step of the encoder costs eight FISTA iterations.

Besides the times the table shows why a start pays or not: the mean (max) iterations
(sweeps for cd) from each start; FISTA's iterations cold to reach each row's starting
objective (what the start can save at most, "worth": the median over the rows with a
nonzero optimum); the encoder's L0 and the fraction of the optimum's support it finds;
cd from the encoder's values on the optimum's support only (an oracle for a perfect
support guess: what seeding cd's working set from a better support could gain at most);
and FISTA restarted from its own iterate z_k (does a warm start lose the momentum?).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import sparsolve
from sparsolve.data import natural_image_patches
from sparsolve.inference import ConvergenceWarning
from sparsolve.inference.fista import FISTA
from sparsolve.inference.problem import LassoProblem, choose_form, lipschitz

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encode import learned_dictionary  # noqa: E402  (the same cached dictionaries as the encode benchmark)
from harness import load_average, record  # noqa: E402

ALPHAS = {"8x8": 0.1, "16x16": 0.4, "synthetic": 0.2}
PROBLEM_TITLES = {"8x8": "natural-image patches 8×8/256", "16x16": "16×16/1,024",
                  "synthetic": "synthetic activations, d = 256, m = 4,096"}
SOLVERS = ("cd", "fista")
# T = 1 at m = 4,096 costs 4,096² per row, 32 FISTA iterations' worth: not a start that can pay
DEPTHS = {"8x8": (0, 1), "16x16": (0, 1), "synthetic": (0,)}


def planted(n, d=256, m=4096, k=8, noise=0.05, seed=0):
    """(X, D): rows x = zD + noise over m planted unit-norm features D (m, d); each row
    draws about k features with Zipf-like frequencies and magnitudes 0.5 + |N(0, 1)|."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    freq = 1.0 / np.arange(1, m + 1) ** 0.7
    freq *= k / freq.sum()
    Z = (rng.random((n, m)) < freq) * (0.5 + np.abs(rng.standard_normal((n, m))))
    X = Z @ D + noise * rng.standard_normal((n, d)) * np.sqrt(np.mean((Z @ D) ** 2))
    return X, D


def problem(name, n_train, n_test):
    if name == "synthetic":
        X, D = planted(n_train + n_test, seed=0)
        return X[:n_train], X[n_train:], D
    patch, m = {"8x8": (8, 256), "16x16": (16, 1024)}[name]
    X = natural_image_patches(patch, n_train, seed=0, split="train")
    X_test = natural_image_patches(patch, n_test, seed=1, split="test")
    return X, X_test, learned_dictionary(patch, m, quick=False)


def timed(fn):
    """(fn(), wall seconds, CPU seconds of this process): on a shared machine the CPU time
    is the steadier measure of the work."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def fista_iterates(X, D, alpha, Z0, k_max):
    """Yield (k, z_k) for FISTA (encode's steps, restart and 1/L) from Z0, k = 1 … k_max."""
    prob = LassoProblem.build(X, D, alpha, True, choose_form(*X.shape[:1], *D.shape), L=lipschitz(D))
    algo = FISTA(restart=True)
    state = algo.init(prob, Z0)
    for k in range(1, k_max + 1):
        algo.step(prob, state)
        yield k, algo.current(prob, state)


def fista_worth(X, D, alpha, F_start, k_max=200):
    """Per row, the first cold FISTA iteration k whose objective is ≤ F_start (k_max + 1: none)."""
    worth = np.full(len(X), k_max + 1)
    for k, Z in fista_iterates(X, D, alpha, np.zeros((len(X), D.shape[0]), X.dtype), k_max):
        worth[(sparsolve.objective(X, D, Z, alpha) <= F_start) & (worth > k_max)] = k
    return worth


def own_iterate_start(X, D, alpha, tol, ks=(10, 30)):
    """Does a warm start lose FISTA's momentum?  Per k, over the rows that cold FISTA has
    not finished by k: (rows, mean cold iterations, mean of k + the iterations FISTA needs
    from its own iterate z_k), all certified at every iteration (check_every=1), so the
    cadence hides nothing.  Equal means: a restart from z_k costs nothing."""
    kw = dict(solver="fista", positive=True, tol=tol, check_every=1, return_info=True)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = sparsolve.encode(X, D, alpha, **kw)[1].n_iter
        for k, Z in fista_iterates(X, D, alpha, np.zeros((len(X), D.shape[0]), X.dtype), max(ks)):
            if k in ks:
                rows = cold > k
                warm = sparsolve.encode(X[rows], D, alpha, init=Z[rows], **kw)[1].n_iter
                out[k] = (int(rows.sum()), float(cold[rows].mean()), float(k + warm.mean()))
    return out


def bench(name, args):
    alpha = ALPHAS[name]
    X, X_test, D = problem(name, args.n_train, args.n_test)
    Xf, Df = X_test.astype(np.float32), D.astype(np.float32)
    Z_star = sparsolve.encode(X_test, D, alpha, solver="cd", positive=True, tol=1e-8)
    F_star = sparsolve.objective(X_test, D, Z_star, alpha)
    on = Z_star > 0
    print(f"{name}: {D.shape[0]} atoms of {D.shape[1]}, α = {alpha}, optimum L0 {on.sum(1).mean():.1f}", flush=True)
    sparsolve.encode(Xf[:50], Df, alpha, solver="cd", positive=True)  # compile outside the timings
    starts, about = {}, {}
    for T in DEPTHS[name]:
        enc, train_s, _ = timed(lambda: sparsolve.fit_amortized(
            X, D, t_star=T, alpha=alpha, scheme="ista", lr=3e-3, n_epochs=args.epochs, batch_size=256, seed=0,
            device="cpu", progress=False))
        enc.encode(Xf[:64])  # torch's first call sets up its threads: keep it out of the timing
        Z0 = enc.encode(Xf).astype(np.float64)
        F0 = sparsolve.objective(X_test, D, Z0, alpha)
        sub = slice(0, min(len(Xf), 500))
        worth = fista_worth(Xf[sub], Df, alpha, F0[sub].astype(np.float32))
        starts[f"T={T}"] = enc
        # the oracle: the encoder's values on the optimum's support only (a perfect support guess)
        starts[f"T={T}, optimum's support"] = lambda A, enc=enc: enc.encode(A) * on[:len(A)]
        about[f"T={T}"] = {"gap0": (F0.mean() - F_star.mean()) / F_star.mean(),
                           "worth": float(np.median(worth[on[sub].any(axis=1)])),  # rows with something to solve
                           "enc_ms": 1e3 * min(timed(lambda: enc.encode(Xf))[1] for _ in range(3)),
                           "l0": float((Z0 > 0).sum(1).mean()), "recall": float(((Z0 > 0) & on).sum() / on.sum()),
                           "train_s": train_s}
        print(f"  T={T}: trained in {train_s:.0f} s, {about[f'T={T}']}", flush=True)
    rows = []
    for tol in args.tols:
        for solver in SOLVERS:
            names = ["cold"] + [k for k in starts if solver == "cd" or "support" not in k]
            wall, cpu, info = dict.fromkeys(names, np.inf), dict.fromkeys(names, np.inf), {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                for _ in range(args.repeats):
                    for how in names:
                        (_, info[how]), w, c = timed(lambda: sparsolve.encode(
                            Xf, Df, alpha, solver=solver, positive=True, tol=tol, init=starts.get(how),
                            return_info=True))
                        wall[how], cpu[how] = min(wall[how], w), min(cpu[how], c)
            for how in names:
                rows.append({"problem": name, "shape": D.shape, "tol": tol, "solver": solver, "start": how,
                             "wall_ms": 1e3 * wall[how], "cpu_ms": 1e3 * cpu[how],
                             "ratio": wall["cold"] / wall[how], "cpu_ratio": cpu["cold"] / cpu[how],
                             "its": info[how].n_iter, "ok": bool(info[how].converged.all()),
                             **about.get(how.split(",")[0], {})})
                r = rows[-1]
                print(f"    tol {tol:g} {solver} {how}: {r['wall_ms']:.0f} ms wall, {r['cpu_ms']:.0f} ms CPU, "
                      f"cold ÷ this {r['ratio']:.2f} (CPU {r['cpu_ratio']:.2f}), its mean {r['its'].mean():.1f}",
                      flush=True)
    sub = slice(0, min(len(Xf), 200))
    momentum = {tol: own_iterate_start(Xf[sub], Df, alpha, tol) for tol in args.tols}
    print(f"  FISTA from its own iterate: {momentum}", flush=True)
    return rows, momentum


def tables_of(results, args):
    """(tables, figures, notes) of the run."""
    notes = (f"{args.n_test:,} held-out rows per problem; encoders trained on {args.n_train:,} rows, "
             f"{args.epochs} epochs, ISTA init, Adam lr 3e-3; times are the best of {args.repeats} runs, "
             "all starts alternating; a start's time includes its encoder.  \"optimum's support\": the encoder's "
             "values kept only on the optimum's support (an oracle for a perfect support guess).  With a loaded "
             "machine read the CPU-time ratio; wall times wander.")
    starts, figures = [], {}
    for rows, _ in results:
        for r in rows:
            m, d = r["shape"]
            starts.append({"problem": f"{r['problem']} d={d}, m={m:,}", "tol": r["tol"], "solver": r["solver"],
                           "start": r["start"],
                           "encoder gap to F*": round(r["gap0"], 3) if "gap0" in r else "—",
                           "worth (FISTA its)": round(r["worth"]) if "gap0" in r else "—",
                           "encoder ms": round(r["enc_ms"]) if "gap0" in r else 0,
                           "ms (wall)": round(r["wall_ms"]), "ms (CPU)": round(r["cpu_ms"]),
                           "cold ÷ this (wall / CPU)": f"{r['ratio']:.2f}× / {r['cpu_ratio']:.2f}×"
                           + ("" if r["ok"] else " (not all certified)"),
                           "iterations mean (max)": f"{r['its'].mean():.1f} ({r['its'].max()})",
                           "L0 encoder": round(r["l0"], 1) if "l0" in r else "—",
                           "support found": round(r["recall"], 2) if "l0" in r else "—"})
            key = re.sub(r"[^0-9A-Za-z.]+", "_", f"{r['problem']} {r['solver']} {r['start']} {r['tol']:g}")
            figures[f"{key}_cpu_ratio"] = round(r["cpu_ratio"], 2)
    momentum = [{"problem": rows[0]["problem"], "tol": tol, "k": k, "rows": n, "cold": round(cold, 1),
                 "k + from z_k": round(warm, 1)}
                for rows, per_tol in results for tol, per_k in per_tol.items() for k, (n, cold, warm) in per_k.items()]
    return ({"Cold against the encoder's start": starts,
             "FISTA from its own iterate z_k (200 rows, certified every iteration), over the rows cold FISTA has not "
             "finished by k: mean iterations cold, and k + the mean iterations from z_k": momentum}, figures, notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    ap.add_argument("--problems", nargs="+", choices=tuple(ALPHAS), default=list(ALPHAS))
    ap.add_argument("--tols", nargs="+", type=float, default=[1e-3, 1e-4])
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--n-test", type=int, default=2_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.repeats = 2_000, 300, 1, 1
    torch.manual_seed(0)
    load = load_average()
    results = [bench(name, args) for name in args.problems]
    tables, figures, notes = tables_of(results, args)
    problems = "" if set(args.problems) == set(ALPHAS) else "_" + "_".join(args.problems)
    record("amortized_start" + problems + ("_quick" if args.quick else ""), load_before=load, tables=tables,
           figures=figures, notes=notes,
           title="Amortized start, exact finish: " + "; ".join(PROBLEM_TITLES[p] for p in args.problems)
                 + f", tol {' and '.join(f'{t:g}' for t in args.tols)} (benchmarks/amortized_start.py"
                 + (" --quick)" if args.quick else ")"),
           comparison="equal held-out rows and tol; cold and encoder starts alternating, a start's time includes "
                      "its encoder")


if __name__ == "__main__":
    main()
