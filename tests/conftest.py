"""The fixtures the tests share, one for each thing.

* ``X``: 150 8×8 grey patches of scikit-learn's sample photos, mean removed
  (:func:`sparsolve.data.natural_image_patches`), float64: the inference tests' batch.
* ``patches``: 2,000 such patches, the learning tests' training data.
* ``D_learned``: 64 atoms learned from other patches by scikit-learn's
  MiniBatchDictionaryLearning (a few quick epochs; unit-norm rows), once per session.
* ``D_random``: 64 random unit-norm atoms.
* ``ALPHA``: the L1 weight α; on these patches it leaves about 5–10% of the
  codes nonzero for both dictionaries (checked in test_encode.py).
* ``ctrl_c_at``: a training callback that interrupts at a given step.
* ``host_reads``: counts the host reads of torch tensors made inside a block.
"""
from __future__ import annotations

import numpy as np
import pytest

from sparsolve.data import natural_image_patches

N_ATOMS = 64
ALPHA = 0.15


def _unit_rows(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def X():
    return natural_image_patches(patch_size=8, n_patches=150, seed=2)


@pytest.fixture(scope="session")
def patches():
    """2,000 8×8 natural-image patches (seed 3): what the learning tests train on.  Read-only
    (session scope): a test that changes the data copies it first."""
    X = natural_image_patches(patch_size=8, n_patches=2000, seed=3)
    X.flags.writeable = False
    return X


@pytest.fixture(scope="session")
def D_learned():
    from sklearn.decomposition import MiniBatchDictionaryLearning

    train = natural_image_patches(patch_size=8, n_patches=2000, seed=1)
    dl = MiniBatchDictionaryLearning(n_components=N_ATOMS, alpha=0.1, batch_size=256, max_iter=3,
                                     fit_algorithm="cd", random_state=0)
    return _unit_rows(dl.fit(train).components_)


@pytest.fixture(scope="session")
def D_random():
    return _unit_rows(np.random.default_rng(0).standard_normal((N_ATOMS, 64)))


@pytest.fixture(scope="session", params=["learned", "random"])
def D(request, D_learned, D_random):
    """Both dictionaries, one after the other."""
    return D_learned if request.param == "learned" else D_random


@pytest.fixture(scope="session")
def alpha():
    return ALPHA


@pytest.fixture(scope="session")
def reference(X, D, alpha):
    """A float64 reference solution: coordinate descent certified to a relative gap of 1e-12."""
    import sparsolve

    Z, info = sparsolve.encode(X, D, alpha, solver="cd", tol=1e-12, max_iter=10000, return_info=True)
    assert info.converged.all()
    return Z


@pytest.fixture
def ctrl_c_at():
    """``ctrl_c_at(n)``: a training callback that raises KeyboardInterrupt at step n, as a
    Ctrl-C there would (the trainers' shared loop, learning/training.py, handles both alike)."""
    def at(n):
        def callback(step, model, record):
            if step == n:
                raise KeyboardInterrupt
        return callback
    return at


@pytest.fixture
def host_reads():
    """``with host_reads() as reads:`` -- ``reads`` gets an entry for every read of a torch tensor's
    values on the host made inside the block: ``.item()``, ``bool()``, ``float()``, ``.numpy()``,
    ``.tolist()``, ... and an index by a boolean mask (whose row count the host must learn).  On a GPU
    each of them waits for the device's queue, which is what a bound on them is about; on a CPU
    they can be counted without one.  A CPU tensor's numpy view taken by ``backend.host_view`` is
    not a read (it shares the memory, and a GPU run never asks for it)."""
    import contextlib

    torch = pytest.importorskip("torch")
    from sparsolve import backend

    reads_of = ("item", "__bool__", "__float__", "__int__", "__index__", "numpy", "tolist", "nonzero")
    by_mask = lambda key: any(isinstance(k, torch.Tensor) and k.dtype == torch.bool  # noqa: E731
                              for k in (key if isinstance(key, tuple) else (key,)))

    @contextlib.contextmanager
    def counting():
        seen, viewing = [], [0]
        with pytest.MonkeyPatch.context() as patch:
            def read(name, original):
                def counted(self, *args, **kwargs):
                    if not viewing[0]:
                        seen.append(name)
                    return original(self, *args, **kwargs)
                return counted

            def indexed(name, original):
                def counted(self, key, *args):
                    if by_mask(key) and not viewing[0]:
                        seen.append(f"{name}[mask]")
                    return original(self, key, *args)
                return counted

            def view(x, _original=backend.host_view):
                viewing[0] += 1
                try:
                    return _original(x)
                finally:
                    viewing[0] -= 1

            for name in reads_of:
                patch.setattr(torch.Tensor, name, read(name, getattr(torch.Tensor, name)))
            for name in ("__getitem__", "__setitem__"):
                patch.setattr(torch.Tensor, name, indexed(name, getattr(torch.Tensor, name)))
            patch.setattr(backend, "host_view", view)
            yield seen

    return counting
