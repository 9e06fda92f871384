"""encode_conv and fit_conv on CUDA: the codes and certificates of the CPU path, both products, output
following input.  Skipped where there is no CUDA device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsolve.conv import REGISTRY, duality_gap, encode_conv, fit_conv

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def exact_products():
    """cuDNN's TF32 convolutions would cost the comparisons their digits."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((4, 2, 24, 20))
    D = rng.standard_normal((5, 2, 4, 3))
    return X, D / np.sqrt((D ** 2).sum(axis=(1, 2, 3), keepdims=True))


@pytest.mark.parametrize("solver", [s for s in REGISTRY if not REGISTRY[s].runs_on_host])
@pytest.mark.parametrize("form", ["fft", "direct"])
def test_cuda_codes_match_the_host(solver, form):
    if solver == "admm" and form == "direct":
        pytest.skip("admm's solve is in the Fourier domain")
    X, D = _problem()
    Xc, Dc = torch.as_tensor(X, device="cuda"), torch.as_tensor(D, device="cuda")
    for boundary in REGISTRY[solver].BOUNDARIES:
        host = encode_conv(X, D, 0.3, boundary=boundary, solver=solver, tol=1e-9, max_iter=100000, form=form)
        Z, info = encode_conv(Xc, Dc, 0.3, boundary=boundary, solver=solver, tol=1e-9, max_iter=100000, form=form,
                              return_info=True)
        assert Z.is_cuda and Z.dtype == torch.float64 and info.converged.all()
        np.testing.assert_allclose(Z.cpu().numpy(), host, atol=1e-5)


def test_float32_on_cuda_is_certified_in_float64():
    X, D = _problem(1)
    Xc, Dc = (torch.as_tensor(a, dtype=torch.float32, device="cuda") for a in (X, D))
    Z, info = encode_conv(Xc, Dc, 0.3, boundary="circular", tol=1e-4, return_info=True)
    gap, F = duality_gap(X, D, Z.cpu().double().numpy(), 0.3, "circular")
    assert info.converged.all() and (gap <= 1e-4 * F).all()
    np.testing.assert_allclose(info.rel_gap, gap / F, rtol=1e-6)


def test_fit_conv_on_cuda():
    X, _ = _problem(2)
    model = fit_conv(torch.as_tensor(X[:, :1], device="cuda"), 3, 4, 0.3, boundary="circular", batch_size=2,
                     max_steps=3, seed=0, progress=False)
    host = fit_conv(X[:, :1], 3, 4, 0.3, boundary="circular", batch_size=2, max_steps=3, seed=0, progress=False,
                    solver="admm")
    np.testing.assert_allclose(model.filters, host.filters, atol=1e-4)
