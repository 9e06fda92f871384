"""Do ``fit_amortized``'s defaults reach the benchmark recipe's quality on data the benchmark does not use?

    python benchmarks/amortized_defaults.py [--quick] [--alphas A ...] [--sizes N ...] [--depths T ...]

The issue's problem, not benchmarks/amortized.py's: 8×8 patches scaled to unit variance (mean
removed per patch, then one scale for all pixels, from the training patches), a dictionary
that is not sparsolve's (scikit-learn's ``MiniBatchDictionaryLearning``, 256 atoms,
non-negative codes, fitted on 20,000 patches drawn with another seed), training patches from
the left 80 % of each photo and 5,000 held-out ones from the right 20 % (``split``).

For each α, training size n and depth T, four encoders trained by ``fit_amortized`` (seed 0):

* **defaults**: ``fit_amortized(X, D, t_star=T, alpha=α)`` and nothing else (the schedule
  it picks from n is printed; where it is one of the recipes, that training runs once and the
  table says so);
* **old defaults**: LCA's start, lr 1e-3, 10 epochs (the defaults before this benchmark);
* **recipe (lca)**: benchmarks/amortized.py's recipe, 12 epochs at lr 1e-2 from LCA's start;
* **recipe (ista)**: 12 epochs at lr 3e-3 from ISTA's start.

``--starts``: ``LearnedG.from_dictionary(D, α, t_star=500)``, untrained, with the seed's loop and
with ``accelerate=True`` (LCA's momentum with adaptive restart), on the first 1,000 held-out
patches; the issue quotes 0.9 % above the optimum for the seed's loop on such a dictionary.

Each trained encoder is scored by the held-out gap of its mean lasso objective to the optimum F* (cd to a
relative duality gap of 1e-8), and the table gives gap(defaults) / gap(best recipe), which
the issue asks to be ≤ 1.5.  Prints a Markdown section for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import MiniBatchDictionaryLearning

import sparsolve
from sparsolve.config import AmortizedConfig
from sparsolve.data import natural_image_patches

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import load_average, record  # noqa: E402

N_ATOMS = 256
# name: the settings beside (X, D, t_star, alpha, seed, device, progress)
RUNS = {
    "defaults": {},
    "old defaults": {"scheme": "lca", "lr": 1e-3, "n_epochs": 10},
    "recipe (lca)": {"scheme": "lca", "lr": 1e-2, "n_epochs": 12},
    "recipe (ista)": {"scheme": "ista", "lr": 3e-3, "n_epochs": 12},
}


def problem(n_dict, n_test, max_train):
    """(training patches, held-out patches, dictionary) at unit variance; the training set is
    the first n rows of ``max_train`` draws, so every size shares its patches with the larger."""
    X = natural_image_patches(8, max_train, seed=0, split="train")
    scale = X.std()
    X_test = natural_image_patches(8, n_test, seed=1, split="test") / scale
    X_dict = natural_image_patches(8, n_dict, seed=7, split="train") / scale
    start = time.perf_counter()
    mbdl = MiniBatchDictionaryLearning(n_components=N_ATOMS, alpha=0.2, batch_size=256, max_iter=10, fit_algorithm="cd",
                                       positive_code=True, random_state=0).fit(X_dict)
    D = mbdl.components_ / np.linalg.norm(mbdl.components_, axis=1, keepdims=True)
    print(f"dictionary: MiniBatchDictionaryLearning on {n_dict:,} patches, {time.perf_counter() - start:.0f} s; "
          f"L = {np.linalg.norm(D, 2) ** 2:.3g}, coherence {coherence(D):.3g}", flush=True)
    return X / scale, X_test, D


def coherence(D):
    G = np.abs(D @ D.T)
    np.fill_diagonal(G, 0)
    return float(G.max())


def held_out_gap(X_test, D, alpha, encoder, optimum):
    F = sparsolve.objective(X_test, D, encoder.encode(X_test.astype(np.float32)).astype(np.float64), alpha).mean()
    return (F - optimum) / optimum


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.237, 0.1])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--depths", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n-dict", type=int, default=20_000)
    ap.add_argument("--n-test", type=int, default=5_000)
    ap.add_argument("--starts", action="store_true", help="only the untrained from_dictionary starts at t* = 500")
    ap.add_argument("--t-star", type=int, default=500, help="depth of the untrained starts (--starts)")
    args = ap.parse_args(argv)
    if args.quick:
        args.alphas, args.sizes, args.depths, args.n_dict, args.n_test = [0.237], [2_000], [1], 2_000, 500
    load = load_average()
    X_all, X_test, D = problem(args.n_dict, args.n_test, max(args.sizes))
    quick = "_quick" if args.quick else ""
    if args.starts:
        rows, caption = starts(X_test[:1000], D, args)
        record("amortized_defaults_starts" + quick, load_before=load, tables={caption: rows},
               figures={f"{k}_gap_pct_alpha_{r['α']:g}": float(r[col].rstrip(" %"))
                        for r in rows for k, col in (("seed_loop", "seed's loop (accelerate=False)"),
                                                     ("accelerated", "accelerate=True"))} | {"t_star": args.t_star},
               title=f"Amortized defaults: from_dictionary's untrained encoder at t* = {args.t_star}, the seed's loop "
                     "against accelerate=True (benchmarks/amortized_defaults.py --starts)",
               comparison="the same untrained encoder and held-out patches, with and without momentum")
        return
    rows = []
    for alpha in args.alphas:
        Z_star = sparsolve.encode(X_test, D, alpha, solver="cd", positive=True, tol=1e-8)
        optimum = float(sparsolve.objective(X_test, D, Z_star, alpha).mean())
        for n in args.sizes:
            for T in args.depths:
                gaps, seconds, same = {}, {}, {}
                # where the defaults resolve to a recipe's settings (AmortizedConfig.resolved), that is
                # one training, run once and reported in both columns
                resolved = {name: AmortizedConfig(T, alpha, seed=0, device="cpu", **kw).resolved(n)
                            for name, kw in RUNS.items()}
                for name, kw in RUNS.items():
                    twin = next((k for k in gaps if resolved[k] == resolved[name]), None)
                    if twin is not None:
                        gaps[name], seconds[name], same[name] = gaps[twin], seconds[twin], twin
                        continue
                    start = time.perf_counter()
                    enc = sparsolve.fit_amortized(X_all[:n], D, t_star=T, alpha=alpha, seed=0, device="cpu",
                                                  progress=False, **kw)
                    seconds[name] = time.perf_counter() - start
                    gaps[name] = held_out_gap(X_test, D, alpha, enc, optimum)
                    print(f"α={alpha} n={n} T={T} {name}: gap {gaps[name]:.4f}, {seconds[name]:.0f} s", flush=True)
                c = resolved["defaults"]
                schedule = (f"{c.scheme}, lr {c.lr:g}, {c.n_epochs} epochs "
                            f"({c.n_epochs * -(-n // c.batch_size):,} steps)"
                            + "".join(f"; the same training as {name}" for name, twin in same.items() if twin == "defaults"))
                rows.append((alpha, n, T, schedule, gaps, seconds))
    table, notes = results(rows, args, D)
    ratios = [r["defaults ÷ best recipe"] for r in table]
    old = [r["old ÷ best recipe"] for r in table]
    record("amortized_defaults" + quick, load_before=load, tables={
               "Held-out gap to F* of each recipe, and the defaults against the best recipe": table},
           figures={"defaults_over_best_min": min(ratios), "defaults_over_best_max": max(ratios),
                    "old_over_best_min": min(old), "old_over_best_max": max(old), "bound": 1.5,
                    "alphas": len(args.alphas), "rows_min": min(args.sizes), "rows_max": max(args.sizes)},
           notes=notes, comparison="equal data and steps per cell; held-out gap of each training recipe",
           title="Amortized defaults against the benchmark recipe, on a problem the benchmark does not use "
                 "(benchmarks/amortized_defaults.py)")


def starts(X, D, args):
    """(rows, caption): the held-out gap of from_dictionary's untrained encoder at t*, seed's loop and accelerated."""
    caption = (f"from_dictionary(D, α, t_star={args.t_star}), untrained, float32, on {len(X):,} held-out patches "
               f"(dictionary: L = {np.linalg.norm(D, 2) ** 2:.3g}, coherence {coherence(D):.3g}): the gap above the "
               "optimum")
    rows = []
    for alpha in args.alphas:
        Z_star = sparsolve.encode(X, D, alpha, solver="cd", positive=True, tol=1e-8)
        optimum = float(sparsolve.objective(X, D, Z_star, alpha).mean())
        gaps, ms = [], []
        for accelerate in (False, True):
            enc = sparsolve.LearnedG.from_dictionary(D.astype(np.float32), alpha, args.t_star, accelerate=accelerate)
            start = time.perf_counter()
            gaps.append(held_out_gap(X, D, alpha, enc, optimum))
            ms.append(1e3 * (time.perf_counter() - start))
        rows.append({"α": alpha, "seed's loop (accelerate=False)": f"{100 * gaps[0]:.3g} %",
                     "accelerate=True": f"{100 * gaps[1]:.3g} %",
                     "encoder ms, seed's / accelerated": f"{ms[0]:.0f} / {ms[1]:.0f}"})
        print(rows[-1], flush=True)
    return rows, caption


def results(rows, args, D):
    """(table rows, notes)."""
    notes = (f"8×8 patches at unit variance; dictionary: scikit-learn MiniBatchDictionaryLearning, {N_ATOMS} atoms "
             f"(L = {np.linalg.norm(D, 2) ** 2:.3g}, coherence {coherence(D):.3g}), fitted on {args.n_dict:,} other "
             f"training patches; {args.n_test:,} held-out patches from the right 20 % of each photo; non-negative "
             "codes; seed 0.")
    table = []
    for alpha, n, T, schedule, g, s in rows:
        best = min(g["recipe (lca)"], g["recipe (ista)"])
        table.append({"α": alpha, "n train": n, "T": T, "defaults' schedule": schedule,
                      "gap: defaults": round(g["defaults"], 4), "old defaults": round(g["old defaults"], 4),
                      "recipe (lca)": round(g["recipe (lca)"], 4), "recipe (ista)": round(g["recipe (ista)"], 4),
                      "defaults ÷ best recipe": round(g["defaults"] / best, 2),
                      "old ÷ best recipe": round(g["old defaults"] / best, 2),
                      "training s (defaults)": round(s["defaults"])})
    return table, notes


if __name__ == "__main__":
    main()
