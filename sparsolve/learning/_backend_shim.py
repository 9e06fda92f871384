"""``match`` and ``to_device``, the two backend functions learning needs before the
inference branch adds them to backend.py; at that merge this module is deleted and
its users import them from :mod:`sparsolve.backend`.  Until then it is the one place
in learning that knows the libraries apart."""
from __future__ import annotations

import numpy as np

from .. import backend


def match(a, like):
    """``a`` in the kind, device and dtype of ``like`` (no copy when it already is)."""
    if backend.kind(a) != backend.kind(like) or backend.device_of(a) != backend.device_of(like):
        a = backend.like(backend.to_numpy(a), like)
    dtype = backend.dtype_name(like)
    return backend.astype(a, dtype) if dtype in backend.SUPPORTED_DTYPES and backend.dtype_name(a) != dtype else a


def to_device(x, device):
    """``x`` on ``device``: None leaves it where it is; "cpu" brings torch and cupy arrays
    to the host (a torch tensor stays a torch tensor); "cuda" puts numpy and torch arrays
    on the GPU as torch tensors (cupy stays cupy)."""
    if device is None:
        return x
    if device == "cpu":
        if backend.is_torch(x):
            return x.cpu()
        return backend.to_numpy(x)
    if backend.is_cupy(x):
        return x
    if backend.is_torch(x):
        return x.cuda()
    return backend._torch().from_numpy(np.ascontiguousarray(x)).cuda()


def cuda_available() -> bool:
    try:
        return backend._torch().cuda.is_available()
    except ImportError:
        return False
