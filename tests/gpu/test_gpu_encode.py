"""encode on CUDA (torch and cupy): output follows input, certified gaps, chunking.

Run with ``python -m pytest -q -m gpu tests/gpu``; everything here is skipped
where there is no CUDA device (and the cupy tests where cupy is missing)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve import backend

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SOLVERS = ["ista", "fista", "lca", "cd", "omp"]


@pytest.fixture(autouse=True)
def exact_products():
    """TF32 would cost the float32 tests their digits; the benchmark allows it, the tests do not."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


def cuda(a, dtype=torch.float64):
    return torch.as_tensor(np.asarray(a)).to("cuda", dtype)


def rel_gap(X, D, Z, alpha):
    Z = np.asarray(backend.to_numpy(Z), dtype=np.float64)
    return sparsolve.duality_gap(X, D, Z, alpha) / sparsolve.objective(X, D, Z, alpha)


@pytest.mark.parametrize("solver", ["ista", "fista", "lca", "cd"])
def test_torch_cuda_float64_reaches_gap(X, D, alpha, reference, solver):
    Z, info = sparsolve.encode(cuda(X), cuda(D), alpha, solver=solver, tol=1e-7, max_iter=20000,
                               return_info=True)
    assert Z.is_cuda and Z.dtype == torch.float64 and info.converged.all()
    assert rel_gap(X, D, Z, alpha).max() <= 1e-6
    np.testing.assert_allclose(Z.cpu().numpy(), reference, atol=1e-3 * np.abs(reference).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("solver", SOLVERS)
def test_torch_cuda_output_follows_input(X, D_learned, alpha, solver, dtype):
    Z = sparsolve.encode(cuda(X, dtype), cuda(D_learned, dtype), alpha, solver=solver, tol=1e-3,
                         max_iter=20000)
    assert isinstance(Z, torch.Tensor) and Z.is_cuda and Z.dtype == dtype
    assert Z.shape == (X.shape[0], D_learned.shape[0]) and torch.isfinite(Z).all()
    if solver != "omp":
        assert rel_gap(X, D_learned, Z, alpha).max() <= 2e-3


def test_torch_cuda_empty(D_learned, alpha):
    Z = sparsolve.encode(torch.zeros(0, 64, device="cuda"), cuda(D_learned, torch.float32), alpha)
    assert Z.is_cuda and Z.shape == (0, 64) and Z.dtype == torch.float32


def test_torch_cuda_warm_start(X, D_learned, alpha):
    Zr = sparsolve.encode(X, D_learned, alpha, solver="cd", tol=1e-10)
    _, info = sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="fista", init=cuda(Zr), tol=1e-8,
                               return_info=True)
    assert (info.n_iter == 0).all()


def test_torch_cuda_gram_and_factored_agree(X, D_learned, alpha):
    Zg = sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="fista", form="gram", tol=1e-10, max_iter=20000)
    Zf = sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="fista", form="factored", tol=1e-10,
                          max_iter=20000)
    np.testing.assert_allclose(Zg.cpu().numpy(), Zf.cpu().numpy(), atol=1e-6)


def test_torch_cuda_chunks_agree(X, D_learned, alpha, monkeypatch):
    whole = sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="fista", tol=1e-10, max_iter=20000)
    monkeypatch.setattr(backend, "free_bytes", lambda x: 40 * 8 * (8 * 64 + 2 * 64))
    chunked = sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="fista", tol=1e-10, max_iter=20000)
    assert chunked.is_cuda
    np.testing.assert_allclose(chunked.cpu().numpy(), whole.cpu().numpy(), atol=1e-10)


def test_devices_differ(X, D_learned, alpha):
    with pytest.raises(ValueError, match=r"X is on cuda:0 but D is on cpu"):
        sparsolve.encode(cuda(X), torch.from_numpy(D_learned), alpha)
    with pytest.raises(ValueError, match=r"X is on cpu but D is on cuda:0"):
        sparsolve.encode(X, cuda(D_learned), alpha)


def test_cuda_nan_is_rejected(X, D_learned, alpha):
    Xc = cuda(X)
    Xc[5, 0] = float("nan")
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at row 5\)"):
        sparsolve.encode(Xc, cuda(D_learned), alpha)


def test_cuda_diverging_lca_raises(X, D_learned, alpha):
    with pytest.raises(sparsolve.DivergenceError):
        sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="lca", gamma=10.0, max_iter=10000)


# ---------------------------------------------------------------- cupy


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_cupy_output_follows_input(cp, X, D_learned, alpha, solver, dtype):
    Z = sparsolve.encode(cp.asarray(X, dtype=dtype), cp.asarray(D_learned, dtype=dtype), alpha, solver=solver,
                         tol=1e-3, max_iter=20000)
    assert isinstance(Z, cp.ndarray) and str(Z.dtype) == dtype and Z.shape == (X.shape[0], 64)
    if solver != "omp":
        assert rel_gap(X, D_learned, Z.get(), alpha).max() <= 2e-3


@pytest.mark.parametrize("solver", ["fista", "cd"])
def test_cupy_float64_reaches_gap(cp, X, D, alpha, solver):
    Z = sparsolve.encode(cp.asarray(X), cp.asarray(D), alpha, solver=solver, tol=1e-7, max_iter=20000)
    assert rel_gap(X, D, Z.get(), alpha).max() <= 1e-6


def test_cupy_empty_and_mismatch(cp, X, D_learned, alpha):
    Z = sparsolve.encode(cp.zeros((0, 64), dtype="float32"), cp.asarray(D_learned, dtype="float32"), alpha)
    assert isinstance(Z, cp.ndarray) and Z.shape == (0, 64) and Z.dtype == cp.float32
    with pytest.raises(ValueError, match=r"X is on cpu but D is on cuda:0"):
        sparsolve.encode(X, cp.asarray(D_learned), alpha)


# ---------------------------------------------------------------- the fused FISTA kernel


@pytest.fixture(scope="module")
def triton_kernel():
    from sparsolve.inference import fused

    if not fused.available():
        pytest.skip("Triton is not installed")
    return fused


@pytest.mark.parametrize("restart", [True, False])
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_step_equals_array_step(triton_kernel, dtype, positive, restart):
    """One kernel step against FISTA's array-operation step, on fresh random input
    (an odd row count and a column count that is not a power of two)."""
    from types import SimpleNamespace

    from sparsolve.inference.fista import FISTA

    g = torch.Generator(device="cuda").manual_seed(0)
    n, m = 1001, 700
    c, y, z = (torch.randn(n, m, dtype=dtype, device="cuda", generator=g) for _ in range(3))
    t = 1 + 5 * torch.rand(n, dtype=dtype, device="cuda", generator=g)
    prob = SimpleNamespace(L=3.0, alpha=0.7, positive=positive, correlation=lambda Y: c)
    ref = {"z": z.clone(), "y": y.clone(), "t": t.clone()}
    FISTA(restart=restart, fused=False).step(prob, ref)
    inputs = [a.clone() for a in (c, y, z, t)]
    z2, y2, t2 = triton_kernel.fista_update(c, y, z, t, triton_kernel.step_sizes(z, 3.0, 0.7), positive, restart)
    assert all(torch.equal(a, b) for a, b in zip(inputs, (c, y, z, t)))  # the inputs are left as they were
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for got, want in ((z2, ref["z"]), (y2, ref["y"]), (t2, ref["t"])):
        assert torch.isfinite(got).all()
        assert float((got - want).abs().max()) <= tol * float(want.abs().max())
    if restart:
        assert (t2 == 1).any() and (t2 > 1).any()  # both branches of the restart were taken


@pytest.mark.parametrize("positive", [False, True])
def test_fused_encode_equals_array_encode(triton_kernel, X, D_learned, alpha, positive):
    Zf, fi = sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="fista", positive=positive, tol=1e-9,
                              fused=True, return_info=True)
    Za, ai = sparsolve.encode(cuda(X), cuda(D_learned), alpha, solver="fista", positive=positive, tol=1e-9,
                              fused=False, return_info=True)
    Z64 = Zf.cpu().numpy()
    gap = sparsolve.duality_gap(X, D_learned, Z64, alpha, positive=positive)
    assert fi.converged.all() and (gap / sparsolve.objective(X, D_learned, Z64, alpha)).max() <= 1e-8
    np.testing.assert_allclose(Zf.cpu().numpy(), Za.cpu().numpy(), atol=1e-9)
    assert np.abs(fi.n_iter - ai.n_iter).max() <= 10  # one certificate interval at most
