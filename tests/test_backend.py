"""sparsolve.backend: the one place that tells numpy, torch and cupy apart."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from sparsolve import backend


@pytest.mark.parametrize("make, name", [(np.zeros, "numpy"), (torch.zeros, "torch")])
def test_namespace_and_kind(make, name):
    a = make((2, 3))
    assert backend.kind(a) == name and backend.namespace(a).__name__ == name
    assert backend.device_of(a) == "cpu" and not backend.on_gpu(a)


@pytest.mark.parametrize("obj", [[1.0], 3.0, "x", None])
def test_namespace_rejects_other_types(obj):
    with pytest.raises(TypeError, match=r"expected a numpy array, torch tensor or cupy array, got"):
        backend.namespace(obj)


def test_meta_tensor_is_not_on_cpu():
    assert backend.device_of(torch.zeros(2, device="meta")) == "meta"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_creation_follows_like(kind, dtype):
    ref = np.zeros(1, dtype=dtype) if kind == "numpy" else torch.zeros(1, dtype=getattr(torch, dtype))
    for a in (backend.zeros(ref, (2, 3)), backend.ones(ref, (2, 3))):
        assert backend.kind(a) == kind and backend.dtype_name(a) == dtype and tuple(a.shape) == (2, 3)
    assert (backend.to_numpy(backend.ones(ref, (4,))) == 1).all()
    assert backend.dtype_name(backend.zeros(ref, (1,), dtype=np.float64 if kind == "numpy" else torch.float64)) \
        == "float64"
    eye = backend.eye(ref, 3)
    assert backend.kind(eye) == kind and backend.dtype_name(eye) == dtype
    assert backend.to_numpy(eye).tolist() == np.eye(3).tolist()


def test_to_numpy_and_like_round_trip():
    a = np.arange(6.0).reshape(2, 3)
    t = backend.like(a, torch.zeros(1))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    np.testing.assert_array_equal(backend.to_numpy(t), a)
    assert backend.like(a, np.zeros(1)) is a
    # a non-contiguous host array still moves
    np.testing.assert_array_equal(backend.to_numpy(backend.like(a.T, t)), a.T)
    assert backend.to_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]


def test_astype():
    assert backend.dtype_name(backend.astype(np.zeros(2), "float32")) == "float32"
    assert backend.astype(torch.zeros(2), "float64").dtype == torch.float64


def test_item():
    assert backend.item(np.float32(2.5)) == 2.5 and backend.item(torch.tensor(1.5)) == 1.5
    assert backend.item(3) == 3.0


def test_free_bytes_on_the_host():
    assert backend.free_bytes(np.zeros(1)) > 0


def test_synchronize_is_a_no_op_on_cpu():
    assert backend.synchronize(np.zeros(1)) is None
    assert backend.synchronize(torch.zeros(1)) is None


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_take_rows_in_the_kind_of_the_array(kind):
    X = np.arange(24.0).reshape(8, 3)
    Xk = X if kind == "numpy" else torch.from_numpy(X)
    rows = np.array([1, 4, 6])
    picked = backend.take_rows(Xk, rows)
    assert backend.kind(picked) == kind
    np.testing.assert_array_equal(backend.to_numpy(picked), X[rows])


def test_host_view_shares_memory_with_a_torch_cpu_tensor():
    t = torch.zeros(3, 2, dtype=torch.float32)
    view = backend.host_view(t)
    assert isinstance(view, np.ndarray) and view.dtype == np.float32
    view[1, 0] = 5.0
    assert t[1, 0].item() == 5.0
    a = np.zeros(2)
    assert backend.host_view(a) is a
    half = torch.zeros(2, dtype=torch.bfloat16)  # numpy has no bfloat16: the tensor stays
    assert backend.host_view(half) is half


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_match_copy_concat(kind):
    ref = np.zeros(1, dtype=np.float32) if kind == "numpy" else torch.zeros(1, dtype=torch.float32)
    a = np.arange(6.0).reshape(2, 3)  # float64 numpy
    for source in (a, torch.from_numpy(a)):
        m = backend.match(source, ref)
        assert backend.kind(m) == kind and backend.dtype_name(m) == "float32"
        np.testing.assert_array_equal(backend.to_numpy(m), a.astype(np.float32))
    same = backend.match(ref, ref)
    assert same is ref  # nothing to do: no copy
    c = backend.copy(same)
    c[0] = 5
    assert backend.to_numpy(ref)[0] == 0
    parts = [backend.match(a, ref), backend.match(a[:1], ref)]
    joined = backend.concat(parts)
    assert backend.kind(joined) == kind and tuple(joined.shape) == (3, 3)
    np.testing.assert_array_equal(backend.to_numpy(joined)[2], a[0])


def test_no_grad_and_to_device():
    w = torch.ones(2, requires_grad=True)
    with backend.no_grad(w):
        assert not (w * 2).requires_grad
    with backend.no_grad(np.ones(2)):
        assert (w * 2).requires_grad  # a no-op for numpy arrays
    a = np.ones((2, 2))
    assert backend.to_device(a, "cpu") is a
    t = backend.to_device(torch.from_numpy(a), "cpu")
    assert isinstance(t, torch.Tensor) and backend.device_of(t) == "cpu"
