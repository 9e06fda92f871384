"""Every bad input gets a clear error that names the argument -- never a silent NaN, never a hang."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve import DivergenceError


@pytest.fixture
def XD(X, D_random):
    return X[:30].copy(), D_random.copy()


def test_n_features_mismatch(XD):
    X, D = XD
    with pytest.raises(ValueError, match=r"X has 64 features but D has 63"):
        sparsolve.encode(X, D[:, :63], 0.1)


def test_transposed_dictionary_is_named(XD):
    X, D = XD
    with pytest.raises(ValueError, match=r"did you pass D\.T"):
        sparsolve.encode(X, D[:32].T.copy(), 0.1)  # a (n_features, n_atoms) dictionary


@pytest.mark.parametrize("shape", [(64,), (2, 3, 64)])
def test_wrong_ndim_X(XD, shape):
    _, D = XD
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        sparsolve.encode(np.zeros(shape), D, 0.1)


@pytest.mark.parametrize("shape", [(64,), (1, 64, 64)])
def test_wrong_ndim_D(XD, shape):
    X, _ = XD
    with pytest.raises(ValueError, match=r"D must be 2-D"):
        sparsolve.encode(X, np.ones(shape), 0.1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_nan_or_inf_in_X(XD, bad, kind):
    X, D = XD
    X[7, 3] = bad
    if kind == "torch":
        X, D = torch.from_numpy(X), torch.from_numpy(D)
    with pytest.raises(ValueError, match=r"X has NaN or Inf values \(first in row 7\)"):
        sparsolve.encode(X, D, 0.1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("solver", ["fista", "cd", "omp"])
def test_nan_or_inf_in_D(XD, bad, solver):
    X, D = XD
    D[2, 5] = bad
    with pytest.raises(ValueError, match=r"D contains NaN or Inf"):
        sparsolve.encode(X, D, 0.1, solver=solver)


@pytest.mark.parametrize("alpha", [-0.1, -1e-300, np.nan, np.inf])
def test_alpha_negative_or_not_finite(XD, alpha):
    X, D = XD
    with pytest.raises(ValueError, match=r"alpha must be a finite number ≥ 0"):
        sparsolve.encode(X, D, alpha)


@pytest.mark.parametrize("solver,tol", [("cd", 1e-4), ("cd", 0.0), ("fista", 1e-4), ("ista", 1e-4), ("lca", 1e-4)])
@pytest.mark.parametrize("positive", [False, True])
def test_alpha_zero_cannot_be_certified(XD, solver, tol, positive):
    # at α = 0 the gap stays F(z): the solvers would run to max_iter (and cd's working
    # set would never grow: it returned NNLS codes 3.9 above the optimum before)
    X, D = XD
    with pytest.raises(ValueError, match=r"alpha=0 .* least squares.*scipy\.optimize\.nnls"):
        sparsolve.encode(X, D, 0.0, solver=solver, positive=positive, tol=tol)


def test_alpha_zero_runs_fixed_iterations_to_least_squares():
    # tol=0 asks for no certificate: FISTA then is projected gradient on least squares
    rng = np.random.default_rng(0)
    D = rng.standard_normal((8, 16))
    X = rng.standard_normal((5, 16))
    Z = sparsolve.encode(X, D, 0.0, solver="fista", tol=0.0, max_iter=3000)
    Z_ls = np.linalg.lstsq(D.T, X.T, rcond=None)[0].T
    np.testing.assert_allclose(Z, Z_ls, atol=1e-6)
    # omp ignores α, so α = 0 is its normal call
    sparsolve.encode(X, D, 0.0, solver="omp", n_nonzero_coefs=3, tol=0.0)


def test_alpha_not_a_scalar(XD):
    X, D = XD
    with pytest.raises(TypeError, match=r"alpha must be a scalar"):
        sparsolve.encode(X, D, np.full(3, 0.1))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.complex128, bool])
@pytest.mark.parametrize("which", ["X", "D"])
def test_unsupported_dtype_numpy(XD, dtype, which):
    X, D = XD
    X, D = (X.astype(dtype), D) if which == "X" else (X, D.astype(dtype))
    with pytest.raises(TypeError, match=rf"{which} has dtype .*supports float32 and float64"):
        sparsolve.encode(X, D, 0.1)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.bfloat16])
def test_unsupported_dtype_torch(XD, dtype):
    X, D = XD
    with pytest.raises(TypeError, match=r"X has dtype .*supports float32 and float64"):
        sparsolve.encode(torch.from_numpy(X).to(dtype), torch.from_numpy(D), 0.1)


@pytest.mark.parametrize("obj", [[[1.0, 2.0]], "X", None])
def test_not_an_array(XD, obj):
    _, D = XD
    with pytest.raises(TypeError, match=r"expected a numpy array, torch tensor or cupy array"):
        sparsolve.encode(obj, D, 0.1)


def test_X_and_D_on_different_devices(XD):
    X, D = XD
    # the meta device stands in for a GPU here: a tensor that is not on the CPU
    Dm = torch.from_numpy(D).to("meta")
    with pytest.raises(ValueError, match=r"X is on cpu but D is on meta.*same device"):
        sparsolve.encode(torch.from_numpy(X), Dm, 0.1)
    with pytest.raises(ValueError, match=r"X is on meta but D is on cpu"):
        sparsolve.encode(torch.from_numpy(X).to("meta"), torch.from_numpy(D), 0.1)
    with pytest.raises(ValueError, match=r"X is on cpu but D is on meta"):
        sparsolve.encode(X, Dm, 0.1)


def test_init_on_another_device_or_shape(XD):
    X, D = XD
    with pytest.raises(ValueError, match=r"init must be the same kind"):
        sparsolve.encode(X, D, 0.1, init=torch.zeros(30, 64, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"init must have shape \(n_samples, n_atoms\) = \(30, 64\)"):
        sparsolve.encode(X, D, 0.1, init=np.zeros((64, 30)))


def test_unknown_solver(XD):
    X, D = XD
    with pytest.raises(ValueError, match=r"solver='lars' is not known; choose one of"):
        sparsolve.encode(X, D, 0.1, solver="lars")


@pytest.mark.parametrize("solver, option", [("fista", "gamma"), ("cd", "restart"), ("lca", "n_nonzero_coefs"),
                                            ("omp", "form"), ("ista", "momentum")])
def test_unknown_option(XD, solver, option):
    X, D = XD
    with pytest.raises(TypeError, match=rf"unknown option\(s\) \['{option}'\] for solver='{solver}'"):
        sparsolve.encode(X, D, 0.1, solver=solver, **{option: 1})


@pytest.mark.parametrize("kw, match", [
    ({"solver": "lca", "threshold": "relu"}, r"threshold='relu' is not known"),
    ({"solver": "lca", "threshold": "soft", "positive": True}, r"threshold='soft' contradicts positive=True"),
    ({"solver": "lca", "threshold": "hard", "positive": True}, r"threshold='hard' contradicts positive=True"),
    ({"solver": "fista", "form": "dense"}, r"form='dense' is not known"),
    ({"solver": "lca", "gamma": 0.0}, r"gamma must be a finite number > 0"),
    ({"solver": "omp", "positive": True}, r"does not support positive=True"),
    ({"solver": "omp", "n_nonzero_coefs": 0}, r"n_nonzero_coefs=0 must lie in \[1, "),
    ({"solver": "omp", "n_nonzero_coefs": 65}, r"n_nonzero_coefs=65 must lie in .* = \[1, 64\]"),
    ({"tol": -1e-3}, r"tol must be a number ≥ 0"),
    ({"max_iter": -1}, r"max_iter must be an integer ≥ 0"),
    ({"max_iter": 2.5}, r"max_iter must be an integer ≥ 0"),
])
def test_bad_option_values(XD, kw, match):
    X, D = XD
    with pytest.raises(ValueError, match=match):
        sparsolve.encode(X, D, 0.1, **kw)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("gamma", [3.0, 1e6, 1e200])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_diverging_lca_raises_and_never_returns_nan(XD, gamma, kind):
    X, D = XD
    L = sparsolve.inference.lipschitz(D)
    assert gamma > 2 / L  # beyond the stability limit
    if kind == "torch":
        X, D = torch.from_numpy(X), torch.from_numpy(D)
    with pytest.raises(DivergenceError, match=r"lca diverged.*gamma=.*is too large.*gamma < 2/L"):
        sparsolve.encode(X, D, 0.1, solver="lca", gamma=gamma, max_iter=10000)


def test_diverging_fista_with_a_wrong_L_raises(XD):
    X, D = XD
    with pytest.raises(DivergenceError, match=r"fista diverged.*pass a larger L"):
        sparsolve.encode(X, D, 0.1, solver="fista", L=0.01, max_iter=10000)


def test_numpy_scalars_are_accepted(XD):
    X, D = XD
    Z = sparsolve.encode(X, D, np.float32(0.1), tol=np.float32(1e-4), max_iter=np.int64(500))
    assert Z.shape == (30, 64)


def test_divergence_error_is_a_floating_point_error():
    assert issubclass(DivergenceError, FloatingPointError)


def test_fused_option(XD):
    X, D = XD
    with pytest.raises(ValueError, match=r"fused='yes' is not known; choose one of \['auto', True, False\]"):
        sparsolve.encode(X, D, 0.1, solver="fista", fused="yes")
    with pytest.raises(ValueError, match=r"fused=True needs X as a CUDA torch tensor and Triton"):
        sparsolve.encode(torch.from_numpy(X), torch.from_numpy(D), 0.1, solver="fista", fused=True)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['fused'\] for solver='ista'"):
        sparsolve.encode(X, D, 0.1, solver="ista", fused=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("solver", sorted(sparsolve.inference.REGISTRY))
def test_nan_or_inf_init_is_refused_for_every_solver(XD, bad, solver):
    # cd returned all-NaN codes with worst_gap=0; fista and lca blamed the step size
    X, D = XD
    init = np.zeros((X.shape[0], D.shape[0]))
    init[4, 2] = bad
    with pytest.raises(ValueError, match=r"init has NaN or Inf values \(first in row 4\)"):
        sparsolve.encode(X, D, 0.1, solver=solver, init=init)


@pytest.mark.parametrize("solver", ["cd", "fista"])
def test_overflowing_X_is_refused_not_certified(XD, solver):
    # X × 1e160 with cd gave converged 0/600 and worst_gap=0: ‖x‖² overflowed, F and the
    # gap became NaN, and the relative gap of a NaN F was reported as 0
    X, D = XD
    with pytest.raises(ValueError, match=r"X is too large for float64: ‖x‖² overflows \(first at row 0\)"):
        sparsolve.encode(X * 1e160, D, 0.1, solver=solver)


def test_a_gap_that_cannot_be_computed_is_nan_never_zero(XD):
    from sparsolve.inference import _cd_kernels, _cholesky

    X, D = XD
    G = D @ D.T
    x = X[1]
    b = x @ D.T
    z = np.zeros(D.shape[0])
    m = D.shape[0]
    L, S, in_S = np.empty((m, m)), np.empty(m, dtype=np.int64), np.zeros(m, dtype=np.bool_)
    _, rel_gap, ok = _cd_kernels._solve_one(z, b.copy(), b, np.inf, G, 0.1, False, 1e-6, 5, _cholesky.damping(G), 16,
                                   L, S, in_S)
    assert np.isnan(rel_gap) and not ok


def test_convergence_warning_advises_cd_only_to_other_solvers(XD):
    X, D = XD
    with pytest.warns(sparsolve.ConvergenceWarning, match=r"or try solver='cd'"):
        sparsolve.encode(X, D, 0.1, solver="ista", tol=1e-12, max_iter=2)
    with pytest.warns(sparsolve.ConvergenceWarning) as record:
        sparsolve.encode(X, D, 0.1, solver="cd", tol=1e-12, max_iter=0)
    assert record and all("solver='cd'" not in str(w.message).split(";")[1] for w in record)


@pytest.mark.parametrize("name", sorted(sparsolve.inference.REGISTRY))
def test_each_solver_names_its_own_options(name):
    cls = sparsolve.inference.solver_class(name)
    shown = sorted(cls.OPTIONS) if cls.OPTIONS else "no options"
    with pytest.raises(TypeError, match=rf"for solver='{name}'; it accepts {re.escape(str(shown))}"):
        cls.check({"no_such_option": 1})
