"""Counting host reads of torch tensors on the CPU, where no GPU is needed to see them.

A read of a tensor's values on the host (``.item()``, ``bool()``, ``.numpy()``, ...) is what
costs a GPU run a sync; so is indexing by a boolean mask, whose result's row count the host
must learn.  :func:`counting` counts both on CPU torch, attributed to the module of sparsolve
that asked, for ``benchmarks/encode.py --reads``, which reports them by module.  The tests
count reads without attribution (tests/conftest.py's ``host_reads``) and assert bounds only.
"""
from __future__ import annotations

import contextlib
import sys

import pytest
import torch

READS = ("item", "__bool__", "__float__", "__int__", "__index__", "numpy", "tolist", "nonzero")
INDEXING = ("__getitem__", "__setitem__")


def _caller_module():
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == "sparsolve.backend" and frame.f_code.co_name == "host_view":
            return ""  # a CPU tensor's numpy view shares its memory: no transfer (on CUDA it is not asked)
        if name.startswith("sparsolve") and name != "sparsolve.backend":
            return name
        frame = frame.f_back
    return ""


def _by_mask(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in parts)


@contextlib.contextmanager
def counting(modules, excluded=()):
    """A list that gets the asking module of every host read made by code in ``modules``
    (prefixes of module names), except ``excluded``, while the context is open."""
    seen = []

    def asked():
        module = _caller_module()
        if module.startswith(tuple(modules)) and not module.startswith(tuple(excluded)):
            seen.append(module)

    with pytest.MonkeyPatch.context() as patch:
        for name in READS:
            def read(self, *args, _original=getattr(torch.Tensor, name), **kwargs):
                asked()
                return _original(self, *args, **kwargs)

            patch.setattr(torch.Tensor, name, read)
        for name in INDEXING:
            def index(self, key, *args, _original=getattr(torch.Tensor, name)):
                if _by_mask(key):
                    asked()
                return _original(self, key, *args)

            patch.setattr(torch.Tensor, name, index)
        yield seen
