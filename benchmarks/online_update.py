"""The online dictionary update on torch tensors: the blocked Gauss–Seidel pass against the
per-atom loop it replaced and the numba kernel, interleaved in one process (A/B ratios hold
on a loaded machine where absolute times do not).

    PYTHONPATH=. python benchmarks/online_update.py [--device cpu|cuda] [--sizes 256x64 1024x256] [--write]

Prints one table row per (size, norm rule, path): the median ms per pass and its ratio to the
blocked pass.  On CUDA every timed pass ends with a synchronize.  ``--write`` puts the table
into the section "## The online update (benchmarks/online_update.py)" of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sparsolve import backend
from sparsolve.learning import norms, updates

from report import machine, write_section  # noqa: E402  (benchmarks/ is the script's folder)

SECTION = "## The online update (benchmarks/online_update.py)"


def per_atom_loop(D, A_bar, B_bar, norm, decay):
    """The torch path before #13 (commit f0afe69): one (m,)·(m, p) product per atom."""
    D = D + 0
    diag = backend.to_numpy(torch.diagonal(A_bar))
    for j in np.flatnonzero(diag > 1e-12):
        ajj = float(diag[j])
        u = (B_bar[j] - A_bar[j] @ D + ajj * D[j]) / (ajj + decay)
        if norm in norms.FLOOR:
            u = u / torch.clip(torch.sqrt((u * u).sum()), norms.FLOOR[norm], None)
        D[j] = u
    return D


def problem(m, p, device, dtype, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.abs(rng.standard_normal((4 * m, m))) * (rng.random((4 * m, m)) < 0.02)
    X = Z @ D + 0.1 * rng.standard_normal((4 * m, p))
    A, B = updates.batch_statistics(X, Z)
    return [torch.from_numpy(a).to(device=device, dtype=dtype) for a in (D, A, B)]


def timed(fn, sync, repeats):
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", nargs="+", default=["256x64", "1024x256"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rules", nargs="+", default=["unit", "penalty"])
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (on a loaded machine, 1 keeps OpenMP from waiting on busy cores)")
    ap.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    host = machine()  # threadpoolctl's inspection here resets torch's thread count: set it after
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    lines = [f"Machine: {host}; device {args.device}, {args.dtype}, torch threads {torch.get_num_threads()}, "
             f"median of {args.repeats} interleaved passes.", "",
             "| m × p | norm | path | ms per pass (median) | × blocked |", "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for size in args.sizes:
        m, p = (int(v) for v in size.split("x"))
        D, A, B = problem(m, p, args.device, dtype)
        sync = (lambda: backend.synchronize(D))
        for norm in args.rules:
            decay = norms.decay(norm, 0.1)
            paths = {"blocked": lambda: updates.online_blocked(D, A, B, norm, decay),
                     "per-atom loop (before)": lambda: per_atom_loop(D, A, B, norm, decay)}
            if args.device == "cpu":
                paths["numba (updates.online)"] = lambda: updates.online(D, A, B, norm, decay)
            for fn in paths.values():
                fn()  # compile / warm up
            times = {name: [] for name in paths}
            for _ in range(args.repeats):  # interleaved: one pass of each path per round
                for name, fn in paths.items():
                    times[name] += timed(fn, sync, 1)
            base = statistics.median(times["blocked"])
            for name, t in times.items():
                med = statistics.median(t)
                lines.append(f"| {m} × {p} | {norm} | {name} | {1e3 * med:.2f} | {med / base:.2f} |")
                print(lines[-1], flush=True)
    if args.write:
        write_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
