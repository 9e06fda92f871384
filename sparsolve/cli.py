"""The command line: ``sparsolve fit [DATA.npy] --atoms 256 --alpha 0.1 --solver lca --out model.npz``.

Without DATA it runs the library's main job on an embedded default -- 8×8 patches
of the two photographs shipped with scikit-learn (:func:`sparsolve.data.natural_image_patches`,
nothing is downloaded) -- prints a summary and saves a PNG of the dictionary.
``python -m sparsolve`` (no arguments) does the same.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .learning import norms, updates

DEFAULT_PATCHES = 20000
DEFAULT_ALPHA = 0.02


def _parser():
    p = argparse.ArgumentParser(prog="sparsolve", description="Sparse coding: learn a dictionary from data.")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="learn a dictionary (default data: natural-image patches)",
                       description="Learn a dictionary D with X ≈ Z D, min ½‖x − zD‖² + α‖z‖₁ per row.")
    f.add_argument("data", nargs="?", help="a .npy file of shape (n_samples, n_features); "
                   f"default: {DEFAULT_PATCHES} 8×8 natural-image patches")
    f.add_argument("--atoms", type=int, default=256, help="number of atoms (default 256)")
    f.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help=f"L1 weight α (default {DEFAULT_ALPHA})")
    f.add_argument("--solver", default="cd", help="inference solver: cd (default, fastest on CPU), lca, fista, ista, omp")
    f.add_argument("--update", default="online", choices=updates.UPDATES)
    f.add_argument("--norm", default="unit", choices=norms.NORMS)
    f.add_argument("--batch-size", type=int, default=None, help="rows per step (default 256)")
    f.add_argument("--epochs", type=int, default=None, help="passes over the data (default 1; 5 for the default data)")
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
    from .learning import distributed, fit

    epochs = args.epochs
    if args.data is None:
        from .data import natural_image_patches

        X = natural_image_patches(8, DEFAULT_PATCHES, seed=args.seed)
        source = f"{DEFAULT_PATCHES} 8x8 natural-image patches (scikit-learn sample images, mean removed)"
        if epochs is None and args.max_steps is None:
            epochs = 5
        png = args.png or str(Path(args.out).with_suffix(".png"))
    else:
        path = Path(args.data)
        if not path.exists():
            raise SystemExit(f"sparsolve fit: no such file: {path}")
        try:
            X = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise SystemExit(f"sparsolve fit: {path} is not a .npy array file ({e})") from None
        source = f"{path} {X.shape}"
        png = args.png
    distributed.init_from_env(args.device)  # under torchrun: join its process group, so fit runs data-parallel
    try:
        model = fit(X, args.atoms, args.alpha, solver=args.solver, update=args.update, norm=args.norm,
                    batch_size=args.batch_size, n_epochs=epochs, max_steps=args.max_steps, tol=args.tol,
                    seed=args.seed, device=args.device, positive=args.positive, checkpoint=args.checkpoint,
                    progress=not args.no_progress)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"sparsolve fit: {e}") from None
    if not distributed.is_rank0():
        return 0  # every rank holds the same model; rank 0 saves and reports it
    out = model.save(args.out)
    h = model.history
    print(f"data:       {source}")
    print(f"model:      {model.n_atoms} atoms x {model.n_features} features, alpha={model.alpha:g}, "
          f"solver={model.solver}, update={args.update}, norm={args.norm}")
    print(f"training:   {h['step'][-1]} steps, {h['samples_seen'][-1]} samples, {h['seconds'][-1]:.1f} s")
    print(f"last batch: objective {h['objective'][-1]:.5g}, mse {h['mse'][-1]:.3g}, "
          f"nonzeros {h['nnz_frac'][-1] * model.n_atoms:.1f} per sample, dead atoms {h['dead_frac'][-1]:.1%}, "
          f"atom norms {h['norm_min'][-1]:.3g}..{h['norm_max'][-1]:.3g}, resampled {sum(h['resampled'])}")
    print(f"saved:      {out}")
    if png is not None:
        from .plot import plot_dictionary

        plot_dictionary(model.dictionary, title=f"{model.n_atoms} atoms, alpha={model.alpha:g}", path=png)
        print(f"dictionary: {png}")
    return 0
