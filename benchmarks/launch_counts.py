"""Counting kernel launches on the CPU, where no GPU is needed to see them.

On CUDA every torch operation that runs a kernel is one launch, and at fit's sizes the
launches, not the arithmetic, can set a step's time.  :class:`Launches` counts those operations
on CPU tensors (views and bare allocations run no kernel), optionally by the phase of fit that
asked (:func:`phase`).  :func:`gpu_path` makes CPU torch tensors take the path that CUDA tensors
take: no numpy views (backend.host_view), the device branches of ``backend.on_gpu``, and the
Triton kernels (the online pass's in-block steps, FISTA's fused step) each counted as the one
launch they make, their results computed uncounted, so neither a GPU nor Triton is needed.
A copy between host and device (backend.like to a tensor, backend.to_numpy of one) counts as
one launch too: on CUDA it is one call into the driver, and on CPU tensors it runs no kernel.
Used by ``benchmarks/launches.py`` (a fit step by phase) and ``benchmarks/online_update.py
--launches`` (one online pass), which report the counts; no test pins them (issue 25: a count
is a property of today's code, not of what users get).
"""
from __future__ import annotations

import contextlib
import linecache
import sys
import types

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes


class Launches(TorchDispatchMode):
    """Counts the torch operations that run a kernel (views, bare allocations and wrapped Python
    numbers launch none):
    ``count`` in all, and with ``label`` (a function of the asking Python frame, e.g. :func:`phase`)
    ``by[label(frame)]`` for each label."""

    active: list = []  # the open counters, which a stubbed Triton launch counts into (:meth:`kernel`)
    # operations that run no kernel on CUDA: allocations, and the wrapping of a Python number
    # (a CPU scalar passed to the kernel as an argument)
    NO_KERNEL = ("empty", "new_empty", "scalar_tensor")

    def __init__(self, label=None):
        super().__init__()
        self.count = 0
        self.label = label
        self.by = {}

    def __enter__(self):
        Launches.active.append(self)
        return super().__enter__()

    def __exit__(self, *exc):
        Launches.active.remove(self)
        return super().__exit__(*exc)

    def _add(self, frame):
        self.count += 1
        if self.label is not None:
            key = self.label(frame)
            self.by[key] = self.by.get(key, 0) + 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and not func.__name__.startswith(self.NO_KERNEL):
            self._add(sys._getframe(1))
        return func(*args, **(kwargs or {}))

    @classmethod
    def kernel(cls):
        """One launch of a (stubbed) Triton kernel, in every open counter."""
        for counter in cls.active:
            counter._add(sys._getframe(1))


def _in_block_kernel(v, scaled, u, inverse, floor, k, p, *args, **kwargs):
    """_online_triton's kernel, computed with torch operations (uncounted)."""
    for t in range(k):
        coef = scaled[t, :t] * inverse[:t]
        u[t] = v[t] - coef @ u[:t]
        inverse[t] = 1 / torch.clip(torch.sqrt((u[t] * u[t]).sum()), floor, None)


def _fista_kernel(c, y, z, t, z_out, y_out, t_out, m, *strides, POSITIVE, RESTART, **kwargs):
    """fused.py's FISTA step, computed with torch operations (uncounted)."""
    sizes = strides[-1]
    u = y + c * sizes[0]
    thresh = sizes[1]
    z_new = torch.clip(u - thresh, 0, None) if POSITIVE else u - torch.minimum(torch.maximum(u, -thresh), thresh)
    t_new = 0.5 * (1 + torch.sqrt(1 + 4 * t * t))
    beta = (t - 1) / t_new
    if RESTART:
        uphill = ((y - z_new) * (z_new - z)).sum(axis=1) > 0
        beta = torch.where(uphill, 0 * beta, beta)
        t_new = torch.where(uphill, 0 * t_new + 1, t_new)
    z_out.copy_(z_new)
    y_out.copy_(z_new + beta[:, None] * (z_new - z))
    t_out.copy_(t_new)


class _Stub:
    """``kernel[grid](...)``: one counted launch, its work done by ``compute`` uncounted."""

    def __init__(self, compute):
        self.compute = compute

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            Launches.kernel()
            with _disable_current_modes():
                self.compute(*args, **kwargs)
        return launch


@contextlib.contextmanager
def gpu_path():
    """CPU torch tensors down the CUDA path while the context is open (module docstring)."""
    from sparsolve import backend
    from sparsolve.inference import fused
    from sparsolve.rules import _online_triton

    next_power_of_2 = types.SimpleNamespace(next_power_of_2=lambda n: 1 << (int(n) - 1).bit_length())
    like, to_numpy = backend.like, backend.to_numpy

    def copied_to(a, ref):  # host to device: one copy, as good as a launch (no kernel on CPU tensors)
        if backend.is_torch(ref):
            Launches.kernel()
        return like(a, ref)

    def copied_from(x):  # device to host: one copy (and a wait for the queue: tests/host_reads.py)
        if backend.is_torch(x):
            Launches.kernel()
        return to_numpy(x)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backend, "like", copied_to)
        patch.setattr(backend, "to_numpy", copied_from)
        patch.setattr(backend, "host_view", lambda x: x)
        patch.setattr(backend, "on_gpu", lambda x: backend.is_torch(x) or backend.is_cupy(x))
        patch.setattr(_online_triton, "_kernel", lambda: _Stub(_in_block_kernel))
        patch.setattr(fused, "_kernel", lambda: (next_power_of_2, _Stub(_fista_kernel)))
        yield


# ---- phases of a fit step -------------------------------------------------------------------------------

INFERENCE, UPDATE, BOOKKEEPING = "inference", "update", "bookkeeping"

# the function just below Learner._step (or, inside encode, the innermost one named here) -> phase
_INFERENCE = {"lipschitz_and_vector": "L (power iteration)", "_validate": "input checks",
              "step": "iteration", "_certify": "certificate", "iterate": "certificate: finished rows"}
_BELOW_STEP = {"statistics": (UPDATE, "statistics A, B / gradient"),
               "project": (UPDATE, "norm rule"),
               "reconstruct": (BOOKKEEPING, "residual R, r2"),
               "_current": (BOOKKEEPING, "data movement"), "to": (BOOKKEEPING, "data movement"),
               "_dead_atoms": (BOOKKEEPING, "dead-atom tracking"),
               "_record": (BOOKKEEPING, "history record"), "figures": (BOOKKEEPING, "history record"),
               "sync": (BOOKKEEPING, "host read (Learner.sync)"),
               "computed": (BOOKKEEPING, "data movement"), "match": (BOOKKEEPING, "data movement"),
               "astype": (BOOKKEEPING, "data movement"), "isfinite": (BOOKKEEPING, "finite checks")}


def _line(frame):
    return linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()


def phase(frame):
    """(phase, part) of the fit step that runs the operation asked from ``frame``: inference
    (encode, with its L), update (statistics, the online pass, the norm rule, Adam) or
    bookkeeping (records, finite checks, dead atoms, data movement); ("outside", function)
    for what runs outside a step."""
    chain = []  # sparsolve's frames, innermost first
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == "sparsolve.learning.learner" and frame.f_code.co_name == "_step":
            break
        if name.startswith("sparsolve"):
            chain.append(frame)
        frame = frame.f_back
    names = [f.f_code.co_name for f in chain]
    if frame is None:  # not inside a step
        if "sync" in names:
            return BOOKKEEPING, "host read (Learner.sync)"
        if any(f.f_globals["__name__"] == "sparsolve.learning.batches" for f in chain):
            return BOOKKEEPING, "data movement"
        return "outside", names[-1] if names else "?"
    if not chain:  # written in _step itself
        line = _line(frame)
        if "finite" in line:
            return BOOKKEEPING, "finite checks"
        if "(Z != 0)" in line or "nonzero" in line or "used" in line:  # Z ≠ 0 is also the record's nnz
            return BOOKKEEPING, "dead-atom tracking"
        if line.startswith(("R = ", "r2 = ")):
            return BOOKKEEPING, "residual R, r2"
        if line.startswith("squares = "):
            return BOOKKEEPING, "history record"
        return BOOKKEEPING, "data movement"
    top = names[-1]
    if top == "_encode":
        for name in names:  # innermost first
            if name in _INFERENCE:
                return INFERENCE, _INFERENCE[name]
        return INFERENCE, "setup"
    if top == "_checked":  # the batch's checks: its finite check, or its move to the step's dtype
        finite = any(n in ("isfinite", "check_finite") for n in names) or "finite" in _line(chain[-1])
        return BOOKKEEPING, "finite checks" if finite else "data movement"
    if top == "apply":  # the update rule's M-step
        if "running_statistics" in names:
            return UPDATE, "statistics A, B / gradient"
        return UPDATE, "sgd/Adam" if "adam_step" in names else "mod" if "mod" in names else "online pass"
    if top in _BELOW_STEP:
        return _BELOW_STEP[top]
    return BOOKKEEPING, top
