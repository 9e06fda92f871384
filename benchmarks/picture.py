"""The picture: which preprocessing and settings make sparse coding of natural-image patches learn
localised Gabor-like atoms (Olshausen & Field's receptive fields), across seeds.

    PYTHONPATH=. nice -n 5 python benchmarks/picture.py                    # every recipe, seeds 0 1 2
    PYTHONPATH=. python benchmarks/picture.py --recipes picture zca8-old --seeds 0

Each recipe learns a dictionary with ``sparsolve.fit`` (cd inner loop, online update, unit atoms)
on patches of the left 80% of scikit-learn's two photos (``split="train"``) and is scored by
``sparsolve.gabor.gabor_stats``: the Gabor fraction (R² ≥ 0.8 for a fitted 2-D Gabor), the median
R², the localisation (``envelope_area``: the share of the patch inside the fitted envelope's
half-maximum ellipse, its median over the Gabor-like atoms; ``frac_localized``: Gabor-like atoms
with envelope area ≤ 0.4, as a share of all atoms) and, on 2,000 held-out patches of the right 20%
(``split="test"``) preprocessed the same way, the codes' L0 and the relative reconstruction error.
The controls of ``sparsolve.gabor.control_dictionaries`` (random atoms, the principal components
of raw patches, a bank of true Gabors) are scored the same way for each patch size and seed.

Preprocessing: ``of`` is ``sparsolve.data.whiten_images`` (Olshausen & Field's 1/f whitening with
the roll-off exp(−(f/f0)⁴)) on the photos before cutting patches; ``zca`` the rank-k ZCA on
patches (``sparsolve.data.image_whitening``, k = 3/8 of the pixels, the library's default before
this benchmark).  Patches have their mean removed in both.  The recipes vary one thing at a time
from ``picture``, the library's default (12×12, f0 = 0.3, 144 atoms, α = 2, 100,000 samples seen).

Writes ``benchmarks/results/picture.json`` through the harness (``--no-record``: print only) and,
with ``--pictures DIR``, each recipe's first-seed dictionary as a PNG.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import sparsolve
from sparsolve.data import (PICTURE_ATOMS, PICTURE_PATCH, TRAIN_WIDTH, WHITEN_CUTOFF, WHITENED_ALPHA,
                            extract_patches, image_whitening, load_natural_images, natural_image_patches,
                            remove_mean, whiten_images)
from sparsolve.gabor import control_dictionaries, gabor_stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record  # noqa: E402  (benchmarks/ is the script's folder)

N_TRAIN = 20_000
N_TEST = 2_000

# One recipe per row: the preprocessing, patch side, atoms, α, passes over N_TRAIN patches, codes.
# "picture" is the library's default (sparsolve.data's PICTURE_PATCH, PICTURE_ATOMS, WHITENED_ALPHA,
# WHITEN_CUTOFF; `sparsolve fit` without data); every other row changes one or two things.
BASE = dict(whiten="of", cutoff=WHITEN_CUTOFF, patch=PICTURE_PATCH, atoms=PICTURE_ATOMS, alpha=WHITENED_ALPHA,
            epochs=5, positive=False)
RECIPES = {
    "zca8-old": dict(whiten="zca", patch=8, atoms=128, alpha=0.5, epochs=2,
                     about="the picture before: rank-24 ZCA, 8×8, 128 atoms, α 0.5, 40,000 samples"),
    "zca8": dict(whiten="zca", patch=8, atoms=128, alpha=1.0, about="zca8-old, sparser and trained as long as picture"),
    "zca12": dict(whiten="zca", alpha=1.0, about="rank-54 ZCA instead of OF whitening (α for L0 ≈ 7)"),
    "picture": dict(about="the default: OF whitening f0 0.3, 12×12, 144 atoms (complete), α 2, 100,000 samples"),
    "of8": dict(patch=8, atoms=64, alpha=1.0, about="8×8 (64 atoms, α 1)"),
    "of16": dict(patch=16, atoms=256, alpha=3.0, about="16×16 (256 atoms, α 3)"),
    "f0.2": dict(cutoff=0.2, about="roll-off at f0 0.2"),
    "f0.4": dict(cutoff=0.4, about="roll-off at f0 0.4 (Olshausen & Field's)"),
    "a1": dict(alpha=1.0, about="less sparse (α 1)"),
    "a3": dict(alpha=3.0, about="sparser (α 3)"),
    "m192": dict(atoms=192, about="4/3 overcomplete (192 atoms)"),
    "m288": dict(atoms=288, about="2× overcomplete (288 atoms)"),
    "pos": dict(positive=True, about="non-negative codes"),
    "2ep": dict(epochs=2, about="40,000 samples"),
}


def recipe(name):
    return {**BASE, **RECIPES[name]}


def patches(r, seed):
    """(train, test) patches for recipe ``r``, preprocessed alike (the test set by the training
    set's fitted whitening for zca)."""
    if r["whiten"] == "zca":
        w = image_whitening(r["patch"] ** 2)
        train = natural_image_patches(r["patch"], N_TRAIN, seed=seed, split="train", whiten=w)
        return train, natural_image_patches(r["patch"], N_TEST, seed=seed + 100, split="test", whiten=w)
    out = []
    for split, n, s in (("train", N_TRAIN, seed), ("test", N_TEST, seed + 100)):
        photos = load_natural_images()
        cut = [int(TRAIN_WIDTH * im.shape[1]) for im in photos]
        photos = [im[:, :c] if split == "train" else im[:, c:] for im, c in zip(photos, cut)]
        out.append(remove_mean(extract_patches(whiten_images(photos, r["cutoff"]), r["patch"], n, seed=s)))
    return tuple(out)


def scores(D, prefix=""):
    g = gabor_stats(D)
    return {f"{prefix}gabor": g.frac_good, f"{prefix}median R²": g.median_r2,
            f"{prefix}localised": g.frac_localized,
            f"{prefix}envelope area": float(np.nanmedian(g.envelope_area)) if g.good.any() else float("nan")}


def run(name, seed, pictures=None):
    r = recipe(name)
    X, X_test = patches(r, seed)
    t0 = time.perf_counter()
    model = sparsolve.fit(X, r["atoms"], r["alpha"], n_epochs=r["epochs"], positive=r["positive"], seed=seed,
                          progress=False)
    fit_s = time.perf_counter() - t0
    Z = model.encode(X_test)
    residual = X_test - Z @ model.dictionary
    t0 = time.perf_counter()
    row = {"recipe": name, "seed": seed, **scores(model.dictionary)}
    row["gabor_s"] = time.perf_counter() - t0
    row.update({"L0": float((Z != 0).sum(axis=1).mean()),
                "rel. error": float((residual ** 2).sum() / (X_test ** 2).sum()), "fit_s": fit_s})
    if pictures is not None and seed == 0:
        from sparsolve.plot import plot_dictionary

        plot_dictionary(model.dictionary, title=f"{name}: {row['gabor']:.0%} Gabor-like, "
                        f"{row['localised']:.0%} localised", path=Path(pictures) / f"picture_{name}.png")
    return row


def controls(patch, atoms, seed):
    rows = []
    for kind, D in control_dictionaries(atoms, patch, seed=seed).items():
        rows.append({"control": kind, "patch": patch, "seed": seed, **scores(D)})
    return rows


def summarise(rows, keys, by):
    """Mean and [min, max] over seeds of each of ``keys``, one row per value of the columns ``by``."""
    out = []
    for value in dict.fromkeys(tuple(r[k] for k in by) for r in rows):
        group = [r for r in rows if tuple(r[k] for k in by) == value]
        row = dict(zip(by, value))
        for k in keys:
            vals = [r[k] for r in group]
            row[k] = f"{statistics.fmean(vals):.3g} [{min(vals):.3g}, {max(vals):.3g}]" if len(vals) > 1 \
                else f"{vals[0]:.3g}"
        out.append(row)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--no-controls", action="store_true")
    p.add_argument("--pictures", default=None, help="folder for each recipe's first-seed dictionary as a PNG")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args(argv)
    load_before = list(os.getloadavg())
    rows, control_rows = [], []
    for name in args.recipes:
        for seed in args.seeds:
            row = run(name, seed, args.pictures)
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
            rows.append(row)
    if not args.no_controls:
        atoms = {}  # per patch size, the most atoms of its recipes
        for n in args.recipes:
            atoms[recipe(n)["patch"]] = max(atoms.get(recipe(n)["patch"], 0), recipe(n)["atoms"])
        for patch, m in atoms.items():
            for seed in args.seeds:
                for row in controls(patch, m, seed):
                    print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
                    control_rows.append(row)
    keys = ["gabor", "median R²", "localised", "envelope area", "L0", "rel. error", "fit_s"]
    table = summarise(rows, keys, ["recipe"])
    for row in table:
        r = recipe(row["recipe"])
        row.update({"preprocessing": f"{r['whiten']}" + (f" f0 {r['cutoff']}" if r["whiten"] == "of" else ""),
                    "patch": r["patch"], "atoms": r["atoms"], "α": r["alpha"],
                    "samples": N_TRAIN * r["epochs"], "codes": "z ≥ 0" if r["positive"] else "signed",
                    "what": r["about"]})
    tables = {f"Recipes: mean [min, max] over seeds {args.seeds}": table,
              "Per seed": rows}
    if control_rows:
        tables["Controls (sparsolve.gabor.control_dictionaries): mean [min, max] over seeds"] = \
            summarise(control_rows, keys[:4], ["control", "patch"])
        tables["Controls per seed"] = control_rows
    for caption, t in tables.items():
        print(f"\n{caption}")
        for row in t:
            print(row)
    if args.no_record:
        return 0
    by = {n: [r for r in rows if r["recipe"] == n] for n in args.recipes}
    figures = {}
    for n in ("picture", "zca8-old"):
        if n in by:
            figures[f"{n}_gabor_min"] = min(r["gabor"] for r in by[n])
            figures[f"{n}_localised_min"] = min(r["localised"] for r in by[n])
    path = record("picture", title="The picture: localised Gabor-like atoms from natural-image patches "
                  "(benchmarks/picture.py)", tables=tables, figures=figures,
                  comparison=f"equal data ({N_TRAIN:,} training patches of the same photos per seed; "
                  "recipes differ only in what their row names)", load_before=load_before)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
