"""The online dictionary update on torch tensors: the blocked Gauss–Seidel pass against the
per-atom loop it replaced and the numba kernel, and on CUDA the blocked pass's in-block steps as
one Triton launch a block against the Python loop of small operations, plain and captured in a
CUDA graph; interleaved in one process (A/B ratios hold on a loaded machine where absolute times
do not).

    PYTHONPATH=. python benchmarks/online_update.py [--device cpu|cuda] [--sizes 256x64 1024x256]
        [--rules unit penalty] [--paths blocked per-atom numba] [--budget S] [--no-write]
    PYTHONPATH=. python benchmarks/online_update.py --device cuda --rules unit \
        --sizes 1024x256 4096x768 16384x768 --paths loop blocked graph-loop graph --budget 3
    PYTHONPATH=. python benchmarks/online_update.py --launches --sizes 1024x256 4096x768 --rules unit

Paths: ``blocked`` is sparsolve.rules.online.online_blocked as fit runs it (on CUDA torch with Triton: the
kernel of sparsolve/learning/_online_triton.py for "unit" and "ball"); ``loop`` the same pass with
its in-block steps as the Python loop (sparsolve.rules.online._in_block_steps, as cupy and Triton-less machines
run it); ``graph`` and ``graph-loop`` those two captured once in a CUDA graph (static shapes) and
replayed; ``per-atom`` the torch path before #13; ``numba`` sparsolve.rules.online.online on the host.
Prints one table row per (size, norm rule, path): the median ms per pass and its ratio to the
first path.  On CUDA every timed pass ends with a synchronize.  Rounds stop after ``--repeats``
or once a size and rule has had ``--budget`` seconds.  Without CUDA, ``--device cuda`` prints
"not run: no CUDA" and exits 0.  ``--launches`` counts instead of timing: the kernel launches
of a pass, in-block Python loop against Triton kernel, on CPU tensors.  Each run ends in
``harness.record``: the case ``online_update`` (``_cuda`` on CUDA, ``_paths_...`` when --paths is
given) or ``online_update_launches``; ``--no-write`` only prints.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sparsolve import backend
from sparsolve.rules import _online_triton, norm_rule
from sparsolve.rules import online as updates

from harness import load_average, record  # noqa: E402  (benchmarks/ is the script's folder)
from launch_counts import Launches, gpu_path  # noqa: E402


def per_atom_loop(D, A_bar, B_bar, norm, decay):
    """The torch path before #13 (commit f0afe69): one (m,)·(m, p) product per atom."""
    D = D + 0
    diag = backend.to_numpy(torch.diagonal(A_bar))
    for j in np.flatnonzero(diag > 1e-12):
        ajj = float(diag[j])
        u = (B_bar[j] - A_bar[j] @ D + ajj * D[j]) / (ajj + decay)
        if norm_rule(norm).floor is not None:
            u = u / torch.clip(torch.sqrt((u * u).sum()), norm_rule(norm).floor, None)
        D[j] = u
    return D


def problem(m, p, device, dtype, seed=0):
    """D (unit rows) and the statistics (A, B) of 4m samples with 2% of their codes on, made on
    the device (at m = 16,384 the 65,536 × 16,384 codes are 4 GB)."""
    g = torch.Generator(device=device).manual_seed(seed)
    draw = dict(generator=g, device=device, dtype=dtype)
    D = torch.randn((m, p), **draw)
    D /= torch.linalg.norm(D, dim=1, keepdim=True)
    Z = torch.randn((4 * m, m), **draw).abs_() * (torch.rand((4 * m, m), **draw) < 0.02)
    X = Z @ D + 0.1 * torch.randn((4 * m, p), **draw)
    return [D, *updates.batch_statistics(X, Z)]


def python_loop(D, A_bar, B_bar, norm, decay):
    """online_blocked with its in-block steps as the Python loop, whatever the device."""
    usable = _online_triton.usable
    _online_triton.usable = lambda D: False
    try:
        return updates.online_blocked(D, A_bar, B_bar, norm_rule(norm), decay)
    finally:
        _online_triton.usable = usable


def graphed(fn):
    """``fn`` captured once in a CUDA graph (after a warm-up on a side stream, which also compiles
    the Triton kernel), as the graph's replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def launches(m, p, norm):
    """Kernel launches of one pass on CPU tensors down the CUDA path (benchmarks/launch_counts.py: as
    many as on CUDA, where each of these torch operations is one launch): the in-block Python
    loop, and the Triton path with its kernel counted as its one launch (so it needs neither a GPU
    nor Triton)."""
    D, A, B = problem(m, p, "cpu", torch.float32)
    decay = norm_rule(norm).decay(0.1)
    with gpu_path():
        with Launches() as loop:
            python_loop(D, A, B, norm, decay)
        with Launches() as kernel:
            updates.online_blocked(D, A, B, norm_rule(norm), decay)
    return loop.count, kernel.count


def timed(fn, sync, repeats):
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


PATHS = ("blocked", "loop", "graph", "graph-loop", "per-atom", "numba")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", nargs="+", default=["256x64", "1024x256"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=float("inf"),
                    help="seconds of timed rounds per size and rule (at least one round)")
    ap.add_argument("--rules", nargs="+", default=["unit", "penalty"])
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=None,
                    help="the first is the ratios' base (default: blocked per-atom, and numba on cpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (on a loaded machine, 1 keeps OpenMP from waiting on busy cores)")
    ap.add_argument("--no-write", action="store_true", help="print only: record no result")
    ap.add_argument("--launches", action="store_true",
                    help="count the kernel launches of a pass (Python loop against Triton) instead of timing")
    args = ap.parse_args()
    load = load_average()
    if args.launches:
        rows = []
        for size in args.sizes:
            m, p = (int(v) for v in size.split("x"))
            for norm in args.rules:
                loop, kernel = launches(m, p, norm)
                rows.append({"m × p": f"{m} × {p}", "norm": norm, "launches a pass, in-block Python loop": loop,
                             "with the Triton kernel": kernel, "ratio": round(loop / kernel, 1)})
                print(rows[-1], flush=True)
        if not args.no_write:
            record("online_update_launches", load_before=load,
                   title="Kernel launches of one online pass: the in-block Python loop against the Triton kernel "
                         "(benchmarks/online_update.py --launches)",
                   tables={"Kernel launches of one pass": rows},
                   figures={f"ratio_{r['m × p'].replace(' × ', 'x')}_{r['norm']}": r["ratio"] for r in rows},
                   comparison="the same pass, counted on CPU tensors (each counted torch operation is one launch "
                              "on CUDA)",
                   notes="Counted on CPU tensors down the CUDA path (benchmarks/launch_counts.py); the Triton "
                         "kernel counted as its one launch, so neither a GPU nor Triton is needed.")
        return
    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        print(f"not run: no CUDA (--device {args.device}; torch {torch.__version__})")
        return
    chosen = args.paths or ["blocked", "per-atom"] + ([] if on_cuda else ["numba"])
    if not on_cuda and {"graph", "graph-loop"} & set(chosen):
        ap.error("--paths graph and graph-loop need --device cuda")
    if args.threads:  # after harness's import: threadpoolctl's inspection resets torch's thread count
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    gpu = f"{torch.cuda.get_device_name(args.device)}; " if on_cuda else ""
    probe = torch.zeros(1, device=args.device, dtype=dtype)
    in_block = "one Triton launch a block" if _online_triton.usable(probe) else "the Python loop"
    notes = (f"{gpu}device {args.device}, {args.dtype}, torch threads {torch.get_num_threads()}, median of up to "
             f"{args.repeats} interleaved passes"
             + ("" if args.budget == float("inf") else f" within {args.budget:g} s a size and rule") + "; "
             f"the blocked pass's in-block steps (unit, ball): {in_block}.")
    print(notes, flush=True)
    rows = []
    for size in args.sizes:
        m, p = (int(v) for v in size.split("x"))
        D, A, B = problem(m, p, args.device, dtype)
        sync = (lambda: backend.synchronize(D))
        for norm in args.rules:
            decay = norm_rule(norm).decay(0.1)
            paths = {"blocked": lambda: updates.online_blocked(D, A, B, norm_rule(norm), decay),
                     "loop": lambda: python_loop(D, A, B, norm, decay),
                     "per-atom": lambda: per_atom_loop(D, A, B, norm, decay),
                     "numba": lambda: updates.online(D, A, B, norm_rule(norm), decay)}
            paths = {name: paths[name] for name in chosen if name in paths}
            for fn in paths.values():
                fn()  # compile / warm up
            if "graph" in chosen:
                paths["graph"] = graphed(lambda: updates.online_blocked(D, A, B, norm_rule(norm), decay))
            if "graph-loop" in chosen:
                paths["graph-loop"] = graphed(lambda: python_loop(D, A, B, norm, decay))
            paths = {name: paths[name] for name in chosen}
            times = {name: [] for name in paths}
            start = time.perf_counter()
            while not times[chosen[0]] or (len(times[chosen[0]]) < args.repeats
                                           and time.perf_counter() - start < args.budget):
                for name, fn in paths.items():  # interleaved: one pass of each path per round
                    times[name] += timed(fn, sync, 1)
            base = statistics.median(times[chosen[0]])
            for name, t in times.items():
                med = statistics.median(t)
                rows.append({"m × p": f"{m} × {p}", "norm": norm, "path": LABELS[name],
                             "ms per pass (median)": round(1e3 * med, 2), "passes": len(t),
                             f"× {chosen[0]}": float(f"{med / base:.3g}")})
                print(rows[-1], flush=True)
        del D, A, B
    if not args.no_write:
        figures = {f"{r['path'].split(' ')[0].replace(',', '')}_over_{chosen[0]}_{r['m × p'].replace(' × ', 'x')}_"
                   f"{r['norm']}": r[f"× {chosen[0]}"] for r in rows if r["path"] != LABELS[chosen[0]]}
        record("online_update" + ("" if args.device == "cpu" else "_cuda")
               + ("_paths_" + "-".join(args.paths) if args.paths else ""), load_before=load,
               title="The online update: the blocked pass against the per-atom loop and the numba kernel "
                     "(benchmarks/online_update.py)" if not on_cuda else
                     "The online update on CUDA: the blocked pass, its Triton kernel and CUDA graphs "
                     "(benchmarks/online_update.py --device cuda)",
               tables={f"ms per pass, median of up to {args.repeats} interleaved passes": rows}, figures=figures,
               comparison="the same statistics and dictionary, paths interleaved in one process", notes=notes)


LABELS = {"blocked": "blocked", "loop": "blocked, in-block Python loop", "graph": "blocked in a CUDA graph",
          "graph-loop": "blocked, Python loop, in a CUDA graph", "per-atom": "per-atom loop (before)",
          "numba": "numba (updates.online)"}


if __name__ == "__main__":
    main()
