"""The ranks' kernels, compiled before any rank starts.

sparsolve's numba kernels compile on first use and keep the result on disk (``cache=True``).  In
a fresh clone the ranks would each compile them inside their time limit, and on a loaded 2-core
machine that alone can take minutes.  Running every case of cases.py for a step here, in the test
process, compiles the very signatures the ranks use (the same data and settings) and writes them
to numba's cache, where the ranks load them in a fraction of a second."""
from __future__ import annotations

import pytest

import sparsolve

from cases import CASES, data, iterable_batches


@pytest.fixture(scope="session")
def compiled_kernels():
    """Asked for by every test that starts ranks (test_distributed.launch), before it starts them."""
    for case in CASES.values():
        kwargs = {**case["kwargs"], "max_steps": 2}
        kwargs.pop("n_epochs", None)
        sparsolve.fit(iterable_batches() if case.get("iterable") else data(), progress=False, **kwargs)
