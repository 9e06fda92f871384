"""encode_conv: the convolutional lasso's products, certificates and codes, against the patch lasso and
a float64 reference on the explicit convolution matrix."""
from __future__ import annotations

import numpy as np
import pytest

import sparsolve
from sparsolve.conv import BOUNDARIES, REGISTRY, duality_gap, encode_conv, objective
from sparsolve.conv.operator import ConvOperator, geometry_of, lipschitz

# (signal grid, filter grid) for 1-D and 2-D
SHAPES = {1: ((40,), (5,)), 2: ((13, 11), (4, 3))}


def _unit(D):
    return D / np.sqrt((D ** 2).sum(axis=tuple(range(1, D.ndim)), keepdims=True))


def _problem(ndim, n=3, C=2, K=4, seed=0, dtype=np.float64):
    signal, filters = SHAPES[ndim]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, C, *signal)).astype(dtype)
    D = _unit(rng.standard_normal((K, C, *filters))).astype(dtype)
    return X, D


def _matrix(D, X, boundary):
    """The explicit synthesis matrix M (K·|P|, C·|S|): row j is the signal of the j-th unit code."""
    g = geometry_of(X, D, boundary)
    op = ConvOperator(D, g, "direct")
    eye = np.eye(g.code_size).reshape(g.code_size, *g.code_shape)
    return op.synthesize(eye).reshape(g.code_size, -1)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_fft_and_direct_products_agree_and_are_adjoint(ndim, boundary):
    X, D = _problem(ndim)
    g = geometry_of(X, D, boundary)
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((X.shape[0], *g.code_shape))
    fft, direct = ConvOperator(D, g, "fft"), ConvOperator(D, g, "direct")
    scale = np.abs(X).max() * np.abs(Z).max()
    np.testing.assert_allclose(fft.synthesize(Z), direct.synthesize(Z), atol=1e-12 * scale * Z[0].size)
    np.testing.assert_allclose(fft.analyze(X), direct.analyze(X), atol=1e-12 * scale * X[0].size)
    # ⟨Dz, x⟩ = ⟨z, Dᵀx⟩: the analysis is the synthesis' adjoint
    for op in (fft, direct):
        assert np.isclose((op.synthesize(Z) * X).sum(), (Z * op.analyze(X)).sum(), rtol=1e-10)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_the_products_on_torch_tensors_are_the_numpy_ones(boundary):
    """The operator written once over the backend: torch's FFT, pad and roll give numpy's products."""
    torch = pytest.importorskip("torch")
    X, D = _problem(2)
    g = geometry_of(X, D, boundary)
    Z = np.random.default_rng(2).standard_normal((X.shape[0], *g.code_shape))
    for form in ("fft", "direct"):
        ref = ConvOperator(D, g, form)
        op = ConvOperator(torch.from_numpy(D), g, form)
        np.testing.assert_allclose(op.synthesize(torch.from_numpy(Z)).numpy(), ref.synthesize(Z), atol=1e-10)
        np.testing.assert_allclose(op.analyze(torch.from_numpy(X)).numpy(), ref.analyze(X), atol=1e-10)
    if boundary == "circular":
        rho = np.array([0.5, 2.0, 7.0])
        ref = ConvOperator(D, g, "fft")
        op = ConvOperator(torch.from_numpy(D), g, "fft")
        expect = ref.regularized_solve(ref.drive(X), Z, rho)
        got = op.regularized_solve(op.drive(torch.from_numpy(X)), torch.from_numpy(Z), torch.from_numpy(rho))
        np.testing.assert_allclose(got.numpy(), expect, atol=1e-10)
        # the solve is what it says: (DᵀD + ρI) z = Dᵀx + ρB
        lhs = ref.analyze(ref.synthesize(expect)) + rho[:, None, None, None] * expect
        np.testing.assert_allclose(lhs, ref.analyze(X) + rho[:, None, None, None] * Z, atol=1e-9)


def test_admm_fused_host_step_is_the_array_step():
    X, D = _problem(2, C=1)
    a, ia = encode_conv(X, D, 0.3, boundary="circular", solver="admm", tol=1e-8, return_info=True)
    b, ib = encode_conv(X, D, 0.3, boundary="circular", solver="admm", tol=1e-8, return_info=True, fused=False)
    np.testing.assert_array_equal(ia.n_iter, ib.n_iter)
    np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_lipschitz_bounds_the_operator_norm(boundary):
    X, D = _problem(2)
    M = _matrix(D, X, boundary)
    top = np.linalg.norm(M, 2) ** 2
    L = lipschitz(D, geometry_of(X, D, boundary))
    assert top <= L
    if boundary == "circular":  # exact on the signal's own grid
        assert L <= top * (1 + 1e-5)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_codes_match_a_float64_reference_on_the_explicit_matrix(ndim, boundary):
    X, D = _problem(ndim, n=2)
    alpha = 0.4
    M = _matrix(D, X, boundary)
    ref = sparsolve.encode(X.reshape(2, -1), M, alpha, solver="cd", tol=1e-13, max_iter=100000)
    for solver, cls in REGISTRY.items():
        if boundary not in cls.BOUNDARIES or solver == "ista":  # ista: fista's update without momentum
            continue
        Z, info = encode_conv(X, D, alpha, boundary=boundary, solver=solver, tol=1e-10, max_iter=200000,
                              return_info=True)
        assert info.converged.all(), solver
        np.testing.assert_allclose(Z.reshape(2, -1), ref, atol=1e-4, err_msg=solver)
        # the same objective as the patch lasso on the explicit matrix
        np.testing.assert_allclose(objective(X, D, Z, alpha, boundary), sparsolve.objective(X.reshape(2, -1), M,
                                   Z.reshape(2, -1), alpha), rtol=1e-10)


@pytest.mark.parametrize("solver", sorted(REGISTRY))
@pytest.mark.parametrize("positive", [False, True])
def test_every_solver_certifies_every_boundary_it_takes(solver, positive):
    X, D = _problem(2, n=4)
    for boundary in REGISTRY[solver].BOUNDARIES:
        Z, info = encode_conv(X, D, 0.3, boundary=boundary, solver=solver, positive=positive, tol=1e-4,
                              max_iter=100000, return_info=True)
        gap, F = duality_gap(X, D, Z, 0.3, boundary, positive=positive)
        assert info.converged.all() and (gap <= 1e-4 * F).all(), (solver, boundary)
        np.testing.assert_allclose(info.rel_gap, gap / F, rtol=1e-6, atol=1e-12)
        assert info.n_iter.min() > 0
        if positive:
            assert Z.min() >= 0
        assert Z.shape == (4, 4, *geometry_of(X, D, boundary).codes)


def test_one_position_is_the_patch_lasso_same_codes_same_gap():
    """Filters as large as the signal, boundary valid: one code a filter, the patch lasso on flattened
    signals and filters -- the same codes, and the same gap at any codes."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 2, 6, 5))
    D = _unit(rng.standard_normal((7, 2, 6, 5)))
    alpha = 0.5
    Z = encode_conv(X, D, alpha, boundary="valid", solver="fista", tol=1e-12, max_iter=100000)
    assert Z.shape == (5, 7, 1, 1)
    Xf, Df = X.reshape(5, -1), D.reshape(7, -1)
    ref = sparsolve.encode(Xf, Df, alpha, solver="cd", tol=1e-13)
    np.testing.assert_allclose(Z.reshape(5, 7), ref, atol=1e-7)
    any_codes = rng.standard_normal((5, 7, 1, 1)) * (rng.random((5, 7, 1, 1)) < 0.5)
    gap, F = duality_gap(X, D, any_codes, alpha, "valid")
    np.testing.assert_allclose(gap, sparsolve.duality_gap(Xf, Df, any_codes.reshape(5, 7), alpha), rtol=1e-10)
    np.testing.assert_allclose(F, sparsolve.objective(Xf, Df, any_codes.reshape(5, 7), alpha), rtol=1e-12)


@pytest.mark.parametrize("solver", ["cd", "fista"])
def test_one_by_one_filters_are_the_patch_lasso_at_every_pixel(solver):
    """1×1 filters: each pixel's channels are coded on their own, as the rows of a patch lasso."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((2, 3, 5, 4))
    D = _unit(rng.standard_normal((6, 3, 1, 1)))
    alpha = 0.3
    Z, info = encode_conv(X, D, alpha, boundary="circular", solver=solver, tol=1e-12, max_iter=100000,
                          return_info=True)
    pixels = X.transpose(0, 2, 3, 1).reshape(-1, 3)
    ref, ref_info = sparsolve.encode(pixels, D.reshape(6, 3), alpha, solver="cd", tol=1e-13, return_info=True)
    np.testing.assert_allclose(Z.transpose(0, 2, 3, 1).reshape(-1, 6), ref, atol=1e-6)
    # at the optimum the image's gap is the sum of its pixels' gaps (each pixel's dual scale is 1)
    gap, _ = duality_gap(X, D, Z, alpha, "circular")
    per_pixel = sparsolve.duality_gap(pixels, D.reshape(6, 3), Z.transpose(0, 2, 3, 1).reshape(-1, 6), alpha)
    np.testing.assert_allclose(gap, per_pixel.reshape(2, -1).sum(axis=1), atol=1e-9)


def test_float32_codes_carry_a_float64_certificate():
    X, D = _problem(2, n=3, dtype=np.float32)
    Z, info = encode_conv(X, D, 0.3, boundary="same", solver="fista", tol=1e-5, return_info=True)
    assert Z.dtype == np.float32
    gap, F = duality_gap(X.astype(np.float64), D.astype(np.float64), Z.astype(np.float64), 0.3, "same")
    np.testing.assert_allclose(info.rel_gap, gap / F, rtol=1e-9)
    assert info.converged.all() and (gap <= 1e-5 * F).all()


def test_torch_tensors_give_the_numpy_codes_as_tensors():
    torch = pytest.importorskip("torch")
    X, D = _problem(1)
    Zn = encode_conv(X, D, 0.3, boundary="same", solver="fista", tol=1e-10, max_iter=50000)
    Zt = encode_conv(torch.from_numpy(X), torch.from_numpy(D), 0.3, boundary="same", solver="fista", tol=1e-10,
                     max_iter=50000)
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == torch.float64
    np.testing.assert_allclose(Zt.numpy(), Zn, atol=1e-8)


def test_lca_and_warm_starts():
    X, D = _problem(2)
    Z, info = encode_conv(X, D, 0.3, boundary="valid", solver="lca", tol=1e-6, return_info=True)
    assert info.converged.all()
    # a start at the solution is certified at once
    _, again = encode_conv(X, D, 0.3, boundary="valid", solver="fista", tol=1e-5, init=Z, return_info=True)
    assert (again.n_iter == 0).all() and again.converged.all()


def test_auto_is_admm_for_circular_cd_on_the_host_and_fista_for_same():
    X, D = _problem(1)
    assert encode_conv(X, D, 0.3, boundary="circular", return_info=True)[1].solver == "admm"
    assert encode_conv(X, D, 0.3, boundary="valid", return_info=True)[1].solver == "cd"
    assert encode_conv(X, D, 0.3, boundary="same", return_info=True)[1].solver == "fista"


@pytest.mark.parametrize("bad, message", [
    (lambda X, D: (X[:, :, :3], D), "larger than the signals"),
    (lambda X, D: (X[:, :1], D), "channels"),
    (lambda X, D: (X[:, 0], D), "X\\[:, None\\]"),
    (lambda X, D: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), D), "signal 0"),
    (lambda X, D: (X, np.where(np.arange(D.size).reshape(D.shape) == 0, np.inf, D)), "filter 0"),
    (lambda X, D: (X, np.concatenate([D, 0 * D[:1]])), "all-zero filters \\(\\[4\\]\\)"),
])
def test_bad_input_is_refused_with_the_fix(bad, message):
    X, D = _problem(1)
    Xb, Db = bad(X, D)
    with pytest.raises(ValueError, match=message):
        encode_conv(Xb, Db, 0.3)


def test_a_boundary_a_solver_does_not_take_names_the_ones_it_does():
    X, D = _problem(1)
    with pytest.raises(ValueError, match="'valid' and 'circular'.*solver='ista'"):
        encode_conv(X, D, 0.3, boundary="same", solver="cd")
    with pytest.raises(ValueError, match="boundary='mirror' is not known; choose one of \\['circular', 'same', "
                                         "'valid'\\]"):
        encode_conv(X, D, 0.3, boundary="mirror")
    with pytest.raises(TypeError, match="unknown option.*gamma.*solver='fista'"):
        encode_conv(X, D, 0.3, solver="fista", gamma=0.1)
    with pytest.raises(ValueError, match="form='gram' is not known"):
        encode_conv(X, D, 0.3, solver="fista", form="gram")
    with pytest.raises(ValueError, match="init must have the codes' shape"):
        encode_conv(X, D, 0.3, init=np.zeros((3, 4, 40)))
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        encode_conv(X, D, 0.0)
