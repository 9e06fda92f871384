"""Seed claim 1: Gabor-like atoms appear if and only if the atom norms are constrained.

The seed (../shared/seed/sparse-coding-beyond-l1.md) argues that an L1 penalty on the
codes can be escaped by rescaling: zD = (z/c)(cD), so α‖z‖₁ falls by c while the
reconstruction is unchanged.  Without a rule on the atom norms the weights drift
instead of becoming sparse features, and a one-layer autoencoder then learns
texture-like atoms; with unit norms (or a penalty that prices the cheat) it learns
Gabors.  This script trains, on ZCA-whitened 8x8 natural-image patches,

* ``sparsolve.fit`` (exact lasso codes by coordinate descent, online dictionary
  update on mini-batches), and
* the seed's autoencoder x̂ = W_d ReLU(W_e x̃ + b_e) + b_d (``sparsolve.fit_amortized``,
  ``mode="autoencoder"``, t* = 0),

each under norm = unit, penalty and none, and reports on held-out patches

* the Gabor fraction (R² ≥ 0.8) and median R² of the decoder atoms and, for the
  autoencoder, of the encoder rows (the units' receptive fields);
* L0 (nonzeros per patch), L1 (mean ‖z‖₁) and MSE (per pixel);
* the atom norms;

next to the control dictionaries of ``sparsolve.gabor.control_dictionaries``
(random atoms, PCA components, a true Gabor bank) scored the same way.

Whitening: ZCA (``Whitening("zca")``) restricted to the leading ``--components``
principal components, with ``eps`` relative to the mean eigenvalue.  The two
scikit-learn photos are JPEGs, and full-rank ZCA lifts their highest-frequency
(compression) noise to the same variance as the image structure; the low-rank
ZCA is the usual low-pass that keeps the data in pixel coordinates.

Run ``python examples/norm_rules.py`` (default size, a few minutes on 2 CPU
cores); flags make it larger, ``--smoke`` runs a tiny version.  Writes
``norm_rules.md`` and ``norm_rules_fit.png`` / ``norm_rules_autoencoder.png`` to
``--out`` (default examples/results).
"""
from __future__ import annotations

import os
import time

import numpy as np
from _common import (  # examples/ is the script's folder
    argument_parser,
    markdown_table,
    start_run,
)

NORMS = ("unit", "penalty", "none")


def parse_args(argv=None):
    p = argument_parser(__doc__.split("\n\n")[0])
    p.add_argument("--alpha", type=float, default=0.5, help="L1 weight α (the seed's λ), shared by both methods")
    p.add_argument("--fit-epochs", type=int, default=8, help="passes of sparsolve.fit over the patches")
    p.add_argument("--forget", type=float, default=2.0,
                   help="forgetting exponent of fit's online update (shorter memory than its default 5, "
                        "so the atoms leave their random start within a few epochs)")
    p.add_argument("--fit-beta", type=float, default=None,
                   help="weight decay β of fit's norm='penalty' (default: α)")
    p.add_argument("--steps", type=int, default=2000, help="Adam steps of the autoencoder")
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch of both methods")
    p.add_argument("--lr", type=float, default=3e-3, help="autoencoder Adam step")
    p.add_argument("--ae-beta", type=float, default=1e-3,
                   help="β of the autoencoder's inverse penalty β Σ 1/‖w_j‖² (norm='inverse_penalty')")
    p.add_argument("--gabor-starts", type=int, default=2, help="starts per Gabor fit")
    args = p.parse_args(argv)
    if args.smoke:
        args.n_patches, args.n_test, args.atoms = 512, 300, 16
        args.fit_epochs, args.steps, args.gabor_starts = 1, 30, 1
    return args


def code_stats(X, Z, D_rec):
    """L0, L1 and per-pixel MSE of codes Z whose reconstruction of X is ``D_rec(Z)``."""
    R = X - D_rec(Z)
    return {"l0": float((Z != 0).sum(axis=1).mean()), "l1": float(np.abs(Z).sum(axis=1).mean()),
            "mse": float((R * R).mean())}


def norm_summary(rows):
    n = np.linalg.norm(rows, axis=1)
    return f"{n.mean():.3g} [{n.min():.3g}, {n.max():.3g}]"


def gabor_cells(D, args):
    from sparsolve.gabor import gabor_stats

    s = gabor_stats(D, n_starts=args.gabor_starts)
    return s.frac_good, s.median_r2


def main(argv=None):
    args = parse_args(argv)
    from matplotlib.figure import Figure

    import sparsolve
    from sparsolve.gabor import control_dictionaries
    from sparsolve.plot import plot_dictionary

    start = time.perf_counter()
    X, X_test, whitening = start_run(args)
    variance = float(X_test.var())
    subspace = whitening.components_.T @ whitening.components_

    # (method, norm, decoder atoms, None or (encoder rows, their part in the data subspace), code stats, seconds)
    results = []
    for norm in NORMS:
        t0 = time.perf_counter()
        beta = args.alpha if args.fit_beta is None else args.fit_beta
        model = sparsolve.fit(X, args.atoms, args.alpha, solver="cd", update="online", norm=norm,
                              n_epochs=args.fit_epochs, batch_size=args.batch_size, forget=args.forget,
                              beta=beta, seed=args.seed, progress=False)
        seconds = time.perf_counter() - t0
        D = model.dictionary
        stats = code_stats(X_test, model.encode(X_test, tol=1e-4), lambda Z, D=D: Z @ D)
        results.append(("fit", norm, D, None, stats, seconds))
    for norm in NORMS:
        t0 = time.perf_counter()
        # fit's "penalty" (weight decay on the atoms) is the autoencoder's "inverse_penalty"
        # (the seed's β Σ 1/‖w_j‖² on the encoder rows): the table keeps one column per rule.
        ae_norm = "inverse_penalty" if norm == "penalty" else norm
        ae = sparsolve.fit_amortized(X, mode="autoencoder", t_star=0, norm=ae_norm, alpha=args.alpha,
                                     beta=args.ae_beta, n_atoms=args.atoms, max_steps=args.steps,
                                     batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                     device="cpu", progress=False)
        seconds = time.perf_counter() - t0
        stats = code_stats(X_test, ae.encode(X_test), ae.decode)
        # The data span only the whitening's k components; W_e's part outside them never
        # meets an input, gets no gradient and keeps its random start, so the receptive
        # field is the part inside: W_e U_k U_kᵀ.
        W_e = ae.W_e.detach().cpu().numpy().astype(np.float64)
        results.append(("autoencoder t*=0", norm, ae.dictionary, (W_e, W_e @ subspace), stats, seconds))

    rows = []
    for method, norm, D, W_e, stats, seconds in results:
        frac, med = gabor_cells(D, args)
        enc = ("–", "–") if W_e is None else tuple(f"{x:.2f}" for x in gabor_cells(W_e[1], args))
        rows.append([method, norm, f"{frac:.2f}", f"{med:.2f}", enc[0], enc[1],
                     f"{stats['l0']:.1f}", f"{stats['l1']:.3g}", f"{stats['mse']:.3g}",
                     norm_summary(D), "–" if W_e is None else norm_summary(W_e[0]), f"{seconds:.0f}"])
    controls = control_dictionaries(args.atoms, args.patch, seed=args.seed)
    for name, D in controls.items():
        frac, med = gabor_cells(D, args)
        rows.append([f"control: {name}", "unit", f"{frac:.2f}", f"{med:.2f}", "–", "–",
                     "–", "–", "–", norm_summary(D), "–", "–"])

    header = ["method", "norm", "Gabor frac (atoms)", "median R² (atoms)", "Gabor frac (encoder)",
              "median R² (encoder)", "L0", "L1", "MSE", "atom norm mean [min, max]",
              "encoder row norm mean [min, max]", "train s"]
    command = "python examples/norm_rules.py" + (" --smoke" if args.smoke else "")
    text = [
        "# Norm rules: are the atoms Gabor-like? (seed claim 1)",
        "",
        f"Generated by `{command}` in {time.perf_counter() - start:.0f} s "
        f"({os.cpu_count()} CPUs, torch threads {args.threads}).",
        "",
        f"Data: {args.n_patches} training / {args.n_test} held-out {args.patch}x{args.patch} patches of the "
        f"scikit-learn photos, mean removed per patch, ZCA-whitened (rank {whitening.components_.shape[0]}, "
        f"eps {args.whiten_eps}); held-out variance per pixel {variance:.3g}. "
        f"{args.atoms} atoms, α = {args.alpha}.",
        f"`fit`: solver cd, online update, {args.fit_epochs} epochs of {args.batch_size}, forget {args.forget} "
        f"(penalty: β = "
        f"{args.alpha if args.fit_beta is None else args.fit_beta} Σ‖d‖²). "
        f"Autoencoder: t* = 0, Adam lr {args.lr}, {args.steps} steps of {args.batch_size} "
        f"(penalty: β = {args.ae_beta} Σ 1/‖w_e‖²).",
        "L0 / L1 / MSE are on the held-out patches (L0: nonzeros per patch, MSE per pixel). "
        "Gabor: R² of a fitted 2-D Gabor per atom (`sparsolve.gabor.gabor_stats`), fraction with R² ≥ 0.8 "
        "and median; scored in the whitened space, where the atoms were learned (ZCA keeps pixel coordinates). "
        "Encoder rows are the autoencoder's receptive fields W_e, restricted to the whitened data's "
        "subspace (W_e U_k U_kᵀ: the rest never meets an input and keeps its random start).",
        "",
        markdown_table(header, rows),
        "",
        "Pictures: `norm_rules_fit.png` (fit's atoms per norm rule) and `norm_rules_autoencoder.png` "
        "(autoencoder decoder atoms and encoder rows per norm rule).",
        "",
    ]
    (args.out / "norm_rules.md").write_text("\n".join(text), encoding="utf-8")

    for method, fname in (("fit", "norm_rules_fit.png"), ("autoencoder t*=0", "norm_rules_autoencoder.png")):
        chosen = [r for r in results if r[0] == method]
        panels = [(f"{norm}: atoms", D) for _, norm, D, _, _, _ in chosen]
        if method != "fit":
            panels += [(f"{norm}: encoder rows", W_e[1]) for _, norm, _, W_e, _, _ in chosen]
        ncols = len(NORMS)
        nrows = len(panels) // ncols
        fig = Figure(figsize=(3.0 * ncols, 3.2 * nrows), layout="constrained")
        for i, (title, D) in enumerate(panels):
            plot_dictionary(D, ax=fig.add_subplot(nrows, ncols, i + 1), title=f"{method}, {title}")
        for ax in fig.axes:
            ax.title.set_fontsize(8)
        fig.savefig(args.out / fname, dpi=100)
    print((args.out / "norm_rules.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
