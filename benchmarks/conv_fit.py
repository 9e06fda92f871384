"""Convolutional dictionary learning, held-out objective against training time: fit_conv against SPORCO's
online CDL (``sporco.dictlrn.onlinecdl.OnlineConvBPDNDictLearn``), each by its own code.

    python benchmarks/conv_fit.py [--seconds 600] [--images 64] [--held-out 8] [--size 128]

SPORCO's own example setup (its examples/scripts/cdl/onlinecdl_gry.py, options as there): grey 128×128
crops of the photos scikit-learn ships, high-passed as SPORCO's examples do (``tikhonov_filter``,
λ = 5, 16 pixels of padding), 64 filters 8×8 from the same random start for both (SPORCO's
``np.random.randn(8, 8, 64)`` with seed 12345), λ = 0.2, circular boundary; SPORCO takes one image a step
(its example's loop) with CBPDN's 50 ADMM iterations at ρ = 3 and the SGD step a/(b + t), a = 10, b = 20.
fit_conv runs its defaults (batches of 8 images, solver "auto": admm for circular, tol 1e-2, 2 passes of
block coordinate descent a step).  Training and held-out crops come from the left 80% and the right 20% of
the photos' width.

Each method trains for ``--seconds`` of its own steps' wall time, the two interleaved step by step so
that the shared machine's load falls on both; its filters are copied after every step with the training
time so far (the copies are not timed).  Afterwards every snapshot's held-out objective,
mean_x min_z ½‖x − Σ d_k ∗ z_k‖² + λ Σ‖z_k‖₁ over the held-out crops, is computed by encode_conv to a
certified relative gap of 1e-3 (admm, float64).  Reported: each method's learning curve, SPORCO's final
held-out objective F_S at its time T_S, and the time fit_conv took to reach F_S (target: ≤ T_S / 2).
Results go through benchmarks/harness.py (``conv_fit_sporco``).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from sparsolve.conv import encode_conv, fit_conv
from sparsolve.data import load_natural_images
from sparsolve.data.images import TRAIN_WIDTH
from sparsolve.inference import ConvergenceWarning

from harness import record  # noqa: E402  (benchmarks/ is the script's folder)

LAMBDA = 0.2


def crops(n, size, split, seed):
    """High-passed grey crops (n, 1, size, size) from the photos' ``split`` part."""
    from sporco import signal

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = load_natural_images()[i % 2]
        cut = int(TRAIN_WIDTH * im.shape[1])
        im = im[:, :cut] if split == "train" else im[:, cut:]
        top, left = rng.integers(im.shape[0] - size + 1), rng.integers(im.shape[1] - size + 1)
        out.append(im[top:top + size, left:left + size])
    S = np.stack(out, axis=-1)
    _, high = signal.tikhonov_filter(S, 5.0, 16)
    return np.ascontiguousarray(np.moveaxis(high, -1, 0)[:, None]).astype(np.float32)


def held_out_objective(X, D, init=None):
    """(mean F over the held-out crops, their codes): encode_conv to a certified relative gap of 1e-3 (the
    certificate in float64), from ``init`` (the last snapshot's codes: any start gives the same certificate)."""
    from sparsolve.conv import objective

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Z = encode_conv(X, D, LAMBDA, boundary="circular", solver="admm", tol=1e-3, init=init)
    F = objective(X.astype(np.float64), D.astype(np.float64), Z.astype(np.float64), LAMBDA, "circular")
    return float(np.mean(F)), Z


class Sporco:
    """SPORCO's online learner, one image a step (its example's loop), with a record of its filters after
    every step and of the wall time its steps took."""

    def __init__(self, X, D0, seed):
        from sporco.dictlrn import onlinecdl

        opt = onlinecdl.OnlineConvBPDNDictLearn.Options({
            "Verbose": False, "ZeroMean": False, "eta_a": 10.0, "eta_b": 20.0, "DataType": np.float32,
            "CBPDN": {"rho": 3.0, "AutoRho": {"Enabled": False}, "RelaxParam": 1.0, "RelStopTol": 1e-7,
                      "MaxMainIter": 50, "FastSolve": False, "DataType": np.float32}})
        self.S = np.moveaxis(X[:, 0], 0, -1)  # (H, W, N)
        self.rng = np.random.default_rng(seed)
        t = time.perf_counter()
        self.learner = onlinecdl.OnlineConvBPDNDictLearn(np.moveaxis(D0[:, 0], 0, -1).copy(), LAMBDA, opt)
        self.spent = time.perf_counter() - t
        self.snaps = []

    def step(self):
        t = time.perf_counter()
        self.learner.solve(self.S[..., [int(self.rng.integers(self.S.shape[-1]))]])
        self.spent += time.perf_counter() - t
        self.snaps.append((self.spent, np.moveaxis(self.learner.getdict().squeeze(), -1, 0)[:, None].copy()))


def run_interleaved(X, D0, seconds, seed, batch_size):
    """Both learners for ``seconds`` of their own step time each, interleaved step by step (after each of
    fit_conv's steps SPORCO steps until its time has caught up), so that the shared machine's slow and
    quick spells fall on both.  fit_conv's time is its own record (the callback's work is not in it)."""
    sporco = Sporco(X, D0, seed)
    ours = []

    def callback(step, D, record):
        ours.append((record["seconds"], np.array(D, dtype=np.float32)))
        while sporco.spent < min(record["seconds"], seconds):
            sporco.step()
        return record["seconds"] < seconds

    fit_conv(X, D0.shape[0], D0.shape[-1], LAMBDA, boundary="circular", batch_size=batch_size, n_epochs=1000,
             dict_init=D0, seed=seed, progress=False, callback=callback)
    while sporco.spent < seconds:
        sporco.step()
    return sporco.snaps, ours


def curve(snaps, X_test, points):
    """(seconds, held-out objective, steps) at ``points`` snapshots spread over the run (always the last)."""
    idx = np.unique(np.linspace(0, len(snaps) - 1, points).round().astype(int))
    out, Z = [], None
    for i in idx:
        F, Z = held_out_objective(X_test, snaps[i][1], Z)
        out.append((snaps[i][0], F, i + 1))
        print(out[-1], flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--held-out", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--points", type=int, default=6)
    args = p.parse_args(argv)
    X = crops(args.images, args.size, "train", 0)
    X_test = crops(args.held_out, args.size, "test", 1)
    np.random.seed(12345)
    D0 = np.random.randn(8, 8, 64)
    D0 = np.moveaxis(D0, -1, 0)[:, None]
    D0 = (D0 / np.sqrt((D0 ** 2).sum(axis=(1, 2, 3), keepdims=True))).astype(np.float32)
    load_before = os.getloadavg()[0]
    sporco_snaps, ours_snaps = run_interleaved(X, D0, args.seconds, 0, args.batch_size)
    print(f"steps: SPORCO {len(sporco_snaps)}, fit_conv {len(ours_snaps)}", flush=True)
    sporco_curve = curve(sporco_snaps, X_test, args.points)
    ours_curve = curve(ours_snaps, X_test, 2 * args.points)
    start_objective = held_out_objective(X_test, D0)[0]
    target_t, target_f, _ = sporco_curve[-1]
    reached = next(((t, f) for t, f, _ in ours_curve if f <= target_f), None)
    rows = ([{"method": "start (both)", "seconds": 0.0, "held-out objective": start_objective, "steps": 0}]
            + [{"method": "SPORCO online CDL", "seconds": round(t, 2), "held-out objective": f, "steps": s}
               for t, f, s in sporco_curve]
            + [{"method": "sparsolve fit_conv", "seconds": round(t, 2), "held-out objective": f, "steps": s}
               for t, f, s in ours_curve])
    for r in rows:
        print(r, flush=True)
    figures = {"sporco_seconds": round(target_t, 2), "sporco_final_objective": target_f,
               "fit_conv_final_objective": ours_curve[-1][1],
               "fit_conv_seconds_to_sporco_final": None if reached is None else round(reached[0], 2),
               "time_ratio": None if reached is None else round(reached[0] / target_t, 3)}
    print(figures)
    record("conv_fit_sporco", title="Convolutional dictionary learning: fit_conv against SPORCO online CDL "
           "(benchmarks/conv_fit.py)",
           tables={f"{args.images} training crops {args.size}×{args.size} (high-passed), {args.held_out} held-out "
                   f"crops, 64 filters 8×8 from one random start, λ = {LAMBDA}, circular; held-out objective by "
                   f"encode_conv (relative gap 1e-3)": rows},
           figures=figures, comparison="equal wall time (learning curves: held-out objective against training "
           "seconds)", load_before=load_before)


if __name__ == "__main__":
    main()
