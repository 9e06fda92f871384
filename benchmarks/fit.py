"""Dictionary learning: held-out objective against training time, sparsolve vs its peers.

    python benchmarks/fit.py [--quick] [--train N] [--test N] [--epochs E] [--solvers cd,lca]  (default: both)
    python benchmarks/fit.py --device cuda     # GPU throughput, run by gpu_check.sh

Data: random 8×8 natural-image patches (sparsolve.data.natural_image_patches, mean
removed); by default 100,000 for training and 10,000 held out (--quick: 10,000 and
2,000).  256 atoms, α = 0.05 (the objective ½‖x − zD‖² + α‖z‖₁ per sample, the same
in all three libraries), batches of 256, the same number of passes for every method.

Methods, each on all cores of the machine:

* sparsolve.fit(solver=..., update="online", norm="unit") -- a snapshot of D every
  few steps through ``callback``; time is the fit's own step time (history "seconds");
* scikit-learn MiniBatchDictionaryLearning (fit_algorithm="lars"), one ``partial_fit``
  per batch, timed around the calls;
* SPAMS trainDL (mode 2, ‖d‖ ≤ 1), continued chunk by chunk through ``model=``.

Every snapshot's dictionary is re-encoded on the held-out set by the same exact solver
-- sparsolve.encode(solver="cd", tol=1e-6), a certified relative duality gap -- and
the mean objective is reported against the training time spent to reach it.

CPU targets: sparsolve reaches the best peer's final held-out objective in at most half
that peer's training time; and fit(solver="lca") comes within 1e-4 (relative) of
fit(solver="cd")'s final held-out objective within 1.5× cd's training time.

GPU (``--device cuda``): throughput in patches per second of sparsolve.fit on 16×16
patches with 1,024 atoms, float32 torch on the GPU, FISTA inner loop to a relative
gap of 1e-3, batches of 8,192; target ≥ 1,000,000 patches/s on an H100.

Each run ends in ``harness.record``: the case ``fit`` (``fit_quick`` with --quick, with a suffix
for other sizes, epochs or solvers) or ``fit_cuda``; RESULTS.md is regenerated from it.
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

import sparsolve
from sparsolve.data import natural_image_patches

from harness import load_average, record  # noqa: E402  (benchmarks/ is the script's folder)

HERE = Path(__file__).resolve().parent
ATOMS, ALPHA, BATCH = 256, 0.05, 256
SNAPSHOTS = 10


def held_out(D, X):
    """Mean of ½‖x − zD‖² + α‖z‖₁ over X, with z exact (cd to a relative gap of 1e-6)."""
    D = np.ascontiguousarray(D, dtype=np.float64)
    keep = np.linalg.norm(D, axis=1) > 0  # a zero atom (never happens for sparsolve) is unused anyway
    Z = sparsolve.encode(X, D[keep], ALPHA, solver="cd", tol=1e-6)
    return float(sparsolve.objective(X, D[keep], Z, ALPHA).mean())


def run_sparsolve(X, epochs, seed, solver):
    steps = epochs * int(np.ceil(len(X) / BATCH))
    every = max(1, steps // SNAPSHOTS)
    trace = []

    def snap(step, D, record):
        if step % every == 0 or step == steps:
            trace.append((record["seconds"], np.array(D, copy=True)))

    sparsolve.fit(X, ATOMS, ALPHA, solver=solver, batch_size=BATCH, n_epochs=epochs, seed=seed, progress=False,
                  callback=snap)
    return trace


def _batches(X, epochs, seed):
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), BATCH):
            yield X[np.sort(order[i:i + BATCH])]


def run_sklearn(X, epochs, seed):
    from sklearn.decomposition import MiniBatchDictionaryLearning

    est = MiniBatchDictionaryLearning(ATOMS, alpha=ALPHA, batch_size=BATCH, fit_algorithm="lars",
                                      random_state=seed)
    steps = epochs * int(np.ceil(len(X) / BATCH))
    every = max(1, steps // SNAPSHOTS)
    spent, trace = 0.0, []
    for step, batch in enumerate(_batches(X, epochs, seed), 1):
        start = time.perf_counter()
        est.partial_fit(batch)
        spent += time.perf_counter() - start
        if step % every == 0 or step == steps:
            trace.append((spent, est.components_.copy()))
    return trace


def run_spams(X, epochs, seed):
    import spams

    steps = epochs * int(np.ceil(len(X) / BATCH))
    every = max(1, steps // SNAPSHOTS)
    batches = list(_batches(X, epochs, seed))
    spent, trace, D, model = 0.0, [], None, None
    for lo in range(0, steps, every):
        chunk = np.asfortranarray(np.concatenate(batches[lo:lo + every]).T)
        n_iter = min(every, steps - lo)
        kw = dict(K=ATOMS, lambda1=ALPHA, iter=n_iter, batchsize=BATCH, numThreads=-1, verbose=False,
                  return_model=True)
        start = time.perf_counter()
        if D is None:
            D, model = spams.trainDL(chunk, **kw)
        else:
            D, model = spams.trainDL(chunk, D=D, model=model, **kw)
        spent += time.perf_counter() - start
        trace.append((spent, np.array(D.T, copy=True)))
    return trace


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 + 2,000 patches (the case fit_quick)")
    ap.add_argument("--train", type=int, default=None)
    ap.add_argument("--test", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--solvers", default="cd,lca", help="sparsolve inference solvers, comma-separated (cd, lca, ...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print only: record no result")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args()
    if args.device == "cuda":
        return gpu_throughput()
    n_train = args.train or (10_000 if args.quick else 100_000)
    n_test = args.test or (2_000 if args.quick else 10_000)
    load = load_average()
    X = natural_image_patches(8, n_train + n_test, seed=args.seed)
    Xtr, Xte = X[:n_train], X[n_train:]
    # compile the numba kernels before any clock runs
    sparsolve.fit(Xtr[:2 * BATCH], ATOMS, ALPHA, solver="cd", max_steps=2, progress=False)
    held_out(Xtr[:ATOMS], Xte[:10])

    traces = {}
    for solver in args.solvers.split(","):
        traces[f"sparsolve ({solver}, online, unit)"] = run_sparsolve(Xtr, args.epochs, args.seed, solver)
    traces["scikit-learn MiniBatchDictionaryLearning"] = run_sklearn(Xtr, args.epochs, args.seed)
    traces["SPAMS trainDL"] = run_spams(Xtr, args.epochs, args.seed)

    curves = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, trace in traces.items():
            curves[name] = [(t, held_out(D, Xte)) for t, D in trace]
            print(f"{name}: " + ", ".join(f"{t:.1f}s→{f:.6f}" for t, f in curves[name]), flush=True)
    result = report(curves, n_train, n_test, args)
    for line in result["notes"].split("\n\n")[1:]:
        print(line)
    if not args.no_write:
        record(case_name(args, n_train, n_test), load_before=load, **result)


def case_name(args, n_train, n_test):
    """``fit``, or ``fit_quick``, with a suffix for whatever differs from that setting."""
    base = "fit_quick" if args.quick else "fit"
    default = (10_000, 2_000) if args.quick else (100_000, 10_000)
    extra = [f"{n_train}x{n_test}"] if (n_train, n_test) != default else []
    extra += [f"epochs{args.epochs}"] if args.epochs != 1 else []
    extra += [args.solvers.replace(",", "-")] if args.solvers != "cd,lca" else []
    extra += [f"seed{args.seed}"] if args.seed else []
    return "_".join([base, *extra])


def gpu_throughput(batches=(8192, 65536), n_patches=262_144):
    """Patches per second of fit on CUDA (16×16, 1,024 atoms, FISTA to a gap of 1e-3),
    one pass over ``n_patches`` at each mini-batch size."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    load = load_average()
    X = torch.from_numpy(natural_image_patches(16, n_patches, seed=0)).float().cuda()
    alpha = 0.1 * float(X.norm(dim=1).mean())  # sparse codes on unit-norm atoms
    rows = []
    for batch in batches:
        sparsolve.fit(X[:2 * batch], 1024, alpha, solver="fista", tol=1e-3, batch_size=batch, max_steps=2,
                      progress=False, seed=0)  # warm-up: CUDA context, kernels
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model = sparsolve.fit(X, 1024, alpha, solver="fista", tol=1e-3, batch_size=batch,
                              max_steps=n_patches // batch, progress=False, seed=0)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        h = model.history
        rate = h["samples_seen"][-1] / seconds
        rows.append({"mini-batch": batch, "patches / s": round(rate), "target": 1_000_000,
                     "met": rate >= 1e6, "final nnz fraction": round(h["nnz_frac"][-1], 4),
                     "final mse": float(f"{h['mse'][-1]:.4g}")})
        print(rows[-1], flush=True)
    record("fit_cuda", title="fit on CUDA: patches per second, 16×16/1,024 atoms (benchmarks/fit.py --device cuda)",
           tables={f"One pass over {n_patches:,} patches": rows},
           figures={f"patches_per_s_{r['mini-batch']}": r["patches / s"] for r in rows} | {"target": 1_000_000},
           comparison="throughput only (no peer in this run)", load_before=load,
           notes=(f"16×16 patches, 1,024 atoms, FISTA to a relative gap of 1e-3 as the inner loop, one pass over "
                  f"{n_patches:,} patches, float32 with TF32 products, on {torch.cuda.get_device_name()}."))


def time_to_reach(curve, target):
    for t, f in curve:
        if f <= target:
            return t
    return None


def report(curves, n_train, n_test, args):
    """record()'s title, tables, figures, comparison and notes for the CPU run."""
    peers = {k: v for k, v in curves.items() if not k.startswith("sparsolve")}
    best_peer = min(peers, key=lambda k: peers[k][-1][1])
    target, peer_time = peers[best_peer][-1][1], peers[best_peer][-1][0]
    rows, verdicts, figures = [], [], {"patches_train": n_train, "patches_held_out": n_test, "atoms": ATOMS,
                                       f"{_key(best_peer)}_final": round(target, 6),
                                       f"{_key(best_peer)}_seconds": round(peer_time, 1)}
    for name, curve in curves.items():
        reach = time_to_reach(curve, target)
        rows.append({"method": name, "final held-out objective": round(curve[-1][1], 6),
                     "training time (s)": round(curve[-1][0], 1),
                     "time to reach best peer's final objective (s)": None if reach is None else round(reach, 1),
                     "ratio to best peer's time": None if reach is None else round(reach / peer_time, 2)})
        figures[f"{_key(name)}_final"] = round(curve[-1][1], 6)
        if name.startswith("sparsolve"):
            met = reach is not None and reach <= 0.5 * peer_time
            if reach is not None:
                figures[f"{_key(name)}_over_{_key(best_peer)}_time"] = round(reach / peer_time, 2)
            verdicts.append(f"**{name}: target {'MET' if met else 'NOT MET'}** -- best peer {best_peer} ends at "
                            f"{target:.6f} after {peer_time:.1f} s; sparsolve "
                            + ("never reaches it" if reach is None else f"reaches it after {reach:.1f} s "
                               f"({reach / peer_time:.2f}× the peer's time)") + ".")
    cd_name, lca_name = "sparsolve (cd, online, unit)", "sparsolve (lca, online, unit)"
    if cd_name in curves and lca_name in curves:
        # the lca row's own target (issue #11): cd's final held-out objective within 1.5× cd's time
        cd_final, cd_time = curves[cd_name][-1][1], curves[cd_name][-1][0]
        reach = time_to_reach(curves[lca_name], cd_final * (1 + 1e-4))
        met = reach is not None and reach <= 1.5 * cd_time
        if reach is not None:
            figures["lca_over_cd_time"] = round(reach / cd_time, 2)
        verdicts.append(f"**lca against cd: target {'MET' if met else 'NOT MET'}** -- cd ends at {cd_final:.6f} "
                        f"after {cd_time:.1f} s; lca (accelerated, the default) "
                        + ("never comes within 1e-4 of it" if reach is None else
                           f"comes within 1e-4 of it after {reach:.1f} s ({reach / cd_time:.2f}× cd's time; "
                           "target ≤ 1.5×)") + ".")
    if n_train < 100_000:
        verdicts.append(f"Reduced size: the issue asks for 100,000 training patches and 10,000 held out "
                        f"(`python benchmarks/fit.py`); this run used {n_train:,} and {n_test:,}.")
    setup = (f"Data: {n_train:,} random 8×8 natural-image patches for training, {n_test:,} held out "
             f"(mean removed); {ATOMS} atoms, α = {ALPHA}, batches of {BATCH}, {args.epochs} pass(es), seed "
             f"{args.seed}.  Every dictionary re-encoded on the held-out set by sparsolve.encode(solver='cd', "
             "tol=1e-6).  Time = training time only (snapshots and evaluation excluded).  Threads: sparsolve's "
             "numba kernels and SPAMS (numThreads=-1) use every core; scikit-learn runs with its defaults "
             "(n_jobs=None, BLAS threads).  The methods run one after another, so a machine shared with "
             "other jobs adds noise to each time.")
    curve_rows = [{"method": name, "training s": round(t, 1), "held-out objective": round(f, 5)}
                  for name, curve in curves.items() for t, f in curve]
    return dict(title="Dictionary learning: sparsolve.fit against SPAMS trainDL and scikit-learn, 8×8 patches, "
                      f"{ATOMS} atoms (benchmarks/fit.py)",
                tables={"Final held-out objective, and the time to reach the best peer's final objective": rows,
                        "Curves: training seconds → held-out objective": curve_rows},
                figures=figures, notes="\n\n".join([setup, *verdicts]),
                comparison=f"equal data ({n_train:,} patches, {args.epochs} pass(es), batches of {BATCH}); "
                           "held-out objective of exact codes against training time")


def _key(name):
    """A figure's name for a method: sparsolve_cd, spams, sklearn, ..."""
    if name.startswith("sparsolve"):
        return "sparsolve_" + name.split("(")[1].split(",")[0]
    return "spams" if "SPAMS" in name else "sklearn" if "scikit" in name else name.split()[0].lower()


if __name__ == "__main__":
    main()
