"""Why the learned-G encoder misses 10·T FISTA iterations at T = 2 and 5: capacity, data or measure?

    python benchmarks/amortized_limits.py [--quick]

The same patches and dictionary as benchmarks/amortized.py (``problem``): 8×8, 256 atoms,
α = 0.05, non-negative codes, held-out patches from the right 20% of each photo.  Each
encoder is scored twice by ``sparsolve.compare``, on the held-out patches and on 5,000
of its own training patches, and once on Gregor & LeCun's measure:

* **the issue's encoder** (one G and one γ shared by every step), trained by
  ``fit_amortized`` on 400,000 training patches (259,000 distinct: the left 80% of the two
  photos holds about 424,000 positions), 4× amortized.py's 100,000.  Its gap on its own
  training patches says what the architecture reaches on the distribution it learns from,
  before any generalization;
* **the same encoder trained on the held-out patches themselves** ("oracle"): it has seen
  the test set, so its gap there is an optimistic estimate of what any recipe could reach
  with this architecture on those patches;
* **LISTA with per-step weights** (``LearnedG(tied=False)``: G_t, a bias b_t and γ_t for
  each step t, from ISTA's start γ_t = 1, μ_{t+1} = μ₀ + b_t − G_t z_t), which is outside
  the seed's spec: what untying adds.  Trained by ``fit_amortized(tied=False)``, with the
  same recipe;
* **Gregor & LeCun's measure**: LISTA's paper matches iterations on the code error
  ‖z − z*‖² (z* the exact codes), not on the lasso objective.  The last column gives the
  FISTA iterations whose mean code error the encoder matches.

A FISTA match at k iterations needs an objective gap at most FISTA's after k.  Prints a
Markdown section for benchmarks/RESULTS.md; takes about 8 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import sparsolve
from sparsolve import backend
from sparsolve.data import natural_image_patches
from sparsolve.inference import ConvergenceWarning
from sparsolve.inference.fista import FISTA
from sparsolve.inference.problem import LassoProblem, choose_form, lipschitz

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amortized import ALPHA, problem  # noqa: E402  (the same patches and dictionary)
from harness import load_average, record  # noqa: E402

# Per depth: the initialisation and Adam step that trained it best in amortized.py, and the
# epochs over the 400,000 patches (T = 5 steps cost 2.5× as much, so half as many epochs).
SETTINGS = {2: ("ista", 3e-3, 12), 5: ("lca", 1e-2, 6)}
ORACLE_EPOCHS = 250  # 5,000 steps over the 5,000 held-out patches


def train_per_step(X, D, t_star, lr, n_epochs):
    """fit_amortized's amortize/lasso training (Adam, cosine step) of the untied encoder from ISTA's start."""
    return sparsolve.fit_amortized(X, D, t_star=t_star, alpha=ALPHA, scheme="ista", tied=False, lr=lr,
                                   n_epochs=n_epochs, seed=0, device="cpu", progress=False)


def code_error_match(X, D, encoders, max_iter=400):
    """{name: (mean ‖z − z*‖², the first FISTA iteration k with a mean code error ≤ it)}."""
    Xf, Df = X.astype(np.float32), D.astype(np.float32)
    Z_star = sparsolve.encode(X, D, ALPHA, solver="cd", positive=True, tol=1e-8)
    errors = {}
    for name, enc in encoders.items():
        with torch.no_grad():
            Z = enc._encode(torch.as_tensor(Xf)).double().numpy()
        errors[name] = float(((Z - Z_star) ** 2).sum(axis=1).mean())
    prob = LassoProblem.build(Xf, Df, ALPHA, True, choose_form(len(X), *D.shape), L=lipschitz(Df))
    algo = FISTA(restart=True)
    state = algo.init(prob, backend.zeros(Xf, (len(X), D.shape[0])))
    matched = dict.fromkeys(encoders)
    for k in range(1, max_iter + 1):
        algo.step(prob, state)
        err = float(((algo.current(prob, state) - Z_star) ** 2).sum(axis=1).mean())
        for name in matched:
            if matched[name] is None and err <= errors[name]:
                matched[name] = k
        if all(v is not None for v in matched.values()):
            break
    return {name: (errors[name], matched[name]) for name in encoders}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    args = ap.parse_args(argv)
    n_dict, n_big, n_test, n_own, scale = 100_000, 400_000, 5_000, 5_000, 1.0
    if args.quick:
        n_dict, n_big, n_test, n_own, scale = 3_000, 6_000, 1_000, 1_000, 0.1

    load = load_average()
    _, X_test, D = problem(n_dict, n_test)
    X = natural_image_patches(8, n_big, seed=0, split="train")
    X_own = X[:n_own]

    encoders, trained_on, seconds = {}, {}, {}
    for T, (scheme, lr, epochs) in SETTINGS.items():
        epochs = max(1, round(scale * epochs))
        runs = {
            f"learned-G T={T} (issue's)": (X, lambda X_, T=T, s=scheme, lr=lr, e=epochs: sparsolve.fit_amortized(
                X_, D, t_star=T, alpha=ALPHA, scheme=s, lr=lr, n_epochs=e, seed=0, device="cpu", progress=False)),
            f"learned-G T={T} (oracle)": (X_test, lambda X_, T=T, s=scheme, lr=lr: sparsolve.fit_amortized(
                X_, D, t_star=T, alpha=ALPHA, scheme=s, lr=lr, n_epochs=max(1, round(scale * ORACLE_EPOCHS)),
                seed=0, device="cpu", progress=False)),
        }
        if T == 2:
            runs[f"per-step LISTA T={T}"] = (X, lambda X_, T=T, e=epochs: train_per_step(X_, D, T, 3e-3, e))
        for name, (data, train) in runs.items():
            start = time.perf_counter()
            encoders[name] = train(data)
            seconds[name] = time.perf_counter() - start
            trained_on[name] = "held-out" if data is X_test else f"{len(data):,} training"
            print(f"trained {name}: {seconds[name]:.0f} s", flush=True)

    held_out = sparsolve.compare(X_test, D, encoders, alpha=ALPHA, exact=(), max_fista_iter=400)
    own = sparsolve.compare(X_own, D, encoders, alpha=ALPHA, exact=(), max_fista_iter=400)
    codes = code_error_match(X_test, D, encoders)
    print(held_out)
    print()
    rows, notes = results(held_out, own, codes, trained_on, seconds, X_test, D, (n_dict, n_big, n_test, n_own))
    figures = {}
    for r in rows:
        key = r["encoder"].replace("learned-G ", "").replace("per-step LISTA", "lista").replace(" ", "_")
        key = key.replace("(issue's)", "").replace("(oracle)", "oracle").replace("=", "").strip("_")
        figures[f"{key}_iters"] = r["FISTA iterations (objective)"]
        figures[f"{key}_code_error_iters"] = r["FISTA iterations (code error)"]
    record("amortized_limits" + ("_quick" if args.quick else ""), load_before=load,
           title="Amortized inference: where the gap comes from (benchmarks/amortized_limits.py"
                 + (" --quick)" if args.quick else ")"),
           tables={"Each encoder scored three ways": rows}, figures=figures, notes=notes,
           comparison="equal held-out patches; each encoder scored on the objective, on its own training patches "
                      "and on the code error")


def results(held_out, own, codes, trained_on, seconds, X_test, D, sizes):
    """(table rows, notes)."""
    n_dict, n_big, n_test, n_own = sizes

    def gap_at(rows, k):  # FISTA's gap after k iterations on the held-out patches
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: a fixed number of iterations
            Z = sparsolve.encode(X_test, D, ALPHA, solver="fista", positive=True, tol=0, max_iter=k)
        return (sparsolve.objective(X_test, D, Z, ALPHA).mean() - rows.optimum) / rows.optimum

    notes = (f"Dictionary and held-out patches as in amortized.py ({n_dict:,} training patches for the dictionary, "
             f"{n_test:,} held out); encoders trained on {n_big:,} training patches (seed 0, left 80%) or on the "
             f"held-out ones (oracle); \"own\" = the first {n_own:,} of the {n_big:,}.  Training took "
             + ", ".join(f"{k}: {v:.0f} s" for k, v in seconds.items()) + ".")
    rows = []
    c, co = held_out.curve, own.curve
    for i, name in enumerate(c["method"]):
        T = c["depth"][i]
        err, k_err = codes[name]
        rows.append({"encoder": name, "trained on": trained_on[name],
                     "held-out gap": round((c["objective"][i] - held_out.optimum) / held_out.optimum, 4),
                     "FISTA iterations (objective)": c["fista_iters"][i],
                     "needed for 10·T": f"≤ {gap_at(held_out, 10 * T):.4f}",
                     "own-patch gap": round((co["objective"][i] - own.optimum) / own.optimum, 4),
                     "FISTA iterations there": co["fista_iters"][i], "held-out code error": float(f"{err:.4g}"),
                     "FISTA iterations (code error)": k_err})
    return rows, notes


if __name__ == "__main__":
    main()
