"""Time to a certified relative duality gap: sparsolve's solvers against their peers.

    python benchmarks/encode.py [--quick] [--interleaved] [--device cpu|cuda] [--n N [N ...]]
    python benchmarks/encode.py --reads [--loop-before OLD_LOOP.py] [--fit-only] [--device cpu|cuda]

CPU (default): for each problem -- natural-image patches 8×8 with 256 atoms
(10,000 samples) and 16×16 with 1,024 atoms (20,000 samples), each with a
dictionary learned by scikit-learn and a random unit-norm one -- every method
codes the same X, and its codes are certified by ``sparsolve.duality_gap`` in
float64: the reported gap is the worst relative gap gap/F(z) over the samples.
For each target gap (1e-4, 1e-7) a method is timed as follows:

* sparsolve solvers stop on their own certificate (``tol=target``);
* LARS (scikit-learn lasso_lars, SPAMS) is exact: one run serves both targets;
* scikit-learn lasso_cd has a fixed internal tolerance: one run, its gap reported;
* the plain numpy / torch FISTA baselines run a fixed number of iterations, the
  smallest that reaches the target in a calibration run on a subsample.

A method that misses a target is shown with the gap it reached ("✗").  Methods
that run on the full batch are timed twice and keep the faster run; slow
methods run on a subsample and their time is scaled linearly to the full batch
(marked "*"); every method runs on all its cores (2 threads here).  The case
``encode`` (``encode_quick``, or ``encode_8x8`` / ``encode_16x16`` for one size).

``--interleaved``: sparsolve cd (tol=1e-4) and SPAMS only, on the full batches,
alternating cd, SPAMS, cd, SPAMS, ... three times each and keeping each one's
fastest run, so that a slow spell of a shared machine hits both; every run is
listed.  The case ``encode_interleaved`` (``_quick``, or one size as above).

``--reads``: encode on torch CPU tensors down the path a GPU takes (the numpy views that a
CPU run works on, backend.host_view, switched off), fista and lca on 8×8 patches with 256
random atoms, tol 1e-4: the host reads per encode (benchmarks/host_reads.py counts them: by the
loop and the solvers, and by all of sparsolve) and the seconds, median of 5.  With
``--loop-before`` (an earlier inference/loop.py, e.g. ``git show REV:sparsolve/inference/loop.py``)
that loop runs too, interleaved with the current one on the same data.  Then fit on the same
path (the torch CPU tensors of 40,960 8×8 patches, 64 atoms, fista at tol 1e-3, batches of
1,280 rows: the default dead_after is two batches), 32 steps at sync_every 16 (the GPU
default) and 1: the reads by fit's own code and by its encodes, and the atoms resampled.
``--fit-only`` runs just that (e.g. under an earlier checkout's PYTHONPATH); with ``--device
cuda`` the same runs on CUDA tensors, where the seconds show what the reads cost.  The case
``host_reads`` (``host_reads_fit`` with --fit-only; ``_cuda`` on CUDA).

CUDA (``--device cuda``, used by gpu_check.sh): 16×16 patches, 1,024 random atoms.
At each ``--n``, float32 with TF32 products: ms per FISTA iteration -- sparsolve
with its fused kernel, sparsolve with array operations (``fused=False``), and a
plain torch FISTA -- against the floor, the larger of the measured product Y·G
(n×m×m) and the bytes one iteration must move (read Y, Z and XDᵀ; write Z and Y) at
the measured device copy bandwidth.  At the first ``--n``, float32 without TF32 (a
TF32 product cannot certify 1e-4): the time to a worst relative gap of 1e-4.  The case
``encode_cuda``.

Every run ends in ``harness.record`` (benchmarks/results/<case>.json; RESULTS.md regenerated).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import sparsolve
from sparsolve import io
from sparsolve.data import natural_image_patches
from sparsolve.inference import ConvergenceWarning, lipschitz

from harness import load_average, record  # noqa: E402  (benchmarks/ is the script's folder)

HERE = Path(__file__).resolve().parent
OUT = HERE / "_out"
TARGETS = (1e-4, 1e-7)
LABEL = {1e-4: "1e-4", 1e-7: "1e-7"}  # a target as the tables and the figures' names write it
SOLVERS = ("cd", "fista", "lca", "ista")


# ----------------------------------------------------------------- problems


def unit_rows(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def learned_dictionary(patch, m, *, quick):
    """A dictionary from scikit-learn's MiniBatchDictionaryLearning, trained briefly
    from unit-norm data patches and cached in benchmarks/_out/."""
    n_train = 2048 if patch == 8 else 1024
    path = OUT / f"dict_{patch}x{patch}_{m}_{n_train}.npz"
    if path.exists():
        return io.load_npz(path, "benchmark-dictionary")[0]["D"]
    from sklearn.decomposition import MiniBatchDictionaryLearning

    train = natural_image_patches(patch, n_train, seed=100)
    init = unit_rows(natural_image_patches(patch, m, seed=101) + 1e-9)
    t = time.perf_counter()
    dl = MiniBatchDictionaryLearning(n_components=m, alpha=0.2 * patch / 8, batch_size=256, max_iter=1,
                                     fit_algorithm="cd", dict_init=init, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        D = dl.fit(train).components_
    norms = np.linalg.norm(D, axis=1)
    D = np.where(norms[:, None] > 1e-8, D, init) / np.maximum(norms, 1e-8)[:, None]
    D = unit_rows(D)
    print(f"  learned {m} atoms of {patch}x{patch} in {time.perf_counter() - t:.0f} s (cached at {path.name})")
    io.save_npz(path, "benchmark-dictionary", {"D": D}, {"patch": patch, "atoms": m, "n_train": n_train})
    return D


def random_dictionary(p, m):
    return unit_rows(np.random.default_rng(7).standard_normal((m, p)))


def choose_alpha(X, D, lo=0.05, hi=0.10, n_sub=500):
    """α with a fraction of nonzero codes in [lo, hi], by bisection in log α on a subsample."""
    Xs = X[:n_sub]
    a_lo, a_hi = 1e-4, float(np.abs(Xs @ D.T).max())  # many nonzeros .. none
    for _ in range(40):
        a = np.sqrt(a_lo * a_hi)
        frac = np.mean(sparsolve.encode(Xs, D, a, solver="cd", tol=1e-6) != 0)
        if lo <= frac <= hi:
            break
        a_lo, a_hi = (a, a_hi) if frac > hi else (a_lo, a)
    return a, frac


SIZES = {"8x8": (8, 256, 10_000), "16x16": (16, 1024, 20_000)}


def problems(quick, which):
    for patch, m, n in (SIZES[w] for w in which):
        if quick:
            n = 1000
        X = natural_image_patches(patch, n, seed=0)
        for dname in ("learned", "random"):
            D = learned_dictionary(patch, m, quick=quick) if dname == "learned" else random_dictionary(patch * patch, m)
            alpha, frac = choose_alpha(X, D)
            yield f"{patch}x{patch}, {m} atoms, {dname}", X, D, alpha, frac


def worst_gap(X, D, Z, alpha):
    """The largest relative duality gap over the samples, in float64."""
    Z = np.asarray(Z, dtype=np.float64)
    F = sparsolve.objective(X, D, Z, alpha)
    return float(np.max(sparsolve.duality_gap(X, D, Z, alpha) / np.maximum(F, 1e-300)))


# ----------------------------------------------------------------- plain baselines


def numpy_fista(X, D, alpha, n_iter, L):
    """The textbook FISTA (Beck & Teboulle), no restart, fixed iterations."""
    Z = np.zeros((X.shape[0], D.shape[0]))
    Y, t = Z.copy(), 1.0
    for _ in range(n_iter):
        U = Y - ((Y @ D - X) @ D.T) / L
        Z_new = np.sign(U) * np.maximum(np.abs(U) - alpha / L, 0)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        Y = Z_new + ((t - 1) / t_new) * (Z_new - Z)
        Z, t = Z_new, t_new
    return Z


def torch_fista(X, D, alpha, n_iter, L, stop=None, stop_every=100):
    """The same textbook FISTA in torch (X, D torch tensors).  ``stop(k, Z)``, when
    given, is asked every ``stop_every`` iterations and ends the run by returning True."""
    import torch

    Z = torch.zeros(X.shape[0], D.shape[0], dtype=X.dtype, device=X.device)
    Y, t = Z.clone(), 1.0
    for k in range(1, n_iter + 1):
        U = Y - ((Y @ D - X) @ D.T) / L
        Z_new = torch.sign(U) * torch.clamp(torch.abs(U) - alpha / L, min=0)
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        Y = Z_new + ((t - 1) / t_new) * (Z_new - Z)
        Z, t = Z_new, t_new
        if stop is not None and k % stop_every == 0 and stop(k, Z):
            break
    return Z


def calibrate(run, X, D, alpha, L, targets, max_iter, max_seconds):
    """Smallest iteration counts (checked at ×1.25 steps) at which ``run`` reaches each
    target on X -- None for a target missed within max_iter or max_seconds -- and the
    last run as (iterations, worst gap, seconds)."""
    found, k, start = {}, 10, time.perf_counter()
    while True:
        Z, s = timed(lambda: run(X, D, alpha, k, L))
        g = worst_gap(X, D, Z, alpha)
        for tgt in targets:
            if tgt not in found and g <= tgt:
                found[tgt] = k
        k_next = int(np.ceil(k * 1.25))
        if len(found) == len(targets) or k_next > max_iter or time.perf_counter() - start + 1.25 * s > max_seconds:
            return {tgt: found.get(tgt) for tgt in targets}, (k, g, s)
        k = k_next


# ----------------------------------------------------------------- CPU benchmark


def timed(fn, repeats=1):
    """(fn(), seconds): the best of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def spams_lasso(Xt, Dt, alpha):
    """SPAMS' LARS on every core (2 here): Xt and Dt Fortran-ordered, one sample or atom
    per column; returns the codes as a sparse (n_atoms, n_samples) matrix."""
    import spams

    return spams.lasso(Xt, D=Dt, lambda1=alpha, mode=2, numThreads=2)


def subsample(n, cap):
    return n if cap is None else min(n, cap)


def bench_problem(name, X, D, alpha, quick):
    import torch
    from sklearn.decomposition import sparse_encode

    n, p = X.shape
    m = D.shape[0]
    big = m >= 1024
    L = lipschitz(D)
    rows = []  # (method, {target: (seconds, gap, reached, extrapolated)})

    def add(method, per_target):
        rows.append((method, per_target))
        cells = "  ".join(f"{t:g}: {_cell(*v)}" for t, v in per_target.items())
        print(f"    {method:<28} {cells}", flush=True)

    def once(method, fn, cap):
        """A method whose one run serves both targets (exact or fixed-tolerance)."""
        k = subsample(n, cap)
        Z, s = timed(lambda: fn(X[:k]), repeats=2 if k == n else 1)
        g = worst_gap(X[:k], D, Z, alpha)
        add(method, {t: (s * n / k, g, g <= t * 1.01, k < n) for t in TARGETS})

    # sparsolve's solvers, certified by their own gap at each target
    # samples each method runs on (the rest is extrapolated): what 2 loaded cores can afford
    caps = {"cd": None, "fista": 100 if big else 2000, "lca": 30 if big else 250,
            "ista": 30 if big else 250, "spams": None, "lasso_lars": 100 if big else 1000,
            "lasso_cd": 50 if big else 1000, "calibrate": 100 if big else 300, "plain": 100 if big else 2000}
    sparsolve.encode(X[:50], D, alpha, solver="cd")  # compile the numba kernels outside the timings
    for solver in SOLVERS:
        k = subsample(n, caps[solver])
        per = {}
        for tgt in TARGETS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                Z, s = timed(lambda: sparsolve.encode(X[:k], D, alpha, solver=solver, tol=tgt,
                                                      max_iter=1000 if solver in ("ista", "lca") else None),
                             repeats=2 if k == n else 1)
            g = worst_gap(X[:k], D, Z, alpha)
            per[tgt] = (s * n / k, g, g <= tgt * 1.01, k < n)
        add(f"sparsolve {solver}", per)

    # peers
    Df = np.asfortranarray(D.T)
    once("SPAMS lasso (LARS, 2 thr)",
         lambda Xk: spams_lasso(np.asfortranarray(Xk.T), Df, alpha).T.toarray(),
         caps["spams"])
    # sparse_encode divides its alpha by n_features itself: the same objective as ours
    once("sklearn lasso_lars", lambda Xk: sparse_encode(Xk, D, algorithm="lasso_lars", alpha=alpha, n_jobs=2),
         caps["lasso_lars"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        once("sklearn lasso_cd", lambda Xk: sparse_encode(Xk, D, algorithm="lasso_cd", alpha=alpha, n_jobs=2),
             caps["lasso_cd"])

    torch.set_num_threads(os.cpu_count() or 1)
    def torch_run(x, d, a, k, L_):
        return torch_fista(torch.from_numpy(x), torch.from_numpy(d), a, k, L_).numpy()

    for method, run in (("numpy FISTA (plain)", numpy_fista), ("torch FISTA (plain)", torch_run)):
        n_cal = min(n, caps["calibrate"])
        iters, (k_last, g_last, s_last) = calibrate(run, X[:n_cal], D, alpha, L, TARGETS, max_iter=5000,
                                                    max_seconds=10 if quick else (15 if big else 30))
        k_run = subsample(n, caps["plain"])
        per = {}
        for tgt in TARGETS:
            k_it = iters[tgt]
            if k_it is None:  # missed within the calibration budget: report its last run
                per[tgt] = (s_last * n / n_cal, g_last, False, True)
                continue
            Z, s = timed(lambda: run(X[:k_run], D, alpha, k_it, L))
            g = worst_gap(X[:k_run], D, Z, alpha)
            per[tgt] = (s * n / k_run, g, g <= tgt * 1.01, k_run < n)
        add(f"{method}", per)
    return rows


def _cell(seconds, gap, reached, extrapolated):
    star = "*" if extrapolated else ""
    if reached:
        return f"{seconds:.3g} s{star}"
    return f"✗ {gap:.1e} in {seconds:.3g} s{star}"


def problem_key(name):
    """"8x8, 256 atoms, learned" -> "8x8_learned": the problem's part of a figure's name."""
    return f"{name.split(',')[0]}_{name.split(', ')[-1]}"


def table(name, alpha, frac, n, rows):
    """(caption, rows, figures) of one problem."""
    best = {}
    for tgt in TARGETS:
        times = [v[tgt][0] for meth, v in rows if meth.startswith("sparsolve") and v[tgt][2]]
        best[tgt] = min(times) if times else None
    out = []
    for meth, v in rows:
        row = {"method": meth}
        for tgt in TARGETS:
            s, g, ok, ext = v[tgt]
            row[f"time to {LABEL[tgt]}"] = _cell(s, g, ok, ext)
            row[f"× best sparsolve (time to {LABEL[tgt]})"] = f"{s / best[tgt]:.1f}×" if ok and best[tgt] else "—"
        out.append(row)
    figures = {}
    for tgt in TARGETS:
        peers = [(v[tgt][0], meth) for meth, v in rows if not meth.startswith("sparsolve") and v[tgt][2]]
        if best[tgt] and peers:
            t_peer, who = min(peers)
            key = "spams" if who.startswith("SPAMS") else "fastest_peer"
            figures[f"{key}_over_cd_{LABEL[tgt]}_{problem_key(name)}"] = round(t_peer / best[tgt], 2)
    caption = f"{name} — {n:,} samples, α = {alpha:.4g} ({100 * frac:.1f}% nonzeros)"
    return caption, out, figures


def suffix(args):
    """The case's suffix for a run other than the full one: _quick, _8x8 or _16x16."""
    parts = (["quick"] if args.quick else []) + ([] if set(args.problems) == set(SIZES) else list(args.problems))
    return "".join(f"_{p}" for p in parts)


SIZES_TITLE = "8×8/256 and 16×16/1,024 atoms"


def run_cpu(args):
    load = load_average()
    tables, figures = {}, {}
    for name, X, D, alpha, frac in problems(args.quick, args.problems):
        print(f"\n{name}: {X.shape[0]} samples, alpha={alpha:.4g}, {100 * frac:.1f}% nonzeros (on 500)", flush=True)
        rows = bench_problem(name, X, D, alpha, args.quick)
        caption, out, found = table(name, alpha, frac, X.shape[0], rows)
        tables[caption] = out
        figures.update(found)
        print(caption, found, flush=True)
    record("encode" + suffix(args), load_before=load,
           title=f"Inference: time to a certified gap of 1e-4 and 1e-7, sparsolve against SPAMS, scikit-learn and "
                 f"plain FISTAs, {SIZES_TITLE} (benchmarks/encode.py)",
           tables=tables, figures=figures,
           comparison="equal certified accuracy: every method's codes certified by the float64 duality gap",
           notes=("Time for each method to bring every sample to a relative duality gap gap/F(z) ≤ 1e-4 and ≤ 1e-7, "
                  "certified by `sparsolve.duality_gap` in float64 on the method's own output; float64 data. "
                  "“✗ g” = the target was missed and g is the worst gap reached; "
                  "“*” = run on a subsample (30–4,000 samples) and scaled linearly to the full batch. "
                  "LARS peers are exact and the lasso_cd run has scikit-learn's fixed internal tolerance, so one run "
                  "serves both columns; the plain FISTAs run the iteration count a calibration run on 100–300 "
                  "samples needed (✗ when its time budget ran out first). sklearn peers get `alpha=α` (sparse_encode "
                  "divides by n_features itself), SPAMS `lambda1=α`, `mode=2`, `numThreads=2`. sparsolve ista and "
                  "lca stop at max_iter=1000. Full-batch runs (sparsolve cd, SPAMS) are timed twice and keep the "
                  "faster. The figures: the fastest peer's time over the best sparsolve solver's (cd)."))


def run_interleaved(args, rounds=3):
    load = load_average()
    rows, figures = [], {}
    for name, X, D, alpha, _ in problems(args.quick, args.problems):
        Dt, Xt = np.asfortranarray(D.T), np.asfortranarray(X.T)
        sparsolve.encode(X[:50], D, alpha, solver="cd")  # compile outside the timings
        cd_s, spams_s = [], []
        for _ in range(rounds):
            Z, s = timed(lambda: sparsolve.encode(X, D, alpha, solver="cd", tol=1e-4))
            cd_s.append(s)
            spams_s.append(timed(lambda: spams_lasso(Xt, Dt, alpha))[1])
        runs = lambda v: f"{min(v):.3g} s ({', '.join(f'{x:.3g}' for x in v)})"
        ratio = min(spams_s) / min(cd_s)
        rows.append({"problem": name, "samples": X.shape[0], "sparsolve cd, 1e-4": runs(cd_s),
                     "SPAMS LARS": runs(spams_s), "SPAMS ÷ cd": round(ratio, 2),
                     "cd's worst gap": float(f"{worst_gap(X, D, Z, alpha):.2g}")})
        figures[f"spams_over_cd_{problem_key(name)}"] = round(ratio, 2)
        print(rows[-1], flush=True)
    ratios_16 = [v for k, v in figures.items() if "16x16" in k]
    notes = ("The same problems, data and α as the case encode; cd and SPAMS alternate, three runs each on the full "
             "batch, and the table keeps each one's fastest (all runs in brackets), so that a slow spell of the "
             "shared machine hits both.")
    if len(ratios_16) == 2:  # issue 2's CPU target
        figures["target"] = 2
        notes += (f"\n\nTarget (SPAMS ÷ cd ≥ 2 at 1e-4 on both 16×16 problems): "
                  f"{'met' if min(ratios_16) >= 2 else 'not met'}, {' and '.join(f'{r:.2f}' for r in ratios_16)}.")
    record("encode_interleaved" + suffix(args), load_before=load,
           title=f"Inference: cd against SPAMS at 1e-4, runs interleaved, {SIZES_TITLE} "
                 f"(benchmarks/encode.py --interleaved{' --quick' if args.quick else ''})",
           tables={"cd (tol 1e-4) and SPAMS' LARS, alternating": rows}, figures=figures, notes=notes,
           comparison="equal certified accuracy (relative gap 1e-4); cd and SPAMS alternate, three runs each, "
                      "the fastest kept")


# ----------------------------------------------------------------- CUDA benchmark


def run_cuda(args):
    import torch

    if not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible")
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    m, patch = 1024, 16
    D64 = random_dictionary(patch * patch, m)
    D = torch.from_numpy(D64).to(dev, torch.float32)
    L = lipschitz(D)

    def tf32(on):
        torch.backends.cuda.matmul.allow_tf32 = on

    def cuda_time(fn, reps=5):
        fn()
        sync()
        best = float("inf")
        for _ in range(reps):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t)
        return best

    def gaps64(X, Z):
        X64, Z64, D_ = X.double(), Z.double(), D.double()
        F = sparsolve.objective(X64, D_, Z64, alpha)
        return sparsolve.duality_gap(X64, D_, Z64, alpha) / F.clamp_min(1e-300)

    def enc(X, k, tol=0.0, fused=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return sparsolve.encode(X, D, alpha, solver="fista", tol=tol, max_iter=k, L=L, fused=fused,
                                    return_info=True)

    load = load_average()
    print(f"device: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}")
    alpha, frac = choose_alpha(natural_image_patches(patch, 2000, seed=0), D64)
    print(f"  alpha={alpha:.4g}: {100 * frac:.1f}% nonzeros", flush=True)

    # Part 1, per iteration, float32 with TF32 products (the setting for the floor).
    tf32(True)
    per_iter = []
    for n in args.n:
        X = torch.from_numpy(natural_image_patches(patch, n, seed=0)).to(dev, torch.float32)
        Y = torch.randn(n, m, device=dev)
        G = D @ D.T
        t_mm = cuda_time(lambda: Y @ G)
        buf = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
        dst = torch.empty_like(buf)
        bandwidth = 2 * buf.numel() / cuda_time(lambda: dst.copy_(buf))  # bytes read + written per second
        del buf, dst
        moved = 5 * n * m * 4  # read Y, Z, XDᵀ; write Z, Y (float32)
        R = torch.randn(n, patch * patch, device=dev)
        t_corr = cuda_time(lambda: (R - Y @ D) @ D.T)  # the factored correlation the step starts from
        del Y, R, G

        def ms(run):  # the difference of 150 and 50 iterations: set-up and the first certificate cancel
            return 1e3 * (cuda_time(lambda: run(150), reps=3) - cuda_time(lambda: run(50), reps=3)) / 100

        row = dict(n=n, mm=1e3 * t_mm, bytes=1e3 * moved / bandwidth, corr=1e3 * t_corr, bw=bandwidth / 1e9,
                   fused=ms(lambda k: enc(X, k)), array=ms(lambda k: enc(X, k, fused=False)),
                   plain=ms(lambda k: torch_fista(X, D, alpha, k, L)))
        row["floor"] = max(row["mm"], row["bytes"])
        per_iter.append(row)
        print(f"  n={n:,}: product {row['mm']:.3f} ms, bytes {row['bytes']:.3f} ms at {row['bw']:.0f} GB/s, "
              f"factored correlation {row['corr']:.3f} ms; ms/iter fused {row['fused']:.3f}, "
              f"array ops {row['array']:.3f}, plain {row['plain']:.3f}", flush=True)
        del X
        torch.cuda.empty_cache()

    # Part 2, time to a worst relative gap of 1e-4, float32 without TF32: a TF32 product
    # is good to about 1e-3, and with it no FISTA certifies 1e-4 (seen on an H200:
    # 5,000 iterations left a worst gap of 1.2e-2).
    tf32(False)
    n0 = args.n[0]
    X = torch.from_numpy(natural_image_patches(patch, n0, seed=0)).to(dev, torch.float32)
    # the plain FISTA's iteration count: one run on all n0 samples, its worst float64
    # gap read every 100 iterations, until 1e-4 or 20,000 iterations or 60 s
    last = {"k": 20_000, "gap": float("inf")}
    t0 = time.perf_counter()

    def reached(k, Z):
        last.update(k=k, gap=float(gaps64(X, Z).max()))
        return last["gap"] <= 1e-4 or time.perf_counter() - t0 > 60

    torch_fista(X, D, alpha, 20_000, L, stop=reached)
    k_run, g_plain = last["k"], last["gap"]
    k_plain = k_run if g_plain <= 1e-4 else None
    to_tol = {}
    for name, fused in (("fused", True), ("array", False)):
        seconds = cuda_time(lambda: enc(X, 5000, 1e-4, fused), reps=1)
        Zs, info = enc(X, 5000, 1e-4, fused)
        to_tol[name] = (seconds, float(gaps64(X, Zs).max()), int(info.n_iter.max()), int(np.median(info.n_iter)))
        del Zs
    seconds = cuda_time(lambda: torch_fista(X, D, alpha, k_run, L), reps=1)
    to_tol["plain"] = (seconds, g_plain, k_run, k_run)
    print(f"  to 1e-4 at n={n0:,} (float32, no TF32): "
          + ", ".join(f"{k} {v[0]:.3f} s (worst gap {v[1]:.1e}, max {v[2]} / median {v[3]} iters)"
                      for k, v in to_tol.items())
          + ("" if k_plain else f"; the plain FISTA missed 1e-4 in {k_run} iterations"), flush=True)

    gpu = torch.cuda.get_device_name(dev)
    iteration_rows = []
    for r in per_iter:
        fl = r["floor"]
        row = {"n": r["n"], "floor ms (product / bytes)": f"{fl:.3f} ({r['mm']:.3f} / {r['bytes']:.3f})"}
        for k, label in (("fused", "fused"), ("array", "array ops"), ("plain", "plain")):
            row[f"{label} ms/iter"] = round(r[k], 3)
            row[f"× floor ({label} ms/iter)"] = f"{r[k] / fl:.2f}×"
        row["plain ÷ fused"] = f"{r['plain'] / r['fused']:.1f}×"
        iteration_rows.append(row)
    tol_rows = [{"method": {"fused": "sparsolve fista, fused", "array": "sparsolve fista, array ops",
                            "plain": "plain torch FISTA"}[k],
                 "seconds": round(sec, 3), "worst gap (float64)": float(f"{g:.2g}"), "reached": g <= 1e-4,
                 "iterations (max / median)": f"{it_max:,} / {it_med:,}", "÷ fused": f"{sec / to_tol['fused'][0]:.1f}×"}
                for k, (sec, g, it_max, it_med) in to_tol.items()]
    first = per_iter[0]
    figures = {f"fused_over_floor_{r['n']}": round(r["fused"] / r["floor"], 2) for r in per_iter}
    figures |= {f"array_over_floor_{first['n']}": round(first["array"] / first["floor"], 2),
                f"plain_over_floor_{first['n']}": round(first["plain"] / first["floor"], 2),
                "plain_over_fused_to_1e-4": round(to_tol["plain"][0] / to_tol["fused"][0], 1),
                "fused_seconds_to_1e-4": round(to_tol["fused"][0], 3), "samples": n0, "atoms": m,
                "bandwidth_GB_per_s": round(first["bw"])}
    record("encode_cuda", load_before=load,
           title="Inference on CUDA: FISTA's fused Triton step against the floor and a plain torch FISTA, time "
                 "to 1e-4, 16×16/1,024 atoms (benchmarks/encode.py --device cuda)",
           tables={"Per iteration, float32 with TF32 products": iteration_rows,
                   f"Time to a worst relative gap of 1e-4, {n0:,} samples, float32 without TF32": tol_rows},
           figures=figures,
           comparison="the same data and solver settings in one process; time to 1e-4 at equal certified accuracy "
                      "(float64 check)",
           notes=(f"{gpu}; torch {torch.__version__}.  16×16 natural-image patches, 1,024 random unit-norm atoms, "
                  f"α = {alpha:.4g} ({100 * frac:.1f}% nonzeros).  “fused” is sparsolve's default FISTA on CUDA (the "
                  "element-wise step as one Triton kernel), “array ops” the same solver with `fused=False`, “plain” "
                  "a textbook torch FISTA (no restart, no certificate).  Per iteration: ms = (time of 150 "
                  "iterations − time of 50) / 100, best of 3; the floor is the larger of the measured product Y·G "
                  "and the bytes one iteration must move (read Y, Z, XDᵀ; write Z, Y) at the measured copy "
                  "bandwidth.  Time to 1e-4: float32 without TF32 (a TF32 product cannot certify 1e-4); the plain "
                  "FISTA's iteration count is the first multiple of 100 at which its float64 worst gap was ≤ 1e-4."
                  + ("" if k_plain else f"  The plain FISTA missed 1e-4 in {k_run} iterations.")))


def run_reads(args, n=2_000, repeats=5):
    import importlib.util

    import torch

    from host_reads import counting

    from sparsolve import backend
    from sparsolve.inference import base

    load = load_average()
    torch.set_num_threads(1)
    X = natural_image_patches(8, n, seed=0).astype(np.float32)
    D = random_dictionary(64, 256).astype(np.float32)
    alpha, _ = choose_alpha(X.astype(np.float64), D.astype(np.float64))
    Xt, Dt = torch.from_numpy(X).to(args.device), torch.from_numpy(D).to(args.device)
    loops = {"now": base.iterate}
    if args.loop_before:
        spec = importlib.util.spec_from_file_location("sparsolve.inference._loop_before", args.loop_before)
        before = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclass looks itself up
        spec.loader.exec_module(before)
        loops = {"before": before.iterate, **loops}
    loop_modules = ("sparsolve.inference._loop_before", "sparsolve.inference.loop", "sparsolve.inference.base",
                    "sparsolve.inference.fista", "sparsolve.inference.lca")
    backend.host_view = lambda x: x  # the tensors' own path, as on a GPU
    rows, figures = [], {}
    for solver in () if args.fit_only else ("fista", "lca"):
        seconds = {name: [] for name in loops}
        counts = {}
        for _ in range(repeats):
            for name, loop in loops.items():  # interleaved: a slow spell of the machine hits both
                base.iterate = loop
                with counting(loop_modules) as by_loop, counting(("sparsolve",)) as by_all:
                    start = time.perf_counter()
                    _, info = sparsolve.encode(Xt, Dt, alpha, solver=solver, tol=1e-4, return_info=True)
                    seconds[name].append(time.perf_counter() - start)
                counts[name] = (int(info.n_iter.max()) // 10 + 1, len(by_loop), len(by_all))
        for name in loops:
            c = counts[name]
            rows.append({"solver": solver, "loop": name, "certificates": c[0], "reads by the loop": c[1],
                         "reads by all of encode": c[2], f"seconds (median of {repeats})":
                         round(float(np.median(seconds[name])), 3)})
            figures[f"{solver}_loop_reads_{name}"] = c[1]
            print(rows[-1], flush=True)
    fit_rows = fit_reads(counting, args.device)
    figures |= {f"fit_own_reads_sync{r['sync_every']}": r["reads by fit's code"] for r in fit_rows}
    figures |= {f"fit_encode_reads_sync{r['sync_every']}": r["reads by its encodes"] for r in fit_rows}
    tables = {} if args.fit_only else {
        f"encode, torch {args.device} tensors, {n:,} 8×8 patches, 256 random unit atoms, α = {alpha:.3g}, tol 1e-4, "
        "check_every 10": rows}
    tables[f"fit, torch {args.device} tensors, 32 steps of 1,280 8×8 patches, 64 atoms, fista, tol 1e-3"] = fit_rows
    record("host_reads" + ("_fit" if args.fit_only else "") + ("" if args.device == "cpu" else f"_{args.device}"),
           load_before=load, tables=tables, figures=figures,
           title="Host reads of fit and encode on the device path, counted on CPU torch (benchmarks/encode.py --reads)"
           if args.device == "cpu" else f"Host reads of fit and encode on {args.device} (benchmarks/encode.py --reads)",
           comparison="the same encodes and fits" + (", the loops interleaved" if args.loop_before else ""),
           notes=("Reads of a tensor's values on the host (.item(), bool(), .numpy(), an index by a boolean mask, "
                  "...), each a wait for the device's queue on a GPU, counted by benchmarks/host_reads.py and "
                  "attributed to the module of sparsolve that asked; encode's numpy views of CPU tensors "
                  "(backend.host_view) switched off, so CPU tensors take a GPU's path."
                  + (f"  Loop 'before': {args.loop_before}." if args.loop_before else "")))


def fit_reads(counting, device, steps=32, batch=1280):
    """fit's host reads on the device path (backend.host_view already off), per sync_every: table rows."""
    import torch

    X = torch.from_numpy(natural_image_patches(8, steps * batch, seed=0).astype(np.float32)).to(device)
    rows = []
    for k in (16, 1):
        with counting(("sparsolve.learning",), ("sparsolve.learning.updates",)) as by_fit, \
                counting(("sparsolve.inference",)) as by_encode:
            start = time.perf_counter()
            model = sparsolve.fit(X, 64, 0.1, solver="fista", tol=1e-3, batch_size=batch, max_steps=steps,
                                  sync_every=k, seed=0, progress=False)
            seconds = time.perf_counter() - start
        rows.append({"sync_every": k, "reads by fit's code": len(by_fit), "reads by its encodes": len(by_encode),
                     "atoms resampled": int(sum(model.history["resampled"])), "seconds": round(seconds, 2)})
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 samples per problem (the cases *_quick)")
    ap.add_argument("--interleaved", action="store_true", help="cd against SPAMS only, runs alternating")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--problems", nargs="+", choices=tuple(SIZES), default=list(SIZES),
                    help="CPU problem sizes to run (default: both)")
    ap.add_argument("--n", type=int, nargs="+", default=[65_536, 262_144],
                    help="sample counts for --device cuda")
    ap.add_argument("--reads", action="store_true", help="host reads of encode on torch CPU tensors")
    ap.add_argument("--loop-before", help="with --reads: an earlier inference/loop.py to run beside this one")
    ap.add_argument("--fit-only", action="store_true", help="with --reads: fit's reads only")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    if args.reads:
        run_reads(args)
    elif args.device == "cuda":
        run_cuda(args)
    elif args.interleaved:
        run_interleaved(args)
    else:
        run_cpu(args)


if __name__ == "__main__":
    main()
