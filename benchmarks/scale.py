"""Learning at scale (#13): fit's throughput and where its time goes, on CPU and GPU.

    PYTHONPATH=. python benchmarks/scale.py cpu-torch [--quick]      # torch CPU tensors vs numpy
    PYTHONPATH=. python benchmarks/scale.py cpu-synthetic [--quick]  # d = 256, m = 4,096 against SPAMS
    PYTHONPATH=. python benchmarks/scale.py gpu-patches              # 16×16 patches, 1,024 atoms, CUDA
    PYTHONPATH=. python benchmarks/scale.py gpu-synthetic            # d = 768, m = 16,384 synthetic, CUDA

* ``cpu-torch``: ``sparsolve.fit`` on the same 8×8 natural-image patches (256 atoms, batches of
  256, inner loop to a relative gap of 1e-3) given as numpy arrays and as torch CPU tensors,
  the two runs alternating ``--repeats`` times in one process (a loaded machine shifts both
  alike); the median wall time of each and their ratio.  Target (#13): torch ≤ 1.5× numpy.
* ``cpu-synthetic``: fit (solver cd, update online, unit norm, tol 1e-3) against SPAMS'
  ``trainDL`` (mode 2: the same ½‖x − Dα‖² + λ‖α‖₁ with λ = α, LARS to its exact solution,
  ‖d‖ ≤ 1) on the same synthetic activations (sparsolve.data.SyntheticActivations, d = 256,
  4,096 planted features, 4,096 atoms, float64 as SPAMS needs), from the same starting
  dictionary (the first 4,096 tokens, unit norm), at the same token budget: ``--steps``
  mini-batches of ``--batch`` tokens, which is fit's ``max_steps`` over the tokens in order
  and SPAMS' ``iter`` with ``batchsize``.  Tokens/s of each (data generation not counted,
  numba compiled before; the two take turns in blocks of ``--block`` batches, SPAMS continued
  through ``model=``, so that a loaded machine slows both alike), the recovery of the planted features (sparsolve.metrics.recovery),
  and on held-out tokens the L0 and FVU of exact codes (cd, tol 1e-6) under each dictionary
  at the same α.  ``--threads`` caps numba, BLAS and SPAMS alike.
* ``gpu-patches``: patches/s of fit on 16×16 patches with 1,024 atoms (float32, TF32 on,
  FISTA to 1e-3, update="online") at batches of 8,192 and 65,536; one timed run as fit runs
  for each ``--sync-every`` (fit's host reads: 16, its GPU default, against 1, a read every
  step as before #13), then a second with the time split: each call of the inference (encode) and of the update
  (statistics, the online pass, the norm rule) is wrapped in CUDA synchronizations and timed;
  the rest of fit's step (finite checks, history, dead atoms: where the host waits for the
  device) is "sync and bookkeeping", and the time outside the steps is "data and loop".
  The split run is slower than the plain one (its syncs serialise the queue); its shares are
  what it is for.  Target (#13): ≥ 1,000,000 patches/s on an H100/H200.
* ``gpu-synthetic``: tokens/s of fit on synthetic activations (sparsolve.data.synthetic,
  d = 768, 16,384 atoms over 16,384 planted features, float32 on CUDA, FISTA to 1e-3) with
  update "online" and "sgd", with the same split, and the recovery of the planted features.
  Beside it, the issue's peer: sparsify's TopK SAE trained by its own code
  (benchmarks/versus_saes.py's ``run_sparsify``: its SparseCoder, its fvu loss, its default
  optimiser and decoder-norm steps) on the same tokens in batches of the same size, k = fit's
  L0 rounded; its time per step is the difference of a run of ``--synthetic-steps`` steps and
  one of 2 steps (setup and the final copy cancel; each of its steps copies its batch from the
  host, as its loop takes host arrays, fit's are on the GPU already), and the line gives fit's time per token
  over the SAE's (target #13: ≤ 10×).  Where sparsify cannot run the line says "not run: <reason>".

Each ends in ``harness.record``: the case ``scale_cpu_torch``, ``scale_cpu_synthetic``,
``scale_gpu_patches`` or ``scale_gpu_synthetic`` (``_quick`` with --quick).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import statistics
import time


import sparsolve
import sparsolve.learning
from sparsolve.data import natural_image_patches

from harness import load_average, record  # noqa: E402  (benchmarks/ is the script's folder)


# ---- the time split ----------------------------------------------------------------------

def _learning_modules():
    return [importlib.import_module(f"sparsolve.learning.{m.name}")
            for m in pkgutil.iter_modules(sparsolve.learning.__path__)]


@contextlib.contextmanager
def time_split(sync):
    """Wrap fit's inference and update calls, and its per-batch step, in ``sync`` and timers.
    Yields a dict of seconds: inference, update, step (whole steps); found by name in whatever
    module of sparsolve.learning holds them, so the split survives fit's reorganisation."""
    from sparsolve.rules import NORM_RULES, UPDATE_RULES

    seconds = {"inference": 0.0, "update": 0.0, "step": 0.0}
    patched = []

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            seconds[key] += time.perf_counter() - t0
            return out
        return wrapper

    def patch(owner, name, key):
        original = getattr(owner, name)
        patched.append((owner, name, original))
        setattr(owner, name, timed(original, key))

    from sparsolve.inference import encode

    for module in _learning_modules():
        if getattr(module, "encode", None) is encode:
            patch(module, "encode", "inference")
        learner = getattr(module, "Learner", None)
        if learner is not None and getattr(learner, "__module__", "") == module.__name__:
            patch(learner, "step", "step")
    for cls in UPDATE_RULES.values():
        patch(cls, "statistics", "update")
        patch(cls, "apply", "update")
    for cls in NORM_RULES.values():
        patch(cls, "project", "update")
    try:
        yield seconds
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def split_row(seconds, total, rows):
    """The time split as a table row: seconds and share of each part."""
    inside = seconds["inference"] + seconds["update"]
    parts = {"inference": seconds["inference"], "update": seconds["update"],
             "sync and bookkeeping": seconds["step"] - inside, "data and loop": total - seconds["step"]}
    return {"rows/s with syncs": round(rows / total), **{f"{k} s": round(v, 2) for k, v in parts.items()},
            **{f"{k} share": round(v / total, 3) for k, v in parts.items()}}


# ---- CPU: torch tensors against numpy arrays -------------------------------------------

def cpu_torch(args):
    import torch

    load = load_average()
    n = args.patches or (5120 if args.quick else 20480)
    X = natural_image_patches(8, n, seed=0)
    Xt = torch.from_numpy(X)
    rows, figures = [], {"target": 1.5}
    for solver in args.solvers:
        times = {"numpy": [], "torch": []}
        for r in range(args.repeats + 1):  # the first round warms up (numba compilation, torch kernels)
            for kind, data in (("numpy", X), ("torch", Xt)) if r % 2 == 0 else (("torch", Xt), ("numpy", X)):
                t0 = time.perf_counter()
                sparsolve.fit(data, 256, 0.05, solver=solver, batch_size=256, n_epochs=1, seed=0, progress=False)
                seconds = time.perf_counter() - t0
                print(f"  {solver} {kind} round {r}{' (warm-up)' if r == 0 else ''}: {seconds:.2f} s", flush=True)
                if r:
                    times[kind].append(seconds)
        ratios = [t / n for t, n in zip(times["torch"], times["numpy"])]
        a, b = statistics.median(times["numpy"]), statistics.median(times["torch"])
        rows.append({"solver": solver, "update": "online", "numpy (s, median)": round(a, 2),
                     "torch CPU (s, median)": round(b, 2), "torch / numpy": round(b / a, 2),
                     "all torch/numpy ratios": ", ".join(f"{r:.2f}" for r in ratios)})
        figures[f"{solver}_torch_over_numpy"] = round(b / a, 2)
        print(rows[-1], flush=True)
    record("scale_cpu_torch" + ("_quick" if args.quick else ""), load_before=load,
           title="fit on torch CPU tensors against numpy arrays (benchmarks/scale.py cpu-torch"
                 + (" --quick)" if args.quick else ")"),
           tables={f"{n:,} patches, {args.repeats} rounds": rows}, figures=figures,
           comparison="the same patches and settings, numpy and torch runs alternating",
           notes=(f"fit: {n:,} 8×8 patches, 256 atoms, batch 256, one epoch, tol 1e-3; numpy and torch CPU runs "
                  f"alternating, {args.repeats} each (after one warm-up round); wall time of the whole fit call.  "
                  "Target (#13): torch CPU within 1.5× of numpy."))


# ---- CPU: synthetic activations against SPAMS -------------------------------------------

def _held_out(D, X, alpha):
    from sparsolve.metrics import fvu, l0

    Z = sparsolve.encode(X, D, alpha, solver="cd", tol=1e-6)
    return l0(Z), fvu(X, Z @ D)


def cpu_synthetic(args):
    import numba
    import numpy as np
    import spams
    from threadpoolctl import threadpool_limits

    from sparsolve.config import FitConfig
    from sparsolve.data.synthetic import SyntheticActivations
    from sparsolve.learning.fit import new_learner
    from sparsolve.metrics import recovery

    load = load_average()
    d, m, alpha = 256, 4096, args.alpha
    batch, steps, block = args.batch, (8 if args.quick else args.steps), args.block
    if args.threads:
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        threadpool_limits(args.threads)
    source = SyntheticActivations(n_features=d, n_planted=m, seed=0, dtype="float64")
    X = source.sample(batch * steps, batch_size=batch)
    test = source.sample(2048, split=1)
    D0 = X[:m] / np.linalg.norm(X[:m], axis=1, keepdims=True)
    config = FitConfig(m, alpha, solver="cd", batch_size=batch, seed=0)
    new_learner(X[:batch], config, dict_init=D0).step(X[:batch])  # compiles numba's kernels, not timed
    learner = new_learner(X[:batch], config, dict_init=D0)
    D, model = np.asfortranarray(D0.T), None
    seconds = {"sparsolve fit (cd, online)": 0.0, "SPAMS trainDL": 0.0}

    def ours(lo, hi):
        for i in range(lo, hi):
            learner.step(X[i * batch:(i + 1) * batch], index=i)

    def theirs(lo, hi):
        nonlocal D, model
        chunk = np.asfortranarray(X[lo * batch:hi * batch].T)
        D, model = spams.trainDL(chunk, D=D, model=model, return_model=True, K=m, lambda1=alpha, mode=2,
                                 iter=hi - lo, batchsize=batch, numThreads=args.threads or -1, verbose=False)

    runs = list(zip(seconds, (ours, theirs)))
    for k, lo in enumerate(range(0, steps, block)):  # blocks alternate which runs first: load hits both alike
        for name, run in (runs if k % 2 == 0 else runs[::-1]):
            t0 = time.perf_counter()
            run(lo, min(steps, lo + block))
            seconds[name] += time.perf_counter() - t0
        print(f"  after {min(steps, lo + block)} batches: " + ", ".join(f"{n} {t:.1f} s" for n, t in seconds.items()),
              flush=True)
    dictionaries = {"sparsolve fit (cd, online)": learner.D, "SPAMS trainDL": np.ascontiguousarray(D.T)}
    rows = []
    for name, Dk in dictionaries.items():
        rec = recovery(Dk, source.features)
        l0, fvu = _held_out(Dk, test, alpha)
        rows.append({"method": name, "seconds": round(seconds[name], 1), "tokens/s": round(steps * batch / seconds[name]),
                     "recovered (|cos| > 0.9)": round(rec.recovered, 3), "mean max |cos|": round(rec.mean_max_cos, 3),
                     "held-out L0": round(float(l0), 2), "held-out FVU": round(float(fvu), 4)})
        print(rows[-1], flush=True)
    a, b = seconds.values()
    record("scale_cpu_synthetic" + ("_quick" if args.quick else ""), load_before=load,
           title="Synthetic activations on the CPU: sparsolve.fit against SPAMS trainDL, d = 256, 4,096 atoms "
                 "(benchmarks/scale.py cpu-synthetic" + (" --quick)" if args.quick else ")"),
           tables={f"One pass over {steps * batch:,} tokens": rows},
           figures={"spams_over_sparsolve_time": round(b / a, 2), "sparsolve_recovered": rows[0]["recovered (|cos| > 0.9)"],
                    "spams_recovered": rows[1]["recovered (|cos| > 0.9)"]},
           comparison=f"equal data (the same {steps * batch:,} tokens in the same order, the same starting dictionary), "
                      f"alternating blocks of {block} batches",
           notes=(f"{steps} mini-batches of {batch:,} tokens ({steps * batch:,} tokens, one pass, in order), d = {d}, "
                  f"{m:,} planted features (mean 5 active per token, power-law frequencies, groups of 4), {m:,} atoms, "
                  f"α = λ₁ = {alpha}, the same starting dictionary; the two run in alternating blocks of {block} "
                  f"batches (SPAMS continued through model=); held-out codes: cd to a relative gap of 1e-6 on 2,048 "
                  f"tokens; threads per library: {args.threads or 'all'}."))


# ---- GPU ---------------------------------------------------------------------------------

def _cuda():
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: the gpu-* benchmarks need one")
    torch.backends.cuda.matmul.allow_tf32 = True
    return torch


def _fit_rate(torch, X, n_atoms, alpha, batch, steps, split, **options):
    sync = torch.cuda.synchronize
    sparsolve.fit(X[:2 * batch], n_atoms, alpha, batch_size=batch, max_steps=2, progress=False, seed=0, **options)
    sync()
    context = time_split(sync) if split else contextlib.nullcontext({})
    with context as seconds:
        t0 = time.perf_counter()
        model = sparsolve.fit(X, n_atoms, alpha, batch_size=batch, max_steps=steps, progress=False, seed=0,
                              **options)
        sync()
        total = time.perf_counter() - t0
    rows = model.history["samples_seen"][-1]
    return model, rows, total, seconds


def gpu_patches(args):
    torch = _cuda()
    load = load_average()
    n = 262_144
    X = torch.from_numpy(natural_image_patches(16, n, seed=0)).float().cuda()
    alpha = 0.1 * float(X.norm(dim=1).mean())
    gpu = torch.cuda.get_device_name()
    rates, splits, figures = [], [], {"target": 1_000_000}
    for batch in args.batches:
        steps = n // batch
        for k in args.sync_every:
            model, rows, total, _ = _fit_rate(torch, X, 1024, alpha, batch, steps, False, solver="fista", tol=1e-3,
                                              sync_every=k)
            rates.append({"batch": batch, "sync_every": k, "patches/s": round(rows / total),
                          "met": rows / total >= 1e6, "final nnz fraction": round(model.history["nnz_frac"][-1], 3)})
            figures[f"patches_per_s_{batch}_sync{k}"] = rates[-1]["patches/s"]
            print(rates[-1], flush=True)
        _, rows, total, seconds = _fit_rate(torch, X, 1024, alpha, batch, steps, True, solver="fista", tol=1e-3)
        splits.append({"batch": batch, **split_row(seconds, total, rows)})
        print(splits[-1], flush=True)
    record("scale_gpu_patches", load_before=load,
           title="fit on CUDA at scale: 16×16 patches, 1,024 atoms, patches per second and where the time goes "
                 "(benchmarks/scale.py gpu-patches)",
           tables={"Patches per second, one pass": rates,
                   "The time split (each inference and update call between synchronizations)": splits},
           figures=figures, comparison="throughput only (no peer in this run); sync_every values side by side",
           notes=(f"{gpu}; {n:,} 16×16 patches per run, 1,024 atoms, FISTA to 1e-3, update online, float32 + TF32.  "
                  "The split run is slower than the plain one (its syncs serialise the queue); its shares are what "
                  "it is for.  Target (#13): ≥ 1,000,000 patches/s."))


def gpu_synthetic(args):
    torch = _cuda()
    from sparsolve.data.synthetic import SyntheticActivations
    from sparsolve.metrics import recovery

    load = load_average()
    d, m, batch = 768, 16_384, args.synthetic_batch
    source = SyntheticActivations(n_features=d, n_planted=m, mean_active=8.0, seed=0)
    distinct = 2 * batch  # the generator takes seconds per batch at this size: two batches, tiled
    t0 = time.perf_counter()
    tokens = source.sample(distinct, batch_size=batch)
    X = torch.from_numpy(tokens).cuda()
    X = X.repeat(-(-args.synthetic_steps // 2), 1)
    gpu = torch.cuda.get_device_name()
    notes = (f"{gpu}; synthetic d={d}, {m:,} planted features, {distinct:,} distinct tokens tiled to {X.shape[0]:,} "
             f"(generated in {time.perf_counter() - t0:.1f} s, not counted), fit with {m:,} atoms, fista tol 1e-3.")
    alpha = 0.1
    l0, fit_seconds = None, None
    rows, splits = [], []
    for update in args.updates:
        try:
            model, n_rows, total, _ = _fit_rate(torch, X, m, alpha, batch, args.synthetic_steps, False,
                                                solver="fista", tol=1e-3, update=update)
        except Exception as e:  # noqa: BLE001  (a size that does not fit is a result here, not a crash)
            rows.append({"method": f"fit, update={update}", "note": f"failed: {type(e).__name__}: {e}"[:200]})
            print(rows[-1], flush=True)
            continue
        rec = recovery(model.dictionary, source.features)
        rows.append({"method": f"fit, update={update}", "batch": batch, "tokens/s": round(n_rows / total),
                     "ms/step": round(1e3 * total / args.synthetic_steps, 1), "recovered": round(rec.recovered, 3),
                     "mean max cos": round(rec.mean_max_cos, 3), "L0": round(model.history["nnz_frac"][-1] * m, 1)})
        print(rows[-1], flush=True)
        if fit_seconds is None:
            l0, fit_seconds = model.history["nnz_frac"][-1] * m, total / n_rows
        _, n_rows, total, seconds = _fit_rate(torch, X, m, alpha, batch, min(4, args.synthetic_steps), True,
                                              solver="fista", tol=1e-3, update=update)
        splits.append({"update": update, **split_row(seconds, total, n_rows)})
        print(splits[-1], flush=True)
    sae = sae_row(torch, tokens, m, batch, args.synthetic_steps, l0, fit_seconds)
    rows.append(sae)
    figures = {f"tokens_per_s_{r['method'].split('=')[-1]}": r["tokens/s"] for r in rows
               if "tokens/s" in r and r["method"].startswith("fit")}
    if "fit / SAE per token" in sae:
        figures |= {"fit_over_sae_per_token": sae["fit / SAE per token"], "target": 10}
    record("scale_gpu_synthetic", load_before=load,
           title="fit on CUDA at scale: synthetic activations, d = 768, 16,384 atoms, against sparsify's TopK step "
                 "(benchmarks/scale.py gpu-synthetic)",
           tables={"Tokens per second": rows, "The time split": splits}, figures=figures, notes=notes,
           comparison="the same tokens in batches of the same size; time per token (target #13: fit ≤ 10× the SAE)")


def sae_row(torch, tokens, m, batch, steps, l0, fit_seconds, device="cuda"):
    """The TopK SAE of sparsify on ``tokens`` (numpy; batches of ``batch``), k = round(l0) (32,
    sparsify's default, without a fit): its row, with its seconds per token and fit's over it."""
    from versus_saes import peer_status  # benchmarks/ is the script's folder

    reason = peer_status(("sparsify", "schedulefree"))
    missing = [f"{name}: {why}" for name, why in reason.items() if why]
    if missing:
        return {"method": "sparsify TopK SAE", "note": f"not run: {'; '.join(missing)} (pip install -e '.[peers]')"}
    from types import SimpleNamespace

    from versus_saes import run_sparsify

    k = max(1, round(l0)) if l0 else 32
    per_epoch = len(tokens) // batch

    def timed(n_steps):
        args = SimpleNamespace(epochs=max(1, n_steps // per_epoch), seed=0, batch=batch, device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run_sparsify(tokens, m, k, args)  # ends with a copy of W_dec to the host: the queue has drained
        return args.epochs * per_epoch, time.perf_counter() - t0

    try:
        timed(per_epoch)  # warm-up: CUDA kernels, the allocator
        short, t_short = timed(per_epoch)
        long, t_long = timed(max(steps, 2 * per_epoch))
    except Exception as e:  # noqa: BLE001  (the peer failing is a result to report, not a crash)
        return {"method": f"sparsify TopK SAE k={k}", "note": f"not run: {type(e).__name__}: {e}".splitlines()[0]}
    step = (t_long - t_short) / (long - short)
    row = {"method": f"sparsify TopK SAE k={k}", "batch": batch, "tokens/s": round(batch / step),
           "ms/step": round(1e3 * step, 1)}
    if fit_seconds is not None:
        row["fit / SAE per token"] = round(fit_seconds * batch / step, 1)
        row["met"] = fit_seconds * batch / step <= 10
    print(row, flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("cpu-torch", "cpu-synthetic", "gpu-patches", "gpu-synthetic"))
    ap.add_argument("--quick", action="store_true",
                    help="cpu-torch: 5,120 patches instead of 20,480; cpu-synthetic: 8 batches (the cases *_quick)")
    ap.add_argument("--threads", type=int, default=None, help="cpu-synthetic: threads for numba, BLAS and SPAMS")
    ap.add_argument("--batch", type=int, default=1024, help="cpu-synthetic: tokens per mini-batch")
    ap.add_argument("--steps", type=int, default=32, help="cpu-synthetic: mini-batches (the token budget)")
    ap.add_argument("--alpha", type=float, default=0.1, help="cpu-synthetic: α, SPAMS' lambda1")
    ap.add_argument("--block", type=int, default=4, help="cpu-synthetic: batches per turn of each method")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--patches", type=int, default=None, help="cpu-torch: patches per fit (default 20,480)")
    ap.add_argument("--solvers", nargs="+", default=["fista", "lca"])
    ap.add_argument("--batches", nargs="+", type=int, default=[8192, 65536])
    ap.add_argument("--updates", nargs="+", default=["online", "sgd"])
    ap.add_argument("--synthetic-batch", type=int, default=4096)
    ap.add_argument("--synthetic-steps", type=int, default=8)
    ap.add_argument("--sync-every", nargs="+", type=int, default=[16, 1],
                    help="gpu-patches: fit's sync_every values to time (16: its GPU default; 1: a read every step)")
    args = ap.parse_args()
    {"cpu-torch": cpu_torch, "cpu-synthetic": cpu_synthetic, "gpu-patches": gpu_patches, "gpu-synthetic": gpu_synthetic}[args.what](args)


if __name__ == "__main__":
    main()
