"""What the resume check costs: a digest of every consumed batch, against the step it guards.

With a checkpoint, fit digests every batch it consumes (sparsolve/learning/digests.py):
SHA-256 over the host rows that exist anyway, before any copy to a device.  A resume reads the
consumed batches again and digests them.  For two workloads on this machine's CPU, each run
side by side in one process:

* the median step time of fit (from its history) and the median digest time of a batch of the
  same shape and dtype, and their ratio; BLAKE2b beside it, the hash first chosen (hashlib's
  SHA-256 runs on the CPU's SHA instructions where it has them, as this machine's EPYC does);
* the time a resume spends replaying and checking the consumed batches, against the time the
  training of those steps took;
* mix64, the digest a GPU batch gets on its device, timed here with numpy on the host for
  reference only (on a GPU it is a handful of elementwise kernels and one reduction, and is
  not read until a checkpoint is written).

    python benchmarks/resume_digest.py            # about a minute on 2 cores
"""
from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record  # noqa: E402

from sparsolve.data import natural_image_patches  # noqa: E402
from sparsolve.learning.digests import digest  # noqa: E402
from sparsolve.config import FitConfig  # noqa: E402
from sparsolve.learning.fit import _start, fit  # noqa: E402

WORKLOADS = {
    # the CLI's main job: 8×8 whitened-size patches, 128 atoms, batches of 256 (float64)
    "patches 256×64 float64, 128 atoms, cd": dict(data=lambda: natural_image_patches(8, 12_800, seed=0),
                                                  n_atoms=128, alpha=0.05, batch_size=256, steps=40),
    # activations: a transformer layer's width in float32, 1,024 atoms, batches of 1,024
    "activations 1024×768 float32, 1024 atoms, cd": dict(
        data=lambda: np.random.default_rng(0).standard_normal((12_288, 768)).astype(np.float32),
        n_atoms=1024, alpha=8.0, batch_size=1024, steps=8),
}


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    load_before = list(os.getloadavg())
    rows, figures = [], {}
    for name, w in WORKLOADS.items():
        X = w["data"]()
        settings = dict(solver="cd", batch_size=w["batch_size"], seed=0, progress=False)
        batch = X[:w["batch_size"]].copy()
        with tempfile.TemporaryDirectory() as folder:
            ckpt = Path(folder) / "run.npz"
            model = fit(X, w["n_atoms"], w["alpha"], max_steps=w["steps"], checkpoint=ckpt,
                        checkpoint_every=10 ** 6, **settings)
            step = statistics.median(np.diff([0.0, *model.history["seconds"]])[1:])  # the first compiles
            sha = timed(lambda: digest(batch, "sha256"), 50)
            blake = timed(lambda: hashlib.blake2b(batch.data, digest_size=8).digest(), 50)
            mix = timed(lambda: digest(batch, "mix64"), 20)
            # the resume's check alone: restore, then replay every consumed batch up to the first new one
            config = FitConfig(w["n_atoms"], w["alpha"], max_steps=w["steps"] + 1, checkpoint_every=10 ** 6,
                               **{k: v for k, v in settings.items() if k != "progress"})
            start = time.perf_counter()
            _, source, position, _ = _start(X, config, None, ckpt)
            next(source.batches(position))
            resume = time.perf_counter() - start
        trained = model.history["seconds"][-1]
        rows.append({"workload": name, "step (ms)": round(1e3 * step, 2), "sha256 (ms)": round(1e3 * sha, 3),
                     "digest / step": f"{sha / step:.2%}", "sha256 MB/s": round(batch.nbytes / sha / 1e6),
                     "blake2b MB/s": round(batch.nbytes / blake / 1e6), "mix64 numpy (ms)": round(1e3 * mix, 3),
                     "resume's restore and replay (s)": round(resume, 3), "training of those steps (s)": round(trained, 2)})
        key = name.split()[0]
        figures[f"{key}_digest_over_step"] = sha / step
        print(rows[-1], flush=True)
    record("resume_digest", title="Resume check: a digest of every consumed batch against the step "
           "(benchmarks/resume_digest.py)", tables={"CPU, one process": rows}, figures=figures,
           comparison="the same batches, digest and step timed in one process",
           notes="SHA-256 (hashlib) over the host batch that exists anyway; the resume column is the checkpoint's "
                 "restore and the replay of every consumed batch, up to the first new batch.",
           load_before=load_before)


if __name__ == "__main__":
    main()
