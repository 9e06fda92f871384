"""One thread or two for the wide fit step's parts (issue 23 §5), on this machine as it is and
beside a busy loop on every core.

    python benchmarks/wide_threads.py [--busy] [--reps 7]

At d = 256, m = 4,096 and a batch of 1,024 (versus_saes.py --size cpu): cd's factored inference
(working sets: numba kernels and one product of 1e9 multiply-adds a round), the host's blocked
online pass (BLAS products of 256-atom blocks, 2.7e8 each), and one product of 1e9 alone.  Each
runs with numba and host BLAS on one thread, and on two; the runs alternate, and the table keeps
the median and the fastest.  ``--busy`` starts one busy loop per core for the measurement (and
stops them, by their process ids).  The load average is recorded before and after.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--busy", action="store_true", help="a busy loop on every core while measuring")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--case", default=None, help="record as results/CASE.json")
    args = p.parse_args(argv)
    import numba
    import importlib

    importlib.import_module("scipy.linalg")  # its BLAS, which numba's np.dot calls
    from threadpoolctl import threadpool_limits

    from sparsolve import threads as thread_rule
    from sparsolve.data import SyntheticActivations
    from sparsolve.inference import working_sets
    from sparsolve.rules import NORM_RULES, online

    gen = SyntheticActivations(256, 4096, mean_active=4.0, seed=0)
    X = gen.sample(1024, split=0)
    rng = np.random.default_rng(0)
    D = np.asarray(gen.features, dtype=np.float32) + 0.05 * rng.standard_normal((4096, 256)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = (rng.random((20000, 4096)) < 0.004) * rng.random((20000, 4096))
    A = (Z.T @ Z / 20000).astype(np.float32)
    B = (Z.T @ (Z @ D) / 20000).astype(np.float32)
    Z0 = np.zeros((1024, 4096), np.float32)
    R, Dt = X.copy(), np.ascontiguousarray(D.T)

    with thread_rule.single_threaded_blas():  # made now, outside any limit: it restores BLAS's own thread count
        pass
    parts = {
        "cd factored inference (1,024 rows)": lambda: working_sets.solve(X, D, 0.2, True, Z0, 1e-3, 2000),
        "online pass, blocked (m = 4,096)": lambda: online.online(D, A, B, NORM_RULES["unit"](), 0.0),
        "one product of 1e9 (1,024 × 256 × 4,096)": lambda: R @ Dt,
    }
    busy = []
    load_before = os.getloadavg()[0]
    if args.busy:
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
        time.sleep(5)
    times = {}
    try:
        for threads in (1, 2):  # warm-up: compile, and load every library
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            for f in parts.values():
                f()
        for _ in range(args.reps):
            for threads in (1, 2):
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                with threadpool_limits(threads, user_api="blas"), thread_rule.single_threaded_blas():
                    # inside, blas_threads_for decides by product size and load; forced here to the setting
                    original = thread_rule.cores_idle
                    thread_rule.cores_idle = lambda: threads > 1
                    try:
                        for name, f in parts.items():
                            start = time.perf_counter()
                            f()
                            times.setdefault((name, threads), []).append(time.perf_counter() - start)
                    finally:
                        thread_rule.cores_idle = original
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    rows = []
    for name in parts:
        one, two = (np.array(times[(name, t)]) for t in (1, 2))
        rows.append({"part": name, "1 thread: median ms": 1e3 * np.median(one), "fastest ms": 1e3 * one.min(),
                     "2 threads: median ms": 1e3 * np.median(two), "fastest ms ": 1e3 * two.min(),
                     "2 ÷ 1 (medians)": float(np.median(two) / np.median(one))})
    for r in rows:
        print("  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in r.items()), flush=True)
    print(f"load before {load_before:.1f}, after {os.getloadavg()[0]:.1f}; busy loops: {len(busy)}")
    if args.case:
        from harness import record

        record(args.case, title=f"One thread or two for the wide step's parts{' beside a busy loop on every core' if args.busy else ''} (benchmarks/wide_threads.py)",
               tables={"wall time": rows}, comparison="the same work on one thread and on two, alternating",
               load_before=load_before, notes=f"{args.reps} runs each; busy loops: {len(busy)}.")


if __name__ == "__main__":
    main(sys.argv[1:])
