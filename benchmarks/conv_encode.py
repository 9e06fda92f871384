"""Convolutional sparse coding, time to a certified relative duality gap: encode_conv against SPORCO
(2-D images) and alphacsc (1-D signals), each peer by its own code with its recommended settings.

    python benchmarks/conv_encode.py [--case sporco|alphacsc|both] [--images 64] [--size 128]
                                     [--signals 100] [--length 2048] [--tol 1e-3] [--quick]

Every method codes the same data, and every method's codes are certified by sparsolve's own float64
gap (sparsolve.conv.duality_gap): the reported gap is the worst relative gap gap/F(z) over the signals.
A method is timed from its inputs to its codes, after a warm-up run on the same shapes (SPORCO plans
its FFTW transforms, numba compiles), twice, keeping the faster; the two methods alternate.

* **SPORCO** (``sporco.admm.cbpdn.ConvBPDN``, circular boundary, its defaults: AutoRho, RelaxParam
  1.8, rho 50λ + 1; ``FastSolve`` on, which skips its per-iteration statistics): SPORCO's own example
  setup -- grey 128×128 crops of the photos scikit-learn ships, high-passed as SPORCO's examples do
  (``sporco.signal.tikhonov_filter``, λ = 5), its learned dictionary ``G:8x8x32`` (32 filters 8×8),
  λ = 0.05 as in its ConvBPDN example -- all images in one ConvBPDN (dimK=1).  Its stopping rule is
  switched off; it gets the iterations it needs to reach the target on every image, found by a pilot
  run that checks our gap every 10 iterations (untimed), and the timed run is checked again.
* **alphacsc** (``alphacsc.update_z_multi.update_z_multi``, valid boundary, non-negative codes): its
  own simulated signals (``alphacsc.simulate.simulate_data``, as its example, with noise), λ = 0.1 as
  in its example; solvers "lgcd" (its locally greedy CD) and "l-bfgs" (its default), ``n_jobs`` = the
  cores.  Their tolerance is divided by 10 from their default until every signal meets the target.
* **sparsolve**: ``encode_conv(tol=target)`` stops each signal on its own certificate; solvers admm
  (the default for circular on the host? see the table), fista and cd.

Results go through benchmarks/harness.py (``conv_encode_sporco``, ``conv_encode_alphacsc``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from sparsolve.conv import duality_gap, encode_conv
from sparsolve.data import load_natural_images
from sparsolve.inference import ConvergenceWarning

from harness import record  # noqa: E402  (benchmarks/ is the script's folder)


def worst_gap(X, D, Z, alpha, boundary, positive=False):
    gap, F = duality_gap(np.asarray(X, np.float64), np.asarray(D, np.float64), np.asarray(Z, np.float64), alpha,
                         boundary, positive=positive)
    return float(np.max(gap / F))


def timed(fn, repeats=2):
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


# --------------------------------------------------------------------------- SPORCO (2-D)

def sporco_problem(n_images, size, seed=0):
    from sporco import signal, util

    rng = np.random.default_rng(seed)
    images = load_natural_images()
    crops = []
    for i in range(n_images):
        im = images[i % len(images)]
        top, left = rng.integers(0, im.shape[0] - size), rng.integers(0, im.shape[1] - size)
        crops.append(im[top:top + size, left:left + size])
    S = np.stack(crops, axis=-1)  # (H, W, N), SPORCO's layout
    _, high = signal.tikhonov_filter(S, 5.0)
    Ds = util.convdicts()["G:8x8x32"]  # (8, 8, 32)
    X = np.ascontiguousarray(np.moveaxis(high, -1, 0)[:, None])  # (N, 1, H, W)
    D = np.ascontiguousarray(np.moveaxis(Ds, -1, 0)[:, None])  # (K, 1, 8, 8)
    return X, D, np.ascontiguousarray(high), np.ascontiguousarray(Ds)


def sporco_codes(Y):
    """SPORCO's (H, W, 1, N, K) coefficient array as our (N, K, H, W)."""
    return np.ascontiguousarray(np.transpose(Y[:, :, 0], (2, 3, 0, 1)))


def sporco_run(S, Ds, lmbda, iters, callback=None):
    from sporco.admm import cbpdn

    opt = cbpdn.ConvBPDN.Options({"Verbose": False, "MaxMainIter": iters, "RelStopTol": 0.0, "FastSolve": True,
                                  "Callback": callback})
    solver = cbpdn.ConvBPDN(Ds, S, lmbda, opt, dimK=1)
    return sporco_codes(solver.solve())


def sporco_iterations(S, Ds, X, D, lmbda, target, limit=5000):
    """The smallest multiple of 10 iterations after which every image's gap meets ``target`` (pilot)."""
    found = {}

    def check(solver):
        k = solver.k + 1
        if k % 10 == 0 and worst_gap(X, D, sporco_codes(solver.getcoef()), lmbda, "circular") <= target:
            found["k"] = k
            return True
        return False

    sporco_run(S, Ds, lmbda, limit, callback=check)
    return found.get("k")


def case_sporco(args):
    X, D, S, Ds = sporco_problem(args.images, args.size)
    dtype = np.float32
    X, D, S, Ds = (a.astype(dtype) for a in (X, D, S, Ds))
    lmbda, target = args.sporco_lambda, args.tol
    load_before = os.getloadavg()[0]
    iters = sporco_iterations(S, Ds, X, D, lmbda, target)
    print(f"SPORCO needs {iters} iterations for a worst gap ≤ {target:g}", flush=True)
    sporco_run(S[..., :2], Ds, lmbda, 2)  # warm-up: FFTW plans for these shapes' batch of 2
    sporco_run(S, Ds, lmbda, 1)
    solvers = args.sporco_solvers.split(",")
    for solver in solvers:  # warm-up: numba compiles, FFT caches
        encode_conv(X[:2], D, lmbda, boundary="circular", solver=solver, tol=target, max_iter=5)
    rows, times = [], {}
    for rep in range(2):  # interleaved: SPORCO, ours, SPORCO, ours
        t, Zs = timed(lambda: sporco_run(S, Ds, lmbda, iters), repeats=1)
        times.setdefault("SPORCO ConvBPDN", []).append((t, worst_gap(X, D, Zs, lmbda, "circular"), iters))
        for solver in solvers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                t, (Z, info) = timed(lambda: encode_conv(X, D, lmbda, boundary="circular", solver=solver, tol=target,
                                                        return_info=True), repeats=1)
            times.setdefault(f"sparsolve {solver}", []).append((t, worst_gap(X, D, Z, lmbda, "circular"),
                                                               int(info.n_iter.max())))
            print(rep, solver, f"{t:.2f}s", flush=True)
    base = min(t for t, _, _ in times["SPORCO ConvBPDN"])
    for name, runs in times.items():
        t, gap, it = min(runs)
        rows.append({"method": name, "seconds": round(t, 3), "worst rel. gap": gap, "iterations (max)": it,
                     "SPORCO / this": round(base / t, 2), "runs (s)": ", ".join(f"{r[0]:.2f}" for r in runs)})
        print(rows[-1], flush=True)
    best = max((r for r in rows if r["method"] != "SPORCO ConvBPDN"), key=lambda r: r["SPORCO / this"])
    figures = {"speedup_vs_sporco": best["SPORCO / this"], "sporco_iterations": iters}
    caption = (f"{args.images} images {args.size}×{args.size}, 32 filters 8×8 (SPORCO's G:8x8x32), circular, "
               f"λ = {lmbda}, float32, target worst relative gap {target:g}")
    record("conv_encode_sporco", title="Convolutional inference: encode_conv against SPORCO ConvBPDN "
           "(benchmarks/conv_encode.py)", tables={caption: rows}, figures=figures,
           comparison="equal certified accuracy (every image's float64 gap ≤ target, by sparsolve's gap)",
           load_before=load_before)


# --------------------------------------------------------------------------- alphacsc (1-D)

def alphacsc_problem(n_signals, length, atom=64, n_atoms=8, noise=0.01, seed=0):
    from alphacsc.simulate import simulate_data

    X, ds, _ = simulate_data(n_signals, length, atom, n_atoms, random_state=seed)
    rng = np.random.default_rng(seed)
    X = X + noise * X.std() * rng.standard_normal(X.shape)
    return np.ascontiguousarray(X[:, None]), np.ascontiguousarray(ds[:, None])


def alphacsc_run(X, D, reg, solver, tol):
    from alphacsc.update_z_multi import update_z_multi

    z, _, _ = update_z_multi(X, D, reg, solver=solver, solver_kwargs={"tol": tol}, positive=True,
                             n_jobs=os.cpu_count())
    return z


def case_alphacsc(args):
    X, D = alphacsc_problem(args.signals, args.length)
    reg, target = args.alphacsc_lambda, args.tol
    load_before = os.getloadavg()[0]
    encode_conv(X[:2], D, reg, boundary="valid", solver="cd", positive=True, tol=target)  # compiles
    rows = []
    for solver, tol0 in (("lgcd", 1e-3), ("l-bfgs", 1e-5)):
        tol = tol0
        alphacsc_run(X[:2], D, reg, solver, tol)  # warm-up
        while True:  # the loosest of their tolerances that meets the target
            t, z = timed(lambda: alphacsc_run(X, D, reg, solver, tol), repeats=1)
            gap = worst_gap(X, D, z, reg, "valid", positive=True)
            print(solver, tol, f"{t:.2f}s", gap, flush=True)
            if gap <= target or tol < 1e-12:
                break
            tol /= 10
        t, z = timed(lambda: alphacsc_run(X, D, reg, solver, tol), repeats=1)
        rows.append({"method": f"alphacsc {solver} (tol {tol:.3g})", "seconds": round(t, 3),
                     "worst rel. gap": worst_gap(X, D, z, reg, "valid", positive=True)})
    for solver in ("cd", "fista"):
        t, (Z, info) = timed(lambda: encode_conv(X, D, reg, boundary="valid", solver=solver, positive=True, tol=target,
                                                return_info=True))
        rows.append({"method": f"sparsolve {solver}", "seconds": round(t, 3),
                     "worst rel. gap": worst_gap(X, D, Z, reg, "valid", positive=True)})
    ours = min(r["seconds"] for r in rows if r["method"].startswith("sparsolve"))
    peer = min(r["seconds"] for r in rows if r["method"].startswith("alphacsc") and r["worst rel. gap"] <= target)
    for r in rows:
        r["this / fastest sparsolve"] = round(r["seconds"] / ours, 2)
        print(r, flush=True)
    caption = (f"{args.signals} signals of {args.length} samples, 8 atoms of 64 (alphacsc.simulate, 1% noise), "
               f"valid, z ≥ 0, λ = {reg}, float64, target worst relative gap {target:g}")
    record("conv_encode_alphacsc", title="Convolutional inference, 1-D: encode_conv against alphacsc "
           "(benchmarks/conv_encode.py)", tables={caption: rows},
           figures={"speedup_vs_alphacsc": round(peer / ours, 2)},
           comparison="equal certified accuracy (every signal's float64 gap ≤ target, by sparsolve's gap)",
           load_before=load_before)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=("sporco", "alphacsc", "both"), default="both")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--sporco-lambda", type=float, default=0.05)
    p.add_argument("--sporco-solvers", default="admm")
    p.add_argument("--signals", type=int, default=100)
    p.add_argument("--length", type=int, default=2048)
    p.add_argument("--alphacsc-lambda", type=float, default=0.1)
    p.add_argument("--tol", type=float, default=1e-3)
    args = p.parse_args(argv)
    if args.case in ("sporco", "both"):
        case_sporco(args)
    if args.case in ("alphacsc", "both"):
        case_alphacsc(args)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
