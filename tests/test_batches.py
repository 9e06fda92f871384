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


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_the_next_batch_is_on_its_way_to_cuda_while_this_one_is_used(monkeypatch, kind):
    """An array on the host (numpy, or a torch CPU tensor) learned from on CUDA: batch i + 1's
    copy (backend.start_copy: pinned, non-blocking) starts before batch i is handed to the step.
    The copy is mocked, so the order is checked without a GPU."""
    from sparsolve import backend
    from sparsolve.learning.batches import Source

    events = []

    def start_copy(a, device):
        i = sum(e[0] == "copy" for e in events)
        events.append(("copy", i))
        assert device == "cuda" and not backend.on_gpu(a) and backend.kind(a) == kind
        return lambda: events.append(("ready", i)) or a

    monkeypatch.setattr(backend, "start_copy", start_copy)
    X = np.arange(400.0).reshape(100, 4)
    X = torch.from_numpy(X) if kind == "torch" else X
    config = sparsolve.FitConfig(4, 0.1, batch_size=25, shuffle=False, device="cuda").resolved(100)
    for epoch, index, batch, key in Source(X, config, 0).batches((0, 0)):
        events.append(("step", index))
        np.testing.assert_array_equal(backend.to_numpy(batch), backend.to_numpy(X)[25 * index:25 * (index + 1)])
    assert events == [("copy", 0), ("copy", 1), ("ready", 0), ("step", 0), ("copy", 2), ("ready", 1), ("step", 1),
                      ("copy", 3), ("ready", 2), ("step", 2), ("ready", 3), ("step", 3)]
