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
import sys
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


def is_array(x) -> bool:
    """Whether ``x`` is a numpy array, torch tensor or cupy array."""
    return isinstance(x, np.ndarray) or is_torch(x) or is_cupy(x)


def same_place(a, b) -> bool:
    """Whether ``a`` and ``b`` are the same kind of array on the same device."""
    return kind(a) == kind(b) and device_of(a) == device_of(b)


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
    """True for arrays on a CUDA device (torch CUDA tensors, cupy arrays)."""
    return (is_torch(x) and x.is_cuda) or is_cupy(x)


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


def eye(like, n):
    """The n×n identity with the kind, device and dtype of ``like``."""
    xp = namespace(like)
    if xp is np:
        return np.eye(n, dtype=like.dtype)
    if is_torch(like):
        return xp.eye(n, dtype=like.dtype, device=like.device)
    with like.device:
        return xp.eye(n, dtype=like.dtype)


def to_numpy(x) -> np.ndarray:
    """A host numpy view (no copy for numpy and CPU torch)."""
    if isinstance(x, np.ndarray):
        return x
    if is_torch(x):
        return x.detach().cpu().numpy()
    if is_cupy(x):
        return x.get()
    return np.asarray(x)


def host_view(x):
    """The numpy array sharing the memory of a float32/float64 torch CPU tensor; any other
    array as it is.  encode runs its solvers on these views and hands the codes back as
    tensors (:func:`match`, no copy): on a CPU the solvers' loops are many small operations,
    where torch's per-op dispatch and MKL's small products cost more than numpy's with
    OpenBLAS.  On 2 AMD EPYC cores, one thread each, a FISTA step on 256 rows with 256 atoms
    of 64 features took 621 µs on torch tensors and 543 µs on numpy arrays; Z @ D alone
    (256×256 by 256×64) 143 µs against 91 µs (benchmarks/RESULTS.md, "fit on torch CPU
    tensors")."""
    if is_torch(x) and not x.is_cuda and dtype_name(x) in SUPPORTED_DTYPES:
        return x.detach().numpy()
    return x


def take_rows(x, rows: np.ndarray):
    """The rows ``rows`` (host integer indices) of ``x``, in its kind and on its device.  A numpy
    memmap reads just these rows; a torch CPU tensor gathers them through its numpy view, on one
    thread: torch's own indexing splits a gather of 256 rows over its OpenMP pool, and under load
    each call waited ~10 ms for the second thread to be scheduled (fit on 2,560 torch patches:
    115 ms of 1.0 s)."""
    view = host_view(x)
    if isinstance(view, np.ndarray):
        picked = np.asarray(view[rows])
        return picked if view is x else like(picked, x)
    return x[like(rows, x)]


def like(a: np.ndarray, ref):
    """Move the host array ``a`` to the kind and device of ``ref``."""
    if isinstance(ref, np.ndarray):
        return a
    if is_torch(ref):
        return _torch().from_numpy(np.ascontiguousarray(a)).to(ref.device)
    import cupy

    with ref.device:
        return cupy.asarray(a)


def to_device(x, device):
    """``x`` on ``device`` ("cpu", "cuda" or "cuda:N"; None leaves it where it is): to the
    host, a torch tensor stays a CPU tensor and a cupy array becomes numpy; to CUDA, numpy
    becomes a torch tensor and torch and cupy arrays move to that device."""
    if device is None:
        return x
    if device == "cpu":
        if is_torch(x):
            return x.cpu()
        return x.get() if is_cupy(x) else x
    if is_torch(x):
        return x.to(device)
    if is_cupy(x):
        return x
    return _torch().from_numpy(np.ascontiguousarray(x)).to(device)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False where torch is missing)."""
    try:
        return _torch().cuda.is_available()
    except ImportError:
        return False


def triton_modules():
    """(triton, triton.language), or None where Triton cannot be imported (CUDA builds of torch
    bring it; CPU machines and CI have none).  For the Triton kernels' lazy builds."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None
    return triton, tl


def match(a, ref):
    """``a`` in the kind, device and dtype of ``ref`` (no copy where it already is)."""
    if kind(a) != kind(ref) or device_of(a) != device_of(ref):
        if is_torch(a) and is_torch(ref):
            a = a.to(ref.device)
        else:
            a = like(to_numpy(a), ref)
    return a if dtype_name(a) == dtype_name(ref) else astype(a, dtype_name(ref))


def set_diagonal(A, values):
    """Write ``values`` onto the diagonal of the square matrix ``A`` in place (no m×m temporary)."""
    if is_torch(A):
        A.diagonal().copy_(values)
    else:
        namespace(A).fill_diagonal(A, values)
    return A


def isfinite(x):
    """Elementwise: x is neither NaN nor ±∞.  On torch as |x| < ∞, two kernels, where torch's own
    isfinite is four (x == x, |x|, ≠ ∞, and their product: four launches on a GPU)."""
    if is_torch(x):
        return abs(x) < float("inf")
    return namespace(x).isfinite(x)


def diagonal_blocks(A, k: int):
    """The n // k full k×k blocks on the diagonal of the square matrix A, blocks[i] =
    A[ik:(i+1)k, ik:(i+1)k], as one (n // k, k, k) view of A's memory (no copy)."""
    n = A.shape[0] // k
    if is_torch(A):
        s0, s1 = A.stride()
        return A.as_strided((n, k, k), (k * (s0 + s1), s0, s1), A.storage_offset())
    s0, s1 = A.strides  # bytes, in numpy and cupy
    return namespace(A).lib.stride_tricks.as_strided(A, (n, k, k), (k * (s0 + s1), s0, s1))


def copy(x):
    """A copy of ``x`` in its own library and on its own device."""
    return x.clone() if is_torch(x) else x.copy()


def concat(parts, axis: int = 0):
    """Join arrays of one kind along ``axis`` (torch's ``cat``, numpy's and cupy's ``concatenate``)."""
    xp = namespace(parts[0])
    return xp.cat(parts, dim=axis) if is_torch(parts[0]) else xp.concatenate(parts, axis=axis)


def bits(x):
    """The raw bits of ``x``'s entries as signed integers of its item size (a view, on its
    device): what a digest of the data reads, for every dtype, bfloat16 included."""
    width = {1: "int8", 2: "int16", 4: "int32", 8: "int64"}[x.element_size() if is_torch(x) else x.dtype.itemsize]
    if is_torch(x):
        return x.contiguous().view(getattr(_torch(), width))
    return namespace(x).ascontiguousarray(x).view(width)


def no_grad(x):
    """A context that stops torch from recording a graph for work on ``x`` (no-op otherwise)."""
    return _torch().no_grad() if is_torch(x) else contextlib.nullcontext()

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


def roll(x, shifts, axes):
    """``x`` shifted circularly by ``shifts[i]`` along ``axes[i]`` (numpy's ``roll``; torch names it dims)."""
    if is_torch(x):
        return x.roll(tuple(shifts), tuple(axes))
    return namespace(x).roll(x, tuple(shifts), tuple(axes))


def pad(x, widths, circular: bool = False):
    """``x`` padded on its last ``len(widths)`` axes by ``widths[i] = (before, after)``, with zeros or
    (``circular``) with the values from the other end."""
    if is_torch(x):
        flat = [w for pair in reversed(widths) for w in pair]  # torch lists the last axis first
        return _torch().nn.functional.pad(x, flat, mode="circular" if circular else "constant")
    full = [(0, 0)] * (x.ndim - len(widths)) + [tuple(w) for w in widths]
    return namespace(x).pad(x, full, mode="wrap" if circular else "constant")


# ---- the Fourier transforms and the direct convolutions of sparsolve.conv ----------------------------------

def rfftn(x, shape, axes):
    """The real FFT of ``x`` over ``axes``, zero-padded to ``shape`` there: scipy.fft for numpy (float32
    stays complex64, which numpy.fft would widen), torch.fft, cupy.fft."""
    if is_torch(x):
        return _torch().fft.rfftn(x, s=tuple(shape), dim=tuple(axes))
    if is_cupy(x):
        return namespace(x).fft.rfftn(x, s=tuple(shape), axes=tuple(axes))
    import scipy.fft

    return scipy.fft.rfftn(x, s=tuple(shape), axes=tuple(axes), workers=fft_workers(x.size))


def irfftn(X, shape, axes):
    """The inverse of :func:`rfftn`: the real array of ``shape`` over ``axes``."""
    if is_torch(X):
        return _torch().fft.irfftn(X, s=tuple(shape), dim=tuple(axes))
    if is_cupy(X):
        return namespace(X).fft.irfftn(X, s=tuple(shape), axes=tuple(axes))
    import scipy.fft

    return scipy.fft.irfftn(X, s=tuple(shape), axes=tuple(axes), workers=fft_workers(X.size))


# Below this many entries a transform runs on one thread: starting the others costs more.
_FFT_ONE_THREAD = 1 << 16


def fft_workers(size: int) -> int:
    """Threads for scipy.fft on the host for an array of ``size`` entries: the cores this process may
    use (a batch of maps splits evenly between them), one for small arrays."""
    if size < _FFT_ONE_THREAD:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _conv_call(name, x, w, ndim, **kwargs):
    """torch.nn.functional.<name>{ndim}d on x and w, for any kind of array: numpy arrays and cupy
    arrays go through torch tensors that share their memory (DLPack), and come back as their kind."""
    torch = _torch()
    fn = getattr(torch.nn.functional, f"{name}{ndim}d")
    if is_torch(x):
        return fn(x, w, **kwargs)
    out = fn(to_torch(x), to_torch(w), **kwargs)
    return from_torch(out, x)


def correlate(x, w, ndim: int):
    """The valid cross-correlation summed over channels, torch's conv{ndim}d:
    out[n, k, p] = Σ_c Σ_τ x[n, c, p + τ] · w[k, c, τ]  for x (n, C, *S), w (K, C, *f) → (n, K, *(S − f + 1))."""
    return _conv_call("conv", x, w, ndim)


def convolve(z, w, ndim: int):
    """The full convolution summed over atoms, torch's conv_transpose{ndim}d (the adjoint of
    :func:`correlate`): out[n, c, t] = Σ_k Σ_p z[n, k, p] · w[k, c, t − p]  for z (n, K, *P),
    w (K, C, *f) → (n, C, *(P + f − 1))."""
    return _conv_call("conv_transpose", z, w, ndim)


def astype(x, dtype: str):
    """Cast to 'float32' or 'float64' in the array's own library."""
    if is_torch(x):
        return x.to(getattr(_torch(), dtype))
    return x.astype(dtype, copy=False)


def solve_lower_triangular(T, R):
    """X with T X = R, for a lower-triangular T (forward substitution), in T's own library."""
    if is_torch(T):
        return _torch().linalg.solve_triangular(T, R, upper=False)
    if is_cupy(T):
        from cupyx.scipy.linalg import solve_triangular
    else:
        from scipy.linalg import solve_triangular
    return solve_triangular(T, R, lower=True, check_finite=False)


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


def start_copy(a, device: str | None):
    """Begin moving the host array ``a`` (numpy, or a torch CPU tensor) to ``device`` and return a
    function that gives the result.

    ``None`` keeps ``a``; ``"cpu"`` gives a torch CPU tensor sharing its memory.  On CUDA
    the rows go through pinned memory in a non-blocking copy on a side stream, so the copy of the
    next batch overlaps the work on this one; the function, called in the thread that will use
    the tensor, makes that thread's stream wait for the copy (no host sync) and marks the tensor
    as used there, so the allocator does not recycle it early."""
    if device is None:
        return lambda: a
    torch = _torch()
    host = a.contiguous() if is_torch(a) else torch.from_numpy(np.ascontiguousarray(a))
    target = torch.device(device)
    if target.type != "cuda":
        return lambda: host.to(target)
    if target not in _copy_streams:
        _copy_streams[target] = torch.cuda.Stream(target)
    stream = _copy_streams[target]
    with torch.cuda.stream(stream):
        moved = host.pin_memory().to(target, non_blocking=True)
        done = torch.cuda.Event()
        done.record(stream)

    def ready():
        current = torch.cuda.current_stream(target)
        current.wait_event(done)
        moved.record_stream(current)
        return moved

    return ready


_copy_streams = {}  # one side stream per CUDA device for start_copy


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
    """A context in which the host BLAS -- and torch's CPU ops, where torch is loaded -- use
    one thread, for the work around numba's parallel kernels (cd, omp) and for loops of small
    products.  After a multi-threaded call OpenBLAS leaves its
    worker threads spinning for a while before they sleep, and on a small machine
    they take the cores the kernel's threads need: on 2 cores, cd on batches of
    256 8×8 patches took 68 µs a patch after the Gram and correlation products,
    38 µs with those products on one thread, and ``fit`` with cd 3.3 s → 1.9 s
    for 40,000 patches.  The products it covers are small next to the kernel.
    torch's OpenMP pool does the same, and splits every element-wise op of more than
    32,768 entries in two besides: ``fit`` with fista on 2,560 8×8 patches as torch CPU
    tensors took 1.9× the numpy time on a quiet machine and 9–32× under load on two torch
    threads, 1.45× on one (benchmarks/RESULTS.md, "fit on torch CPU tensors").

    The limit is process-wide, and OpenBLAS ignores a restore from another thread
    while the thread that set the limit is alive (seen with OpenBLAS 0.3.31), so
    one thread at a time holds it and restores it itself: other threads wait here.
    The kernels inside use every core anyway.  Re-entrant, for fit's step around encode."""
    with _blas_lock:
        if not _blas_controller:
            from threadpoolctl import ThreadpoolController

            _blas_controller.append(ThreadpoolController())  # inspects the loaded libraries once, ~1 ms
        with _blas_controller[0].limit(limits=1, user_api="blas"), _one_torch_thread():
            yield


@contextlib.contextmanager
def _one_torch_thread():
    """torch's intra-op threads (its OpenMP pool and MKL) at one within the context, restored
    after (0.3 µs a switch).  Nothing where torch is not imported: numpy users never load it."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else 1
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Below this many multiply-adds per product, host BLAS runs faster on one thread.
# Measured on the 2-core machine (OpenBLAS 0.3.31, 2 threads against 1, medians of 7,
# load average about 10 from other jobs): 256×256×256 (an LCA/FISTA step on a batch of
# 256 with 256 atoms) took 9.7× longer on two threads, 256×256×64 220×, 1000×256×256
# 1.4×; from 2.6e8 (1000×1024×256, 4096×256×256) two threads won, 0.7–0.8×.  Pinned
# to one core beside a busy loop (``taskset -c 0``) the same: 11×, 350×, 1.9×, then
# 0.7–0.8×.  Two threads lose badly on small products because each waits, spinning,
# for the other to be scheduled.  torch CPU tensors follow the same rule.
SMALL_PRODUCT = 1e8


def blas_threads_for(x, mult_adds: float):
    """The threading for a loop of products of ``mult_adds`` each on arrays like ``x``:
    one thread (:func:`single_threaded_blas`, host BLAS and torch) for small products on
    the host -- numpy arrays and torch CPU tensors alike -- the libraries' own threads
    otherwise (large products, GPU arrays)."""
    if not on_gpu(x) and mult_adds < SMALL_PRODUCT:
        return single_threaded_blas()
    return contextlib.nullcontext()


def cannot_store(x, dtype: str) -> str | None:
    """Why arrays like ``x`` cannot be stored as ``dtype`` ("bfloat16"), or None where they can:
    numpy and cupy have no bfloat16; torch has it on the CPU and on CUDA devices that support it."""
    if not is_torch(x):
        return f"{kind(x)} arrays have no {dtype}"
    torch = _torch()
    if x.is_cuda and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        return f"the CUDA device {torch.cuda.get_device_name(x.device)} has no {dtype} support"
    return None
