"""Threads: every entry point before and after the rule by size (sparsolve.threads.threads_for), quiet and
beside a busy loop on every core, and the rule's threshold checked for torch and numba.

Before is the code of ``--before`` (a git revision; default: the main commit this rule was built
on), unpacked into a temporary folder with ``git archive``; after is this checkout.  Each runs in
its own process on the same data and dictionary, interleaved (before, after, before, after), and
each entry point's time is the best of the rounds.  A warm-up run of each tree first compiles its
numba kernels (cached), so no timing holds a compilation.  The entry points, at the sizes of the
README's blocks (8×8 ZCA-whitened patches, 128 atoms, α = 0.5):

* ``fit`` with lca and with cd on 5,000 patches (one epoch, batches of 256);
* ``encode`` with cd, 2,000 rows (best of 5 calls); ``model.encode(X, solver="lca")``, 20,000 rows;
* ``fit_amortized``, t* = 5, 150 steps of 256 rows;
* ``LearnedG.encode``, t* = 5, 2,000 rows (best of 5 calls);
* ``compare`` of that encoder against fista and lca on 2,000 held-out rows: its wall time, and the
  encoder's ms per 1,000 rows that it reports (the first call in the process).

Then, in this checkout, cd's ``encode`` and ``LearnedG.encode`` at sizes across the threshold
(:data:`sparsolve.threads.SMALL_PRODUCT` multiply-adds per product) on one thread and on two
(``sparsolve.set_threads``), best of 3.

"Busy" runs two ``while :; do :; done`` loops beside the work (one a core on this machine), killed
at the end.  The machine is shared: the load average before and after is recorded.

    nice -n 5 python benchmarks/threads.py            # 25–30 minutes on the shared 2 cores at load 10–15
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BEFORE = "a0aee61"  # main when the rule by size was extended to torch and numba (issue 27)
ATOMS, ALPHA, T_STAR = 128, 0.5, 5
QUICK_REPEATS = 5  # the encode entry points: best of this many calls in a worker
ENTRY_POINTS = ("fit lca, 5,000 rows", "fit cd, 5,000 rows", "encode cd, 2,000 rows",
                "model.encode lca, 20,000 rows", "fit_amortized, 150 steps", "LearnedG.encode, 2,000 rows",
                "compare (wall)", "compare's learned-G ms/1,000")


# ---- the worker: one tree, every entry point, one JSON line ------------------------------------

def worker(data_path):
    import numpy as np

    import sparsolve

    saved = np.load(data_path)
    X, X_test, D = saved["X"], saved["X_test"], saved["D"]
    out = {}

    def timed(name, fn, repeats=1):
        """fn's time: one call, or for the quick entry points the best of a few (one call of a few
        milliseconds is at the scheduler's mercy on a loaded machine)."""
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            out[name] = min(out.get(name, np.inf), time.perf_counter() - start)
        return result

    import warnings
    warnings.simplefilter("ignore")
    timed("fit lca, 5,000 rows", lambda: sparsolve.fit(X[:5000], ATOMS, ALPHA, solver="lca", seed=0, progress=False))
    timed("fit cd, 5,000 rows", lambda: sparsolve.fit(X[:5000], ATOMS, ALPHA, solver="cd", seed=0, progress=False))
    timed("encode cd, 2,000 rows", lambda: sparsolve.encode(X_test, D, ALPHA, solver="cd"), QUICK_REPEATS)
    model = sparsolve.SparseCodingModel(D, ALPHA, solver="lca")
    timed("model.encode lca, 20,000 rows", lambda: model.encode(X, solver="lca"))
    enc = timed("fit_amortized, 150 steps", lambda: sparsolve.fit_amortized(
        X, D, t_star=T_STAR, alpha=ALPHA, max_steps=150, seed=0, progress=False))
    timed("LearnedG.encode, 2,000 rows", lambda: enc.encode(X_test), QUICK_REPEATS)
    rows = timed("compare (wall)", lambda: sparsolve.compare(X_test, D, {"T=5": enc}, alpha=ALPHA))
    out["compare's learned-G ms/1,000"] = next(r["ms_per_1000"] for r in rows if r["method"] == "T=5") / 1e3
    print("RESULT " + json.dumps(out), flush=True)


def warm(data_path):
    """Compile and cache a tree's numba kernels (cd, the online update) on a few rows."""
    import numpy as np

    import sparsolve

    saved = np.load(data_path)
    X, D = saved["X"][:600], saved["D"]
    sparsolve.fit(X, ATOMS, ALPHA, solver="cd", max_steps=2, seed=0, progress=False)
    sparsolve.encode(X, D, ALPHA, solver="cd")


def by_size():
    """cd's encode and LearnedG.encode at sizes across the threshold, on one thread and on two."""
    import numpy as np

    import sparsolve
    from sparsolve import threads as thread_rule
    from sparsolve.data import natural_image_patches

    X = natural_image_patches(8, 40_000, seed=5, whiten="zca")
    rows = []
    for m in (128, 256):
        D = X[np.random.default_rng(m).choice(len(X), m, replace=False)]
        D /= np.linalg.norm(D, axis=1, keepdims=True)
        enc = sparsolve.LearnedG.from_dictionary(D, ALPHA, T_STAR)
        for n in (256, 2_000, 16_000, 40_000):
            work = n * m * max(m, X.shape[1])
            row = {"atoms": m, "rows": n, "mult-adds a product": float(work),
                   "rule for cd": "one thread" if work < thread_rule.SMALL_PRODUCT else "numba's own",
                   "rule for LearnedG": "one thread" if work < thread_rule.SMALL_TORCH_WORK else "torch's own"}
            for name, fn in (("cd", lambda: sparsolve.encode(X[:n], D, ALPHA, solver="cd")),
                             ("LearnedG", lambda: enc.encode(X[:n]))):
                fn()
                for threads in (1, 2):
                    sparsolve.set_threads(threads)
                    best = np.inf
                    for _ in range(3):
                        start = time.perf_counter()
                        fn()
                        best = min(best, time.perf_counter() - start)
                    row[f"{name} {threads} thread{'s' if threads > 1 else ''} (ms)"] = 1e3 * best
                sparsolve.set_threads(None)
                row[f"{name} 2/1"] = row[f"{name} 2 threads (ms)"] / row[f"{name} 1 thread (ms)"]
            rows.append(row)
    print("RESULT " + json.dumps(rows), flush=True)


# ---- the parent ---------------------------------------------------------------------------------

@contextlib.contextmanager
def busy_loops(on):
    """One shell busy loop a core while the context holds (``on``), each killed by its own id."""
    loops = [subprocess.Popen(["bash", "-c", "while :; do :; done"]) for _ in range(os.cpu_count() if on else 0)]
    try:
        yield
    finally:
        for p in loops:
            p.send_signal(signal.SIGKILL)
            p.wait()


def run(tree, *args):
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(HERE / "threads.py"), *args], env=env, capture_output=True,
                          text=True, cwd=tree)
    if done.returncode:
        raise RuntimeError(f"{tree}: {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    line = next(line for line in done.stdout.splitlines()[::-1] if line.startswith("RESULT ")) if "RESULT" in \
        done.stdout else None
    return None if line is None else json.loads(line[len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help=f"the git revision timed as before (default {BEFORE})")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved before/after rounds (default 2)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--warm", help=argparse.SUPPRESS)
    parser.add_argument("--by-size", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.warm:
        return warm(args.warm)
    if args.by_size:
        return by_size()

    sys.path.insert(0, str(HERE))
    from harness import record

    import numpy as np

    sys.path.insert(0, str(ROOT))
    import sparsolve
    from sparsolve.data import image_whitening, natural_image_patches

    load_before = list(os.getloadavg())
    whitening = image_whitening(64)
    X = natural_image_patches(8, 20_000, split="train", whiten=whitening)
    X_test = natural_image_patches(8, 2_000, split="test", whiten=whitening)
    D = sparsolve.fit(X, ATOMS, ALPHA, solver="lca", n_epochs=2, seed=0, progress=False).dictionary
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.npz"
        np.savez(data_path, X=X, X_test=X_test, D=D)
        before = Path(tmp) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "sparsolve"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        trees = {"before": before, "after": ROOT}
        for tree in trees.values():
            run(tree, "--warm", str(data_path))
        tables, figures = {}, {}
        for condition, on in (("quiet", False), ("busy", True)):
            best = {which: {} for which in trees}
            loads = []
            with busy_loops(on):
                for _ in range(args.rounds):
                    for which, tree in trees.items():
                        loads.append(os.getloadavg()[0])
                        for name, seconds in run(tree, "--worker", str(data_path)).items():
                            best[which][name] = min(best[which].get(name, np.inf), seconds)
                sizes = run(ROOT, "--by-size")
            rows = []
            for name in ENTRY_POINTS:
                b, a = best["before"][name], best["after"][name]
                unit = 1e3 if b < 10 else 1.0
                rows.append({"entry point": name, f"before ({'ms' if unit > 1 else 's'})": b * unit,
                             f"after ({'ms' if unit > 1 else 's'})": a * unit, "before / after": b / a})
                figures[f"{condition}: {name}, before/after"] = b / a
            load = f"load {min(loads):.1f}–{max(loads):.1f}"
            extra = " + a busy loop on each core" if on else ""
            tables[f"{condition}{extra} ({load}): before {commit}, after this checkout; best of {args.rounds}"] = rows
            tables[f"{condition}{extra}: one thread against two by size (this checkout, best of 3)"] = sizes
    path = record("threads", title="Threads: every entry point under the rule by size, quiet and busy "
                  "(benchmarks/threads.py)", tables=tables, figures=figures,
                  comparison="the same data, dictionary and settings; before and after in separate processes, "
                  "interleaved", load_before=load_before)
    print(f"wrote {path}")
    for caption, rows in tables.items():
        print(caption)
        for row in rows:
            print("  ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})


if __name__ == "__main__":
    main()
