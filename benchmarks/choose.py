"""Choosing n_atoms and α from the data: the measurements behind sparsolve.learning.choose's rule.

``fit(X, solver="lca")`` with α = c · s, s = √(mean ‖x‖²) the data's scale, and n_atoms = f ·
n_features, one epoch on 20,000 rows, scored on 2,000 held-out rows, on the library's own data:

* 8×8 ZCA-whitened natural-image patches (``natural_image_patches(whiten="zca")``): the fraction of
  Gabor-like atoms (R² ≥ 0.8, sparsolve.gabor);
* the same patches unwhitened (mean removed only): the same;
* synthetic activations (``SyntheticActivations``): the fraction of planted features some atom
  matches at |cos| > 0.9 (sparsolve.metrics.recovery), with as many planted features as dimensions,
  and in superposition (twice as many; power-law exponent 1, so some are rare);

and on every set the mean L0 of the held-out codes, the fraction of variance unexplained (FVU) and
the dead atoms.  Tables: α's factor c at 2× (the rule: c = 0.1); the overcompleteness f at c = 0.1
(the rule: f = 2); the ``l0=`` option (the L0 asked for against the L0 the learned dictionary's
codes have); and the rule on activations of 256 dimensions with 512 planted features.

    nice -n 5 python benchmarks/choose.py        # about 10 minutes on 2 busy cores
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record  # noqa: E402

import sparsolve  # noqa: E402
from sparsolve.config import ALPHA_PER_SCALE, ATOMS_PER_FEATURE  # noqa: E402
from sparsolve.data import SyntheticActivations, image_whitening, natural_image_patches  # noqa: E402
from sparsolve.gabor import gabor_stats  # noqa: E402
from sparsolve.metrics import fvu, recovery  # noqa: E402

ROWS, HELD_OUT = 20_000, 2_000


def datasets():
    whitening = image_whitening(64)
    planted = SyntheticActivations(64, 64, exponent=0.5, seed=0)
    superposed = SyntheticActivations(64, 128, seed=0)
    return {
        "whitened patches": (natural_image_patches(8, ROWS, split="train", whiten=whitening),
                             natural_image_patches(8, HELD_OUT, split="test", whiten=whitening), None),
        "raw patches": (natural_image_patches(8, ROWS, split="train"),
                        natural_image_patches(8, HELD_OUT, split="test"), None),
        "64 planted in 64 dims": (planted.sample(ROWS), planted.sample(HELD_OUT, split=1), planted),
        "128 planted in 64 dims": (superposed.sample(ROWS), superposed.sample(HELD_OUT, split=1), superposed),
    }


def scale(X):
    X = np.asarray(X, dtype=np.float64)
    return float(np.sqrt((X * X).sum(axis=1).mean()))


def scored(name, model, X_test, planted, seconds):
    Z = model.encode(X_test)
    row = {"data": name, "alpha": model.alpha, "atoms": model.n_atoms,
           "L0": float((Z != 0).sum(axis=1).mean()), "FVU": fvu(X_test, model.decode(Z)),
           "dead": float((Z == 0).all(axis=0).mean()), "seconds": seconds}
    if planted is None:
        row["Gabor-like"] = gabor_stats(model.dictionary).frac_good
    else:
        row["recovered"] = recovery(model.dictionary, planted.features).recovered
    return row


def run(name, X, X_test, planted, **settings):
    start = time.perf_counter()
    model = sparsolve.fit(X, solver="lca", seed=0, progress=False, **settings)
    return scored(name, model, X_test, planted, time.perf_counter() - start)


def main():
    load_before = list(os.getloadavg())
    sets = datasets()
    by_c, by_f, by_l0 = [], [], []
    figures = {}
    for name, (X, X_test, planted) in sets.items():
        s, p = scale(X), X.shape[1]
        for c in (0.05, ALPHA_PER_SCALE, 0.2):
            row = {"c": c, **run(name, X, X_test, planted, n_atoms=ATOMS_PER_FEATURE * p, alpha=c * s)}
            by_c.append(row)
            print(row, flush=True)
        for f in (1, 4):
            row = {"f": f, **run(name, X, X_test, planted, n_atoms=f * p, alpha=ALPHA_PER_SCALE * s)}
            by_f.append(row)
            print(row, flush=True)
        rule = run(name, X, X_test, planted)  # the rule itself, as the card calls it
        key = "Gabor-like" if planted is None else "recovered"
        figures[f"{name}: {key} at the rule"] = rule[key]
        figures[f"{name}: L0 at the rule"] = rule["L0"]
        if name != "128 planted in 64 dims":
            for l0 in (3, 5, 10):
                row = {"l0 asked": l0, **run(name, X, X_test, planted, l0=l0)}
                row["L0 / asked"] = row["L0"] / l0
                by_l0.append(row)
                print(row, flush=True)
    wide = SyntheticActivations(256, 512, exponent=0.5, seed=0)
    X, X_test = wide.sample(ROWS), wide.sample(HELD_OUT, split=1)
    row = run("512 planted in 256 dims", X, X_test, wide)
    print(row, flush=True)
    figures["512 planted in 256 dims: recovered at the rule"] = row["recovered"]
    record("choose", title="Choosing n_atoms and α from the data (benchmarks/choose.py)",
           tables={"α = c · √(mean ‖x‖²), 2 × n_features atoms (the rule: c = 0.1)": by_c,
                   "n_atoms = f × n_features at c = 0.1 (the rule: f = 2)": by_f,
                   "l0= instead of α (2 × n_features atoms): the L0 asked and the learned codes' L0": by_l0,
                   "the rule on wider activations": [row]},
           figures=figures, comparison="the same data, solver (lca), seed and one epoch for every setting",
           load_before=load_before,
           notes="One seed a setting: Gabor fractions of 128 atoms move by a few hundredths between seeds.")


if __name__ == "__main__":
    main()
