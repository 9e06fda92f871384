"""Activations from disk: a directory of ``.npy`` shards streamed in shuffled blocks.

A shard is a 2-D ``.npy`` file (rows, n_features) of float16, float32 or float64, opened as a
read-only memmap, so the data may be far larger than memory; float16 rows (activations as models
often write them) are handed out as float32, exactly, since the solvers compute in float32 or
float64.  Every shard must have the same width and dtype; a shard whose
file is shorter than its header says (a copy cut off mid-way) is refused.  All of this is
checked when the stream is made, from the headers and file sizes, before any row is read.

Order of the rows in epoch e (seed s).  The shards are cut into blocks of ``block_rows``
consecutive rows (contiguous on disk, so each read is one sequential run).  The blocks are put
in a random order drawn from (s, e); consecutive groups of ``window_blocks`` of them form
windows, and the rows of each window w are shuffled by a permutation drawn from (s, e, w).
The epoch's row sequence is the windows' rows one after the other, and the batches are its
consecutive runs of ``batch_size`` rows (the last may be shorter).  Each window's shuffle
depends only on (s, e, w), so a stream resumed at any row needs no replay of the rows before
it: :meth:`ShardStream.state_dict` (the epoch and the rows consumed in it) is all a
checkpoint keeps, and a stream restored from it yields exactly the batches an uninterrupted
one would have.  With ``shuffle=False`` the rows come in shard order.

A background thread reads and assembles the next ``prefetch`` batches while the current one
is in use; for a CUDA ``device`` it also starts their copies (pinned memory, non-blocking, on
a side stream: backend.start_copy), so reading, copying and computing overlap.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path

import numpy as np

from .. import backend
from ..checks import positive_int

__all__ = ["ShardStream", "open_shards"]

_FLOAT_KINDS = ("float16", "float32", "float64")


def _header(path):
    """(shape, dtype, fortran_order, data offset) of a .npy file, read without mapping it."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
        except (ValueError, OSError, SyntaxError, EOFError) as e:
            raise ValueError(f"shard {path} is not a readable .npy file ({e}); replace or remove it") from e
        return shape, dtype, fortran, f.tell()


def open_shards(source):
    """The shards of ``source`` as a list of 2-D arrays, checked alike (module docstring).

    ``source``: a directory (its ``*.npy`` files in name order), a list of ``.npy`` paths, or a
    list of 2-D numpy arrays (memmaps included)."""
    return _open(source)[0]


def _open(source):
    """(shards, names): the checked shards and what errors and fingerprints call them (a file's
    name without its folder, so that the same shards are the same wherever they lie)."""
    if isinstance(source, (str, os.PathLike)):
        directory = Path(source)
        if directory.is_file():
            raise ValueError(f"{directory} is a file; a path here must be a directory of .npy shards (for one "
                             "array, pass np.load(path, mmap_mode='r'))")
        if not directory.is_dir():
            raise ValueError(f"shard directory {directory} does not exist; pass a directory of .npy files")
        source = sorted(directory.glob("*.npy"))
        folders = [p.name for p in source if p.is_dir()]
        if folders:
            raise ValueError(f"shard directory {directory} holds a folder named {folders[0]}; shards are .npy "
                             "files: move or rename it")
        if not source:
            raise ValueError(f"shard directory {directory} holds no .npy files; write the activations "
                             "there as 2-D .npy arrays (rows, n_features)")
    source = list(source)
    if not source:
        raise ValueError("no shards given; pass a directory or a non-empty list of .npy files or arrays")
    shards, names, labels = [], [], []
    for item in source:
        if isinstance(item, (str, os.PathLike)):
            shards.append(_open_npy(Path(item)))
            names.append(str(item))
            labels.append(Path(item).name)
        else:
            try:
                kind = backend.kind(item)
            except TypeError:
                kind = type(item).__name__
            if kind != "numpy":  # the reader slices shards on the host; tensors belong on `device`
                raise TypeError(f"shard {len(shards)} is a {kind} array; pass .npy paths or numpy arrays (memmaps)")
            shards.append(item)
            names.append(f"shard {len(shards) - 1}")
            labels.append(f"shard {len(shards) - 1}")
    first = shards[0]
    for name, array in zip(names, shards):
        if array.ndim != 2:
            raise ValueError(f"{name} has shape {array.shape}; every shard must be 2-D (rows, n_features)")
        if array.dtype.name not in _FLOAT_KINDS:
            raise ValueError(f"{name} has dtype {array.dtype}; shards must hold floats ({', '.join(_FLOAT_KINDS)})")
        if array.shape[1] != first.shape[1]:
            raise ValueError(f"{name} has {array.shape[1]} features but {names[0]} has {first.shape[1]}; "
                             "every shard must come from the same layer (the same width)")
        if array.dtype != first.dtype:
            raise ValueError(f"{name} is {array.dtype} but {names[0]} is {first.dtype}; write every shard in "
                             "one dtype (nothing is converted silently)")
    return shards, labels


def _computable(batch):
    """float16 rows as float32 (exact: every float16 is a float32), the narrowest type the solvers take."""
    return batch.astype(np.float32) if batch.dtype == np.float16 else batch


def _open_npy(path):
    if path.is_dir():
        raise ValueError(f"shard {path} is a folder, not a .npy file; pass .npy files")
    if not path.is_file():
        raise ValueError(f"shard {path} does not exist")
    shape, dtype, fortran, offset = _header(path)
    if dtype.name not in _FLOAT_KINDS:  # before mapping it: an object array cannot be mapped at all
        raise ValueError(f"shard {path} has dtype {dtype}; shards must hold floats ({', '.join(_FLOAT_KINDS)})")
    if len(shape) != 2:
        raise ValueError(f"shard {path} has shape {shape}; every shard must be 2-D (rows, n_features)")
    if fortran:
        raise ValueError(f"shard {path} is stored in Fortran order; save it C-contiguous (np.ascontiguousarray)")
    expected = offset + shape[0] * shape[1] * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise ValueError(f"shard {path} is truncated: its header says {shape[0]} rows of {shape[1]} {dtype} "
                         f"({expected} bytes) but the file has {size} bytes; copy or write it again")
    if shape[0] == 0:
        return np.zeros(shape, dtype)
    return np.load(path, mmap_mode="r")


class ShardStream:
    """Batches of shard rows in the order of the module docstring, one epoch per iteration.

    Iterating yields the rest of the current epoch (from the restored position, if any) and
    then moves to the next epoch, so ``for batch in stream`` once per epoch walks the data
    ``n`` times, and the stream is a re-iterable that ``sparsolve.fit`` accepts as X.

    Parameters
    ----------
    source : a directory of ``.npy`` shards, a list of their paths, or a list of 2-D arrays.
    batch_size : rows per batch.
    seed : the order's seed (an int).
    block_rows : consecutive rows read together; larger reads faster, smaller mixes more.
    window_blocks : blocks shuffled together; the window (block_rows × window_blocks rows) is
        the host buffer the reader holds.
    shuffle : False gives the rows in shard order.
    device : None yields numpy arrays; "cpu", "cuda", "cuda:1", ... yield torch tensors there.
    prefetch : batches prepared ahead by the background thread (0: none, no thread).
    """

    def __init__(self, source, batch_size, *, seed=0, block_rows=4096, window_blocks=16, shuffle=True,
                 device=None, prefetch=2):
        self.shards, self.names = _open(source)
        self.batch_size = positive_int(batch_size, "batch_size", "rows per batch")
        self.block_rows = positive_int(block_rows, "block_rows", "consecutive rows read together")
        self.window_blocks = positive_int(window_blocks, "window_blocks", "blocks shuffled together")
        self.prefetch = positive_int(prefetch, "prefetch", "batches read ahead", minimum=0)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        if device is not None:
            self._check_device(device)
        self.device = device
        self.n_features = int(self.shards[0].shape[1])
        self.dtype = self.shards[0].dtype
        starts = np.cumsum([0] + [a.shape[0] for a in self.shards])
        self.n_rows = int(starts[-1])
        if self.n_rows == 0:
            raise ValueError("the shards hold no rows; write some activations first")
        # blocks as (shard, first row, stop row); global row of shard k's row r is starts[k] + r
        self._starts = starts
        self._blocks = [(k, lo, min(lo + self.block_rows, a.shape[0]))
                        for k, a in enumerate(self.shards) for lo in range(0, a.shape[0], self.block_rows)]
        self.epoch, self.rows_done = 0, 0

    @staticmethod
    def _check_device(device):
        try:
            backend.start_copy(np.zeros((1, 1), np.float32), device)()
        except (RuntimeError, ValueError, AssertionError) as e:
            raise ValueError(f"device={device!r} cannot be used here ({e}); use None (numpy), 'cpu' or an "
                             "available CUDA device") from e

    def fingerprint(self):
        """What the stream reads, for a checkpoint (sparsolve.learning.digests): each shard's name (without
        its folder), shape, dtype and SHA-256 of its rows, read in full once (hardware SHA: about 1 GB/s)."""
        shards = []
        for name, array in zip(self.names, self.shards):
            h = hashlib.sha256()
            step = max(1, (64 << 20) // max(1, array.shape[1] * array.dtype.itemsize))  # 64 MB a read
            for lo in range(0, array.shape[0], step):
                h.update(np.ascontiguousarray(array[lo:lo + step]).data)
            shards.append([name, int(array.shape[0]), int(array.shape[1]), array.dtype.name, h.hexdigest()])
        return {"shards": shards}

    def __len__(self):
        """Batches per epoch."""
        return -(-self.n_rows // self.batch_size)

    # ---- the order ------------------------------------------------------------------------
    def _windows(self, epoch):
        """The epoch's windows, each a list of blocks, in order."""
        order = (np.random.default_rng([self.seed, epoch]).permutation(len(self._blocks)) if self.shuffle
                 else np.arange(len(self._blocks)))
        blocks = [self._blocks[i] for i in order]
        return [blocks[i:i + self.window_blocks] for i in range(0, len(blocks), self.window_blocks)]

    def _window_order(self, epoch, w, n):
        return np.random.default_rng([self.seed, epoch, w]).permutation(n) if self.shuffle else np.arange(n)

    def epoch_rows(self, epoch):
        """The global row indices of ``epoch`` in the order they are streamed (rows of the shards
        concatenated); for checking a stream against the same rows in memory."""
        parts = []
        for w, window in enumerate(self._windows(epoch)):
            rows = np.concatenate([self._starts[k] + np.arange(lo, hi) for k, lo, hi in window])
            parts.append(rows[self._window_order(epoch, w, rows.size)])
        return np.concatenate(parts)

    # ---- reading --------------------------------------------------------------------------
    def _host_batches(self, epoch, skip):
        """(rows done after the batch, host batch) for ``epoch`` from row ``skip`` on."""
        left = np.empty((0, self.n_features), self.dtype)  # rows read but not yet batched
        done, position = skip, 0
        for w, window in enumerate(self._windows(epoch)):
            size = sum(hi - lo for _, lo, hi in window)
            if position + size <= skip:  # wholly before the resume point: not read at all
                position += size
                continue
            data = np.concatenate([self.shards[k][lo:hi] for k, lo, hi in window])
            data = data[self._window_order(epoch, w, size)][max(0, skip - position):]
            position += size
            buffer = np.concatenate([left, data]) if left.shape[0] else data
            full = buffer.shape[0] - buffer.shape[0] % self.batch_size
            for lo in range(0, full, self.batch_size):
                done += self.batch_size
                yield done, buffer[lo:lo + self.batch_size]
            left = buffer[full:]
        if left.shape[0]:
            yield done + left.shape[0], left

    def _prepared(self, epoch, skip):
        """(rows done, ready()) pairs; with prefetch, made by a background thread."""
        batches = ((done, backend.start_copy(_computable(batch), self.device))
                   for done, batch in self._host_batches(epoch, skip))
        if self.prefetch == 0:
            yield from batches
            return
        ahead = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        finished = object()

        def offer(item):  # False once the consumer has gone
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():
            try:
                for item in batches:
                    if not offer(item):
                        return
                offer(finished)
            except BaseException as e:  # handed to the consumer, which raises it
                offer(e)

        thread = threading.Thread(target=produce, name="sparsolve-shards", daemon=True)
        thread.start()
        try:
            while True:
                item = ahead.get()
                if item is finished:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    def __iter__(self):
        epoch = self.epoch
        for done, ready in self._prepared(epoch, self.rows_done):
            batch = ready()
            self.rows_done = done  # counted as consumed once handed out
            yield batch
        self.epoch, self.rows_done = epoch + 1, 0

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self):
        """The position after the last batch handed out: enough to resume the stream exactly."""
        return {"epoch": self.epoch, "rows_done": self.rows_done, "seed": self.seed, "n_rows": self.n_rows,
                "batch_size": self.batch_size, "block_rows": self.block_rows, "window_blocks": self.window_blocks,
                "shuffle": self.shuffle}

    def load_state_dict(self, state):
        """Resume from :meth:`state_dict`; the order's settings and the data size must match."""
        for key in ("seed", "n_rows", "batch_size", "block_rows", "window_blocks", "shuffle"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"the saved stream has {key}={state.get(key)!r} but this one has "
                                 f"{key}={getattr(self, key)!r}; resume with the same shards and settings")
        rows = int(state["rows_done"])
        if not 0 <= rows <= self.n_rows:
            raise ValueError(f"the saved position {rows} lies outside the {self.n_rows} rows")
        self.epoch, self.rows_done = int(state["epoch"]), rows
