"""encode_conv on a GPU (torch, CUDA) against the CPU path, on a batch of images; and the two products
(FFT, direct) by filter size, which sets ``operator.DIRECT_MAX_TAPS``.

    python benchmarks/conv_gpu.py [--device cuda] [--images 256] [--cpu-images 16] [--size 128]

Data: grey 128×128 crops of the photos scikit-learn ships, whitened (sparsolve.data.natural_image_crops),
32 filters 8×8 cut from other crops (unit norm), α = 1.  For each of (circular, admm) and (valid, fista):
the time to a worst relative gap of 1e-3 for ``--images`` images as float32 CUDA tensors, and for
``--cpu-images`` of them as numpy arrays on the host (scaled linearly to the batch: the CPU cost is per
image), both certified in float64 by encode_conv.  Then, on the device, the time of one synthesis and one
analysis of the batch by FFT and directly (cuDNN) for filters 4×4, 8×8, 12×12 and 16×16.

Run by ``bash benchmarks/gpu_check.sh conv``.  With ``--device cpu`` the "device" is the host itself (torch
CPU tensors, which encode_conv runs as numpy views): what it measures is the products' table, FFT against
direct by filter size on the CPU, which sets ``choose_form``'s host rule.  Results go through
benchmarks/harness.py (``conv_cuda`` or ``conv_cpu``), unless ``--no-record``.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from sparsolve import backend
from sparsolve.conv import encode_conv
from sparsolve.conv.operator import ConvOperator, geometry_of
from sparsolve.data import natural_image_crops
from sparsolve.inference import ConvergenceWarning

ALPHA = 1.0


def filters(K, f, seed=3):
    X = natural_image_crops(64, K, seed=seed)
    rng = np.random.default_rng(seed)
    D = np.empty((K, 1, f, f))
    for k in range(K):
        i, j = rng.integers(64 - f + 1, size=2)
        D[k] = X[k, :, i:i + f, j:j + f]
    return D / np.sqrt((D ** 2).sum(axis=(1, 2, 3), keepdims=True))


def timed_encode(X, D, boundary, solver):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        encode_conv(X[:1], D, ALPHA, boundary=boundary, solver=solver, tol=1e-3, max_iter=3)  # warm-up
        backend.synchronize(X)
        t = time.perf_counter()
        Z, info = encode_conv(X, D, ALPHA, boundary=boundary, solver=solver, tol=1e-3, return_info=True)
        backend.synchronize(Z)
    return time.perf_counter() - t, float(info.rel_gap.max()), int(info.n_iter.max()), info.form


def product_times(X, f, device):
    import torch

    D = torch.as_tensor(filters(32, f), dtype=X.dtype, device=X.device)
    g = geometry_of(X, D, "valid")
    Z = torch.randn((X.shape[0], *g.code_shape), dtype=X.dtype, device=X.device)
    out = {}
    for form in ("fft", "direct"):
        op = ConvOperator(D, g, form)
        op.analyze(op.synthesize(Z))  # warm-up (cuDNN picks its algorithms, cuFFT its plans)
        backend.synchronize(X)
        t = time.perf_counter()
        for _ in range(3):
            op.analyze(op.synthesize(Z))
        backend.synchronize(X)
        out[form] = (time.perf_counter() - t) / 3
    return out


def main(argv=None):
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--cpu-images", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu for the smoke run")
    load_before = os.getloadavg()[0]
    X = natural_image_crops(args.size, args.images, seed=0).astype(np.float32)
    D = filters(32, 8).astype(np.float32)
    Xd = torch.as_tensor(X, device=args.device)
    Dd = torch.as_tensor(D, device=args.device)
    rows = []
    for boundary, solver in (("circular", "admm"), ("valid", "fista")):
        t_dev, gap_dev, it_dev, form = timed_encode(Xd, Dd, boundary, solver)
        t_cpu, gap_cpu, it_cpu, _ = timed_encode(X[:args.cpu_images], D, boundary, solver)
        scaled = t_cpu * args.images / args.cpu_images
        rows.append({"boundary": boundary, "solver": solver, f"{args.device} s ({args.images} images)": round(t_dev, 3),
                     "device form": form, "device worst gap": gap_dev, "device iterations": it_dev,
                     f"CPU s ({args.cpu_images} images)": round(t_cpu, 3), "CPU s scaled": round(scaled, 2),
                     "CPU worst gap": gap_cpu, "speed-up": round(scaled / t_dev, 2)})
        print(rows[-1], flush=True)
    products = []
    for f in (4, 8, 12, 16):
        times = product_times(Xd, f, args.device)
        products.append({"filter": f"{f}×{f}", "fft ms": round(1e3 * times["fft"], 2),
                         "direct ms": round(1e3 * times["direct"], 2),
                         "faster": min(times, key=times.get)})
        print(products[-1], flush=True)
    if args.no_record:
        return
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import record

    record(f"conv_{args.device.split(':')[0]}",
           title=f"Convolutional inference on {args.device} against the CPU (benchmarks/conv_gpu.py)",
           tables={f"{args.images} whitened {args.size}×{args.size} crops, 32 filters 8×8, α = {ALPHA}, float32, "
                   "worst relative gap 1e-3 (float64 certificate)": rows,
                   f"one synthesis + one analysis of the batch, 32 filters, valid, on {args.device}": products},
           figures={f"speedup_{r['boundary']}_{r['solver']}": r["speed-up"] for r in rows},
           comparison="equal certified accuracy; the CPU time is measured on a sub-batch and scaled",
           load_before=load_before)


if __name__ == "__main__":
    main()
