"""Shared fixtures for the inference tests: real natural-image patches and two dictionaries.

* ``X``: 8×8 grey patches of scikit-learn's sample photos, mean removed
  (:func:`sparsolve.data.natural_image_patches`), float64.
* ``D_learned``: 64 atoms learned from other patches by scikit-learn's
  MiniBatchDictionaryLearning (a few quick epochs; unit-norm rows), once per session.
* ``D_random``: 64 random unit-norm atoms.
* ``ALPHA``: the L1 weight α; on these patches it leaves about 5–10% of the
  codes nonzero for both dictionaries (checked in test_encode.py).
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
