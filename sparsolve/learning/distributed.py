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


def all_gather_objects(obj, what):
    """``obj`` (picklable) from every rank, in rank order."""
    dist = _dist()
    out = [None] * dist.get_world_size()
    _wait(what, lambda: dist.all_gather_object(out, obj))
    return out


# ---- gathering rows ---------------------------------------------------------------------


def gather_rows(*arrays):
    """Each array's rows from every rank, concatenated in rank order: the global batch's rows
    in the order a single process holds them.  One array in, one out; several, a tuple."""
    dist = _dist()
    if dist is None:
        return arrays[0] if len(arrays) == 1 else arrays
    shapes = all_gather_objects([(tuple(a.shape), backend.dtype_name(a)) for a in arrays],
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
