"""What the experiment scripts share: their data and run arguments, the whitened
natural-image data those arguments describe, and the table format."""
from __future__ import annotations

import argparse
from pathlib import Path

from sparsolve.data import Whitening, image_whitening, natural_image_patches
from sparsolve.data.images import WHITEN_EPS


def argument_parser(description):
    """A parser with the arguments every experiment takes (data, whitening, seed, threads,
    output folder, --smoke); the script adds its own and sets --smoke's sizes."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n-patches", type=int, default=5120,
                   help="training patches (a multiple of --batch-size avoids a small last batch per epoch)")
    p.add_argument("--n-test", type=int, default=2000, help="held-out patches")
    p.add_argument("--patch", type=int, default=8, help="patch side in pixels")
    p.add_argument("--atoms", type=int, default=64, help="atoms / hidden units")
    p.add_argument("--components", type=int, default=None,
                   help="ZCA rank (principal components kept; default: sparsolve.data.image_whitening's, 24 for 8x8)")
    p.add_argument("--whiten-eps", type=float, default=WHITEN_EPS,
                   help="ZCA regulariser, relative to the mean eigenvalue")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--smoke", action="store_true", help="tiny run (seconds), for the tests")
    return p


def start_run(args):
    """Set torch's threads, make the output folder, and return :func:`whitened_patches`."""
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return whitened_patches(args)


def whitened_patches(args):
    """(X, X_test, whitening): training and held-out patches of scikit-learn's photos, whitened
    as ``natural_image_patches(whiten="zca")`` does (:func:`sparsolve.data.image_whitening`)
    unless ``--components`` or ``--whiten-eps`` say otherwise; the held-out patches go
    through the whitening fitted on the training ones."""
    whitening = image_whitening(args.patch ** 2)
    if args.components is not None or args.whiten_eps != WHITEN_EPS:
        k = whitening.n_components if args.components is None else min(args.components, args.patch ** 2)
        whitening = Whitening("zca", eps=args.whiten_eps, n_components=k)
    X = natural_image_patches(args.patch, args.n_patches, seed=args.seed, whiten=whitening)
    X_test = whitening.transform(natural_image_patches(args.patch, args.n_test, seed=args.seed + 1))
    return X, X_test, whitening


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
