"""What a run has read, so that a resume can be refused on other data.

A checkpoint of :func:`sparsolve.fit` records

* the data's *identity* (:func:`identity`): an array's shape and dtype; a shard stream's
  contents, each shard's name, shape, dtype, size and hash (so the same shards are the same data
  whatever the directory's path, and a replaced shard is other data); a stream's declared
  ``identity``; and
* a 64-bit *digest of every batch the run consumed* (:class:`Digests`), keyed by
  (epoch, batch in the epoch, part, parts) with its step number.

A resume replays the consumed batches -- an array's rows in the run's order, an iterable's
batches as it gives them again -- and refuses at the first whose digest differs, naming its step.
Rows the run had not reached may change: the resumed run is then exactly the uninterrupted run
on the new data.  Shard streams and other streams that resume themselves (``state_dict``) are
not replayed: their identity covers what they will give.

The digest.  On the host, where every batch of an array, memmap or host stream exists as a numpy
array anyway, it is SHA-256 (hashlib, truncated to 64 bits) of the batch's shape, dtype and bytes.
SHA-256 rather than BLAKE2b because current CPUs run it in hardware (x86's SHA extensions,
ARMv8's): on this project's 2-core EPYC under load, 1.4 GB/s against BLAKE2b's 0.8 GB/s on a batch
of 8×8 patches, where it costs 0.2% of a step, and about 2% of a step on 1,024 rows of 768-wide
float32 activations with 1,024 atoms (benchmarks/resume_digest.py).
A batch that lies on a GPU is not copied to the host for it: ``"mix64"`` reduces it there, with
integer arithmetic that is exact in every library, to Σ_k mix(bits_k ⊕ salt_k) mod 2⁶⁴, where
bits_k are the raw bits of entry k, salt_k depends on its row and column and mix is SplitMix64's
finaliser: a few elementwise kernels and one reduction, no host transfer and no wait.  The sum
of mixed values changes with any change of entries (a plain weighted sum would miss two sign
flips: 2⁶³·(w₁ + w₂) ≡ 0), and stays on the device until a checkpoint reads the pending digests
at once.  A run keeps the kind its first batch chose, and a resume recomputes the kind its checkpoint used.

Data-parallel runs (the fit's reducer, reducer.py): an array's step is cut into P parts, and rank r
digests its own part (r, P); a stream's batch is digested by the rank that reads it.  Rank 0
gathers the digests when it writes a checkpoint, so a checkpoint of P ranks can be resumed at any
world size: each rank re-reads the parts p ≡ rank (mod its world size), and every rank raises the
same error.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .. import backend

#: Columns of the digest table a checkpoint stores (int64; a digest is its 64 bits as a signed int).
COLUMNS = ("step", "epoch", "index", "part", "parts", "digest")
KINDS = ("sha256", "mix64")

_MASK = (1 << 64) - 1
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # SplitMix64's finaliser
_SALT = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)  # per row, per column


def _signed(v: int) -> int:
    v &= _MASK
    return v - (1 << 64) if v >= 1 << 63 else v


def _shift(x, k):
    """Logical right shift of int64 x by k: the arithmetic shift every library has, masked."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def digest(batch, how):
    """The batch's 64-bit digest as a signed int ("sha256", host) or a device int64 scalar ("mix64")."""
    if how == "sha256":
        bits = backend.to_numpy(backend.bits(batch))  # bfloat16 has no numpy form; its bits do
        h = hashlib.sha256()
        h.update(f"{tuple(batch.shape)} {backend.dtype_name(batch)}|".encode())
        h.update(np.ascontiguousarray(bits).data)
        return _signed(int.from_bytes(h.digest()[:8], "little"))
    if how != "mix64":
        raise ValueError(f"unknown digest {how!r}; expected one of {KINDS}")
    n, p = batch.shape
    x = backend.astype(backend.bits(batch), "int64")
    salt = (backend.like(np.arange(n, dtype=np.int64) * np.int64(_signed(_SALT[0])), x)[:, None]
            + backend.like(np.arange(p, dtype=np.int64) * np.int64(_signed(_SALT[1])) + _width_salt(batch), x)[None, :])
    x = x ^ salt
    x = (x ^ _shift(x, 30)) * _signed(_MIX[0])
    x = (x ^ _shift(x, 27)) * _signed(_MIX[1])
    x = x ^ _shift(x, 31)
    return x.sum()


def _width_salt(batch):
    """Salt from the dtype, so that the same bits in float32 and in int32 differ."""
    return np.int64(_signed(int.from_bytes(hashlib.sha256(backend.dtype_name(batch).encode()).digest()[:8],
                                           "little")))


def kind_for(batch) -> str:
    """The digest a run whose first batch is ``batch`` keeps: mix64 on a GPU, else sha256."""
    return "mix64" if backend.on_gpu(batch) else "sha256"


class DataChanged(ValueError):
    """A resume's data differs from what the checkpoint's run read."""


class Digests:
    """The digest table of the batches a run consumed, and the check of a resumed run's replay.

    ``reducer``: the fit's (reducer.py), which says this rank's place and gathers the ranks'
    digests; ``table``: a restored checkpoint's table (the steps read before the resume), whose
    entries the replay must reproduce; ``how``: its digest kind (None: chosen by the first batch)."""

    def __init__(self, reducer, how=None, table=None):
        self.reducer = reducer
        self.how = how
        self.table = np.zeros((0, len(COLUMNS)), np.int64) if table is None else np.asarray(table, np.int64)
        self.new = []  # (step, epoch, index, part, parts, digest as int or device scalar)
        self._checks = []  # (table row, replayed digest) of the replay
        self._missing = None  # the first table row the replay could not find
        self._lookup = {tuple(int(v) for v in row[1:5]): row for row in self.table}

    # ---- recording ---------------------------------------------------------------------------
    def of(self, batch):
        """The batch's digest, of the kind the run keeps (chosen by its first batch)."""
        if self.how is None:
            self.how = kind_for(batch)
        return digest(batch, self.how)

    def add(self, step, epoch, index, part, parts, value):
        """Record a consumed batch (``value``: its :meth:`of`)."""
        self.new.append((step, epoch, index, part, parts, value))

    def flush(self):
        """The whole table on rank 0 (every rank's new digests gathered; None on the others)."""
        rows = _materialise(self.new)
        self.new = []
        rows = self.reducer.gather(rows)  # every rank's parts
        if not self.reducer.is_root:
            return None
        # by (step, part): every new step comes after the table's, so only the new rows need sorting
        self.table = np.concatenate([self.table, rows[np.lexsort((rows[:, 3], rows[:, 0]))]])
        return self.table

    # ---- the replay of a resume ----------------------------------------------------------------
    def expected(self, key):
        """The restored table's row of (epoch, index, part, parts), or None."""
        return self._lookup.get(tuple(int(v) for v in key))

    def mine(self):
        """The table rows this rank replays: parts p ≡ rank (mod world size), by step."""
        P, r = self.reducer.world_size, self.reducer.rank
        return [row for row in self.table if int(row[3]) % P == r]

    def check(self, row, batch):
        """Compare the replayed ``batch`` with the table ``row`` (read at :meth:`verify`)."""
        self._checks.append((row, digest(batch, self.how)))

    def missing(self, row):
        if self._missing is None or row[0] < self._missing[0]:
            self._missing = row

    def verify(self, where, hint=""):
        """Raise :class:`DataChanged` on every rank if a replayed batch differs from the table
        (the first such step on any rank), naming ``where`` (the checkpoint); ``hint`` ends it."""
        got = _materialise([(*row[:5], value) for row, value in self._checks])
        bad = [(int(row[0]), "differs") for (row, _), value in zip(self._checks, got[:, 5]) if value != row[5]]
        if self._missing is not None:
            bad.append((int(self._missing[0]), "missing"))
        first = min(bad) if bad else None
        self._checks, self._missing = [], None
        first = self._first_on_any_rank(first)
        if first is None:
            return
        step, what = first
        row = next(r for r in self.table if int(r[0]) == step)
        said = ("differs from the one that run read" if what == "differs"
                else "is no longer in the data (it has fewer batches)")
        raise DataChanged(f"{where} was written on other data: the batch of step {step} (epoch {int(row[1])}, "
                          f"batch {int(row[2])}) {said}; resume on the data it read, or use another checkpoint "
                          f"path{hint}")

    def _first_on_any_rank(self, first):
        """The smallest (step, what) over the ranks (None where a rank found nothing)."""
        P, r = self.reducer.world_size, self.reducer.rank
        codes = np.zeros(2 * P)
        if first is not None:
            codes[2 * r] = first[0]
            codes[2 * r + 1] = 1.0 if first[1] == "differs" else 2.0
        codes = self.reducer.sum(codes, "all-reduce of the resume's data check")
        found = [(int(codes[2 * q]), "differs" if codes[2 * q + 1] == 1 else "missing")
                 for q in range(P) if codes[2 * q + 1] > 0]
        return min(found) if found else None


def _materialise(rows):
    """(n, 6) int64 host table from rows whose digest may be a device scalar (one read for all)."""
    if not rows:
        return np.zeros((0, len(COLUMNS)), np.int64)
    values = [r[5] for r in rows]
    on_device = [i for i, v in enumerate(values) if backend.is_array(v)]
    if on_device:
        read = backend.to_numpy(backend.concat([values[i].reshape(1) for i in on_device]))
        for i, v in zip(on_device, read):
            values[i] = int(v)
    return np.array([[*map(int, r[:5]), int(v)] for r, v in zip(rows, values)], dtype=np.int64)


# ---- identity ---------------------------------------------------------------------------------

def identity(X):
    """A JSON-able identity of the data, compared as a whole at a resume (module docstring)."""
    if backend.is_array(X):
        return {"shape": [int(s) for s in X.shape], "dtype": backend.dtype_name(X)}
    own = getattr(X, "fingerprint", None)
    if callable(own):
        return own()
    declared = getattr(X, "identity", None)
    if declared is not None:
        return {"identity": str(declared)}
    return {"stream": "batches"}


def describe(fp) -> str:
    if fp is None:
        return "an undeclared stream"
    if "identity" in fp:
        return f"the stream {fp['identity']!r}"
    if "shards" in fp:
        rows = sum(s[1] for s in fp["shards"])
        return f"{len(fp['shards'])} shards of {rows} rows"
    if "stream" in fp:
        return "a stream of batches"
    if "batches" in fp:
        return f"{fp['batches']} batches starting with {describe(fp['first'])}"
    rows = f", rows #{fp['rows']}" if "rows" in fp else ""
    return f"an array of shape {tuple(fp['shape'])}, {fp['dtype']}{rows}"


def difference(saved, current) -> str:
    """What differs between two identities, in words."""
    if saved and current and "shards" in saved and "shards" in current:
        old = {s[0]: s for s in saved["shards"]}
        new = {s[0]: s for s in current["shards"]}
        for name in sorted(set(old) | set(new)):
            if name not in new:
                return f"shard {name} is missing"
            if name not in old:
                return f"shard {name} was not there"
            if old[name] != new[name]:
                return f"shard {name} differs (its size or contents changed)"
    return f"it saw {describe(saved)}, this fit has {describe(current)}"
