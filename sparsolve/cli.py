"""The command line: ``sparsolve fit [DATA.npy] --atoms 256 --alpha 0.1 --solver lca --out model.npz``.

Without DATA it runs the library's main job on the default data -- 8×8 patches of the two
photographs shipped with scikit-learn, rank-24 ZCA-whitened (:func:`sparsolve.data.natural_image_patches`
with ``whiten="zca"``; nothing is downloaded) -- and learns Gabor-like atoms; it prints a summary
with the fraction of Gabor-like atoms and saves a PNG of the dictionary.
``python -m sparsolve`` (no arguments) does the same.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data.images import WHITENED_ALPHA
from .learning import norms, updates

DEFAULT_ATOMS = 256
DEFAULT_ALPHA = 0.02
# The main job without DATA: whitened natural-image patches and a setting that learns
# Gabor-like atoms (fraction ≥ 0.4) in seconds.
DEFAULT_PATCHES = 20000
IMAGE_ATOMS = 128
IMAGE_EPOCHS = 2


def _parser():
    p = argparse.ArgumentParser(prog="sparsolve", description="Sparse coding: learn a dictionary from data.")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="learn a dictionary (default data: natural-image patches)",
                       description="Learn a dictionary D with X ≈ Z D, min ½‖x − zD‖² + α‖z‖₁ per row.")
    f.add_argument("data", nargs="?", help="a .npy file of shape (n_samples, n_features); "
                   f"default: {DEFAULT_PATCHES} 8×8 natural-image patches")
    f.add_argument("--atoms", type=int, default=None,
                   help=f"number of atoms (default {DEFAULT_ATOMS}; {IMAGE_ATOMS} for the default data)")
    f.add_argument("--alpha", type=float, default=None,
                   help=f"L1 weight α (default {DEFAULT_ALPHA}; {WHITENED_ALPHA} for the default whitened data)")
    f.add_argument("--solver", default="cd", help="inference solver: cd (default, fastest on CPU), lca, fista, ista, omp")
    f.add_argument("--update", default="online", choices=updates.UPDATES)
    f.add_argument("--norm", default="unit", choices=norms.NORMS)
    f.add_argument("--batch-size", type=int, default=None, help="rows per step (default 256)")
    f.add_argument("--epochs", type=int, default=None,
                   help=f"passes over the data (default 1; {IMAGE_EPOCHS} for the default data)")
    f.add_argument("--max-steps", type=int, default=None)
    f.add_argument("--tol", type=float, default=1e-3, help="inner-loop relative duality gap (default 1e-3)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    f.add_argument("--positive", action="store_true", help="nonnegative codes")
    f.add_argument("--checkpoint", default=None, help="checkpoint file: resume from it, save to it")
    f.add_argument("--out", default="model.npz", help="where to save the model (default model.npz)")
    f.add_argument("--png", default=None, help="save a picture of the dictionary here "
                   "(default with no DATA: the --out path with .png)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv or ["fit"])
    return _fit(args)


def _fit(args):
    from .learning import fit

    epochs, n_atoms, alpha = args.epochs, args.atoms, args.alpha
    if args.data is None:
        from .data import natural_image_patches

        X = natural_image_patches(8, DEFAULT_PATCHES, seed=args.seed, whiten="zca")
        source = (f"{DEFAULT_PATCHES} 8x8 natural-image patches (scikit-learn sample images, mean removed, "
                  "rank-24 ZCA-whitened)")
        n_atoms = IMAGE_ATOMS if n_atoms is None else n_atoms
        alpha = WHITENED_ALPHA if alpha is None else alpha
        if epochs is None and args.max_steps is None:
            epochs = IMAGE_EPOCHS
        png = args.png or str(Path(args.out).with_suffix(".png"))
    else:
        from .data import read_matrix

        path = Path(args.data)
        try:
            X = read_matrix(path)
        except (OSError, ValueError) as e:
            raise SystemExit(f"sparsolve fit: {e}") from None
        source = f"{path} {X.shape}"
        png = args.png
        n_atoms = DEFAULT_ATOMS if n_atoms is None else n_atoms
        alpha = DEFAULT_ALPHA if alpha is None else alpha
    try:
        model = fit(X, n_atoms, alpha, solver=args.solver, update=args.update, norm=args.norm,
                    batch_size=args.batch_size, n_epochs=epochs, max_steps=args.max_steps, tol=args.tol,
                    seed=args.seed, device=args.device, positive=args.positive, checkpoint=args.checkpoint,
                    progress=not args.no_progress)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"sparsolve fit: {e}") from None
    out = model.save(args.out)
    h = model.history
    print(f"data:       {source}")
    print(f"model:      {model.n_atoms} atoms x {model.n_features} features, alpha={model.alpha:g}, "
          f"solver={model.solver}, update={args.update}, norm={args.norm}")
    print(f"training:   {h['step'][-1]} steps, {h['samples_seen'][-1]} samples, {h['seconds'][-1]:.1f} s")
    print(f"last batch: objective {h['objective'][-1]:.5g}, mse {h['mse'][-1]:.3g}, "
          f"nonzeros {h['nnz_frac'][-1] * model.n_atoms:.1f} per sample, dead atoms {h['dead_frac'][-1]:.1%}, "
          f"atom norms {h['norm_min'][-1]:.3g}..{h['norm_max'][-1]:.3g}, resampled {sum(h['resampled'])}")
    if args.data is None:
        from .gabor import gabor_stats

        g = gabor_stats(model.dictionary)
        print(f"gabor:      {g.frac_good:.0%} of the atoms are Gabor-like (R² ≥ {g.threshold:g} for a fitted "
              f"2-D Gabor), median R² {g.median_r2:.2f}")
    print(f"saved:      {out}")
    if png is not None:
        from .plot import plot_dictionary

        plot_dictionary(model.dictionary, title=f"{model.n_atoms} atoms, alpha={model.alpha:g}", path=png)
        print(f"dictionary: {png}")
    return 0
