"""torch.distributed for sparsolve: the process group, its collectives, and their failures.

When a default process group is initialised (``torch.distributed.is_initialized()``, e.g.
under ``torchrun``), :func:`active` is true and the collectives here run over its ranks;
otherwise :func:`active` costs a dictionary look-up (``sys.modules``: without torch
imported no group can exist, so numpy users never import torch).  The fit uses them through
its reducer (reducer.py), which says what is summed and gathered in a step; this module is the
only one that calls torch.distributed.

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

import os
import sys
import time

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


# ---- groups -----------------------------------------------------------------------------


_GROUPS = {}  # (the default group, blocks) -> this rank's group: each made once per process


def new_groups(blocks):
    """One process group per list of global ranks in ``blocks`` (every rank must call this with the
    same blocks, in the same order: torch's rule); the handle of the block this rank is in (None
    when that block is every rank: the default group).  A second call with the same blocks (a
    second fit in the process) returns the groups made by the first."""
    dist = _dist()
    key = (id(dist.group.WORLD), tuple(tuple(int(r) for r in block) for block in blocks))
    if key not in _GROUPS:
        me, world = dist.get_rank(), dist.get_world_size()
        mine = None
        for block in key[1]:
            group = None if len(block) == world else dist.new_group(list(block))
            if me in block:
                mine = group
        _GROUPS[key] = mine
    return _GROUPS[key]


def _global(dist, group, r):
    """The global rank of rank ``r`` of ``group`` (None: the default group)."""
    return r if group is None else dist.get_global_rank(group, r)


def _size(dist, group):
    return dist.get_world_size(group)


# ---- traffic --------------------------------------------------------------------------------

#: Bytes this rank has handed to each kind of collective since the last :func:`reset_traffic`:
#: {"all-reduce": n, "all-gather": n, "broadcast": n} (the payload, not what the algorithm sends
#: on the wire: a ring all-reduce of s bytes sends and receives 2(P − 1)/P·s).  Read by
#: benchmarks/distributed.py; counting costs an addition per collective.
TRAFFIC = {"all-reduce": 0, "all-gather": 0, "broadcast": 0}
#: Calls to each kind of collective since the last :func:`reset_traffic`.
CALLS = dict.fromkeys(TRAFFIC, 0)


def reset_traffic():
    for k in TRAFFIC:
        TRAFFIC[k] = CALLS[k] = 0


def _count(kind, views):
    TRAFFIC[kind] += sum(v.numel() * v.element_size() for v in views)
    CALLS[kind] += 1


# ---- collectives ------------------------------------------------------------------------
# Each takes ``group``: a handle from new_groups, or None for every rank.  With a group of one
# rank there is nothing to combine: the input comes back, and nothing is sent.


def _comm_device(dist):
    """Where the collective's tensors must be: the current GPU for NCCL, the host for gloo."""
    return f"cuda:{sys.modules['torch'].cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"


def _as_comm(dist, x):
    """x as a contiguous torch tensor on the collective's device, sharing memory where possible."""
    t = backend.to_torch(x)
    device = _comm_device(dist)
    t = t if backend.device_of(t) == device else t.to(device)
    return t if t.is_contiguous() else t.contiguous()


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


def _reduce(op, arrays, what, group):
    dist = _dist()
    if dist is None or _size(dist, group) == 1:
        return arrays
    views = [_as_comm(dist, a) for a in arrays]
    _count("all-reduce", views)

    def run():
        for w in [dist.all_reduce(v, op=op, group=group, async_op=True) for v in views]:  # in flight together
            w.wait()

    _wait(what, run)
    return tuple(backend.from_torch(v, a) for v, a in zip(views, arrays))


def all_reduce_sum(*arrays, what="all-reduce", group=None):
    """Every array summed over the ranks of ``group`` (each kept in its kind and device; in place
    where the array shares memory with its contiguous torch view: numpy and torch)."""
    dist = _dist()
    return arrays if dist is None else _reduce(dist.ReduceOp.SUM, arrays, what, group)


def all_reduce_max(*arrays, what="all-reduce", group=None):
    """Every array's entrywise maximum over the ranks of ``group`` (as :func:`all_reduce_sum`)."""
    dist = _dist()
    return arrays if dist is None else _reduce(dist.ReduceOp.MAX, arrays, what, group)


def broadcast(a, src, what="broadcast", group=None):
    """``a`` as rank ``src`` of ``group`` holds it (a group rank), on every rank of the group; the
    others pass an array of the same shape and dtype, which is overwritten where it can be."""
    dist = _dist()
    if dist is None or _size(dist, group) == 1:
        return a
    view = _as_comm(dist, a)
    _count("broadcast", [view])
    _wait(what, lambda: dist.broadcast(view, src=_global(dist, group, src), group=group))
    return backend.from_torch(view, a)


def all_gather_objects(obj, what, group=None):
    """``obj`` (picklable) from every rank of ``group``, in rank order."""
    dist = _dist()
    out = [None] * dist.get_world_size(group)
    _wait(what, lambda: dist.all_gather_object(out, obj, group=group))
    return out


# ---- gathering rows ---------------------------------------------------------------------


def gather_rows_to_first(a, group=None):
    """``a``'s rows from every rank of ``group``, concatenated in rank order, on the group's first
    rank only (None on the others): what one writer needs, without a copy of the whole on every rank."""
    dist = _dist()
    if dist is None or _size(dist, group) == 1:
        return a
    shapes = all_gather_objects(tuple(a.shape), "exchange of the gathered arrays' shapes", group)
    torch = sys.modules["torch"]
    most = max(shape[0] for shape in shapes)
    mine = _as_comm(dist, a)
    padded = mine
    if mine.shape[0] != most:
        padded = torch.zeros((most,) + tuple(mine.shape[1:]), dtype=mine.dtype, device=mine.device)
        padded[:mine.shape[0]] = mine
    first = dist.get_rank(group) == 0
    parts = [torch.empty_like(padded) for _ in shapes] if first else None
    _count("all-gather", [padded])
    _wait("gather of rows to one rank", lambda: dist.gather(padded, parts, dst=_global(dist, group, 0), group=group))
    if not first:
        return None
    return backend.from_torch(torch.cat([p[:shape[0]] for p, shape in zip(parts, shapes)]), a)



def gather_rows(*arrays, group=None, what="data"):
    """Each array's rows from every rank of ``group``, concatenated in rank order (the global batch's
    rows in the order a single process holds them; or a dictionary's atoms from the ranks that hold
    them).  The ranks may hold different numbers of rows.  One array in, one out; several, a tuple.
    ``what``: what differing widths or dtypes mean, for the error."""
    dist = _dist()
    if dist is None or _size(dist, group) == 1:
        return arrays[0] if len(arrays) == 1 else arrays
    shapes = all_gather_objects([(tuple(a.shape), backend.dtype_name(a)) for a in arrays],
                                "exchange of the gathered arrays' shapes", group)
    torch = sys.modules["torch"]
    out = []
    for i, a in enumerate(arrays):
        kinds = [s[i] for s in shapes]
        for r, (shape, dtype) in enumerate(kinds):
            if shape[1:] != kinds[0][0][1:] or dtype != kinds[0][1]:
                raise ValueError(f"data-parallel fit: rank {_global(dist, group, 0)} has batches of shape "
                                 f"{kinds[0][0]} ({kinds[0][1]}) but rank {_global(dist, group, r)} {shape} ({dtype}); "
                                 f"every rank must read the same {what}: same width and dtype")
        most = max(shape[0] for shape, _ in kinds)
        mine = _as_comm(dist, a)
        padded = mine
        if mine.shape[0] != most:  # all_gather needs equal sizes
            padded = torch.zeros((most,) + tuple(mine.shape[1:]), dtype=mine.dtype, device=mine.device)
            padded[:mine.shape[0]] = mine
        # the parts are views of one buffer, which is the whole where no rank was padded
        joined = torch.empty((most * len(kinds),) + tuple(padded.shape[1:]), dtype=padded.dtype, device=padded.device)
        parts = list(joined.split(most))
        _count("all-gather", [padded])
        _wait("all-gather of rows from every rank", lambda: dist.all_gather(parts, padded, group=group))
        if any(shape[0] != most for shape, _ in kinds):
            joined = torch.cat([p[:shape[0]] for p, (shape, _) in zip(parts, kinds)])
        out.append(backend.from_torch(joined, a))
    return out[0] if len(out) == 1 else tuple(out)
