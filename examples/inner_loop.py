"""Seed claim 2: what the learned inner loop G does to sparsity, dead units and signs.

The seed's encoder runs t* recurrent steps before decoding (``sparsolve.LearnedG``):

    μ₀ = W_e x̃ + b_e,   z_t = ReLU(μ_t),   μ_{t+1} = μ_t + γ((μ₀ − G z_t) − μ_t),
    x̂ = W_d z_{t*} + b_d,

trained end to end on ½‖x − x̂‖² + λ‖z‖₁.  The seed reports that with unit-norm
atoms G changes nothing, that without a norm rule it gives higher and faster
sparsity with fewer dead units, and that with λ too high G learns facilitation
(negative off-diagonal entries) rather than explaining away (positive ones).

This script trains the autoencoder (``sparsolve.fit_amortized``,
``mode="autoencoder"``) on ZCA-whitened 8x8 natural-image patches for every
t* ∈ {0, 1, 5, 20} × norm ∈ {unit, none} × λ ∈ {moderate, too high} and reports

* sparsity over training (the fraction of active units per batch, plotted), and
  on held-out patches at the end: L0 (active units per patch) and MSE;
* dead units: units active on no held-out patch;
* the steps taken to reach the target sparsity (``--target-nnz``, on the
  running mean of the batch sparsity over ``--smooth`` steps);
* the sign structure of G: the fractions of off-diagonal entries that are
  positive (inhibition, explaining away) and negative (excitation,
  facilitation), and the share of the off-diagonal mass Σ|G_ij| that is inhibitory.
  At t* = 0 there is no G (the plain autoencoder): its columns read "– (unused)".

Run ``python examples/inner_loop.py`` (default size, a few minutes on 2 CPU
cores); flags make it larger, ``--smoke`` runs a tiny version.  Writes
``inner_loop.md``, ``inner_loop_sparsity.png`` and ``inner_loop_G.png`` to
``--out`` (default examples/results).
"""
from __future__ import annotations

import itertools
import math
import os
import sys
import time

import numpy as np
from _common import (  # examples/ is the script's folder
    argument_parser,
    markdown_table,
    start_run,
)

NORMS = ("unit", "none")


def parse_args(argv=None):
    p = argument_parser(__doc__.split("\n\n")[0])
    p.add_argument("--t-stars", type=int, nargs="+", default=[0, 1, 5, 20], help="inner-loop depths")
    p.add_argument("--alpha", type=float, default=0.5, help="moderate λ")
    p.add_argument("--alpha-high", type=float, default=3.0, help="too-high λ")
    p.add_argument("--steps", type=int, default=600, help="Adam steps per run")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam step")
    p.add_argument("--target-nnz", type=float, default=0.15,
                   help="sparsity target: fraction of active units per patch")
    p.add_argument("--smooth", type=int, default=20, help="running-mean window for the sparsity curve")
    p.add_argument("--name", default="inner_loop",
                   help="stem of the files written: NAME.md, NAME_sparsity.png, NAME_G.png (e.g. inner_loop_256 "
                        "for an overcomplete run next to the default one)")
    args = p.parse_args(argv)
    if args.smoke:
        args.n_patches, args.n_test, args.atoms, args.steps, args.smooth = 512, 200, 16, 20, 5
    return args


def running_mean(values, window):
    v = np.asarray(values, dtype=float)
    window = max(1, min(window, v.size))
    c = np.cumsum(np.insert(v, 0, 0.0))
    # Before a full window, average what there is so the curve starts at step 1.
    head = c[1:window] / np.arange(1, window)
    return np.concatenate([head, (c[window:] - c[:-window]) / window])


def g_signs(G):
    """(positive fraction, negative fraction, inhibitory share of |mass|, the entries) of the
    off-diagonal of G, a LearnedG's parameter; NaN and none at t* = 0, which has no G."""
    if G is None:
        return math.nan, math.nan, math.nan, np.empty(0)
    G = G.detach().cpu().numpy().astype(np.float64)
    off = G[~np.eye(G.shape[0], dtype=bool)]
    mass = np.abs(off).sum()
    share = float(off[off > 0].sum() / mass) if mass > 0 else float("nan")
    return float((off > 0).mean()), float((off < 0).mean()), share, off


def main(argv=None):
    args = parse_args(argv)
    from matplotlib.figure import Figure

    import sparsolve

    start = time.perf_counter()
    X, X_test, whitening = start_run(args)
    lambdas = {"moderate": args.alpha, "too high": args.alpha_high}

    runs = []
    for norm, (lam_name, lam), t_star in itertools.product(NORMS, lambdas.items(), args.t_stars):
        t0 = time.perf_counter()
        ae = sparsolve.fit_amortized(X, mode="autoencoder", t_star=t_star, norm=norm, alpha=lam,
                                     n_atoms=args.atoms, max_steps=args.steps, batch_size=args.batch_size,
                                     lr=args.lr, seed=args.seed, device="cpu", progress=False)
        seconds = time.perf_counter() - t0
        Z = ae.encode(X_test)
        R = X_test - ae.decode(Z)
        curve = running_mean(ae.history_["nnz_frac"], args.smooth)
        reached = np.flatnonzero(curve <= args.target_nnz)
        pos, neg, share, off = g_signs(ae.G)
        runs.append({
            "norm": norm, "lambda": lam_name, "alpha": lam, "t_star": t_star, "curve": curve,
            "dead_curve": running_mean(ae.history_["dead_frac"], args.smooth),
            "l0": float((Z != 0).sum(axis=1).mean()), "mse": float((R * R).mean()),
            "dead": float((~(Z != 0).any(axis=0)).mean()),
            "steps_to_target": int(reached[0]) + 1 if reached.size else None,
            "pos": pos, "neg": neg, "share": share, "off": off, "gamma": ae.gamma,
            "dec_norm": float(np.linalg.norm(ae.dictionary, axis=1).mean()), "seconds": seconds,
        })

    header = ["norm", "λ", "t*", "final nnz frac (train)", "L0 (held-out)", "MSE (held-out)", "dead units",
              f"steps to nnz ≤ {args.target_nnz:g}", "G off-diag > 0 (inhibit)", "G off-diag < 0 (excite)",
              "inhibitory share of G mass", "γ", "atom norm mean", "train s"]
    rows = []
    for r in runs:
        g_used = r["t_star"] > 0
        rows.append([
            r["norm"], f"{r['lambda']} ({r['alpha']:g})", r["t_star"], f"{r['curve'][-1]:.3f}",
            f"{r['l0']:.2f}", f"{r['mse']:.3g}", f"{r['dead']:.2f}",
            "never" if r["steps_to_target"] is None else r["steps_to_target"],
            f"{r['pos']:.2f}" if g_used else "– (unused)", f"{r['neg']:.2f}" if g_used else "– (unused)",
            f"{r['share']:.2f}" if g_used else "–", f"{r['gamma']:.3g}", f"{r['dec_norm']:.3g}",
            f"{r['seconds']:.0f}",
        ])
    command = " ".join(["python examples/inner_loop.py", *(sys.argv[1:] if argv is None else argv)])
    text = [
        "# Inner loop: sparsity, dead units and the sign of G (seed claim 2)",
        "",
        f"Generated by `{command}` in {time.perf_counter() - start:.0f} s "
        f"({os.cpu_count()} CPUs, torch threads {args.threads}).",
        "",
        f"Data: {args.n_patches} training / {args.n_test} held-out {args.patch}x{args.patch} patches of the "
        f"scikit-learn photos, mean removed, ZCA-whitened (rank {whitening.components_.shape[0]}, "
        f"eps {args.whiten_eps}). Autoencoder with {args.atoms} ReLU units, learned G and γ (start 1), "
        f"Adam lr {args.lr}, {args.steps} steps of {args.batch_size}, seed {args.seed}.",
        f"Sparsity is the fraction of active units per patch; the step count is the first step at which its "
        f"{args.smooth}-step running mean is ≤ {args.target_nnz:g}. Dead units: active on no held-out patch. "
        "G's off-diagonal entries > 0 inhibit (explaining away), < 0 excite (facilitation).",
        "",
        markdown_table(header, rows),
        "",
        f"Pictures: `{args.name}_sparsity.png` (sparsity and dead units over training), "
        f"`{args.name}_G.png` (off-diagonal entries of G at the deepest t*).",
        "",
    ]
    (args.out / f"{args.name}.md").write_text("\n".join(text), encoding="utf-8")

    combos = list(itertools.product(NORMS, lambdas))
    fig = Figure(figsize=(3.2 * len(combos), 5.6), layout="constrained")
    for j, (norm, lam_name) in enumerate(combos):
        ax_s = fig.add_subplot(2, len(combos), j + 1)
        ax_d = fig.add_subplot(2, len(combos), len(combos) + j + 1)
        for r in runs:
            if (r["norm"], r["lambda"]) == (norm, lam_name):
                steps = np.arange(1, r["curve"].size + 1)
                ax_s.plot(steps, r["curve"], label=f"t*={r['t_star']}")
                ax_d.plot(steps, r["dead_curve"], label=f"t*={r['t_star']}")
        ax_s.axhline(args.target_nnz, color="grey", lw=0.8, ls="--")
        ax_s.set_title(f"norm={norm}, λ {lam_name} ({lambdas[lam_name]:g})", fontsize=8)
        ax_s.set_ylabel("active fraction (running mean)", fontsize=7)
        ax_d.set_ylabel("units silent in the batch (running mean)", fontsize=7)
        ax_d.set_xlabel("step", fontsize=7)
        for ax in (ax_s, ax_d):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        ax_s.legend(fontsize=6)
    fig.savefig(args.out / f"{args.name}_sparsity.png", dpi=80)

    deepest = max(args.t_stars)
    fig = Figure(figsize=(3.2 * len(combos), 2.6), layout="constrained")
    for j, (norm, lam_name) in enumerate(combos):
        ax = fig.add_subplot(1, len(combos), j + 1)
        r = next(r for r in runs if (r["norm"], r["lambda"], r["t_star"]) == (norm, lam_name, deepest))
        ax.hist(r["off"], bins=40, color="C0")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"t*={deepest}, norm={norm}, λ {lam_name}\n>0: {r['pos']:.2f}  <0: {r['neg']:.2f}",
                     fontsize=8)
        ax.set_xlabel("off-diagonal G", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.savefig(args.out / f"{args.name}_G.png", dpi=80)
    print((args.out / f"{args.name}.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
