"""One training step of the t* = 0 autoencoder beside one step of the SAE libraries, on the CPU.

    python benchmarks/ae_step.py [--steps 20] [--warmup 3] [--threads 1] [--before PATH]

At d = 256, m = 4,096 atoms, batch 256, on :class:`sparsolve.data.SyntheticActivations` (the
``cpu`` size of benchmarks/versus_saes.py), every method trains on the same tokens for
``warmup + steps`` steps and the median of the last ``steps`` step times is reported:

* ``AE t*=0``: ``sparsolve.fit_amortized(mode="autoencoder", t_star=0, norm="unit")``, its own
  loop; a step's time is the difference of its history's ``seconds`` (forward, backward, Adam,
  the unit-norm projection and the per-step record);
* ``AE t*=0 (before)`` with ``--before PATH``: the same, run in a subprocess on the sparsolve
  package under ``PATH`` (an export of an earlier commit), just before the current code;
* ``SAELens L1`` / ``SAELens TopK``: SAELens' ``SAETrainer.fit`` on its ``StandardTrainingSAE``
  / ``TopKTrainingSAE``, and ``sparsify TopK``: sparsify's SparseCoder with the steps of its
  Trainer -- both driven by benchmarks/versus_saes.py's ``run_saelens`` / ``run_sparsify``;
  a step's time is the time between two batches drawn from the data they are fed (the
  trainer's whole step, its bookkeeping included).

The run ends in ``harness.record``, the case ``ae_step``; ``--no-write`` only prints.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

D, M, BATCH = 256, 4_096, 256
ALPHA = 0.2  # an AE α of versus_saes' sweep (AE_ALPHAS); SAELens' L1 coefficient 2α is the same loss
K = 5  # a k of versus_saes' sweep (KS), near the planted L0 of 4


def tokens(n):
    from sparsolve.data import SyntheticActivations

    return SyntheticActivations(D, M, mean_active=4.0, seed=0).sample(n, split=0)


def ae_step_seconds(X, args):
    """The t* = 0 autoencoder's step times (after the warm-up), from fit_amortized's own history."""
    import sparsolve

    enc = sparsolve.fit_amortized(X, t_star=0, mode="autoencoder", n_atoms=M, alpha=ALPHA, norm="unit", lr=3e-3,
                                  batch_size=BATCH, max_steps=args.warmup + args.steps, seed=0, progress=False,
                                  device="cpu")
    return np.diff(enc.history_["seconds"])[args.warmup - 1:].tolist(), "G" in enc.state_dict()


def timed(batches, stamps):
    """The batches, stamping the time each one is asked for: the gaps are the consumer's steps."""
    for x in batches:
        stamps.append(time.perf_counter())
        yield x


def peer_step_seconds(X, run, args):
    from versus_saes import batches

    opts = argparse.Namespace(seed=0, device="cpu", batch=BATCH, epochs=1, sae_lr=1e-3)
    data, stamps = list(batches(X, opts)), []
    run(X, opts, timed(data, stamps))
    return np.diff(stamps)[args.warmup:].tolist()


def peers():
    from versus_saes import run_saelens, run_sparsify

    return {
        "SAELens L1": lambda X, o, data: run_saelens(X, M, "L1", 2 * ALPHA, o, data),
        "SAELens TopK": lambda X, o, data: run_saelens(X, M, "TopK", K, o, data),
        "sparsify TopK": lambda X, o, data: run_sparsify(X, M, K, o, data),
    }


def before(path, args):
    """The t* = 0 autoencoder's steps with the sparsolve package under ``path``, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(Path(path).resolve())}
    cmd = [sys.executable, __file__, "--ae-only", "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="steps timed (after the warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="steps run first and not timed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1, as versus_saes.py, on a shared machine)")
    p.add_argument("--before", type=Path, default=None,
                   help="a directory holding an earlier sparsolve package (e.g. `git archive <commit> sparsolve | "
                        "tar -x -C /tmp/sparsolve-<commit>`, whose name the table shows): its t*=0 step is timed "
                        "too, just before the current one")
    p.add_argument("--ae-only", action="store_true", help=argparse.SUPPRESS)  # the --before subprocess
    p.add_argument("--no-write", action="store_true", help="print only: record no result")
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be ≥ 1")
    torch.set_num_threads(args.threads)
    X = tokens(BATCH * (args.warmup + args.steps + 1))
    if args.ae_only:
        seconds, has_g = ae_step_seconds(X, args)
        print(json.dumps({"seconds": seconds, "has_g": has_g, "load": os.getloadavg()[0]}))
        return None

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness import load_average, record
    from versus_saes import peer_status

    load = load_average()

    rows = {}  # method -> (step seconds, load average at its end, note)
    if args.before is not None:
        old = before(args.before, args)
        rows["AE t*=0 (before)"] = (old["seconds"], old["load"], "holds an m × m G" if old["has_g"] else "no G")
    seconds, has_g = ae_step_seconds(X, args)
    rows["AE t*=0"] = (seconds, os.getloadavg()[0], "holds an m × m G" if has_g else "no G")
    status = peer_status()
    for name, run in peers().items():
        why = status["sae_lens" if name.startswith("SAELens") else "sparsify"]
        if why:
            rows[name] = (None, os.getloadavg()[0], f"not run: {why}")
            continue
        rows[name] = (peer_step_seconds(X, run, args), os.getloadavg()[0], "")
    for name, (s, load, note) in rows.items():
        print(f"{name:20s} " + ("-" if s is None else f"{1e3 * np.median(s):8.1f} ms") + f"  load {load:.1f}  {note}",
              flush=True)
    table, figures, notes = results(rows, args)
    for row in table:
        print(row)
    print(notes)
    if not args.no_write:
        record("ae_step", title="One training step: the t* = 0 autoencoder against the SAE libraries, d = 256, "
                                "m = 4,096 (benchmarks/ae_step.py)",
               tables={"Step times": table}, figures=figures, notes=notes, load_before=load,
               comparison=f"the same tokens and batch size; the median of {args.steps} steps after {args.warmup} of "
                          "warm-up")
    return rows


def results(rows, args):
    """(table rows, figures, notes): ratios are the AE's step time over each peer's."""
    med = {k: float(np.median(s)) for k, (s, _, _) in rows.items() if s is not None}
    peers_run = [k for k in ("SAELens L1", "SAELens TopK", "sparsify TopK") if k in med]
    table, figures = [], {}
    for name, (s, load, note) in rows.items():
        if s is None:
            table.append({"method": name, "median step ms": None, "note": note})
            continue
        row = {"method": f"{name}" + (f" ({note})" if note else ""), "median step ms": round(1e3 * med[name], 1),
               "min–max ms": f"{1e3 * min(s):.1f}–{1e3 * max(s):.1f}", "load average after": round(load, 1)}
        for k in peers_run:
            row[f"AE t*=0 / {k}"] = f"{med[name] / med[k]:.2f}×" if name.startswith("AE") else ""
        table.append(row)
    if "AE t*=0" in med:
        figures = {f"ae_over_{k.lower().replace(' ', '_')}": round(med["AE t*=0"] / med[k], 2) for k in peers_run}
        figures["now_ms"] = round(1e3 * med["AE t*=0"], 1)
    notes = (f"Run: `python benchmarks/ae_step.py --steps {args.steps} --warmup {args.warmup} --threads {args.threads}"
             + (f" --before {args.before}" if args.before else "") + "`"
             + (f" (before: the sparsolve package exported to {args.before.name})" if args.before else "")
             + f".  d = 256, m = 4,096, batch 256, {args.threads} torch thread(s), SyntheticActivations tokens "
             f"(seed 0); the median of {args.steps} steps after {args.warmup} of warm-up.  AE: α = {ALPHA}, norm "
             f"`unit`; SAELens L1 coefficient {2 * ALPHA} (the same loss), TopK k = {K}.  Ratios are step time over "
             "the peer's step time (> 1: the autoencoder is slower).")
    if "AE t*=0 (before)" in med and "AE t*=0" in med:
        figures |= {"before_ms": round(1e3 * med["AE t*=0 (before)"], 1),
                    "before_over_now": round(med["AE t*=0 (before)"] / med["AE t*=0"], 1)}
    return table, figures, notes


if __name__ == "__main__":
    main()
