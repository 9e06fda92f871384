"""Data-parallel ``fit`` on torch.distributed: the all-reduce seam, and nothing else of the training loop.

When a default process group is initialised (``torch.distributed.is_initialized()``,
e.g. under ``torchrun``), ``fit`` runs data-parallel over its P ranks; otherwise every
function here returns its input unchanged and costs a dictionary look-up
(``sys.modules``: without torch imported no group can exist, so numpy users never
import torch).

The global batch.  Step k's global batch is the one a single-process fit with the
same seed and ``batch_size`` would see, cut into P parts:

* an array or memmap (the whole data set, the same on every rank): the rows of
  step k are drawn from the shared seed exactly as on one process, sorted, and rank
  r keeps the r-th of P contiguous runs of them (:func:`local_part`), so each rank
  reads only its rows and an epoch reads every row once over all ranks;
* an iterable (the same stream on every rank): global step k is the batches
  kP, …, kP + P − 1, and rank r keeps batch kP + r (:func:`enumerate_batches`); the
  one-process equivalent is the stream of those groups concatenated.

The update is exact.  With b_r rows on rank r and b = Σ_r b_r, the statistics of the
global batch are the row-weighted sums of the ranks' own,

    A = ZᵀZ / b = Σ_r b_r A_r / b,      B = ZᵀX / b = Σ_r b_r B_r / b,

so one all-reduce (:func:`step_sums`) gives every rank the statistics, and so the
update, the norm rule and the next dictionary, of the single-process step (to float
rounding).  The same call sums the per-atom use counts that drive the dead-atom
counters; the history figures are row-weighted means (:func:`mean_figures`); the
first dictionary and the resampled atoms are drawn from inputs gathered from every
rank (:func:`gather_rows`) in global-batch order, with the seed shared at start
(:func:`agree`), so every rank draws the same atoms.

Failure.  A collective that does not complete raises :class:`DistributedError`
naming the step's collective, the time waited and the way out.  A rank that dies
closes its connections and ends the others at once; a rank that hangs ends them
after the process group's timeout (``init_process_group(timeout=...)``; the command
line under torchrun sets ``SPARSOLVE_TIMEOUT_S``, default :data:`DEFAULT_TIMEOUT_S`).
The timeout must exceed the slowest step and rank 0's checkpoint write, which the
other ranks wait for.  On NCCL a timed-out collective is ended by torch's watchdog,
which aborts the process with its own message (TORCH_NCCL_ASYNC_ERROR_HANDLING); on
gloo the wait raises, and the error above is what the user reads.  Checkpoints are
written by rank 0 alone, atomically (sparsolve.io), so a failure leaves the last one
intact.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import warnings

import numpy as np

from .. import backend

# The collective timeout that init_from_env gives the process group: long enough for a
# slow step plus rank 0's checkpoint write of wide running statistics, short enough that
# a hung rank does not hold a cluster for torch's default 30 minutes.
DEFAULT_TIMEOUT_S = 600.0
TIMEOUT_ENV = "SPARSOLVE_TIMEOUT_S"


class DistributedError(RuntimeError):
    """A collective of a data-parallel fit failed: another rank died, hung or disagreed."""


# ---- detection ------------------------------------------------------------------------


def _dist():
    """torch.distributed when a default process group is up, else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    return dist if dist.is_available() and dist.is_initialized() else None


def active() -> bool:
    return _dist() is not None


def world_size() -> int:
    dist = _dist()
    return 1 if dist is None else dist.get_world_size()


def rank() -> int:
    dist = _dist()
    return 0 if dist is None else dist.get_rank()


def is_rank0() -> bool:
    return rank() == 0


def init_from_env(device="auto") -> bool:
    """Initialise the default process group from torchrun's environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT) if it set one and no group exists yet; True if a group is up.

    NCCL for ``device="cuda"`` (each rank on GPU LOCAL_RANK), gloo otherwise; the collective
    timeout is ``SPARSOLVE_TIMEOUT_S`` seconds (default :data:`DEFAULT_TIMEOUT_S`)."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return active()
    import atexit
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        timeout = float(raw)
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} must be a number of seconds > 0, e.g. {TIMEOUT_ENV}=600")
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timedelta(seconds=timeout))
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return True


# ---- collectives ------------------------------------------------------------------------


def _comm_device(dist):
    """Where the collective's tensors must be: the current GPU for NCCL, the host for gloo."""
    return f"cuda:{sys.modules['torch'].cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"


def _as_comm(dist, x):
    """x as a torch tensor on the collective's device, sharing memory where possible."""
    t = backend.to_torch(x)
    device = _comm_device(dist)
    return t if backend.device_of(t) == device else t.to(device)


def _wait(what, run):
    """Run the collective(s) ``run()``; a failure becomes a DistributedError that says what to do."""
    start = time.perf_counter()
    try:
        return run()
    except RuntimeError as e:  # gloo and NCCL raise DistBackendError (a RuntimeError) on timeout or a lost peer
        waited = time.perf_counter() - start
        raise DistributedError(
            f"rank {rank()} of {world_size()}: the {what} did not complete (waited {waited:.1f} s): another rank "
            "died, hung past the process group's timeout, or left the fit early.  The last checkpoint is "
            f"intact; relaunch with the same checkpoint= to resume from it.  ({type(e).__name__}: {e})") from e


def all_reduce_sum(*arrays, what="all-reduce"):
    """Every array summed over the ranks (each kept in its kind and device; in place where
    the array shares memory with its torch view: numpy and torch)."""
    dist = _dist()
    if dist is None:
        return arrays
    views = [_as_comm(dist, a) for a in arrays]

    def run():
        for w in [dist.all_reduce(v, async_op=True) for v in views]:  # in flight together
            w.wait()

    _wait(what, run)
    return tuple(backend.from_torch(v, a) for v, a in zip(views, arrays))


def _all_gather_objects(obj, what):
    dist = _dist()
    out = [None] * dist.get_world_size()
    _wait(what, lambda: dist.all_gather_object(out, obj))
    return out


# ---- the step ---------------------------------------------------------------------------


def step_sums(stats, used, rows):
    """The global batch's (stats, used, rows) from this rank's ``stats``, a tuple of per-row
    means over its b_r rows (A = ZᵀZ/b_r and B = ZᵀX/b_r, or sgd's gradient
    −ZᵀR/b_r + decay·D), ``used`` (bool per atom: some code of the batch used it) and b_r:
    each statistic as Σ_r b_r S_r / b (module docstring), ``used`` true where any rank used
    the atom, ``rows`` = b.  One call, the all-reduces in flight together."""
    if _dist() is None:
        return stats, used, rows
    # Weighted by b_r in place: the statistics are the step's own fresh arrays.
    for s in stats:
        s *= rows
    counts = np.append(backend.to_numpy(used).astype(np.float64), float(rows))
    *stats, counts = all_reduce_sum(*stats, counts, what="all-reduce of the step's statistics")
    total = float(counts[-1])
    return tuple(s / total for s in stats), counts[:-1] > 0, int(round(total))


# The history figures that are per-row means, so global means weight each rank by its rows.
_MEAN_FIGURES = ("objective", "mse", "l1", "nnz_frac", "converged_frac")


def mean_figures(record, rows):
    """The step's record with its per-row means taken over the global batch (in place)."""
    if _dist() is None:
        return record
    sums = np.array([backend.item(record[k]) * rows for k in _MEAN_FIGURES] + [float(rows)])
    (sums,) = all_reduce_sum(sums, what="all-reduce of the step's history figures")
    record.update({k: float(v / sums[-1]) for k, v in zip(_MEAN_FIGURES, sums)})
    return record


def any_rank(flag) -> bool:
    """True on every rank if ``flag`` is true on some rank (a stop request from a callback)."""
    if _dist() is None:
        return bool(flag)
    (v,) = all_reduce_sum(np.array([float(bool(flag))]), what="all-reduce of the callbacks' stop flags")
    return bool(v[0] > 0)


def stop_together(callback):
    """``callback`` (``callback(step, D, record)``, False stops; None: none) as one that every rank
    calls after every step and that stops every rank when it stops one (:func:`any_rank`), so no
    rank waits in a collective for a rank that left; ``callback`` itself without a group."""
    if _dist() is None:
        return callback

    def on_every_rank(step, D, record):
        stop = callback is not None and callback(step, D, record) is False
        return False if any_rank(stop) else None

    return on_every_rank


def gather_rows(*arrays):
    """Each array's rows from every rank, concatenated in rank order: the global batch's rows
    in the order a single process holds them.  One array in, one out; several, a tuple."""
    dist = _dist()
    if dist is None:
        return arrays[0] if len(arrays) == 1 else arrays
    shapes = _all_gather_objects([(tuple(a.shape), backend.dtype_name(a)) for a in arrays],
                                 "exchange of the gathered arrays' shapes")
    torch = sys.modules["torch"]
    out = []
    for i, a in enumerate(arrays):
        kinds = [s[i] for s in shapes]
        for r, (shape, dtype) in enumerate(kinds):
            if shape[1:] != kinds[0][0][1:] or dtype != kinds[0][1]:
                raise ValueError(f"data-parallel fit: rank 0 has batches of shape {kinds[0][0]} ({kinds[0][1]}) but "
                                 f"rank {r} {shape} ({dtype}); every rank must read the same data: same width "
                                 "and dtype")
        most = max(shape[0] for shape, _ in kinds)
        mine = _as_comm(dist, a)
        padded = torch.zeros((most,) + tuple(mine.shape[1:]), dtype=mine.dtype, device=mine.device)
        padded[:mine.shape[0]] = mine  # all_gather needs equal sizes
        parts = [torch.empty_like(padded) for _ in kinds]
        _wait("all-gather of rows from every rank", lambda: dist.all_gather(parts, padded))
        whole = torch.cat([p[:shape[0]] for p, (shape, _) in zip(parts, kinds)])
        out.append(backend.from_torch(whole, a))
    return out[0] if len(out) == 1 else tuple(out)


# ---- data --------------------------------------------------------------------------------


def local_part(a):
    """This rank's part of the rows of the host array ``a`` (the sorted rows of a global batch,
    or codes gathered by :func:`gather_rows` into a checkpoint): the rank-th of P contiguous,
    near-equal runs (np.array_split's), so the parts in rank order are ``a``."""
    P = world_size()
    return a if P == 1 else np.array_split(a, P)[rank()]


def enumerate_batches(iterable):
    """(index, batch) for this rank's batches of an iterable: rank r keeps batch kP + r of each
    group of P.  ``index`` is the stream index of the group's last batch, so the next position
    index + 1 counts batches at every world size (a resume at another P restarts at the first
    group not wholly seen).  An incomplete last group is dropped, with a warning on rank 0."""
    P = world_size()
    if P == 1:
        yield from enumerate(iterable)
        return
    r = rank()
    group, index = [], -1
    for index, batch in enumerate(iterable):
        group.append(batch)
        if len(group) == P:
            yield index, group[r]
            group = []
    if group and is_rank0():
        warnings.warn(f"the last {len(group)} batch(es) of the stream (up to index {index}) were dropped: a "
                      f"step takes one batch on each of the {P} ranks", stacklevel=2)


def _checksum(a):
    return hashlib.sha1(np.ascontiguousarray(backend.to_numpy(a), dtype=np.float64).tobytes()).hexdigest()[:12]


def _fingerprint(X):
    """A checksum of three rows of X (first, middle, last): cheap evidence that every rank has the same data."""
    n = X.shape[0]
    return _checksum(X[backend.like(np.array(sorted({0, n // 2, n - 1})), X)])


def agree(settings, entropy, data, **launch):
    """The startup check, returning the seed entropy every rank uses (rank 0's: an unseeded run
    draws one for all).  Every rank must hold the same ``settings`` (a dict with ``batch_size``),
    the same data (``data``: the array, or None for an iterable or a rank's own batch) and the
    same ``launch`` values (checkpoint, dict_init, ...); every global batch must give each rank a
    row.  A mismatch raises a ValueError on every rank naming rank 0's value and the other rank's."""
    dist = _dist()
    if dist is None:
        return entropy
    mine = dict(settings)
    # Arrays among them (dict_init) are compared by a checksum of every entry.
    mine.update({k: _checksum(v) if hasattr(v, "__len__") and not isinstance(v, str) else v
                 for k, v in launch.items()})
    if data is None:
        mine["data"] = "an iterable"
    else:
        mine["data shape"] = tuple(int(v) for v in data.shape)
        mine["data dtype"] = backend.dtype_name(data)
        mine["data checksum (rows 0, n/2, n-1)"] = _fingerprint(data)
    every = _all_gather_objects((mine, entropy), "startup exchange of settings")
    for r, (theirs, _) in enumerate(every[1:], start=1):
        for key in list(every[0][0]) + [k for k in theirs if k not in every[0][0]]:  # settings first, checksum last
            a, b = every[0][0].get(key), theirs.get(key)
            if a != b:
                raise ValueError(f"data-parallel fit: {key} is {a!r} on rank 0 but {b!r} on rank {r}; launch every "
                                 "rank with the same arguments and data (and a checkpoint path all ranks can read)")
    P = dist.get_world_size()
    if data is not None:
        n, bs = int(data.shape[0]), settings["batch_size"]
        smallest = min(bs, n % bs or bs)
        if smallest < P:
            raise ValueError(f"data-parallel fit on {P} ranks needs at least {P} rows in every batch, but with "
                             f"{n} rows and batch_size={bs} a batch has {smallest}; use a batch_size ≥ {P} that "
                             f"leaves a last batch of 0 or ≥ {P} rows (n_samples % batch_size)")
    return every[0][1]
