"""Amortized against exact inference: how many FISTA iterations is a depth-T learned-G encoder worth?

    python benchmarks/amortized.py [--quick] [--device cpu|cuda]

Natural-image patches 8×8 (mean removed), training patches from the left 80% of
each photo and held-out ones from the right 20% (``split="train"`` / ``"test"``), so
that no held-out patch was seen in training: a dictionary of 256 atoms is learned by
``sparsolve.fit`` (non-negative codes, coordinate descent) on the training patches;
for each T in {1, 2, 5} two learned-G encoders of depth T are trained by
``sparsolve.fit_amortized(mode="amortize", target="lasso")`` on the same patches,
one from the seed's LCA initialisation and one from LISTA's ISTA initialisation.
Then ``sparsolve.compare`` codes the held-out patches with every method:

* exact: coordinate descent certified to a relative gap of 1e-8 (the reference
  optimum F*), and cd / FISTA to the usual 1e-4;
* amortized: the trained encoders, and LCA unrolled T steps (the untrained start).

Reported per method: time per 1,000 samples (best of ≥ 3 runs), mean lasso objective, its
gap to F*, MSE, L0 and dead atoms; and the iteration-matched curve: the FISTA
iterations k whose mean objective matches each encoder's, with FISTA's time for
those k iterations over the encoder's time (the speed ratio).  The target (Gregor
& LeCun's ratio for LISTA) is k ≥ 10·T.

Exact solvers and encoders both run in float32 (the reference in float64), on the
CPU with every core, or with ``--device cuda`` on the GPU (gpu_check.sh), where the
dictionary is learned there too.  The run ends in ``harness.record``: the case ``amortized``
(``amortized_quick``, ``amortized_cuda``; a suffix for other sizes or epochs).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import sparsolve
from sparsolve.data import natural_image_patches
from sparsolve.inference import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import load_average, record  # noqa: E402  (benchmarks/ is the script's folder)

N_ATOMS = 256
ALPHA = 0.05
DEPTHS = (1, 2, 5)
# the initialisation each learned encoder starts from, and the Adam step that trained it best in trial runs
INITS = {"lca": 1e-2, "ista": 3e-3}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--n-train", type=int, default=100_000, help="training patches")
    ap.add_argument("--n-test", type=int, default=5_000)
    ap.add_argument("--epochs", type=int, default=12, help="fit_amortized epochs per encoder")
    args = ap.parse_args(argv)
    # the encoders' held-out gap is set by rare high-contrast patches, so the training set
    # must be large; on such a set the gap keeps falling with the number of steps up to
    # about 5,000 (12 epochs of 100,000 patches at batch 256; see fit_amortized's docstring)
    if args.quick:
        args.n_train, args.n_test, args.epochs = 3_000, 1_000, 2
    case = "amortized" + ("_quick" if args.quick else "") + ("_cuda" if args.device == "cuda" else "")

    load = load_average()
    default = (3_000, 1_000, 2) if args.quick else (100_000, 5_000, 12)
    X, X_test, D = problem(args.n_train, args.n_test)

    encoders, train_s = {}, {}
    for T in DEPTHS:
        for init, lr in INITS.items():
            start = time.perf_counter()
            enc = sparsolve.fit_amortized(X, D, t_star=T, alpha=ALPHA, scheme=init, lr=lr, n_epochs=args.epochs,
                                          seed=0, device=args.device, progress=False)
            train_s[f"{init} T={T}"] = time.perf_counter() - start
            encoders[f"learned-G T={T} ({init} init)"] = enc
        encoders[f"LCA T={T} (untrained)"] = sparsolve.LearnedG.from_dictionary(D, ALPHA, T, dtype=enc.W_e.dtype,
                                                                                device=enc.W_e.device)
        print(f"trained T={T}: " + ", ".join(f"{k} {v:.0f} s" for k, v in train_s.items() if k.endswith(f"T={T}")))

    rows = sparsolve.compare(X_test, D, encoders, alpha=ALPHA, exact=("cd", "fista"), tol=1e-4,
                             device=args.device, repeats=3)
    print(rows)
    print()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: a fixed number of iterations
        fista_at = {T: sparsolve.objective(X_test, D, sparsolve.encode(X_test, D, ALPHA, solver="fista", positive=True,
                                                                       tol=0, max_iter=10 * T), ALPHA).mean()
                    for T in DEPTHS}
    tables, figures, notes = results(rows, args, train_s, fista_at)
    if (args.n_train, args.n_test, args.epochs) != default:
        case += f"_{args.n_train}x{args.n_test}_epochs{args.epochs}"
    record(case, load_before=load, tables=tables, figures=figures, notes=notes,
           title=f"Amortized inference{' on CUDA' if args.device == 'cuda' else ''}: learned-G encoders of depth "
                 f"1, 2 and 5 against FISTA iterations, 8×8 patches (benchmarks/amortized.py"
                 + (" --device cuda" if args.device == "cuda" else "") + (" --quick" if args.quick else "") + ")",
           comparison="equal held-out patches; an encoder is matched to the FISTA iteration count with the same mean "
                      "objective")


def problem(n_train, n_test):
    """(training patches, held-out patches, dictionary): 8×8 patches from the left 80% and the
    right 20% of each photo, and the dictionary ``sparsolve.fit`` learns on the training ones."""
    X = natural_image_patches(8, n_train, seed=0, split="train")
    X_test = natural_image_patches(8, n_test, seed=1, split="test")
    start = time.perf_counter()
    model = sparsolve.fit(X, N_ATOMS, ALPHA, solver="cd", positive=True, n_epochs=2, seed=0, progress=False)
    print(f"dictionary: sparsolve.fit, {N_ATOMS} atoms, {time.perf_counter() - start:.1f} s")
    return X, X_test, model.dictionary


def results(rows, args, train_s, fista_at):
    """(tables, figures, notes) of the run."""
    c = rows.curve
    notes = (f"Held-out: {args.n_test:,} patches 8×8 from the right 20% of each photo (seed 1); training: "
             f"{args.n_train:,} patches from the left 80% (seed 0); "
             f"dictionary: `sparsolve.fit` ({N_ATOMS} atoms, non-negative, 2 epochs); α = {ALPHA}; "
             f"encoders: `fit_amortized(mode='amortize', target='lasso')`, {args.epochs} epochs, Adam lr "
             f"{' / '.join(f'{lr:g} ({init} init)' for init, lr in INITS.items())}; training took "
             f"{', '.join(f'{k}: {v:.0f} s' for k, v in train_s.items())}. Times: best of ≥ 3 runs, float32, "
             f"device {args.device}.")
    methods = [{"method": r["method"], "ms / 1000": float(f"{r['ms_per_1000']:.3g}"),
                "mean F": float(f"{r['objective']:.5g}"), "gap to F*": float(f"{r['rel_gap']:.3g}"),
                "MSE": float(f"{r['mse']:.3g}"), "L0": float(f"{r['l0']:.3g}"), "dead": round(r["dead_frac"], 2)}
               for r in rows]
    matched, figures = [], {}
    for i, name in enumerate(c["method"]):
        T, k = c["depth"][i], c["fista_iters"][i]
        gap = (c["objective"][i] - rows.optimum) / rows.optimum
        fista_gap = (fista_at[T] - rows.optimum) / rows.optimum
        met = "—" if not name.startswith("learned") else ("met" if k is not None and k >= 10 * T else "**not met**")
        matched.append({"encoder": name, "T": T, "gap to F*": float(f"{gap:.3g}"),
                        "FISTA iterations, same objective": k, "target ≥ 10·T": met,
                        "FISTA's gap at 10·T": float(f"{fista_gap:.3g}"),
                        "FISTA ms / 1000": None if c["fista_ms_per_1000"][i] is None
                        else float(f"{c['fista_ms_per_1000'][i]:.3g}"),
                        "encoder ms / 1000": float(f"{c['encoder_ms_per_1000'][i]:.3g}"),
                        "speed ratio": None if c["speedup"][i] is None else round(c["speedup"][i], 2)})
        if name.startswith("learned"):
            init = name.split("(")[1].split()[0]
            figures[f"fista_iters_T{T}_{init}"] = k
            figures[f"target_T{T}"] = 10 * T
            if c["speedup"][i] is not None:
                figures[f"speed_ratio_T{T}_{init}"] = round(c["speedup"][i], 2)
    return ({f"Every method on the {args.n_test:,} held-out patches": methods,
             "Iteration-matched: the FISTA iterations with the same mean objective, target ≥ 10·T": matched},
            figures, notes)


if __name__ == "__main__":
    main()
