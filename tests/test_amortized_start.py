"""Amortized start, exact finish: ``encode(X, D, alpha, init=encoder)`` and compare's
"encoder, then solver" rows.  Data and dictionary are conftest's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsolve

TOL = 1e-6


@pytest.fixture(scope="module")
def encoder(D_learned, alpha):
    # ISTA's iterate 4 as a LearnedG: a start near, but not at, the optimum
    return sparsolve.LearnedG.from_dictionary(D_learned, alpha, 3, scheme="ista")


@pytest.mark.parametrize("solver", ["cd", "fista"])
def test_encoder_start_certifies_the_same_tol_and_codes(X, D_learned, alpha, encoder, solver):
    Z_cold, cold = sparsolve.encode(X, D_learned, alpha, solver=solver, positive=True, tol=TOL, return_info=True)
    Z_warm, warm = sparsolve.encode(X, D_learned, alpha, solver=solver, positive=True, tol=TOL, init=encoder,
                                    return_info=True)
    assert cold.converged.all() and warm.converged.all()
    gaps = sparsolve.duality_gap(X, D_learned, Z_warm, alpha, positive=True)
    F = sparsolve.objective(X, D_learned, Z_warm, alpha)
    assert np.all(gaps <= TOL * F * (1 + 1e-6))
    # both are within tol of the same optimum, so the objectives agree to it
    F_cold = sparsolve.objective(X, D_learned, Z_cold, alpha)
    assert np.all(np.abs(F - F_cold) <= 2 * TOL * F_cold)
    np.testing.assert_allclose(Z_warm, Z_cold, atol=1e-2)
    # the start was used: an encoder's codes are no cold start
    assert not np.array_equal(warm.n_iter, cold.n_iter)


def test_any_callable_and_torch_input(X, D_learned, alpha, encoder):
    calls = []

    def guess(A):
        calls.append(A.shape)
        return encoder.encode(A)

    Z = sparsolve.encode(X, D_learned, alpha, solver="cd", positive=True, tol=TOL, init=guess)
    assert calls == [X.shape]
    Zt, info = sparsolve.encode(torch.as_tensor(X), torch.as_tensor(D_learned), alpha, solver="fista",
                                positive=True, tol=TOL, init=encoder, return_info=True)
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == torch.float64 and not Zt.requires_grad
    assert info.converged.all()
    F, Ft = (sparsolve.objective(X, D_learned, A, alpha) for A in (Z, Zt.numpy()))
    assert np.all(np.abs(F - Ft) <= 2 * TOL * F)


def test_signed_start_is_projected_for_the_nonnegative_lasso(X, D_learned, alpha):
    signed = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 2, signed=True, scheme="ista")
    assert (signed.encode(X) < 0).any()
    Z, info = sparsolve.encode(X, D_learned, alpha, solver="cd", positive=True, tol=TOL, init=signed,
                               return_info=True)
    assert info.converged.all() and (Z >= 0).all()


def test_bad_encoder_output_is_refused_before_any_work(X, D_learned, alpha):
    n, m = X.shape[0], D_learned.shape[0]
    with pytest.raises(ValueError, match=r"init \(function\) returned codes of shape \(150, 63\)"):
        sparsolve.encode(X, D_learned, alpha, solver="cd", init=lambda A: np.zeros((n, m - 1)))
    nan = np.zeros((n, m))
    nan[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf codes \(first at row 7\)"):
        sparsolve.encode(X, D_learned, alpha, solver="fista", init=lambda A: nan)
    with pytest.raises(TypeError, match="must return an array of codes, got list"):
        sparsolve.encode(X, D_learned, alpha, init=lambda A: [[0.0] * m] * n)
    # an encoder for another dictionary is named as such
    other = sparsolve.LearnedG.from_dictionary(D_learned[:40], alpha, 1)
    with pytest.raises(ValueError, match="trained for this dictionary"):
        sparsolve.encode(X, D_learned, alpha, init=other)
    # X's own errors come first: the encoder never sees bad data
    seen = []
    bad = X.copy()
    bad[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"X has NaN or Inf values \(first in row 4\)"):
        sparsolve.encode(bad, D_learned, alpha, init=lambda A: seen.append(A) or np.zeros((n, m)))
    assert seen == []


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_compare_rows_for_encoder_then_solver(X, D_learned, alpha, encoder):
    rows = sparsolve.compare(X, D_learned, {"ista T=3": encoder}, alpha=alpha, exact=("cd",), then=("cd", "fista"),
                             tol=1e-4, max_fista_iter=50)
    by_name = {r["method"]: r for r in rows}
    for solver in ("cd", "fista"):
        row = by_name[f"ista T=3, then {solver} tol=0.0001"]
        assert row["rel_gap"] <= 1e-4  # certified to tol from the encoder's start
        assert row["ms_per_1000"] > 0
    with pytest.raises(ValueError, match="then="):
        sparsolve.compare(X, D_learned, {"e": encoder}, alpha=alpha, exact=(), then=("newton",))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("solver", ["cd", "fista"])
def test_encoder_start_on_cuda(X, D_learned, alpha, solver):
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 cannot certify 1e-6
    try:
        enc = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 3, scheme="ista", tied=False, device="cuda")
        Xc, Dc = (torch.as_tensor(a, device="cuda") for a in (X, D_learned))
        Z, info = sparsolve.encode(Xc, Dc, alpha, solver=solver, positive=True, tol=TOL, init=enc, return_info=True)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    assert Z.is_cuda and info.converged.all()
    Zh = Z.cpu().numpy()
    gaps = sparsolve.duality_gap(X, D_learned, Zh, alpha, positive=True)
    assert np.all(gaps <= TOL * sparsolve.objective(X, D_learned, Zh, alpha) * (1 + 1e-6))
