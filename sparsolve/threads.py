"""How many threads a call gets: host BLAS, torch's intra-op pool and numba's kernels.

On a small machine shared with other jobs the libraries' own defaults (every core, for every
product) lose: their threads wait to be scheduled and spin while they wait.  One rule decides for
every sparsolve entry point (:func:`threads_for`): small work runs on one thread, a large host
product takes every core only where the load average leaves one idle, and each library's own
setting is restored after the call.  :func:`set_threads` (or ``SPARSOLVE_THREADS``) fixes the count
instead.  The measurements behind each threshold are in the docstrings below.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

from .backend import on_gpu

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
