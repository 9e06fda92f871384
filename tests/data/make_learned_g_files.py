"""Writes the learned-G files that tests/test_learned_g_t0.py loads: encoders and a training
checkpoint as sparsolve wrote them while a t* = 0 LearnedG still held an (n_atoms × n_atoms)
G (sparsolve at commit 2c0e211), and the results that code gave, to compare against.

It was run once with that code (``PYTHONPATH=<checkout of 2c0e211> python
tests/data/make_learned_g_files.py``); the files are the record of that code, so rerunning it
with a later sparsolve would overwrite them with what the later code writes (no G at t* = 0)
and test nothing about old files.

Files, all tiny (8 features, 6 atoms):

* ``learned_g_t0.npz`` -- t* = 0, every parameter random except G, which is 0 as training
  leaves it (G has no gradient at t* = 0);
* ``learned_g_t0_nonzero_g.npz`` -- t* = 0, signed, learned γ, with a nonzero G set by hand:
  at t* = 0 G takes no part in the encoder, so it must load and encode the same;
* ``learned_g_t0_untied.npz`` -- untied t* = 0 (G of shape (0, 6, 6));
* ``learned_g_t2.npz`` -- t* = 2 with a random G, for "t* ≥ 1 unchanged";
* ``learned_g_t0_checkpoint.npz`` -- a ``fit_amortized`` checkpoint of an autoencoder at
  t* = 0 after 5 of its steps (its optimizer state numbered with G among the parameters);
* ``learned_g_reference.npz`` (plain ``np.savez``) -- the data, each encoder's codes on it,
  and the parameters and per-step history of short ``fit_amortized`` runs (keys
  ``<run>/<name>``; see ``RUNS``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import sparsolve

HERE = Path(__file__).resolve().parent
N_FEATURES, N_ATOMS = 8, 6
# name -> fit_amortized settings; every run has seed 0, batch 16, float64, CPU, no progress bar
RUNS = {
    "ae_t0": dict(t_star=0, mode="autoencoder", n_atoms=N_ATOMS, alpha=0.1, max_steps=10),
    "ae_t0_untied": dict(t_star=0, mode="autoencoder", n_atoms=N_ATOMS, alpha=0.1, max_steps=10, tied=False),
    "ae_t0_penalty_signed": dict(t_star=0, mode="autoencoder", n_atoms=N_ATOMS, alpha=0.1, max_steps=10,
                                 norm="inverse_penalty", positive=False),
    "amortize_t0": dict(t_star=0, alpha=0.1, max_steps=10, dictionary=True),
    "ae_t1": dict(t_star=1, mode="autoencoder", n_atoms=N_ATOMS, alpha=0.1, max_steps=10),
    "ae_t2_untied": dict(t_star=2, mode="autoencoder", n_atoms=N_ATOMS, alpha=0.1, max_steps=10, tied=False),
}
COMMON = dict(seed=0, batch_size=16, dtype="float64", device="cpu", progress=False)


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, N_FEATURES))
    D = rng.standard_normal((N_ATOMS, N_FEATURES))
    return X, D / np.linalg.norm(D, axis=1, keepdims=True)


def random_model(t_star, **kw):
    torch.manual_seed(t_star)
    model = sparsolve.LearnedG(N_FEATURES, N_ATOMS, t_star, dtype=torch.float64, seed=0, **kw)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "G" or t_star > 0:
                p.copy_(0.3 * torch.randn_like(p))
    return model


def run(X, D, settings):
    settings = dict(settings)
    dictionary = D if settings.pop("dictionary", False) else None
    return sparsolve.fit_amortized(X, dictionary, **settings, **COMMON)


def main():
    X, D = data()
    ref = {"X": X, "D": D}
    models = {"t0": random_model(0), "t0_untied": random_model(0, tied=False), "t2": random_model(2)}
    nonzero = random_model(0, signed=True, learn_gamma=True)
    with torch.no_grad():
        nonzero.G.copy_(torch.randn_like(nonzero.G))
    models["t0_nonzero_g"] = nonzero
    for name, model in models.items():
        model.save(HERE / f"learned_g_{name}.npz")
        ref[f"codes/{name}"] = model.encode(X)
    for name, settings in RUNS.items():
        model = run(X, D, settings)
        for k, v in model.arrays().items():
            ref[f"{name}/{k}"] = v
        for k, v in model.history_.items():
            if k != "seconds":
                ref[f"{name}/history/{k}"] = np.asarray(v)
    ck = HERE / "learned_g_t0_checkpoint.npz"
    ck.unlink(missing_ok=True)
    run(X, D, {**RUNS["ae_t0"], "max_steps": 5, "checkpoint": ck})
    np.savez(HERE / "learned_g_reference.npz", **ref)


if __name__ == "__main__":
    main()
