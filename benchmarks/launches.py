"""Kernel launches per fit step on the GPU path, counted on CPU torch tensors, by phase.

    PYTHONPATH=. python benchmarks/launches.py [--steps 4] [--batches 512 1024] [--no-write]

On CUDA each torch operation that runs a kernel is one launch (~5–10 µs of host and driver time
each on an H100: an estimate, not measured here), so at small batches the launches, not the
arithmetic, can set fit's speed.  This counts them without a GPU (benchmarks/launch_counts.py): fit runs on
CPU torch tensors down the path CUDA tensors take (no numpy views, the device branches, sync_every
16, the Triton kernels of the online pass and of FISTA's step each counted as their one launch, a
copy between host and device as one launch too), and every launch is attributed to the phase of
the step that asked for it:

* inference: encode's L (the power iteration, warm-started from the last step's eigenvector), its
  input checks, set-up (Gram matrix, XDᵀ), the FISTA iterations, the certificates (every 10th
  iteration) and the compaction of the finished rows;
* update: the statistics A, B (or sgd's gradient), the online block-coordinate pass (or Adam),
  the norm rule;
* bookkeeping: the step's record, the deferred finite checks, the dead-atom tracking, the
  residual r2 (for the record and the resampling), data movement; and the host read
  (Learner.sync, every 16th step on a GPU: here once at the end, for all the steps, shown per step).

Runs: 16×16 natural-image patches (p = 256, 1,024 atoms, α = 0.1·mean‖x‖, as benchmarks/scale.py
gpu-patches) with update online; synthetic activations (sparsolve.data.SyntheticActivations, d = 768,
4,096 planted features, mean L0 8, α = 0.1) with 4,096 atoms and update online, then sgd; FISTA to
1e-3 throughout.  Each run has ``--steps`` steps at each of ``--batches`` batch sizes; the first
step (the initial dictionary, the first L from scratch) is left out of the means.  The update and
the bookkeeping do not depend on the batch size, nor does a FISTA iteration or a certificate; encode's
launches per step do through the number of iterations, how many certificates find rows to drop (each
such compaction is ~13 launches) and how many blocks of 16 steps the power iteration for L takes:
the two batch sizes show it.  The run ends in ``harness.record``, the case ``launches``
(``launches_before_now`` with --before); ``--no-write`` only prints.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import sparsolve
from sparsolve.data import natural_image_patches
from sparsolve.data.synthetic import SyntheticActivations
from sparsolve.inference import fista, loop
from sparsolve.learning.learner import Learner

from harness import load_average, record  # noqa: E402  (benchmarks/ is the script's folder)
from launch_counts import BOOKKEEPING, INFERENCE, UPDATE, Launches, gpu_path, phase  # noqa: E402

PHASES = (INFERENCE, UPDATE, BOOKKEEPING)


def patches(n):
    X = torch.from_numpy(natural_image_patches(16, n, seed=0)).float()
    return X, 1024, 0.1 * float(X.norm(dim=1).mean())


def synthetic(n):
    source = SyntheticActivations(n_features=768, n_planted=4096, mean_active=8.0, seed=0)
    return torch.from_numpy(source.sample(n, batch_size=min(n, 4096))), 4096, 0.1


def count(X, m, alpha, batch, steps, update):
    """Launches of a fit of ``steps`` steps of ``batch`` rows of X on the GPU path: per step
    (steps 2..) by (phase, part), and the FISTA iterations and certificates of those steps."""
    snapshots, calls = [], {"iterations": 0, "certificates": 0}
    step, fista_step, certify = Learner.step, fista.FISTA.step, loop._certify

    def counted(key, fn):
        def wrapped(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)
        return wrapped

    def stepped(self, *args, **kwargs):
        record = step(self, *args, **kwargs)
        snapshots.append((dict(counter.by), dict(calls)))
        return record

    counter = Launches(label=phase)
    Learner.step, fista.FISTA.step, loop._certify = stepped, counted("iterations", fista_step), counted(
        "certificates", certify)
    try:
        with gpu_path(), counter:
            sparsolve.fit(X[:batch * steps], m, alpha, solver="fista", tol=1e-3, update=update, batch_size=batch,
                          n_epochs=1, shuffle=False, progress=False, seed=0)
    finally:
        Learner.step, fista.FISTA.step, loop._certify = step, fista_step, certify
    (first, first_calls), (last, last_calls) = snapshots[0], snapshots[-1]
    n = len(snapshots) - 1
    per_step = {key: (last.get(key, 0) - first.get(key, 0)) / n for key in set(last) | set(first)}
    after = {key: v - last.get(key, 0) for key, v in counter.by.items() if v != last.get(key, 0)}
    sync = sum(v for key, v in after.items() if key[1] == "host read (Learner.sync)")
    per_step[(BOOKKEEPING, "host read (Learner.sync)")] = per_step.get(
        (BOOKKEEPING, "host read (Learner.sync)"), 0) + sync / len(snapshots)
    iterations = (last_calls["iterations"] - first_calls["iterations"]) / n
    certificates = (last_calls["certificates"] - first_calls["certificates"]) / n
    return per_step, iterations, certificates


def _total(r, ph=None):
    return sum(v for k, v in r.items() if ph is None or k[0] == ph)


def table(runs, before=None):
    """The table's rows: launches per step by phase for each run, then by part; with ``before`` (runs
    of an earlier checkout, by name) each count as "before → now"."""
    before = before or {}
    rows = [("FISTA iterations", lambda r, it, ce: it, ".1f"), ("certificates", lambda r, it, ce: ce, ".1f")]
    for ph in PHASES:
        rows.append((f"{ph} launches", lambda r, it, ce, ph=ph: _total(r, ph), ",.0f"))
    rows.append(("inference launches per iteration", lambda r, it, ce: _total(r, INFERENCE) / max(it, 1), ".1f"))
    rows.append(("update + bookkeeping launches", lambda r, it, ce: _total(r, UPDATE) + _total(r, BOOKKEEPING), ",.0f"))
    rows.append(("all launches", lambda r, it, ce: _total(r), ",.0f"))
    parts = sorted({k for _, r, *_ in runs for k, v in r.items() if v}
                   | {k for r, *_ in before.values() for k, v in r.items() if v},
                   key=lambda k: (PHASES.index(k[0]) if k[0] in PHASES else 9, k[1]))
    for key in parts:
        rows.append((f"{key[0]}: {key[1]}", lambda r, it, ce, key=key: r.get(key, 0), ",.1f"))
        if key == (INFERENCE, "iteration"):
            rows.append(("  … per iteration", lambda r, it, ce: r.get((INFERENCE, "iteration"), 0) / max(it, 1),
                         ".1f"))
        if key == (INFERENCE, "certificate"):
            rows.append(("  … per certificate", lambda r, it, ce: r.get((INFERENCE, "certificate"), 0) / max(ce, 1),
                         ".1f"))

    def number(v, form):
        text = format(v, form)
        return text[:-2] if text.endswith(".0") else text

    out = []
    for label, fn, form in rows:
        row = {"launches per step": label}
        for name, r, it, ce in runs:
            now = fn(r, it, ce)
            row[name] = f"{number(fn(*before[name]), form)} → {number(now, form)}" if name in before else round(now, 1)
        out.append(row)
    return out


def reading(runs):
    """What the counts imply on a GPU, from the 16×16 run with the largest batch."""
    name, r, it, ce = [run for run in runs if run[0].startswith("16×16")][-1]
    per_iteration = _total(r, INFERENCE) / max(it, 1)
    fixed = _total(r) - _total(r, INFERENCE)
    total = _total(r)
    lo, hi = 8192 / (total * 10e-6), 8192 / (total * 5e-6)
    return (f"Reading (16×16 patches, 1,024 atoms, {name.split(', ')[-1]}).  A step is about "
            f"{fixed:,.0f} launches outside encode plus {per_iteration:.1f} per FISTA iteration (the fused step, the "
            f"certificate every 10th iteration, the compaction of the finished rows, L's power iteration shared "
            f"out); at the {it:.0f} iterations these steps took" + (" (learning's cap of 300: a fresh dictionary)"
                                                                  if it >= 299 else "") + f", that is "
            f"{total:,.0f} launches.  At ~5–10 µs a launch on an H100/H200 (an estimate from the usual "
            f"figures for eager PyTorch, not a measurement here: no GPU was lent to this run) that is "
            f"{total * 5e-3:.0f}–{total * 10e-3:.0f} ms a step of launch overhead alone.  The update and the "
            f"bookkeeping are the same at every batch size, and encode's count per iteration nearly so (a larger "
            f"batch has rows to drop at more certificates), so at 8,192 rows and as many iterations a step could "
            f"go at most {lo:,.0f}–{hi:,.0f} patches/s if the GPU did nothing else; 1,000,000 patches/s at "
            f"8,192 needs a step under 8.2 ms, i.e. under "
            f"{8.2e-3 / 10e-6:,.0f}–{8.2e-3 / 5e-6:,.0f} launches, or about {8.2e-3 / 10e-6 / per_iteration:,.0f}–"
            f"{8.2e-3 / 5e-6 / per_iteration:,.0f} iterations at {per_iteration:.1f} launches each.  The measured "
            f"29,147 patches/s at 8,192 (281 ms a step) is far below this bound, so something else dominated "
            f"there: the host reads (one a certificate, ~30 a step at 300 iterations, each draining the queue) and "
            f"Python's own time per operation are the likely parts, which counts cannot tell apart.  What "
            f"remains: the iteration count (a fixed budget, "
            f"warm-started codes), the certificate's ~28 array operations (one fused kernel could do the gap), "
            f"the power iteration's 16 steps a call when warm-started (7 launches each; a shorter first block "
            f"would move L's start vector, and with it the results at rounding level), and CUDA graphs for the "
            f"step between reads (the online pass and the update are free of host reads; needs a GPU to measure).")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="steps per run (the first is left out of the means)")
    ap.add_argument("--batches", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--sizes", nargs="+", choices=["patches", "synthetic"], default=["patches", "synthetic"])
    ap.add_argument("--json", help="save the counts to this file (for a later run's --before)")
    ap.add_argument("--before", help="counts saved by --json from an earlier checkout: shown as before → now")
    ap.add_argument("--no-write", action="store_true", help="print only: record no result")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    load = load_average()
    runs = []
    n = args.steps * max(args.batches)
    data = {"patches": patches, "synthetic": synthetic}
    for size in args.sizes:
        X, m, alpha = data[size](n)
        for update in ("online",) if size == "patches" else ("online", "sgd"):
            for batch in args.batches:
                per_step, iterations, certificates = count(X, m, alpha, batch, args.steps, update)
                name = f"{'16×16/1,024' if size == 'patches' else '768/4,096'} {update}, batch {batch:,}"
                runs.append((name, per_step, iterations, certificates))
                print(f"{name}: {_total(per_step):,.0f} launches per step, {iterations:.1f} iterations "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "sparsolve": str(Path(sparsolve.__file__).parent),
            "runs": [[name, [[k[0], k[1], v] for k, v in r.items()], it, ce] for name, r, it, ce in runs]}))
    before, label = None, ""
    if args.before:
        saved = json.loads(Path(args.before).read_text())
        before = {name: ({(a, b): v for a, b, v in r}, it, ce) for name, r, it, ce in saved["runs"]}
        label = f"; before → now: {saved['sparsolve']} (saved) → {Path(sparsolve.__file__).parent}"
    notes = (f"Counted on CPU torch tensors down the CUDA path (benchmarks/launch_counts.py): no numpy views, "
             f"sync_every 16, FISTA to 1e-3 with its fused step (one launch an iteration, as with Triton on CUDA), "
             f"the online pass's in-block steps one launch a block, a copy between host and device one launch; "
             f"{args.steps} steps a run, means over steps 2–{args.steps} (the host read of the records at the end "
             f"shared out over all steps){label}; {time.perf_counter() - t0:.0f} s.\n\n" + reading(runs))
    big = [run for run in runs if run[0].startswith("16×16")][-1]
    figures = {"all_launches_16x16": round(_total(big[1])),
               "update_bookkeeping_16x16": round(_total(big[1], UPDATE) + _total(big[1], BOOKKEEPING)),
               "inference_launches_per_iteration_16x16": round(_total(big[1], INFERENCE) / max(big[2], 1), 1)}
    rows = table(runs, before)
    for row in rows:
        print(row)
    print(notes)
    if not args.no_write:
        record("launches" + ("_before_now" if args.before else ""), load_before=load,
               title="Kernel launches per fit step on the GPU path, by phase (benchmarks/launches.py)",
               tables={"Launches per step" + (", before → now" if args.before else ""): rows}, figures=figures,
               comparison="the same fits, counted on CPU torch tensors down the CUDA path"
                          + (" (before: the saved counts of an earlier checkout)" if args.before else ""),
               notes=notes)


if __name__ == "__main__":
    main()
