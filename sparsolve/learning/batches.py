"""The batch source of :func:`sparsolve.fit`: arrays, memmaps and iterables of batches.

Arrays (numpy, memmap, torch, cupy) are cut into batches of ``batch_size`` rows;
each epoch visits the rows in a permutation drawn from the seed and the epoch
number (``shuffle=False``: in order), the rows of a batch kept in increasing index
order, so a memmap reads each batch's rows in file order.  An iterable yields its
batches as they are; a re-iterable (a list, a Dataset) is walked once per epoch, a
one-pass iterator once.  A position (epoch, batch index) lets a resumed run skip
what it has seen.

The data's *fingerprint* (:func:`fingerprint`) is what a checkpoint records so that
a resume on other data is refused.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from .. import backend
from ..checks import finite_rows
from .reducer import Identity

# Rows hashed into a fingerprint: spread over the data, so that other data of the same
# shape and dtype differs in them, and few, so that a memmap reads almost nothing.
_FINGERPRINT_ROWS = 16


def is_array(X) -> bool:
    try:
        backend.namespace(X)
    except TypeError:
        return False
    return True


def stateful(X) -> bool:
    """A stream that keeps its own position (sparsolve.data.ShardStream): the checkpoint stores its
    ``state_dict()`` and a resume calls ``load_state_dict`` instead of skipping batches."""
    return hasattr(X, "state_dict") and hasattr(X, "load_state_dict")


def check_data(X):
    """Refuse what cannot be data before any work: not an array or iterable, complex,
    not 2-D, or empty."""
    if is_array(X):
        check_batch(X, "X")
        return
    if isinstance(X, (str, bytes)) or not hasattr(X, "__iter__"):
        raise TypeError(f"X must be an array or an iterable of batches, got {type(X).__name__}")


def check_batch(X, name):
    if "complex" in backend.dtype_name(X):
        raise TypeError(f"{name} is complex ({backend.dtype_name(X)}); sparse coding here is real-valued: pass the "
                        "real part, or stack real and imaginary parts as features")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows" if name == "X" else f"{name} is empty; drop empty batches from the data")


def check_storage(X, storage):
    """Refuse, before any work, a storage type that X's library or device cannot hold, and
    bfloat16 data without storage="bfloat16" (its rounding limits what tol can certify)."""
    if storage is None:
        if backend.dtype_name(X) == "bfloat16":
            raise ValueError("the data is bfloat16; pass storage='bfloat16' to learn from it as it is (with tol >= "
                             "0.0078, what its rounding can certify), or convert it to float32 (X.float())")
        return
    reason = backend.cannot_store(X, storage)
    if reason:
        raise ValueError(f"storage={storage!r}: {reason}; pass torch tensors on a device with {storage} "
                         "(torch.from_numpy(X), or device='cuda'), or storage=None")


def check_finite(X, name):
    """A ValueError naming the first row with NaN or Inf; one host sync when all is well."""
    xp = backend.namespace(X)
    if not bool(xp.isfinite(X).all()):
        finite_rows(backend.to_numpy(xp.isfinite(X).all(axis=1)), name)


def fingerprint(X):
    """A JSON-able identity of the data: shape, dtype and a hash of a fixed sample of rows
    for an array (or a list of batches, from its first batch); an iterable's declared
    ``identity`` attribute; None when the stream says nothing about itself."""
    if is_array(X):
        n = X.shape[0]
        rows = np.unique(np.linspace(0, n - 1, min(n, _FINGERPRINT_ROWS)).astype(np.int64))
        # in float64 before the host: a bfloat16 tensor has no numpy form
        sample = np.ascontiguousarray(backend.to_numpy(backend.astype(take(X, rows), "float64")))
        return {"shape": [int(s) for s in X.shape], "dtype": backend.dtype_name(X),
                "rows": hashlib.sha256(sample.tobytes()).hexdigest()[:16]}
    identity = getattr(X, "identity", None)
    if identity is not None:
        return {"identity": str(identity)}
    if isinstance(X, Sequence) and len(X) > 0:
        first = fingerprint(as_batch(X[0], 0))
        return {"batches": len(X), "first": first}
    return None


def describe(fp) -> str:
    if fp is None:
        return "an undeclared stream"
    if "identity" in fp:
        return f"the stream {fp['identity']!r}"
    if "batches" in fp:
        return f"{fp['batches']} batches starting with {describe(fp['first'])}"
    return f"an array of shape {tuple(fp['shape'])}, {fp['dtype']}, rows #{fp['rows']}"


def take(X, rows):
    """Rows ``rows`` (sorted host indices) of the array X; a memmap reads just these rows."""
    batch = backend.take_rows(X, rows)
    if backend.kind(batch) == "numpy" and batch.dtype.kind != "f":
        batch = batch.astype(np.float64)
    return batch


def as_batch(batch, index):
    if not is_array(batch):
        try:
            batch = np.asarray(batch, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"batch {index} is a {type(batch).__name__}, not an array of numbers") from e
    if backend.kind(batch) == "numpy" and batch.dtype.kind not in "fc":
        batch = batch.astype(np.float64)
    check_batch(batch, f"batch {index}")
    return batch


class Source:
    """Batches of an array (by permutation) or an iterable (as given), with positions; ``reducer``
    (learning/reducer.py; default: one process) says which of a global batch's rows, or which
    batches, are this rank's."""

    def __init__(self, X, config, entropy, reducer=None):
        self.X = X
        self.config = config
        self.entropy = entropy
        self.reducer = Identity() if reducer is None else reducer
        self.array = is_array(X)
        self.n = X.shape[0] if self.array else None
        self.per_epoch = math.ceil(self.n / config.batch_size) if self.array else None
        if not self.array and (config.n_epochs or 1) > 1 and iter(X) is X:
            raise ValueError("X is a one-pass iterator, so it cannot give n_epochs > 1; pass a list or another "
                             "re-iterable of batches, or use max_steps")

    def total_steps(self):
        n_epochs, max_steps = self.config.n_epochs, self.config.max_steps
        by_epochs = None if (n_epochs is None or self.per_epoch is None) else n_epochs * self.per_epoch
        if by_epochs is None:
            return max_steps
        return by_epochs if max_steps is None else min(by_epochs, max_steps)

    def batches(self, position):
        """Yield (epoch, index in epoch, batch, warm key) from ``position`` = (epoch, index) on."""
        start_epoch, start_index = position
        epoch, n_epochs = start_epoch, self.config.n_epochs
        while n_epochs is None or epoch < n_epochs:
            skip = start_index if epoch == start_epoch else 0
            produced = False
            for index, batch, key in self._epoch(epoch, skip):
                produced = True
                yield epoch, index, batch, key
            if not produced and skip == 0:
                return  # an exhausted iterator: nothing more will come
            epoch += 1

    def _epoch(self, epoch, skip):
        device = self.config.device
        if self.array:
            bs = self.config.batch_size
            order = (np.random.default_rng([self.entropy, 1, epoch]).permutation(self.n) if self.config.shuffle
                     else np.arange(self.n))
            full = bs >= self.n

            def fetch(index):
                """The batch, or on CUDA a copy under way (its next batch's copy overlaps a step)."""
                rows = self.reducer.local_rows(np.sort(order[index * bs:(index + 1) * bs]))
                batch = take(self.X, rows)
                if device in (None, "cpu") or backend.on_gpu(batch):
                    return lambda: backend.to_device(batch, device)
                # host rows (numpy, a memmap's, a torch CPU tensor's) to CUDA: pinned, non-blocking,
                # on a side stream
                return backend.start_copy(batch, device)

            ahead = fetch(skip) if skip < self.per_epoch else None
            for index in range(skip, self.per_epoch):
                current, ahead = ahead, (fetch(index + 1) if index + 1 < self.per_epoch else None)
                yield index, current(), ("full" if full else None)
        elif stateful(self.X):  # it resumes itself (load_state_dict): its first batch is batch `skip`
            for index, batch in enumerate(self.X, start=skip):
                yield index, backend.to_device(as_batch(batch, index), device), None
        else:
            for index, batch in self.reducer.local_batches(self.X):
                if index < skip:
                    continue
                yield index, backend.to_device(as_batch(batch, index), device), None
