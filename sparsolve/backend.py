"""The one place that tells numpy, torch and cupy apart.

Solvers are written once against an array namespace ``xp`` (``numpy``, ``torch``
or ``cupy``).  The three libraries agree on the element-wise functions the
solvers use (``xp.abs``, ``xp.clip``, ``xp.sign``, ``xp.where``, ``xp.sqrt``,
``xp.amax``, ``xp.isfinite``, ``x.sum(axis=1)``, ``@``); what differs --
creating arrays on a device, moving to the host, asking for free memory -- is
kept here.  "Output follows input": whatever kind of array comes in, the same
kind, on the same device, goes out.
"""
from __future__ import annotations

import contextlib
import os
import threading
import types

import numpy as np

SUPPORTED_DTYPES = ("float32", "float64")


def _torch():
    import torch  # torch is a runtime dependency but import it lazily: numpy users pay nothing

    return torch


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "is_cuda")


def is_cupy(x) -> bool:
    return type(x).__module__.startswith("cupy")


def namespace(x) -> types.ModuleType:
    """Return the array module (numpy, torch or cupy) that owns ``x``."""
    if isinstance(x, np.ndarray):
        return np
    if is_torch(x):
        return _torch()
    if is_cupy(x):
        import cupy

        return cupy
    raise TypeError(
        f"expected a numpy array, torch tensor or cupy array, got {type(x).__name__}; "
        "convert it with numpy.asarray(...)"
    )


def kind(x) -> str:
    """'numpy', 'torch' or 'cupy'."""
    return namespace(x).__name__


def device_of(x) -> str:
    """A printable device name: 'cpu', 'cuda:0', ..."""
    if is_torch(x):
        return str(x.device)
    if is_cupy(x):
        return f"cuda:{x.device.id}"
    return "cpu"


def on_gpu(x) -> bool:
    return device_of(x) != "cpu"


def dtype_name(x) -> str:
    return str(x.dtype).replace("torch.", "")


def zeros(like, shape, dtype=None):
    """Zeros of ``shape`` with the kind, device and (by default) dtype of ``like``."""
    xp = namespace(like)
    if xp is np:
        return np.zeros(shape, dtype=dtype or like.dtype)
    if is_torch(like):
        return xp.zeros(shape, dtype=dtype or like.dtype, device=like.device)
    with like.device:
        return xp.zeros(shape, dtype=dtype or like.dtype)


def ones(like, shape, dtype=None):
    return zeros(like, shape, dtype) + 1


def arange(like, n):
    """Integer indices 0..n-1 on the device of ``like``."""
    xp = namespace(like)
    if is_torch(like):
        return xp.arange(n, device=like.device)
    if xp is np:
        return np.arange(n)
    with like.device:
        return xp.arange(n)


def to_numpy(x) -> np.ndarray:
    """A host numpy view (no copy for numpy and CPU torch)."""
    if isinstance(x, np.ndarray):
        return x
    if is_torch(x):
        return x.detach().cpu().numpy()
    if is_cupy(x):
        return x.get()
    return np.asarray(x)


def like(a: np.ndarray, ref):
    """Move the host array ``a`` to the kind and device of ``ref``."""
    if isinstance(ref, np.ndarray):
        return a
    if is_torch(ref):
        return _torch().from_numpy(np.ascontiguousarray(a)).to(ref.device)
    import cupy

    with ref.device:
        return cupy.asarray(a)


def to_torch(x):
    """``x`` as a torch tensor on its device, sharing its memory (numpy and CPU torch: no copy;
    cupy through DLPack), for the collectives of torch.distributed."""
    if isinstance(x, np.ndarray):
        return _torch().from_numpy(np.ascontiguousarray(x))
    if is_torch(x):
        return x
    return _torch().from_dlpack(x)


def from_torch(t, like):
    """The torch tensor ``t`` as the kind and device of ``like`` (sharing memory where it can)."""
    if isinstance(like, np.ndarray):
        return t.detach().cpu().numpy()
    if is_torch(like):
        return t.to(like.device)
    import cupy

    with like.device:
        return cupy.from_dlpack(t.to(f"cuda:{like.device.id}"))


def astype(x, dtype: str):
    """Cast to 'float32' or 'float64' in the array's own library."""
    if is_torch(x):
        return x.to(getattr(_torch(), dtype))
    return x.astype(dtype, copy=False)


def item(x) -> float:
    return float(x.item()) if hasattr(x, "item") else float(x)


def free_bytes(x) -> int:
    """Memory free for new arrays on ``x``'s device (a quarter of RAM on CPU)."""
    if is_torch(x) and x.is_cuda:
        free, _ = _torch().cuda.mem_get_info(x.device)
        return int(free)
    if is_cupy(x):
        import cupy

        with x.device:
            free, _ = cupy.cuda.runtime.memGetInfo()
        return int(free)
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages) // 4
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return 2 << 30


def rows_per_chunk(x, bytes_per_row: int, *, fraction: float = 0.5) -> int:
    """How many rows fit into ``fraction`` of the free memory of ``x``'s device."""
    return max(1, int(free_bytes(x) * fraction) // max(1, bytes_per_row))


def synchronize(x) -> None:
    """Wait for queued GPU work, so that wall-clock timings are honest."""
    if is_torch(x) and x.is_cuda:
        _torch().cuda.synchronize(x.device)
    elif is_cupy(x):
        import cupy

        cupy.cuda.Device(x.device.id).synchronize()


_blas_controller = []  # the ThreadpoolController, made on first use
_blas_lock = threading.RLock()


@contextlib.contextmanager
def single_threaded_blas():
    """A context in which the host BLAS uses one thread, for the work around numba's
    parallel kernels (cd, omp).  After a multi-threaded call OpenBLAS leaves its
    worker threads spinning for a while before they sleep, and on a small machine
    they take the cores the kernel's threads need: on 2 cores, cd on batches of
    256 8×8 patches took 68 µs a patch after the Gram and correlation products,
    38 µs with those products on one thread, and ``fit`` with cd 3.3 s → 1.9 s
    for 40,000 patches.  The products it covers are small next to the kernel.

    The limit is process-wide, and OpenBLAS ignores a restore from another thread
    while the thread that set the limit is alive (seen with OpenBLAS 0.3.31), so
    one thread at a time holds it and restores it itself: other threads wait here.
    The kernels inside use every core anyway.  Re-entrant, for fit's step around encode."""
    with _blas_lock:
        if not _blas_controller:
            from threadpoolctl import ThreadpoolController

            _blas_controller.append(ThreadpoolController())  # inspects the loaded libraries once, ~1 ms
        with _blas_controller[0].limit(limits=1, user_api="blas"):
            yield
