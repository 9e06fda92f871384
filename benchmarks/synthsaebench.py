"""The seed's thesis on the field's own benchmark: sparse coding (``sparsolve.fit`` + exact
inference) against the SAE libraries' SAEs on SynthSAEBench, every method scored by
SAELens's own ``eval_sae_on_synthetic_data`` on held-out samples.

    python benchmarks/synthsaebench.py calibrate --size cpu      # step costs per method; α and JumpReLU at the targets
    python benchmarks/synthsaebench.py run --size cpu            # every cell of the final grid (resumes)
    python benchmarks/synthsaebench.py report --size cpu         # table, plot, record()
    python benchmarks/synthsaebench.py all --size cpu            # the three in turn: the final run, one command

Data (``synthsaebench_data.py``): SynthSAEBench-16k's published config built by SAELens's own
``SyntheticModel``, and a quarter-size copy for the CPU, cached under
``benchmarks/_out/synthsaebench/<size>/`` with a training pool every method reads in the same
order (seed s from row s·n/3) and a held-out set drawn under its own seed.

Methods (``synthsaebench_methods.py``): SAELens BatchTopK, TopK, JumpReLU and Matryoshka by
its ``SAETrainer`` with SynthSAEBench's settings; sparsify's TopK by its own loss and Adam;
sparsolve's ``fit`` with exact inference.

Cells: one (arm, method, knob, seed) a cell, its result a JSON file under
``<cache>/<size>/cells/`` written when the cell ends; a run skips the cells it finds, so an
interrupted run continues where it stopped.  Two arms:

* ``data``: every method trains on the same ``--samples`` samples (equal data);
* ``compute``: every SAE trains for as many samples as its step cost buys in the time
  sparsolve's fit takes for the data arm's samples (equal compute, by the calibrated cost per
  sample, the measured times reported beside it).

Each cell records a learning curve: SAELens's metrics on the first ``curve_heldout`` held-out
samples at 1/64, 1/32, ..., 1/2 of its samples, against samples seen and against its training
time (wall and CPU, evaluation excluded), then the full held-out set at the end.  Every
process runs torch, numba and BLAS on one thread: on a shared 2-core machine the CPU time of
one thread is the comparable measure of compute, and the wall time is reported with the load.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import sparsolve

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synthsaebench_data as data  # noqa: E402
import synthsaebench_methods as methods  # noqa: E402

#: The final grid per size: the knobs each method sweeps around the target L0s.  k is the L0
#: of the TopK family; JumpReLU's knob is its initial threshold (what sets its L0 in a short run:
#: synthsaebench_methods.JUMPRELU_KNOB); fit's α values are set by ``calibrate`` (bisection of
#: the trained dictionary's L0) and read from ALPHAS.  ``long``: the samples of the long arm
#: (every SAE at the last target, seed 0).
GRID = {
    "cpu": {"k": (10, 12), "jumprelu": (2.0, 2.5, 3.0), "seeds": (0, 1, 2), "samples": 2 ** 19, "long": 2 ** 22},
    "16k": {"k": (20, 25), "jumprelu": (2.0, 2.5, 3.0), "seeds": (0,), "samples": 2 ** 21, "long": 2 ** 23},
    "tiny": {"k": (3, 4), "jumprelu": (2.0,), "seeds": (0,), "samples": 2 ** 12, "long": 2 ** 13},
}
#: fit's α per size: the values whose trained L0 brackets the targets densely (from calibrate).
ALPHAS = {"cpu": (0.9, 1.05, 1.2, 1.4), "16k": (1.2,), "tiny": (0.6, 0.8)}


def threads(n=1):
    torch.set_num_threads(n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


# ---- scoring --------------------------------------------------------------------------------
def evaluate(model, synth, held, batch, scaler=None):
    """SAELens's eval_sae_on_synthetic_data on the held-out set, flattened; plus recovery of
    the ground-truth features (max |cos| with any decoder row > 0.9) by firing-frequency third."""
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    start = time.perf_counter()
    result = eval_sae_on_synthetic_data(sae=model, feature_dict=synth.feature_dict, activations_generator=held.reset(),
                                        num_samples=held.n, batch_size=batch, activation_scaler=scaler)
    seconds = time.perf_counter() - start
    out = {k: v for k, v in result.to_dict().items() if k != "classification"}
    out.update({k: v for k, v in result.classification.__dict__.items()})
    out["f1"] = out.pop("f1_score")
    out["eval_seconds"] = seconds
    out.update(frequency_thirds(model.W_dec.detach().float(), synth))
    return out


def frequency_thirds(W_dec, synth):
    """Recovery (|cos| > 0.9) and mean max |cos| of the ground-truth features, split into thirds
    by firing probability (frequent, middle, rare)."""
    F = torch.nn.functional.normalize(synth.feature_dict.feature_vectors.detach().float(), dim=1)
    W = torch.nn.functional.normalize(W_dec, dim=1)
    best = torch.cat([(F[i:i + 4096] @ W.T).abs().max(1).values for i in range(0, len(F), 4096)])
    order = torch.argsort(synth.activation_generator.firing_probabilities.detach(), descending=True)
    out = {"recovered": float((best > 0.9).float().mean())}
    for name, part in zip(("frequent", "middle", "rare"), torch.tensor_split(order, 3)):
        out[f"recovered_{name}"] = float((best[part] > 0.9).float().mean())
        out[f"max_cos_{name}"] = float(best[part].mean())
    return out


# ---- cells ----------------------------------------------------------------------------------
def slug(text):
    return "".join(c if c.isalnum() or c in "-." else "_" for c in str(text))


def cell_path(size, arm, method, knob, seed, cache=None):
    return data.folder(size, cache) / "cells" / arm / slug(method) / f"{slug(knob)}_seed{seed}.json"


def checkpoints_for(samples, batch, halvings=6):
    """1/2**halvings, ..., 1/4, 1/2 of the run (in whole batches, at least one)."""
    points = sorted({max(batch, (samples >> j) // batch * batch) for j in range(1, halvings + 1)})
    return [p for p in points if p < samples]


def code_commit():
    """The commit the cell's code is from: $SYNTHSAEBENCH_COMMIT (a run from an exported copy of
    the tree), else the checkout's HEAD."""
    import subprocess

    if os.environ.get("SYNTHSAEBENCH_COMMIT"):
        return os.environ["SYNTHSAEBENCH_COMMIT"]
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    return done.stdout.strip() or None


def run_cell(size_name, arm, method, knob, seed, samples, cache=None, log=print, synth=None, held=None, device="cpu",
             curve_heldout=None, halvings=6):
    """Train one cell, score it, write its JSON; return the result (read from disk when it exists).
    ``curve_heldout`` (default the size's) and ``halvings`` (the curve's points: 1/2**halvings of
    the run to 1/2) trade the learning curve's resolution for evaluation time; the final scores
    always use the whole held-out set."""
    path = cell_path(size_name, arm, method, knob, seed, cache)
    if path.exists():
        result = json.loads(path.read_text())
        if result["samples"] == samples:
            return result
        log(f"# {path.name}: cached with {result['samples']:,} samples, not {samples:,}: rerunning")
    size = data.SIZES[size_name]
    synth = synth or data.load_model(size_name, cache, log, device)
    held = held or data.heldout(size_name, synth, cache, log, device)
    pool = data.train_pool(size_name, synth, cache, log)
    curve_heldout = min(curve_heldout or size.curve_heldout, held.n)
    curve_set = held.first(curve_heldout)
    curve = []
    load_before = os.getloadavg()

    def on_checkpoint(seen, model, scaler, clock):
        metrics = evaluate(model, synth, curve_set, size.batch, scaler)
        curve.append({"samples": seen, "wall": clock.wall, "cpu": clock.cpu, **metrics})
        log(f"  {method} {knob} seed {seed}: {seen:,} samples, {clock.cpu:.0f} s cpu: MCC {metrics['mcc']:.3f} "
            f"F1 {metrics['f1']:.3f} EV {metrics['explained_variance']:.3f} L0 {metrics['sae_l0']:.1f}")

    run = methods.Run(size, pool, seed, samples, checkpoints_for(samples, size.batch, halvings), on_checkpoint,
                      device=device)
    if method == "sparsolve fit":
        model, info = methods.train_fit(knob, run)
    else:
        model, info = methods.METHODS[method](knob, run)
    final = evaluate(model, synth, held, size.batch)
    result = {"size": size_name, "arm": arm, "method": method, "knob_name": methods.KNOB[method], "knob": knob,
              "seed": seed, "samples": samples, "device": device, "commit": code_commit(), "curve_heldout": curve_heldout, "wall": run.clock.wall, "cpu": run.clock.cpu,
              "load_before": load_before, "load_after": os.getloadavg(), "info": info, "final": final,
              "curve": curve + [{"samples": samples, "wall": run.clock.wall, "cpu": run.clock.cpu,
                                 **evaluate(model, synth, curve_set, size.batch)}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    log(f"{method} {knob} seed {seed} [{arm}]: {samples:,} samples, {run.clock.cpu:.0f} s cpu ({run.clock.wall:.0f} s "
        f"wall): MCC {final['mcc']:.3f} F1 {final['f1']:.3f} EV {final['explained_variance']:.3f} "
        f"L0 {final['sae_l0']:.2f} dead {final['dead_latents']}")
    return result


# ---- calibration: step costs, and fit's α at the target L0s ----------------------------------
def calibration_path(size, cache=None):
    return data.folder(size, cache) / "calibration.json"


def calibrate(size_name, cache=None, log=print, pilot_samples=None, alpha0=None, device="cpu"):
    """CPU seconds per training sample of every method (at the first target), and fit's α for
    each target L0: a pilot fit, then bisection of exact inference's L0 on its dictionary."""
    path = calibration_path(size_name, cache)
    if path.exists():
        return json.loads(path.read_text())
    size = data.SIZES[size_name]
    synth = data.load_model(size_name, cache, log, device)
    held = data.heldout(size_name, synth, cache, log, device)
    pool = data.train_pool(size_name, synth, cache, log)
    target = size.targets[-1]
    n_held = min(2048, held.n)
    X_held = synth.feature_dict(held.first(n_held).reset().sample(n_held)).detach().numpy()
    out = {"size": size_name, "load_before": os.getloadavg(), "cost": {}}
    for method in methods.METHODS:
        knob = target
        samples = 32 * size.batch
        run = methods.Run(size, pool, 0, samples, [], None, device=device)
        if method == "sparsolve fit":
            knob = alpha0 or ALPHAS[size_name][len(ALPHAS[size_name]) // 2]
            model, _ = methods.train_fit(knob, run)
        else:
            model, _ = methods.METHODS[method](knob, run)
        start = time.process_time()
        Z = model.encode(torch.from_numpy(X_held))
        encode_cpu = time.process_time() - start
        out["cost"][method] = {"knob": knob, "samples": samples, "cpu": run.clock.cpu, "wall": run.clock.wall,
                               "cpu_per_sample": run.clock.cpu / samples, "encode_cpu_per_sample": encode_cpu / n_held,
                               "l0": float((Z != 0).sum(1).float().mean())}
        log(f"# {method:20s} {knob}: {1e6 * run.clock.cpu / samples:8.1f} µs cpu a training sample "
            f"({run.clock.wall / max(run.clock.cpu, 1e-9):.1f}× wall), encode {1e6 * encode_cpu / n_held:8.1f} µs a sample")
    # fit's α at the targets: a pilot run, then bisection on its dictionary.
    pilot = pilot_samples or GRID[size_name]["samples"] // 2
    alpha = alpha0 or ALPHAS[size_name][len(ALPHAS[size_name]) // 2]
    run = methods.Run(size, pool, 0, pilot, [], None, device=device)
    model, _ = methods.train_fit(alpha, run)
    l0 = float((model.encode(torch.from_numpy(X_held)) != 0).sum(1).float().mean())
    out["pilot"] = {"alpha": alpha, "samples": pilot, "cpu": run.clock.cpu, "l0": l0}
    out["alpha_for_target"] = {}
    for t in size.targets:
        Xc, D = X_held - model.model.offset, model.model.dictionary
        a = sparsolve.alpha_for_l0(Xc, D, t, positive=True)
        got = float((sparsolve.encode(Xc, D, a, solver="cd", positive=True, tol=methods.EXACT_TOL) != 0).sum(1).mean())
        out["alpha_for_target"][str(t)] = {"alpha": a, "l0": got}
        log(f"# fit: α {a:.4g} gives L0 {got:.2f} (target {t}) on the pilot's dictionary "
            f"({pilot:,} samples at α {alpha}: L0 {l0:.2f})")
    out["load_after"] = os.getloadavg()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


# ---- the grid -------------------------------------------------------------------------------
SAES = [m for m in methods.METHODS if m != "sparsolve fit"]


def fit_alphas(size_name, calib):
    """fit's α sweep: for each target L0, α 10% either side of the pilot's α at that L0 (so that
    two neighbouring runs bracket the target), else the size's ALPHAS."""
    found = (calib or {}).get("alpha_for_target")
    if not found:
        return list(ALPHAS[size_name])
    return sorted({round(found[str(t)]["alpha"] * f, 4) for t in data.SIZES[size_name].targets for f in (0.9, 1.1)})


def knobs_for(size_name, calib):
    g = GRID[size_name]
    out = {m: list(g["k"]) for m in SAES}
    out["SAELens JumpReLU"] = list(g["jumprelu"])
    out["sparsolve fit"] = fit_alphas(size_name, calib)
    return out


def data_arm(size_name, seed, samples, calib):
    """The equal-data cells of one seed, interleaved (each method's i-th knob in turn), so that the
    machine's load drifts over every method alike."""
    knobs = knobs_for(size_name, calib)
    cells = []
    for i in range(max(map(len, knobs.values()))):
        cells += [("data", m, k[i], seed, samples) for m, k in knobs.items() if i < len(k)]
    return cells


def compute_arm(size_name, seed, samples, cache=None):
    """The equal-compute cells of one seed: every SAE at the target L0s, for as many samples as its
    own measured CPU cost a sample (its data-arm cell nearest the target) buys in the mean CPU
    time of this seed's fit cells near that L0.  Needs the seed's data arm done."""
    size = data.SIZES[size_name]
    fits = [json.loads(p.read_text()) for p in (data.folder(size_name, cache) / "cells" / "data" / slug("sparsolve fit"))
            .glob(f"*_seed{seed}.json")]
    fits = [f for f in fits if f["samples"] == samples]
    cells = []
    for t in size.targets:
        # fit's CPU time at this L0: its cells within 15% of the target (its cost falls with L0)
        near = [f["cpu"] for f in fits if abs(f["final"]["sae_l0"] - t) <= 0.15 * t]
        if not near:
            continue
        budget = float(np.mean(near))
        for m in SAES:
            own = nearest_cell(size_name, "data", m, seed, samples, t, cache)
            if own is None:
                continue
            n = int(budget / (own["cpu"] / own["samples"])) // size.batch * size.batch
            cells.append((abs(own["final"]["sae_l0"] - t), ("compute", m, own["knob"], seed, max(size.batch, n))))
    # One cell a knob (one file holds it): where the same cell is nearest both targets, the budget
    # of the target nearest its L0.
    chosen = {}
    for distance, cell in sorted(cells, key=lambda c: c[0]):
        chosen.setdefault(cell[1:3], cell)
    return [c for _, c in cells if chosen[c[1:3]] is c]


def nearest_cell(size_name, arm, method, seed, samples, target, cache=None):
    """The method's cell of this arm and seed whose held-out L0 is nearest the target."""
    mine = [c for c in load_cells(size_name, arm, cache) if c["method"] == method and c["seed"] == seed
            and c["samples"] == samples]
    return min(mine, key=lambda c: abs(c["final"]["sae_l0"] - target), default=None)


def run_grid(size_name, cache=None, seeds=None, samples=None, arms=("data", "compute", "long"), only=None, log=print,
             device="cpu"):
    """Every cell of the final grid, skipping those already on disk (so a rerun resumes)."""
    samples = samples or GRID[size_name]["samples"]
    calib = calibrate(size_name, cache, log, device=device, pilot_samples=samples // 2)
    seeds = seeds if seeds is not None else GRID[size_name]["seeds"]
    synth = data.load_model(size_name, cache, log, device)
    held = data.heldout(size_name, synth, cache, log, device)
    data.train_pool(size_name, synth, cache, log)
    log(f"# {size_name}: seeds {list(seeds)}, {samples:,} samples (equal data), load {os.getloadavg()[0]:.1f}")
    for seed in seeds:
        cells = data_arm(size_name, seed, samples, calib) if "data" in arms else []
        for cell in cells:
            if only is None or cell[1] in only:
                run_cell(size_name, *cell, cache=cache, log=log, synth=synth, held=held, device=device)
        if "compute" in arms:
            for cell in compute_arm(size_name, seed, samples, cache):
                if only is None or cell[1] in only:
                    run_cell(size_name, *cell, cache=cache, log=log, synth=synth, held=held, device=device)
        if "long" in arms and seed == 0:  # the SAEs trained far longer: where they get to
            t = data.SIZES[size_name].targets[-1]
            for m in SAES:
                own = nearest_cell(size_name, "data", m, seed, samples, t, cache)
                if (only is None or m in only) and own is not None:
                    run_cell(size_name, "long", m, own["knob"], seed, GRID[size_name]["long"],
                             cache=cache, log=log, synth=synth, held=held, device=device)


# ---- the report -----------------------------------------------------------------------------
#: SynthSAEBench-16k's published SAELens rows (width 4,096, 200M samples, L0 = 25), as quoted in
#: issue 22 from the SynthSAEBench paper (Chanin & Garriga-Alonso 2026); EV: 0.78–0.84 across them.
PUBLISHED = [
    {"method": "SAELens Matryoshka (published, 200M samples)", "L0": 25, "MCC": 0.793, "F1": 0.879},
    {"method": "SAELens BatchTopK (published, 200M samples)", "L0": 25, "MCC": 0.757, "F1": 0.732, "EV": 0.792},
    {"method": "matching pursuit SAE (published, 200M samples)", "L0": 25, "MCC": 0.693, "F1": 0.446},
]
METRICS = ("sae_l0", "mcc", "f1", "explained_variance", "uniqueness", "dead_latents", "shrinkage", "precision",
           "recall", "recovered", "recovered_frequent", "recovered_middle", "recovered_rare", "max_cos_frequent",
           "max_cos_middle", "max_cos_rare")
EXAMPLES = HERE.parent / "examples" / "results"


def load_cells(size_name, arm, cache=None):
    folder = data.folder(size_name, cache) / "cells" / arm
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]


def at_l0(cells, target, tol=0.15):
    """One method and seed's metrics at L0 = target: a cell at the target (within 1%), else linear
    interpolation between the two neighbouring cells of its sweep that bracket it, both within
    ``tol`` of the target (a dense bracket, never across a wide grid), else the nearest cell
    within ``tol`` (flagged); None when no cell comes near."""
    pts = sorted(cells, key=lambda c: c["final"]["sae_l0"])
    l0 = [c["final"]["sae_l0"] for c in pts]
    exact = [c for c, v in zip(pts, l0) if abs(v - target) <= 0.01 * target]
    if exact:
        c = exact[0]
        return {**{m: c["final"][m] for m in METRICS}, "cpu": c["cpu"], "wall": c["wall"], "samples": c["samples"],
                "how": f"{c['knob_name']} {c['knob']}"}
    for a, b in zip(pts, pts[1:]):
        la, lb = a["final"]["sae_l0"], b["final"]["sae_l0"]
        if la <= target <= lb and lb > la and max(target - la, lb - target) <= tol * target:
            w = (target - la) / (lb - la)
            out = {m: (1 - w) * a["final"][m] + w * b["final"][m] for m in METRICS}
            return {**out, "cpu": (1 - w) * a["cpu"] + w * b["cpu"], "wall": (1 - w) * a["wall"] + w * b["wall"],
                    "samples": a["samples"], "how": f"between L0 {la:.1f} and {lb:.1f} ({a['knob_name']} "
                                                     f"{a['knob']}, {b['knob']})"}
    near = min(pts, key=lambda c: abs(c["final"]["sae_l0"] - target), default=None)
    if near is not None and abs(near["final"]["sae_l0"] - target) <= tol * target:
        return {**{m: near["final"][m] for m in METRICS}, "cpu": near["cpu"], "wall": near["wall"],
                "samples": near["samples"], "how": f"nearest: L0 {near['final']['sae_l0']:.1f} "
                                                    f"({near['knob_name']} {near['knob']})"}
    return None


def pm(values, digits=3):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def target_rows(cells, target, arm_cells_fit=None):
    """A table at one target L0: one row per method, mean ± std over seeds."""
    rows, summary = [], {}
    by_method = {}
    for c in cells:
        by_method.setdefault(c["method"], {}).setdefault(c["seed"], []).append(c)
    for method in methods.METHODS:
        seeds = by_method.get(method, {})
        at = [a for a in (at_l0(v, target) for v in seeds.values()) if a is not None]
        if not at:
            rows.append({"method": method, "L0": "–", "note": "no cell near this L0"})
            continue
        summary[method] = {m: float(np.mean([a[m] for a in at])) for m in (*METRICS, "cpu", "wall", "samples")}
        rows.append({"method": method, "L0": pm([a["sae_l0"] for a in at], 2), "MCC": pm([a["mcc"] for a in at]),
                     "F1": pm([a["f1"] for a in at]), "EV": pm([a["explained_variance"] for a in at]),
                     "uniqueness": pm([a["uniqueness"] for a in at]),
                     "recovered (cos > 0.9)": pm([a["recovered"] for a in at]),
                     "dead": pm([a["dead_latents"] for a in at], 0), "shrinkage": pm([a["shrinkage"] for a in at]),
                     "samples": f"{int(np.mean([a['samples'] for a in at])):,}",
                     "train CPU s": f"{np.mean([a['cpu'] for a in at]):.0f}",
                     "train wall s": f"{np.mean([a['wall'] for a in at]):.0f}",
                     "seeds": len(at), "at": "; ".join(sorted({a["how"] for a in at}))})
    return rows, summary


def verdict(summary, target, arm):
    fit = summary.get("sparsolve fit")
    saes = {m: v for m, v in summary.items() if m != "sparsolve fit"}
    if not fit or not saes:
        return None, {}
    lines, figures = [], {f"fit_cpu_s_L0_{target}": round(fit["cpu"], 1),
                          f"fit_samples_L0_{target}": int(fit["samples"])}
    for m, v in saes.items():
        key = slug(m).lower()
        figures[f"{key}_cpu_s_L0_{target}"] = round(v["cpu"], 1)
        figures[f"{key}_samples_L0_{target}"] = int(v["samples"])
        figures[f"{key}_cpu_x_fit_L0_{target}"] = round(v["cpu"] / fit["cpu"], 2)
        figures[f"{key}_samples_x_fit_L0_{target}"] = round(v["samples"] / fit["samples"], 2)
        for metric, name in (("mcc", "mcc"), ("explained_variance", "ev"), ("f1", "f1")):
            figures[f"{key}_{name}_L0_{target}"] = round(v[metric], 4)
    for metric, name in (("mcc", "MCC"), ("explained_variance", "EV"), ("f1", "F1")):
        best = max(saes, key=lambda m: saes[m][metric])
        margin = fit[metric] - saes[best][metric]
        figures[f"{name.lower()}_margin_L0_{target}"] = round(margin, 4)
        figures[f"{name.lower()}_fit_L0_{target}"] = round(fit[metric], 4)
        figures[f"{name.lower()}_best_sae_L0_{target}"] = round(saes[best][metric], 4)
        lines.append(f"{name}: sparsolve {fit[metric]:.3f} against the best SAE's {saes[best][metric]:.3f} "
                     f"({best}), {'+' if margin >= 0 else '−'}{abs(margin):.3f}")
    return f"L0 {target}, {arm}: " + "; ".join(lines) + ".", figures


def convergence_rows(cells, targets):
    """Where each method got to: its held-out MCC/F1/EV at the last checkpoints (¼, ½ and all of its
    samples), and whether the last doubling still improved MCC by more than 0.005."""
    rows = []
    for method in methods.METHODS:
        mine = [c for c in cells if c["method"] == method]
        if not mine:
            continue
        t = targets[-1]
        # the knob nearest the last target: each seed's cell at L0 nearest it
        per_seed = {}
        for c in mine:
            best = per_seed.get(c["seed"])
            if best is None or abs(c["final"]["sae_l0"] - t) < abs(best["final"]["sae_l0"] - t):
                per_seed[c["seed"]] = c
        curves = common_points([c["curve"] for c in per_seed.values()])
        n = len(curves[0])
        pick = lambda i, key: float(np.mean([cv[i][key] for cv in curves]))
        last, half, quarter = n - 1, max(0, n - 2), max(0, n - 3)
        gain = pick(last, "mcc") - pick(half, "mcc")
        rows.append({"method": method, "cell": f"{mine[0]['knob_name']} {list(per_seed.values())[0]['knob']}",
                     "samples": f"{int(pick(last, 'samples')):,}", "train CPU s": f"{pick(last, 'cpu'):.0f}",
                     "MCC at ¼ / ½ / all": f"{pick(quarter, 'mcc'):.3f} / {pick(half, 'mcc'):.3f} / {pick(last, 'mcc'):.3f}",
                     "F1 at ½ / all": f"{pick(half, 'f1'):.3f} / {pick(last, 'f1'):.3f}",
                     "EV at ½ / all": f"{pick(half, 'explained_variance'):.3f} / {pick(last, 'explained_variance'):.3f}",
                     "last doubling": f"MCC {gain:+.3f}: " + ("converged" if gain < 0.005 else "still improving")})
    return rows


def common_points(curves):
    """The learning curves cut to the checkpoints every one of them has, matched by the fraction of
    its run (seeds 1-2 may have fewer checkpoints than seed 0, and an equal-compute run's length
    differs by seed), so that a mean over seeds is taken point by point."""
    fraction = lambda p, cv: round(math.log2(p["samples"] / cv[-1]["samples"]))  # checkpoints are whole batches
    shared = set.intersection(*({fraction(p, cv) for p in cv} for cv in curves))
    return [[p for p in cv if fraction(p, cv) in shared] for cv in curves]


def curve_rows(cells):
    """Every checkpoint of each cell (the long runs): held-out metrics against samples and CPU time."""
    rows = []
    for c in cells:
        for p in c["curve"]:
            rows.append({"method": c["method"], "knob": f"{c['knob_name']} {c['knob']}", "samples": f"{p['samples']:,}",
                         "train CPU s": f"{p['cpu']:.0f}", "MCC": f"{p['mcc']:.3f}", "F1": f"{p['f1']:.3f}",
                         "EV": f"{p['explained_variance']:.3f}", "L0": f"{p['sae_l0']:.1f}",
                         "dead (held out)": p["dead_latents"]})
    return rows


def long_rows(long_cells, fit_cells):
    """The long runs (seed 0), each beside fit's seed-0 cells at that run's own measured L0 (fit's
    dense α bracket): the table and its figures."""
    rows, figures = [], {}
    fits = [x for x in fit_cells if x["seed"] == 0]
    for c in sorted(long_cells, key=lambda c: (c["arm"], c["method"])):
        key = f"{c['arm']}_{slug(c['method']).lower()}"
        f, pts = c["final"], c["curve"]
        figures.update({f"{key}_mcc": round(f["mcc"], 4), f"{key}_f1": round(f["f1"], 4),
                        f"{key}_ev": round(f["explained_variance"], 4), f"{key}_l0": round(f["sae_l0"], 2),
                        f"{key}_cpu_s": round(c["cpu"], 1), f"{key}_samples": c["samples"],
                        f"{key}_uniqueness": round(f["uniqueness"], 4)})
        gain = pts[-1]["mcc"] - pts[-2]["mcc"] if len(pts) >= 2 else float("nan")
        figures[f"{key}_last_doubling_mcc_gain"] = round(gain, 4)
        if len(pts) >= 2:
            figures[f"{key}_last_doubling_ev_gain"] = round(pts[-1]["explained_variance"] - pts[-2]["explained_variance"], 4)
        row = {"method": c["method"], "knob": f"{c['knob_name']} {c['knob']}", "samples": f"{c['samples']:,}",
               "L0": f"{f['sae_l0']:.2f}", "MCC": f"{f['mcc']:.3f}", "F1": f"{f['f1']:.3f}",
               "EV": f"{f['explained_variance']:.3f}", "train CPU s": f"{c['cpu']:.0f}",
               "last doubling": f"MCC {gain:+.3f}: " + ("converged" if gain < 0.005 else "still improving")}
        fit = at_l0(fits, f["sae_l0"])
        if fit is not None:
            row.update({"fit at this L0: MCC / F1 / EV": f"{fit['mcc']:.3f} / {fit['f1']:.3f} / {fit['explained_variance']:.3f}",
                        "× fit's samples": f"{c['samples'] / fit['samples']:g}", "× fit's CPU": f"{c['cpu'] / fit['cpu']:.1f}"})
            figures.update({f"{key}_cpu_x_fit": round(c["cpu"] / fit["cpu"], 2),
                            f"{key}_samples_x_fit": round(c["samples"] / fit["samples"], 2),
                            f"{key}_fit_mcc": round(fit["mcc"], 4), f"{key}_fit_f1": round(fit["f1"], 4),
                            f"{key}_fit_ev": round(fit["explained_variance"], 4),
                            f"{key}_fit_uniqueness": round(fit["uniqueness"], 4),
                            f"{key}_mcc_margin": round(fit["mcc"] - f["mcc"], 4),
                            f"{key}_f1_margin": round(fit["f1"] - f["f1"], 4),
                            f"{key}_ev_margin": round(fit["explained_variance"] - f["explained_variance"], 4)})
        rows.append(row)
    return rows, figures


def crossing(curve, key, value):
    """Where a learning curve first reaches ``value`` of ``key``: (samples, CPU s), interpolated
    between the two checkpoints around it (log-linear in samples, linear in CPU time); None when
    it never does."""
    for a, b in zip(curve, curve[1:]):
        if a[key] < value <= b[key]:
            w = (value - a[key]) / (b[key] - a[key])
            return 2 ** ((1 - w) * math.log2(a["samples"]) + w * math.log2(b["samples"])), (1 - w) * a["cpu"] + w * b["cpu"]
    if curve and curve[0][key] >= value:
        return curve[0]["samples"], curve[0]["cpu"]
    return None


def crossing_rows(long_cells, fit_cells):
    """Where each SAE's long run passes fit's seed-0 value at the run's measured L0 (MCC, F1, EV):
    the samples and CPU time, as multiples of fit's.  These are checkpoints in the middle of a
    longer schedule (warm-up and decay set by the whole run), not runs of that length: on this
    benchmark a run of that length, decaying its own learning rate, scored lower (the
    equal-compute cells), so a run alone needs more than these multiples."""
    rows, figures = [], {}
    for c in sorted(long_cells, key=lambda c: (c["arm"], c["method"])):
        fit = at_l0([x for x in fit_cells if x["seed"] == 0], c["final"]["sae_l0"])
        if fit is None:
            continue
        row = {"method": c["method"], "run": f"{c['samples']:,} samples", "L0": f"{c['final']['sae_l0']:.2f}"}
        for key, name in (("mcc", "MCC"), ("f1", "F1"), ("explained_variance", "EV")):
            hit = crossing(c["curve"], key, fit[key])
            tag = f"{c['arm']}_{slug(c['method']).lower()}_passes_fit_{name.lower()}"
            if hit is None:
                row[f"passes fit's {name} ({fit[key]:.3f})"] = "not within the run"
                continue
            n, cpu = hit
            row[f"passes fit's {name} ({fit[key]:.3f})"] = f"{n / fit['samples']:.1f}× fit's samples, {cpu / fit['cpu']:.1f}× its CPU"
            figures[f"{tag}_samples_x"] = round(n / fit["samples"], 2)
            figures[f"{tag}_cpu_x"] = round(cpu / fit["cpu"], 2)
        rows.append(row)
    return rows, figures


def third_rows(cells, target):
    rows = []
    by_method = {}
    for c in cells:
        by_method.setdefault(c["method"], {}).setdefault(c["seed"], []).append(c)
    for method in methods.METHODS:
        at = [a for a in (at_l0(v, target) for v in by_method.get(method, {}).values()) if a is not None]
        if at:
            rows.append({"method": method, "L0": pm([a["sae_l0"] for a in at], 1),
                         **{f"recovered, {n} third": pm([a[f"recovered_{n}"] for a in at])
                            for n in ("frequent", "middle", "rare")},
                         **{f"mean max cos, {n} third": pm([a[f"max_cos_{n}"] for a in at])
                            for n in ("frequent", "middle", "rare")}})
    return rows


STYLE = {"sparsolve fit": dict(color="k", marker="o", lw=2.2), "SAELens BatchTopK": dict(color="C0", marker="s"),
         "SAELens TopK": dict(color="C1", marker="^"), "SAELens JumpReLU": dict(color="C2", marker="v"),
         "SAELens Matryoshka": dict(color="C3", marker="D"), "sparsify TopK": dict(color="C4", marker="P")}


def frontier(ax, cells, metric):
    for method in methods.METHODS:
        groups = {}
        for c in cells:
            if c["method"] == method:
                groups.setdefault(c["knob"], []).append(c["final"])
        if not groups:
            continue
        pts = sorted((np.mean([f["sae_l0"] for f in v]), np.mean([f[metric] for f in v]),
                      np.std([f[metric] for f in v])) for v in groups.values())
        x, y, e = zip(*pts)
        ax.errorbar(x, y, yerr=e, label=method, capsize=2, ms=4, **STYLE[method])


def plot(size_name, data_cells, compute_cells, fit_cells, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = data.SIZES[size_name]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.2), sharex=True)
    titles = (("mcc", "MCC"), ("f1", "F1 (latents as feature detectors)"), ("explained_variance", "explained variance"))
    for row, (cells, arm) in enumerate(((data_cells, "equal data"), (compute_cells + fit_cells, "equal compute"))):
        for ax, (metric, name) in zip(axes[row], titles):
            frontier(ax, cells, metric)
            for t in size.targets:
                ax.axvline(t, color="grey", lw=0.7, ls=":")
            ax.set(title=f"{name}: {arm}", ylabel=name)
            ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("L0 (held out)")
    axes[0][0].legend(fontsize=8)
    n = data_cells[0]["samples"] if data_cells else 0
    fig.suptitle(f"SynthSAEBench {size_name}: {size.num_features:,} features in {size.hidden_dim} dims, width "
                 f"{size.width:,}; mean ± std over seeds\nequal data = {n:,} samples each; equal compute = each SAE "
                 f"trained for fit's CPU time (one thread)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(size_name, cells, path):
    """MCC and EV against samples seen and against training CPU time: every method at the last target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = data.SIZES[size_name].targets[-1]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for method in methods.METHODS:
        mine = [c for c in cells if c["method"] == method]
        if not mine:
            continue
        for arm_cells, ls in (([c for c in mine if c["arm"] == "data"], "-"), ([c for c in mine if c["arm"] == "compute"], "--"),
                              ([c for c in mine if c["arm"] == "long"], ":"),
                              ([c for c in mine if c["arm"] == "longer"], "-.")):
            per_seed = {}
            for c in arm_cells:
                best = per_seed.get(c["seed"])
                if best is None or abs(c["final"]["sae_l0"] - t) < abs(best["final"]["sae_l0"] - t):
                    per_seed[c["seed"]] = c
            if not per_seed:
                continue
            curves = common_points([c["curve"] for c in per_seed.values()])
            n = len(curves[0])
            for col, key in enumerate(("mcc", "explained_variance")):
                for row, x in enumerate(("samples", "cpu")):
                    xs = [np.mean([cv[i][x] for cv in curves]) for i in range(n)]
                    ys = [np.mean([cv[i][key] for cv in curves]) for i in range(n)]
                    style = {k: v for k, v in STYLE[method].items() if k != "lw"}
                    axes[row][col].plot(xs, ys, ls=ls, ms=3, label=f"{method} ({arm_cells[0]['arm']})", **style)
    for row, x in enumerate(("samples seen", "training CPU seconds (one thread)")):
        for col, key in enumerate(("MCC", "explained variance")):
            axes[row][col].set(xscale="log", xlabel=x, ylabel=f"{key} (held out)")
            axes[row][col].grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"SynthSAEBench {size_name}: learning curves at L0 ≈ {t}, mean over seeds at shared checkpoints\n"
                 f"solid: equal-data runs; dashed: equal-compute runs; dotted: the SAEs' long runs (seed 0); "
                 f"dash-dot: further still", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(size_name, cache=None, samples=None, log=print, write=True, results_dir=None, figures_dir=None):
    """Tables, verdicts and plots from the cells on disk; ``record()`` for each arm."""
    from harness import record

    size = data.SIZES[size_name]
    samples = samples or GRID[size_name]["samples"]
    data_cells = [c for c in load_cells(size_name, "data", cache) if c["samples"] == samples]
    compute_cells = load_cells(size_name, "compute", cache)
    long_cells = load_cells(size_name, "long", cache)
    longer_cells = load_cells(size_name, "longer", cache)  # one SAE further still, where time allowed
    fit_cells = [c for c in data_cells if c["method"] == "sparsolve fit"]
    every = data_cells + compute_cells + long_cells + longer_cells
    loads = [c["load_before"][0] for c in every] + [c["load_after"][0] for c in every]
    load_text = (f"load average (1 min) {min(loads):.1f}–{max(loads):.1f} during the cells" if loads else "")
    commits = sorted({c.get("commit") or "before commits were recorded" for c in every})
    load_text += f"; the cells' code: {', '.join(commits)}"
    settings = (f"SynthSAEBench {size_name}: {size.num_features:,} ground-truth features in {size.hidden_dim} dims, "
                f"the published config otherwise (benchmarks/synthsaebench_data.py); width {size.width:,}; "
                f"{size.heldout:,} held-out samples; every method on one thread; {load_text}.")
    results = {}
    for arm, cells in (("equal data", data_cells), ("equal compute", compute_cells + fit_cells)):
        tables, figures, notes = {}, {}, [settings]
        for t in size.targets:
            rows, summary = target_rows(cells, t)
            tables[f"L0 = {t} ({arm})"] = rows
            line, figs = verdict(summary, t, arm)
            if line:
                notes.append(line)
                figures.update(figs)
        tables[f"Where each method got to ({arm}; cells nearest L0 {size.targets[-1]})"] = convergence_rows(cells, size.targets)
        tables[f"Recovery by feature frequency, L0 = {size.targets[-1]} ({arm})"] = third_rows(cells, size.targets[-1])
        if arm == "equal compute" and long_cells:
            t = size.targets[-1]
            rows, figs = long_rows(long_cells + longer_cells, fit_cells)
            for r in rows:
                if "× fit's CPU" in r:
                    x_samples, x_cpu, at_fit = r["× fit's samples"], r["× fit's CPU"], r["fit at this L0: MCC / F1 / EV"]
                    notes.append(f"{r['method']} on {r['samples']} samples ({x_samples}× fit's, {x_cpu}× its CPU "
                                 f"time), L0 {r['L0']}: MCC / F1 / EV {r['MCC']} / {r['F1']} / {r['EV']} against "
                                 f"fit's {at_fit} at that L0 ({r['last doubling']}).")
            tables[f"The SAEs trained longer (seed 0): 'long' {GRID[size_name]['long'] // samples}× fit's samples; "
                   f"'longer' further still, where time allowed ({size.pool:,}-sample pool, so more than one pass); "
                   f"each beside fit's {samples:,}-sample cells at the run's own L0"] = rows
            figures.update(figs)
            rows, figs = crossing_rows(long_cells + longer_cells, fit_cells)
            tables[f"Where the long runs' curves pass fit (seed 0, at each run's L0; fit at {samples:,} samples; "
                   f"checkpoints in the middle of the longer schedule, not runs of that length, which scored lower: "
                   f"see the equal-compute cells)"] = rows
            figures.update(figs)
            tables["The long runs' learning curves (held-out metrics on the curve's held-out subset)"] = \
                curve_rows(long_cells + longer_cells)
        if arm == "equal data":
            for row in PUBLISHED:
                key = slug(row["method"].split(" (")[0]).lower()
                figures.update({f"published_16k_{key}_{m.lower()}": row[m] for m in ("MCC", "F1", "EV") if m in row})
            figures["published_16k_samples_millions"] = 200
            tables["Published SAELens rows, for reference (SynthSAEBench-16k" +
                   ("" if size_name == "16k" else ", not this model") + ": width 4,096, 200M samples, L0 25)"] = PUBLISHED
        results[arm] = (tables, figures, notes)
        for line in notes[1:]:
            log(line)
    if write:
        figures_dir = Path(figures_dir or EXAMPLES)
        figures_dir.mkdir(parents=True, exist_ok=True)
        stem = "synthsaebench" if size_name == "cpu" else f"synthsaebench_{size_name}"
        plot(size_name, data_cells, compute_cells, fit_cells, figures_dir / f"{stem}.png")
        plot_curves(size_name, data_cells + compute_cells + long_cells + longer_cells, figures_dir / f"{stem}_curves.png")
        comparison = {"equal data": f"equal data: every method trains on the same {samples:,} samples",
                      "equal compute": "equal compute: each SAE trains for as many samples as fit's CPU time "
                                       "(one thread) buys it; the times are in the tables"}
        for arm, (tables, figures, notes) in results.items():
            record(f"synthsaebench_{size_name}_{arm.replace(' ', '_')}",
                   title=f"SynthSAEBench {size_name} ({size.num_features:,} features in {size.hidden_dim} dims, "
                         f"width {size.width:,}, L0 {' and '.join(map(str, size.targets))}, {samples:,} samples "
                         f"a method at equal data): sparse coding against the SAE libraries, {arm} "
                         f"(benchmarks/synthsaebench.py)",
                   tables=tables, figures=figures, comparison=comparison[arm], notes="\n\n".join(notes),
                   load_before=[min(loads)] if loads else None, results_dir=results_dir)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("cell", "calibrate", "run", "report", "all"))
    p.add_argument("--size", choices=sorted(data.SIZES), default="cpu")
    p.add_argument("--method", choices=sorted(methods.METHODS))
    p.add_argument("--knob", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int)
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=None)
    p.add_argument("--methods", type=lambda v: [x.strip() for x in v.split(",")], default=None,
                   help="run only these methods' cells (comma-separated)")
    p.add_argument("--arm", default="data", help="the cell command's arm")
    p.add_argument("--arms", type=lambda v: [x.strip() for x in v.split(",")], default=["data", "compute", "long"],
                   help="the run command's arms: data (equal samples), compute (equal CPU time), long (the SAEs "
                        "8x longer, seed 0)")
    p.add_argument("--cache", type=Path, default=None, help="default benchmarks/_out/synthsaebench")
    p.add_argument("--results-dir", type=Path, default=None, help="record()'s folder (default benchmarks/results)")
    p.add_argument("--figures-dir", type=Path, default=None, help="the plots' folder (default examples/results)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda (benchmarks/gpu_check.sh synth)")
    p.add_argument("--threads", type=int, default=1, help="torch, numba and BLAS threads (1 on the shared CPU)")
    p.add_argument("--curve-heldout", type=int, default=None,
                   help="the cell command's held-out samples at each learning-curve point (default the size's)")
    p.add_argument("--halvings", type=int, default=6,
                   help="the cell command's learning-curve points: at 1/2**halvings, ..., 1/2 of its samples")
    args = p.parse_args(argv)
    threads(args.threads)
    if args.command == "calibrate":
        calibrate(args.size, args.cache, device=args.device,
                  pilot_samples=args.samples // 2 if args.samples else None)
        return
    if args.command in ("run", "all"):
        run_grid(args.size, args.cache, args.seeds, args.samples, arms=args.arms, only=args.methods,
                 device=args.device)
    if args.command in ("report", "all"):
        report(args.size, args.cache, args.samples, results_dir=args.results_dir, figures_dir=args.figures_dir)
    if args.command != "cell":
        return
    knob = int(args.knob) if args.knob == int(args.knob) and methods.KNOB[args.method] == "k" else args.knob
    run_cell(args.size, args.arm, args.method, knob, args.seed, args.samples or GRID[args.size]["samples"],
             args.cache, device=args.device, curve_heldout=args.curve_heldout, halvings=args.halvings)


if __name__ == "__main__":
    main()
