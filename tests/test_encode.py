"""``sparsolve.encode``: every solver on every CPU backend reaches a certified relative
duality gap on real 8×8 patches, agrees with scikit-learn and with a float64
reference, and returns what came in (kind, device, dtype)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve import backend
from sparsolve.inference import ConvergenceWarning

LASSO_SOLVERS = ["ista", "fista", "lca", "cd"]
KINDS = ["numpy", "torch"]


def as_kind(a, kind, dtype="float64"):
    a = np.asarray(a, dtype=dtype)
    return torch.from_numpy(a) if kind == "torch" else a


def rel_gap(X, D, Z, alpha, positive=False):
    """The relative duality gap, recomputed here in float64 from Z alone."""
    Z = np.asarray(backend.to_numpy(Z), dtype=np.float64)
    return sparsolve.duality_gap(X, D, Z, alpha, positive) / sparsolve.objective(X, D, Z, alpha)


def test_alpha_gives_five_to_ten_percent_nonzeros(X, D, alpha, reference):
    assert 0.05 <= np.mean(reference != 0) <= 0.10


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("solver", LASSO_SOLVERS)
def test_solver_reaches_relative_gap_1e_6(X, D, alpha, solver, kind):
    Z, info = sparsolve.encode(as_kind(X, kind), as_kind(D, kind), alpha, solver=solver, tol=1e-7,
                               max_iter=20000, return_info=True)
    assert backend.kind(Z) == kind
    assert info.converged.all() and info.gap.max() <= 1e-7
    assert rel_gap(X, D, Z, alpha).max() <= 1e-6


@pytest.mark.parametrize("solver", LASSO_SOLVERS)
def test_positive_reaches_gap_and_kkt(X, D, alpha, solver):
    Z = sparsolve.encode(X, D, alpha, solver=solver, positive=True, tol=1e-9, max_iter=50000)
    assert Z.min() >= 0 and np.mean(Z > 0) > 0.01
    assert rel_gap(X, D, Z, alpha, positive=True).max() <= 1e-8
    assert sparsolve.kkt_residual(X, D, Z, alpha, positive=True).max() <= 1e-2


@pytest.mark.parametrize("solver", LASSO_SOLVERS)
def test_kkt_conditions_hold(X, D, alpha, solver):
    Z = sparsolve.encode(X, D, alpha, solver=solver, tol=1e-10, max_iter=50000)
    # c_j = α·sign(z_j) on the support, |c_j| ≤ α off it, up to 1% of α
    assert sparsolve.kkt_residual(X, D, Z, alpha).max() <= 1e-2


def test_reference_satisfies_kkt_tightly(X, D, alpha, reference):
    assert sparsolve.kkt_residual(X, D, reference, alpha).max() <= 1e-6
    assert rel_gap(X, D, reference, alpha).max() <= 1e-11


@pytest.mark.parametrize("solver", LASSO_SOLVERS)
def test_agrees_with_float64_reference(X, D, alpha, reference, solver):
    Z = sparsolve.encode(X, D, alpha, solver=solver, tol=1e-10, max_iter=50000)
    np.testing.assert_allclose(Z, reference, atol=1e-4 * np.abs(reference).max())
    np.testing.assert_array_equal(np.abs(Z) > 1e-3, np.abs(reference) > 1e-3)


def test_agrees_with_sklearn_sparse_encode_lasso_cd(X, D, alpha, reference):
    from sklearn.decomposition import sparse_encode

    # sparse_encode divides its alpha by n_features itself: it takes α unchanged
    Zs = sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha, max_iter=100000)
    F_ref = sparsolve.objective(X, D, reference, alpha)
    F_sk = sparsolve.objective(X, D, Zs, alpha)
    assert np.all(F_ref <= F_sk * (1 + 1e-12))  # the reference is at least as good
    np.testing.assert_allclose(F_sk, F_ref, rtol=1e-7)
    np.testing.assert_allclose(Zs, reference, atol=1e-3 * np.abs(reference).max())


def test_sklearn_lasso_alpha_is_alpha_over_n_features(X, D_random, alpha):
    from sklearn.linear_model import Lasso

    x = X[:5]
    Z = sparsolve.encode(x, D_random, alpha, solver="cd", tol=1e-12)
    lasso = Lasso(alpha=alpha / x.shape[1], fit_intercept=False, tol=1e-12, max_iter=100000)
    Zs = lasso.fit(D_random.T, x.T).coef_
    np.testing.assert_allclose(Zs, Z, atol=1e-6)


def test_agrees_with_sklearn_lasso_cd_positive(X, D, alpha):
    from sklearn.decomposition import sparse_encode

    Z = sparsolve.encode(X, D, alpha, solver="cd", positive=True, tol=1e-12, max_iter=10000)
    Zs = sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha, positive=True, max_iter=100000)
    np.testing.assert_allclose(sparsolve.objective(X, D, Zs, alpha), sparsolve.objective(X, D, Z, alpha),
                               rtol=1e-7)


@pytest.mark.parametrize("solver", ["ista", "fista", "lca"])
def test_gram_and_factored_forms_agree(X, D, alpha, solver):
    Zg, ig = sparsolve.encode(X, D, alpha, solver=solver, form="gram", tol=1e-10, max_iter=50000,
                              return_info=True)
    Zf, i_f = sparsolve.encode(X, D, alpha, solver=solver, form="factored", tol=1e-10, max_iter=50000,
                               return_info=True)
    assert (ig.form, i_f.form) == ("gram", "factored")
    np.testing.assert_allclose(Zg, Zf, atol=1e-6 * np.abs(Zf).max())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["ista", "fista", "lca", "cd", "omp"])
def test_output_follows_input(X, D_learned, alpha, solver, kind, dtype):
    Xk, Dk = as_kind(X[:40], kind, dtype), as_kind(D_learned, kind, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Z = sparsolve.encode(Xk, Dk, alpha, solver=solver, max_iter=200)
    assert backend.kind(Z) == kind and backend.device_of(Z) == "cpu"
    assert backend.dtype_name(Z) == dtype
    assert tuple(Z.shape) == (40, D_learned.shape[0])
    assert np.isfinite(backend.to_numpy(Z)).all() and (backend.to_numpy(Z) != 0).any()


@pytest.mark.parametrize("solver", LASSO_SOLVERS)
def test_float32_reaches_a_float32_gap(X, D, alpha, solver, reference):
    Z = sparsolve.encode(X.astype(np.float32), D.astype(np.float32), alpha, solver=solver, tol=1e-4,
                         max_iter=20000)
    assert Z.dtype == np.float32
    assert rel_gap(X, D, Z, alpha).max() <= 1e-3
    np.testing.assert_allclose(Z, reference, atol=1e-2 * np.abs(reference).max())


def test_mixed_kinds_follow_X(X, D_learned, alpha):
    Z = sparsolve.encode(torch.from_numpy(X), D_learned, alpha, solver="fista")
    assert isinstance(Z, torch.Tensor)
    Z = sparsolve.encode(X.astype(np.float32), D_learned, alpha, solver="fista")
    assert Z.dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("solver", ["ista", "fista", "lca", "cd", "omp"])
def test_empty_X_gives_empty_Z(D_learned, alpha, solver, kind):
    X0 = as_kind(np.zeros((0, D_learned.shape[1])), kind, "float32")
    Z, info = sparsolve.encode(X0, as_kind(D_learned, kind), alpha, solver=solver, return_info=True)
    assert backend.kind(Z) == kind and backend.dtype_name(Z) == "float32"
    assert tuple(Z.shape) == (0, D_learned.shape[0])
    assert info.n_iter.shape == info.gap.shape == info.converged.shape == (0,)


@pytest.mark.parametrize("solver", LASSO_SOLVERS)
def test_warm_start_from_the_solution_costs_no_work(X, D, alpha, reference, solver):
    Z, info = sparsolve.encode(X, D, alpha, solver=solver, init=reference, tol=1e-8, return_info=True)
    assert (info.n_iter == 0).all() and info.converged.all()
    np.testing.assert_allclose(Z, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("solver, kind", [("ista", "numpy"), ("lca", "numpy"), ("cd", "numpy"),
                                          ("fista", "numpy"), ("fista", "torch")])
def test_warm_start_from_a_nearby_point_saves_iterations(X, D, alpha, solver, kind):
    # the solution for a slightly larger α is a good start for α
    Z1 = sparsolve.encode(X, D, 1.1 * alpha, solver="cd", tol=1e-12)
    _, cold = sparsolve.encode(as_kind(X, kind), as_kind(D, kind), alpha, solver=solver, tol=1e-8,
                               max_iter=50000, return_info=True)
    Zw, warm = sparsolve.encode(as_kind(X, kind), as_kind(D, kind), alpha, solver=solver, tol=1e-8,
                                max_iter=50000, init=as_kind(Z1, kind), return_info=True)
    assert warm.converged.all() and rel_gap(X, D, Zw, alpha).max() <= 1e-7
    assert warm.n_iter.sum() < cold.n_iter.sum()


def test_info_record(X, D_learned, alpha):
    Z, info = sparsolve.encode(X, D_learned, alpha, solver="fista", tol=1e-6, return_info=True)
    n = X.shape[0]
    assert info.n_iter.shape == info.gap.shape == info.converged.shape == (n,)
    assert info.solver == "fista" and info.form in ("gram", "factored") and info.seconds > 0
    assert info.converged.all() and (info.gap <= 1e-6).all()
    # z = 0 is certified before any step where ‖xDᵀ‖∞ ≤ α (flat patches); the others iterate
    zero = np.abs(X @ D_learned.T).max(axis=1) <= alpha
    assert zero.any() and (info.n_iter[zero] == 0).all() and (info.n_iter[~zero] > 0).all()
    assert (Z[zero] == 0).all()
    # the reported gap is the one a caller can recompute from Z, up to the bound on its rounding that
    # the certificate adds (inference/certificate.py: an upper bound, ~1e-15 in float64 here)
    np.testing.assert_allclose(info.gap, rel_gap(X, D_learned, Z, alpha), rtol=1e-6, atol=1e-13)
    assert "converged=150/150" in repr(info)


def test_tol_stops_each_sample_on_its_own(X, D_learned, alpha):
    _, info = sparsolve.encode(X, D_learned, alpha, solver="ista", tol=1e-6, return_info=True)
    assert info.n_iter.min() < info.n_iter.max()  # easy samples stop early


def test_unconverged_samples_warn_and_are_reported(X, D_learned, alpha):
    with pytest.warns(ConvergenceWarning, match="max_iter=20"):
        Z, info = sparsolve.encode(X, D_learned, alpha, solver="ista", tol=1e-12, max_iter=20,
                                   return_info=True)
    assert not info.converged.all() and (info.n_iter[~info.converged] == 20).all()
    assert (info.gap[~info.converged] > 1e-12).all()
    np.testing.assert_allclose(info.gap, rel_gap(X, D_learned, Z, alpha), rtol=1e-6)


def test_zero_rows_are_solved_by_zero(D_learned, alpha, X):
    Xz = X[:10].copy()
    Xz[3] = 0
    for solver in LASSO_SOLVERS:
        Z, info = sparsolve.encode(Xz, D_learned, alpha, solver=solver, tol=1e-8, return_info=True)
        assert (Z[3] == 0).all() and info.converged.all(), solver


def test_large_batches_are_chunked_without_changing_the_result(X, D_learned, alpha, monkeypatch):
    whole = sparsolve.encode(X, D_learned, alpha, solver="fista", tol=1e-10)
    # pretend memory is tight: a few rows per chunk
    monkeypatch.setattr(backend, "free_bytes", lambda x: 40 * 8 * (8 * 64 + 2 * 64))
    chunked, info = sparsolve.encode(X, D_learned, alpha, solver="fista", tol=1e-10, return_info=True)
    assert info.n_iter.shape == (X.shape[0],)
    np.testing.assert_allclose(chunked, whole, atol=1e-12)


def test_alpha_above_max_correlation_gives_zero(X, D_learned):
    alpha_max = np.abs(X @ D_learned.T).max()
    for solver in LASSO_SOLVERS:
        assert (sparsolve.encode(X, D_learned, 1.001 * alpha_max, solver=solver) == 0).all(), solver


# ---------------------------------------------------------------- OMP


@pytest.mark.parametrize("k", [1, 5, 12])
def test_omp_agrees_with_sklearn_orthogonal_mp_gram(X, D, k):
    from sklearn.linear_model import orthogonal_mp_gram

    Z, info = sparsolve.encode(X, D, 0.0, solver="omp", n_nonzero_coefs=k, tol=0.0, return_info=True)
    Zs = orthogonal_mp_gram(D @ D.T, D @ X.T, n_nonzero_coefs=k).T
    np.testing.assert_allclose(Z, Zs, atol=1e-8)
    assert ((Z != 0).sum(axis=1) <= k).all()
    np.testing.assert_allclose(info.gap, ((X - Z @ D) ** 2).sum(1) / (X ** 2).sum(1), rtol=1e-6)


def test_omp_agrees_with_sklearn_sparse_encode(X, D_learned):
    from sklearn.decomposition import sparse_encode

    Z = sparsolve.encode(torch.from_numpy(X), torch.from_numpy(D_learned), 0.0, solver="omp",
                         n_nonzero_coefs=8, tol=0.0)
    Zs = sparse_encode(X, D_learned, algorithm="omp", n_nonzero_coefs=8)
    np.testing.assert_allclose(Z.numpy(), Zs, atol=1e-8)


def test_omp_tol_stops_early(X, D_learned):
    tol, k_max = 0.1, 40
    Z, info = sparsolve.encode(X, D_learned, 0.0, solver="omp", n_nonzero_coefs=k_max, tol=tol,
                               return_info=True)
    early = info.n_iter < k_max
    assert early.mean() > 0.5 and (info.gap[early] <= tol).all() and (info.gap[~early] > tol).all()
    assert ((Z != 0).sum(axis=1) == info.n_iter).all()
    # and it stops at the first k that is enough: k − 1 atoms leave more than tol of ‖x‖²
    for x, k in zip(X[early], info.n_iter[early]):
        if k > 1:
            z = sparsolve.encode(x[None], D_learned, 0.0, solver="omp", n_nonzero_coefs=int(k) - 1, tol=0.0)
            r = x - z[0] @ D_learned
            assert r @ r > tol * (x @ x)


def test_trace_sees_every_certificate_and_can_stop_the_run(X, D_learned, alpha):
    seen = []

    def trace(step, rows, Z, F):
        seen.append((step, rows.copy(), np.asarray(F).copy()))
        return step >= 30

    Z, info = sparsolve.encode(X, D_learned, alpha, solver="fista", tol=0, max_iter=1000, check_every=5,
                               trace=trace, return_info=True)
    assert [s for s, _, _ in seen] == [0, 5, 10, 15, 20, 25, 30]
    assert seen[0][1].tolist() == list(range(X.shape[0]))
    # F is the objective of the codes the run returns, for the rows still running
    rows, F = seen[-1][1], seen[-1][2]
    np.testing.assert_allclose(F, sparsolve.objective(X[rows], D_learned, Z[rows], alpha), rtol=1e-9)
    assert (info.n_iter <= 30).all() and (info.n_iter[rows] == 30).all()
    # the same codes as a run that stops at 30 steps by max_iter
    np.testing.assert_allclose(Z, sparsolve.encode(X, D_learned, alpha, solver="fista", tol=0, max_iter=30,
                                                   check_every=5), rtol=0, atol=0)


def test_torch_cpu_tensors_get_tensors_back_and_numpys_codes(X, D_learned, alpha):
    # encode solves on host views of CPU tensors (backend.host_view): the caller still sees tensors,
    # in the trace as in the result, and the very numbers a numpy call gives
    kinds = []
    Xt, Dt = torch.from_numpy(X).float(), torch.from_numpy(D_learned).float()
    Z = sparsolve.encode(Xt, Dt, alpha, solver="fista", tol=1e-5, check_every=5,
                         trace=lambda step, rows, Zs, F: kinds.append((backend.kind(Zs), backend.kind(F))))
    assert isinstance(Z, torch.Tensor) and Z.dtype == torch.float32 and kinds and set(kinds) == {("torch", "torch")}
    Zn = sparsolve.encode(X.astype(np.float32), D_learned.astype(np.float32), alpha, solver="fista", tol=1e-5,
                          check_every=5)
    np.testing.assert_array_equal(Z.numpy(), Zn)


def test_info_names_each_criterion(X, D_learned, alpha):
    _, lasso = sparsolve.encode(X, D_learned, alpha, solver="cd", return_info=True)
    _, omp = sparsolve.encode(X, D_learned, alpha, solver="omp", return_info=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, hard = sparsolve.encode(X, D_learned, alpha, solver="lca", threshold="hard", max_iter=50,
                                   return_info=True)
    assert lasso.rel_gap is lasso.gap and lasso.residual_energy is None and lasso.fixed_point_residual is None
    assert omp.residual_energy is omp.gap and omp.rel_gap is None
    assert hard.fixed_point_residual is hard.gap and hard.rel_gap is None


@pytest.mark.parametrize("solver", ["ista", "fista", "lca"])
def test_an_all_zero_float32_row_reports_a_zero_gap_not_nan(solver):
    """F = gap = 0 on a zero row; the old floor (1e-300) is 0 in float32, and gave 0/0 = NaN."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 8)).astype(np.float32)
    X[1] = 0
    D = rng.standard_normal((16, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        Z, info = sparsolve.encode(X, D, 0.1, solver=solver, return_info=True)
    assert np.isfinite(info.rel_gap).all() and info.rel_gap[1] == 0
    assert not Z[1].any()
