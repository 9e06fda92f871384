"""The batch source of :func:`sparsolve.fit`: arrays, memmaps and iterables of batches.

Arrays (numpy, memmap, torch, cupy) are cut into batches of ``batch_size`` rows;
each epoch visits the rows in a permutation drawn from the seed and the epoch
number (``shuffle=False``: in order), the rows of a batch kept in increasing index
order, so a memmap reads each batch's rows in file order.  An iterable yields its
batches as they are; a re-iterable (a list, a Dataset) is walked once per epoch, a
one-pass iterator once.  A position (epoch, batch index) lets a resumed run skip
what it has seen.

With a checkpoint, each consumed batch's digest is recorded, and a resumed run reads the
consumed batches again and refuses other data (digests.py).  :func:`fingerprint`, a hash of
a sample of rows, is what fit_amortized's checkpoints record.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from .. import backend
from ..checks import finite_rows
from .digests import describe  # noqa: F401 -- with fingerprint, for fit_amortized's checkpoints
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


def scan_finite(X, name="X"):
    """Refuse, before any training, an in-memory array with NaN or Inf, naming the first such row
    of the user's data.  Rows are checked in chunks of about 64 MB of entries, so the temporary
    stays small, and read from a GPU in one transfer."""
    xp = backend.namespace(X)
    n, p = X.shape
    step = max(1, (64 << 20) // max(1, p))
    flags = [xp.isfinite(X[lo:lo + step]).all() for lo in range(0, n, step)]
    ok = (backend.to_numpy(backend.concat([f.reshape(1) for f in flags])) if backend.is_array(flags[0])
          else np.array(flags))
    if ok.all():
        return
    lo = int(np.argmin(ok)) * step
    rows = backend.to_numpy(xp.isfinite(X[lo:lo + step]).all(axis=1))
    _non_finite(name, lo + int(np.argmin(rows)))


def _non_finite(name, row, where=""):
    raise ValueError(f"{name} has NaN or Inf values (first in row {row}{where}); drop or impute those rows first")


def fingerprint(X):
    """fit_amortized's record of its data (fit records more: digests.py): shape, dtype and a
    hash of a fixed sample of rows for an array (or a list of batches, from its first batch); an
    iterable's declared ``identity`` attribute; None when the stream says nothing about itself."""
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


def take(X, rows):
    """Rows ``rows`` (sorted host indices) of the array X; a memmap reads just these rows."""
    return computable(backend.take_rows(X, rows))


def computable(batch):
    """The batch in a type the solvers take: numpy integers as float64, float16 as float32 (exact)."""
    if backend.kind(batch) == "numpy" and batch.dtype.kind != "f":
        return batch.astype(np.float64)
    if backend.dtype_name(batch) == "float16":
        return backend.astype(batch, "float32")
    return batch


def as_batch(batch, index):
    if not is_array(batch):
        try:
            batch = np.asarray(batch, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"batch {index} is a {type(batch).__name__}, not an array of numbers") from e
    if backend.kind(batch) == "numpy" and batch.dtype.kind == "c":
        check_batch(batch, f"batch {index}")  # complex: refused
    batch = computable(batch)
    check_batch(batch, f"batch {index}")
    return batch


class Source:
    """Batches of an array (by permutation) or an iterable (as given), with positions; ``reducer``
    (learning/reducer.py; default: one process) says which of a global batch's rows, or which
    batches, are this rank's.

    ``digests`` (a :class:`~.digests.Digests`, with a checkpoint): each consumed batch's digest
    is recorded, and a resume first replays the batches its table lists and refuses other data
    (naming ``where``, the checkpoint).  Streams that resume themselves are neither recorded nor
    replayed: their identity covers them.  ``step``: the steps taken before ``position``."""

    def __init__(self, X, config, entropy, reducer=None, digests=None, where="the checkpoint", step=0):
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
        self.digests = None if stateful(X) else digests
        self.where = where
        self.step = step
        # the replay of a resume, for iterables: keys of the table's rows seen again
        self._checking = self.digests is not None and self.digests.table.size > 0
        self._seen = set()

    def total_steps(self):
        n_epochs, max_steps = self.config.n_epochs, self.config.max_steps
        by_epochs = None if (n_epochs is None or self.per_epoch is None) else n_epochs * self.per_epoch
        if by_epochs is None:
            return max_steps
        return by_epochs if max_steps is None else min(by_epochs, max_steps)

    def batches(self, position):
        """Yield (epoch, index in epoch, batch, warm key) from ``position`` = (epoch, index) on,
        after checking a resume's consumed batches (refused with DataChanged)."""
        start_epoch, start_index = position
        if self._checking and self.array:
            self._replay_rows()
        elif self._checking:
            for epoch in range(start_epoch):  # the passes before the resumed one, read again
                for _ in self._epoch(epoch, math.inf):
                    pass
        epoch, n_epochs = start_epoch, self.config.n_epochs
        while n_epochs is None or epoch < n_epochs:
            skip = start_index if epoch == start_epoch else 0
            produced = False
            for index, batch, key in self._epoch(epoch, skip):
                self._verify(position)
                produced = True
                yield epoch, index, batch, key
            self._verify(position)
            if not produced and skip == 0:
                return  # an exhausted iterator: nothing more will come
            epoch += 1

    def _epoch(self, epoch, skip):
        device = self.config.device
        digests = self.digests
        if self.array:
            bs = self.config.batch_size
            order = self._order(epoch)
            full = bs >= self.n
            part, parts = self.reducer.rank, self.reducer.world_size
            memmap = isinstance(self.X, np.memmap)

            def fetch(index):
                """(the batch, or on CUDA a copy under way (its next batch's copy overlaps a step); its
                digest, taken from the rows as read, before any copy)."""
                rows = self.reducer.local_rows(np.sort(order[index * bs:(index + 1) * bs]))
                batch = take(self.X, rows)
                if memmap:  # not scanned up front (that would read the file): its rows as they come
                    finite = np.isfinite(batch).all(axis=1)
                    if not finite.all():
                        _non_finite("X", int(rows[np.argmin(finite)]), f", read in epoch {epoch}, batch {index}")
                value = None if digests is None else digests.of(batch)
                if device in (None, "cpu") or backend.on_gpu(batch):
                    return (lambda: backend.to_device(batch, device)), value
                # host rows (numpy, a memmap's, a torch CPU tensor's) to CUDA: pinned, non-blocking,
                # on a side stream
                return backend.start_copy(batch, device), value

            ahead = fetch(skip) if skip < self.per_epoch else None
            for index in range(skip, self.per_epoch):
                (current, value), ahead = ahead, (fetch(index + 1) if index + 1 < self.per_epoch else None)
                self._consumed(epoch, index, part, parts, value)
                yield index, current(), ("full" if full else None)
        elif stateful(self.X):  # it resumes itself (load_state_dict): its first batch is batch `skip`
            for index, batch in enumerate(self.X, start=skip):
                yield index, backend.to_device(as_batch(batch, index), device), None
        else:
            P, rank = self.reducer.world_size, self.reducer.rank
            for index, batch in self.reducer.local_batches(self.X):
                own = index - P + 1 + rank  # the stream index of this rank's batch
                if index < skip:
                    self._replay(epoch, own, batch)
                    continue
                batch = as_batch(batch, index)
                if digests is not None:
                    self._consumed(epoch, own, 0, 1, digests.of(batch))
                yield index, backend.to_device(batch, device), None

    def _order(self, epoch):
        return (np.random.default_rng([self.entropy, 1, epoch]).permutation(self.n) if self.config.shuffle
                else np.arange(self.n))

    def _consumed(self, epoch, index, part, parts, value):
        self.step += 1
        if value is not None:
            self.digests.add(self.step, epoch, index, part, parts, value)

    # ---- the replay of a resume ------------------------------------------------------------------
    def _replay_rows(self):
        """An array's consumed parts, read again in the run's order and digested."""
        bs, orders = self.config.batch_size, {}
        for row in self.digests.mine():
            epoch, index, part, parts = (int(v) for v in row[1:5])
            if epoch not in orders:
                orders[epoch] = self._order(epoch)
            rows = np.array_split(np.sort(orders[epoch][index * bs:(index + 1) * bs]), parts)[part]
            self.digests.check(row, take(self.X, rows))
        self._checking = False
        self.digests.verify(self.where)

    def _replay(self, epoch, own, batch):
        """A skipped batch of an iterable: compared with the table if the run recorded it."""
        if not self._checking:
            return
        row = self.digests.expected((epoch, own, 0, 1))
        if row is not None:
            self._seen.add((epoch, own))
            self.digests.check(row, as_batch(batch, own))

    def _verify(self, position):
        """After an iterable's replay (at its first new batch, or the end of its pass): every
        table row before ``position`` must have been seen again, and every digest must agree."""
        if not self._checking:
            return
        self._checking = False
        hint = "" if isinstance(self.X, Sequence) else (
            " (a stream that gives other batches on each pass, e.g. a shuffled DataLoader, resumes only if it "
            "keeps its own position: state_dict and load_state_dict)")
        if self.reducer.world_size == 1:  # at P ranks, batches of an incomplete last group are not read
            for row in self.digests.table:
                key = (int(row[1]), int(row[2]))
                if key < tuple(position) and key not in self._seen:
                    self.digests.missing(row)
        self.digests.verify(self.where, hint)
