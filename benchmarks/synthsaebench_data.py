"""SynthSAEBench's synthetic models, built by SAELens's own code and cached on disk, and the
samples every method of ``benchmarks/synthsaebench.py`` trains and is scored on.

Sizes (``SIZES``):

* ``16k``: SynthSAEBench-16k, the published config (Chanin & Garriga-Alonso 2026; SAELens
  ``docs/synth_sae_bench.md`` and ``synth-sae-bench-experiments/create_synth_bench_16k_model.py``):
  16,384 features in 768 dimensions, Zipfian firing (exponent 0.5, p 0.4 → 5e-4), a hierarchy of
  128 roots (branching 4, depth 3, every child set mutually exclusive, probabilities compensated,
  children scaled by their parent), low-rank correlations (rank 25, scale 0.1), 100 steps of
  orthogonalisation (lr 3e-4), magnitudes linear 5 → 4 with folded-normal spread (0.5, 0.5),
  bias of norm 0.5, seed 42.  SAEs of width 4,096 (the benchmark's recommendation).  Built
  here by ``SyntheticModel(config)`` on this machine: the same config and seed as the
  published model, not its bytes (that one was built on CUDA, whose generator draws other
  numbers; nothing is downloaded).
* ``cpu``: the same model a quarter the size for a CPU: 4,096 features in 256 dimensions, 32
  roots, dictionaries of width 1,024 (a quarter of the features, as 4,096 is of 16,384); every
  other setting as published.  Superposition is 16 features a dimension (21 in the 16k model);
  its true L0 is 16 (34), 12.2 over the 1,024 most frequent features (25 over the 4,096 most
  frequent in the 16k model), i.e. an L0 a dimension of 0.063 against 0.044.
* ``tiny``: 256 features in 32 dimensions, no orthogonalisation, width 64: for the tests.

The target L0s scale with the true L0 over the ``width`` most frequent features: the
published 20 and 25 on the 16k model (true 25) are 10 and 12 on the CPU copy (true 12.2).

Cache (``benchmarks/_out/synthsaebench/<size>/``, outside git): ``model/`` (SAELens's own
``SyntheticModel.save`` format), ``train.npy`` (a float32 pool of training samples, drawn
from the model under torch seed 1,000,003, read by every method in the same order), and
``heldout_*.npy`` (the held-out samples' ground-truth feature activations, stored sparse,
drawn under seed 2,000,003).  Everything is rebuilt when missing and never overwritten.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "_out" / "synthsaebench"
TRAIN_SEED = 1_000_003
HELDOUT_SEED = 2_000_003


@dataclass(frozen=True)
class Size:
    """One synthetic model and the SAE shape trained on it."""

    num_features: int
    """ground-truth features"""
    hidden_dim: int
    """activation dimensions d"""
    root_nodes: int
    """roots of the hierarchy (128 in the published model: 128 · (1 + 4 + 16 + 64) = 10,880 features in trees)"""
    width: int
    """latents of every SAE and atoms of sparsolve's dictionary"""
    matryoshka_widths: tuple
    """Matryoshka's inner widths (the published [128, 512, 2048] at width 4,096, scaled)"""
    targets: tuple
    """the L0s the comparison is made at"""
    orthogonalization_steps: int = 100
    """SAELens's orthogonalisation steps (the published 100; 0 for the tiny test model)"""
    pool: int = 2 ** 22
    """training samples cached on disk (one pass for the longest run)"""
    heldout: int = 65_536
    """held-out samples for the final scores"""
    curve_heldout: int = 16_384
    """held-out samples for the learning-curve checkpoints (the first of the held-out set)"""
    batch: int = 1024
    """training batch (SynthSAEBench's recommendation)"""


SIZES = {
    "16k": Size(16_384, 768, 128, 4_096, (128, 512, 2_048), (20, 25), pool=2 ** 20, heldout=65_536),
    "cpu": Size(4_096, 256, 32, 1_024, (32, 128, 512), (10, 12)),
    "tiny": Size(256, 32, 4, 64, (8, 32), (3, 4), orthogonalization_steps=0, pool=2 ** 14, heldout=2_048,
                 curve_heldout=1_024, batch=256),
}


def model_config(size: Size, seed: int = 42):
    """The published SynthSAEBench-16k config with this size's features, dimensions and roots."""
    from sae_lens.synthetic import (FoldedNormalMagnitudeConfig, HierarchyConfig, LinearMagnitudeConfig,
                                    LowRankCorrelationConfig, OrthogonalizationConfig, SyntheticModelConfig,
                                    ZipfianFiringProbabilityConfig)

    return SyntheticModelConfig(
        num_features=size.num_features, hidden_dim=size.hidden_dim,
        firing_probability=ZipfianFiringProbabilityConfig(max_prob=0.4, min_prob=5e-4, exponent=0.5),
        hierarchy=HierarchyConfig(total_root_nodes=size.root_nodes, branching_factor=4, max_depth=3,
                                  mutually_exclusive_portion=1.0, mutually_exclusive_min_depth=0,
                                  compensate_probabilities=True, scale_children_by_parent=True),
        mean_firing_magnitudes=LinearMagnitudeConfig(start=5.0, end=4.0),
        std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=0.5, std=0.5),
        correlation=LowRankCorrelationConfig(correlation_scale=0.1, rank=25),
        orthogonalization=(OrthogonalizationConfig(num_steps=size.orthogonalization_steps, lr=3e-4)
                           if size.orthogonalization_steps else None),
        bias=0.5, seed=seed)


def folder(name: str, cache: Path | None = None) -> Path:
    return Path(cache or CACHE) / name


def _atomic_save(path: Path, array: np.ndarray):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def load_model(name: str, cache: Path | None = None, log=print, device: str = "cpu"):
    """The size's SyntheticModel on ``device``, built there by SAELens (and saved) on the first
    call, loaded after.  (Built on CUDA it draws other numbers than on the CPU: the cache is
    per machine kind, and the build records its device.)"""
    from sae_lens.synthetic import SyntheticModel

    size = SIZES[name]
    path = folder(name, cache) / "model"
    if not (path / "synthetic_model_config.json").exists():
        log(f"# building the {name} synthetic model with SAELens ({size.num_features:,} features, "
            f"{size.hidden_dim} dims, {size.orthogonalization_steps} orthogonalisation steps) ...")
        start = time.perf_counter()
        model = SyntheticModel(model_config(size), device=device)
        tmp = path.with_name(f".model.{os.getpid()}.tmp")
        model.save(tmp)
        (tmp / "built.json").write_text(json.dumps({"seconds": time.perf_counter() - start, "load": os.getloadavg(),
                                                    "torch_threads": torch.get_num_threads(), "device": device}))
        os.replace(tmp, path)
        log(f"# built in {time.perf_counter() - start:.0f} s: {path}")
    return SyntheticModel.load_from_disk(path, device=device)


def _draw(model, n, seed, chunk, hidden):
    """n samples of the model under a fixed torch seed, in chunks (the generator is dense)."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for i in range(0, n, chunk):
            feats = model.activation_generator.sample(min(chunk, n - i))
            yield feats, (model.feature_dict(feats) if hidden else None)


def train_pool(name: str, model=None, cache: Path | None = None, log=print) -> np.ndarray:
    """The training pool (float32 memmap, ``Size.pool`` rows), drawn once and cached."""
    size = SIZES[name]
    path = folder(name, cache) / "train.npy"
    if not path.exists():
        model = model or load_model(name, cache, log)
        log(f"# drawing {size.pool:,} training samples from the {name} model ...")
        start = time.perf_counter()
        tmp = path.with_name(f".train.{os.getpid()}.tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(size.pool, size.hidden_dim))
        row = 0
        for _, hidden in _draw(model, size.pool, TRAIN_SEED, 8192, hidden=True):
            out[row:row + len(hidden)] = hidden.cpu().numpy()
            row += len(hidden)
        out.flush()
        del out
        os.replace(tmp, path)
        log(f"# drawn in {time.perf_counter() - start:.0f} s: {path}")
    return np.load(path, mmap_mode="r")


@dataclass
class Heldout:
    """Held-out ground-truth feature activations, stored sparse (CSR), replayed by SAELens's
    evaluator as its ``activations_generator``: ``sample(n)`` returns the next n rows, dense."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    num_features: int
    limit: int | None = None
    position: int = field(default=0)
    device: str = "cpu"

    @property
    def n(self):
        return len(self.indptr) - 1 if self.limit is None else min(self.limit, len(self.indptr) - 1)

    def first(self, n):
        """The same set, its first n rows only (the learning curves' checkpoints)."""
        return Heldout(self.indptr, self.indices, self.values, self.num_features, min(n, self.n), device=self.device)

    def reset(self):
        self.position = 0
        return self

    def sample(self, n):
        if self.position + n > self.n:
            raise ValueError(f"the held-out set has {self.n:,} rows; {self.position + n:,} were asked for")
        lo, hi = self.indptr[self.position], self.indptr[self.position + n]
        out = torch.zeros(n, self.num_features)
        rows = np.repeat(np.arange(n), np.diff(self.indptr[self.position:self.position + n + 1]))
        out[torch.from_numpy(rows), torch.from_numpy(self.indices[lo:hi].astype(np.int64))] = torch.from_numpy(
            self.values[lo:hi])
        self.position += n
        return out.to(self.device)

    __call__ = sample

    def firing_counts(self):
        return np.bincount(self.indices[:self.indptr[self.n]], minlength=self.num_features)


def heldout(name: str, model=None, cache: Path | None = None, log=print, device: str = "cpu") -> Heldout:
    """The held-out set (``Size.heldout`` rows), drawn once under its own seed and cached."""
    size = SIZES[name]
    base = folder(name, cache)
    paths = {k: base / f"heldout_{k}.npy" for k in ("indptr", "indices", "values")}
    if not all(p.exists() for p in paths.values()):
        model = model or load_model(name, cache, log)
        log(f"# drawing {size.heldout:,} held-out samples from the {name} model ...")
        indptr, indices, values = [np.zeros(1, np.int64)], [], []
        for feats, _ in _draw(model, size.heldout, HELDOUT_SEED, 4096, hidden=False):
            feats = feats.cpu()
            nz = feats.nonzero()
            counts = np.bincount(nz[:, 0].numpy(), minlength=len(feats))
            indptr.append(indptr[-1][-1] + np.cumsum(counts))
            indices.append(nz[:, 1].numpy().astype(np.int32))
            values.append(feats[nz[:, 0], nz[:, 1]].numpy().astype(np.float32))
        arrays = {"indptr": np.concatenate(indptr), "indices": np.concatenate(indices),
                  "values": np.concatenate(values)}
        for k in ("indices", "values", "indptr"):  # indptr last: its presence marks a complete set
            _atomic_save(paths[k], arrays[k])
    a = {k: np.load(p) for k, p in paths.items()}
    return Heldout(a["indptr"], a["indices"], a["values"], size.num_features, device=device)


def describe(name: str) -> dict:
    """The size's settings and the SAELens model config, as JSON (for the report)."""
    size = SIZES[name]
    return {"size": name, **asdict(size), "model_config": model_config(size).to_dict()}


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Build and cache a SynthSAEBench model, its training pool and held-out set")
    p.add_argument("size", choices=sorted(SIZES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model-only", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.size, args.cache, device=args.device)
    if not args.model_only:
        heldout(args.size, model, args.cache)
        train_pool(args.size, model, args.cache)


if __name__ == "__main__":
    main()
