"""learning/batches.py: the data checks and the fingerprint a checkpoint records."""
import numpy as np
import pytest

import sparsolve
from sparsolve.learning.batches import describe, fingerprint

torch = pytest.importorskip("torch")


def test_complex_data_is_refused_as_in_encode():
    X = np.ones((20, 4), dtype=np.complex128)
    with pytest.raises(TypeError, match="X is complex"):
        sparsolve.fit(X, 2, 0.1, progress=False)
    with pytest.raises(TypeError, match="batch 0 is complex"):
        sparsolve.fit([X], 2, 0.1, progress=False)
    with pytest.raises(TypeError, match="complex"):
        sparsolve.fit(torch.ones(20, 4, dtype=torch.complex64), 2, 0.1, progress=False)


def test_fingerprint_tells_data_apart():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 8))
    assert fingerprint(X) == fingerprint(X.copy())
    assert fingerprint(X) == fingerprint(torch.from_numpy(X))  # same numbers, another library
    Y = X.copy()
    Y[-1, 0] += 1.0  # the last row is always in the sample
    assert fingerprint(Y) != fingerprint(X)
    assert fingerprint(X[:499]) != fingerprint(X)
    assert fingerprint(X.astype(np.float32)) != fingerprint(X)
    assert "(500, 8)" in describe(fingerprint(X))


def test_fingerprint_of_streams():
    X = np.arange(40.0).reshape(10, 4)

    class Stream:
        identity = "shard-0017"

        def __iter__(self):
            yield X

    assert fingerprint(Stream()) == {"identity": "shard-0017"}
    assert fingerprint([X, X])["batches"] == 2
    assert fingerprint(iter([X])) is None  # a one-pass iterator says nothing about itself
