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


def codes_times(Z, D):
    """Z D for codes Z (rows × atoms): from Z's nonzeros where Z is a sparse numpy array
    (:mod:`sparsolve.sparse_codes`), the dense product otherwise."""
    if isinstance(Z, np.ndarray) and isinstance(D, np.ndarray):
        from . import sparse_codes

        out = sparse_codes.times(Z, D)
        if out is not None:
            return out
    return Z @ D


def codes_transpose_times(Z, M):
    """Zᵀ M for codes Z (rows × atoms) and M (rows × p), as :func:`codes_times` chooses."""
    if isinstance(Z, np.ndarray) and isinstance(M, np.ndarray):
        from . import sparse_codes

        out = sparse_codes.transpose_times(Z, M)
        if out is not None:
            return out
    return Z.T @ M


def codes_gram(Z):
    """Zᵀ Z for codes Z (rows × atoms), as :func:`codes_times` chooses."""
    if isinstance(Z, np.ndarray):
        from . import sparse_codes

        out = sparse_codes.gram(Z)
        if out is not None:
            return out
    return Z.T @ Z


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


_blas_controller = []  # (modules imported, ThreadpoolController) of the last use: _blas_controller_()
_blas_default = []  # host BLAS's thread count before sparsolve limited it (the largest over its libraries)
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
    with _blas_limit(1), _torch_threads(1):
        yield


@contextlib.contextmanager
def _keep_torch_threads():
    """torch's intra-op thread count as it was on entry, restored on exit if it changed.  scipy's
    OpenBLAS is built on OpenMP: setting its threads (a limit, and the limit's restore) sets the
    OpenMP thread count that torch reads too, and left torch on two threads after a fit that the
    caller had put on one (sparsify then trained 9× slower in benchmarks/versus_saes.py)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def _torch_threads(n: int):
    """torch's intra-op threads (its OpenMP pool and MKL) at ``n`` within the context, restored
    after (0.3 µs a switch).  Nothing where torch is not imported: numpy users never load it."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else n
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _numba_threads(n: int):
    """numba's parallel kernels (cd, omp) at ``n`` threads within the context, restored after.
    numba's count is the calling thread's own, so no lock is needed; nothing where numba is not
    imported (a kernel module imports it before its first call)."""
    numba = sys.modules.get("numba")
    if numba is None:
        yield
        return
    before = numba.get_num_threads()
    n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))  # numba refuses more than it started with
    if before == n:
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


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
    """The host BLAS's threads for products of ``mult_adds`` multiply-adds each on arrays like ``x``
    -- the BLAS part of :func:`threads_for`'s rule, and what a call that otherwise runs on one
    thread asks for around one large product (cd's factored form checks its rows with one product
    of 1e9 multiply-adds a round, between numba kernels that keep host BLAS on one thread):

    * small products on the host (below :data:`SMALL_PRODUCT`), numpy arrays and torch CPU tensors
      alike, or a machine with no core to spare (:func:`cores_idle`): one thread
      (:func:`single_threaded_blas`, host BLAS and torch);
    * large products where a core is idle: host BLAS at the thread count it had before sparsolve
      limited it, even inside a :func:`single_threaded_blas`; torch's intra-op threads as found;
    * :func:`set_threads`'s count where one is fixed; GPU arrays: nothing changes."""
    if on_gpu(x):
        return contextlib.nullcontext()
    if _fixed_threads:
        return _blas_limit(_fixed_threads[0])
    if mult_adds < SMALL_PRODUCT or not cores_idle():
        return single_threaded_blas()
    return _blas_limit(None)


def cores_idle() -> bool:
    """Whether the machine has a core to spare for a second BLAS thread: its load average (one
    minute) is below the number of cores less one half.  On the shared 2-core machine at load 16,
    a product of 1e9 multiply-adds took 78 ms on one thread and 100 ms on two (medians of 7), and
    the online pass's 16 products of 2.7e8 3.4 s against 0.35 s: a second thread only waits to be
    scheduled.  Reads /proc/loadavg (microseconds); True where the load cannot be read."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) - 0.5
    except OSError:
        return True


def cannot_store(x, dtype: str) -> str | None:
    """Why arrays like ``x`` cannot be stored as ``dtype`` ("bfloat16"), or None where they can:
    numpy and cupy have no bfloat16; torch has it on the CPU and on CUDA devices that support it."""
    if not is_torch(x):
        return f"{kind(x)} arrays have no {dtype}"
    torch = _torch()
    if x.is_cuda and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        return f"the CUDA device {torch.cuda.get_device_name(x.device)} has no {dtype} support"
    return None


# ---- threads for a whole call: host BLAS, torch's intra-op pool and numba's kernels ------------

#: Below this many multiply-adds per product, torch's CPU work runs on one intra-op thread even
#: where the BLAS rule (SMALL_PRODUCT) gives the BLAS two: a network's loop is mostly element-wise
#: ops, each of which waits for the second thread.  Measured with LearnedG.encode (t* = 5, 128–256
#: atoms of 64 features) on the 2-core machine at load 13–18 (benchmarks/threads.py): two threads
#: took 1.4–160× the time of one up to 2.6e8 multiply-adds a product; from 6.6e8 they took
#: 0.73–0.96× beside a busy loop on each core, 1.28–1.35× without.
SMALL_TORCH_WORK = 5e8

#: The environment variable that fixes the threads of every sparsolve call (read once, at import):
#: SPARSOLVE_THREADS=4 is ``set_threads(4)``; unset, or "auto", is the rule by size.
THREADS_ENV = "SPARSOLVE_THREADS"
_fixed_threads = []  # [n] while set_threads(n) holds; empty: by size (threads_for)


def set_threads(n=None):
    """Fix the threads of every sparsolve call -- host BLAS, torch's intra-op pool and numba's
    kernels -- at ``n``; ``None`` (the default) returns to the rule by size (:func:`threads_for`).
    Returns the setting it replaces.  The environment variable ``SPARSOLVE_THREADS`` sets the same
    at import.  The libraries' own settings (``torch.set_num_threads``, ``NUMBA_NUM_THREADS``,
    ``OMP_NUM_THREADS``) are what sparsolve restores after each call and uses where the rule leaves
    them; the rule and this override apply inside sparsolve's calls only."""
    from .checks import positive_int

    before = _fixed_threads[0] if _fixed_threads else None
    n = None if n is None else positive_int(n, "n", "the threads of every sparsolve call, or None for the rule by size")
    _fixed_threads[:] = [] if n is None else [n]
    return before


def _threads_from_env():
    value = os.environ.get(THREADS_ENV, "").strip()
    if value in ("", "auto"):
        return
    try:
        set_threads(int(value))
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={value!r}: expected a positive whole number of threads, or 'auto' "
                         "(the rule by size)") from None


@contextlib.contextmanager
def threads_for(x, mult_adds: float, *, kernels: bool = False):
    """The threading for one call whose products are ``mult_adds`` multiply-adds each on arrays like
    ``x``, over all three thread pools a call can use on the host: the BLAS, torch's intra-op pool
    (OpenMP and MKL) and numba's parallel kernels.  ``kernels``: the call runs numba's parallel
    kernels (cd, omp), whose surrounding products always run on one BLAS thread
    (:func:`single_threaded_blas`); numba's count is set for such calls only (asking for it starts
    numba's thread pool, which a call without kernels never needs).

    * small work on the host (``mult_adds`` < :data:`SMALL_PRODUCT`): one thread in all three.  A
      second thread mostly waits, spinning, for the other to be scheduled: on the shared 2-core
      machine (load 13–18, benchmarks/threads.py, results/threads.json) fit_amortized's 150 steps
      took 70.9 s on torch's two threads and 9.6 s on one, compare reported a learned-G encoder at
      214 ms per 1,000 rows against 5.1, and cd on 256–2,000 rows took 0.9–4.4× (median 2.3×) as
      long on two numba threads as on one;
    * torch up to :data:`SMALL_TORCH_WORK`: one intra-op thread still (torch's second thread loses
      over a wider range than the BLAS's);
    * larger work: :func:`blas_threads_for`'s BLAS (every core where the load leaves one idle) and
      the libraries' own torch and numba threads (from 2.6e8 multiply-adds two numba threads took
      0.63–0.78× the time of one beside a busy loop on each core, 0.98–1.07× without);
    * GPU arrays: nothing changes.

    :func:`set_threads` (or ``SPARSOLVE_THREADS``) fixes one count for every call instead.  Every
    count is restored when the context ends; re-entrant."""
    with contextlib.ExitStack() as stack:
        if on_gpu(x):
            pass
        elif _fixed_threads:
            stack.enter_context(_blas_limit(_fixed_threads[0]))
            stack.enter_context(_torch_threads(_fixed_threads[0]))
            if kernels:
                stack.enter_context(_numba_threads(_fixed_threads[0]))
        else:
            stack.enter_context(single_threaded_blas() if kernels else blas_threads_for(x, mult_adds))
            if kernels and mult_adds < SMALL_PRODUCT:
                stack.enter_context(_numba_threads(1))
            if mult_adds < SMALL_TORCH_WORK:
                stack.enter_context(_torch_threads(1))
        yield


@contextlib.contextmanager
def _blas_limit(n):
    """Host BLAS at ``n`` threads (``None``: the count it had before sparsolve limited it) within the
    context, one thread at a time holding the limit (see :func:`single_threaded_blas`); torch's
    intra-op count as found (:func:`_keep_torch_threads`)."""
    with _blas_lock:
        controller = _blas_controller_()
        with _keep_torch_threads(), controller.limit(limits=_blas_default[0] if n is None else n, user_api="blas"):
            yield


def _blas_controller_():
    """threadpoolctl's controller of the loaded BLAS libraries.  It lists them when it is made
    (~1 ms), so it is made again when modules were imported since: scipy brings its own OpenBLAS,
    which a controller made before it would leave on every core.  scipy.linalg is imported first:
    numba's np.dot calls its OpenBLAS (cd's working sets), and loading it only inside a limit left
    each of those small products starting a second thread (10× the time under load).  The first
    controller, made before any limit, records the BLAS's own thread count (:func:`blas_threads_for`
    restores it for large products)."""
    import importlib

    importlib.import_module("scipy.linalg")  # loaded for its OpenBLAS (numba's np.dot calls it)
    if not _blas_controller or _blas_controller[0][0] != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        _blas_controller[:] = [(len(sys.modules), ThreadpoolController())]
        if not _blas_default:
            threads = [lib.num_threads for lib in _blas_controller[0][1].lib_controllers if lib.user_api == "blas"]
            _blas_default.append(max(threads, default=1))
    return _blas_controller[0][1]


_threads_from_env()
