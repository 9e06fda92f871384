"""What encode reports is true of what it returns (issue 27): the certificate is recomputed from the
returned codes in a precision that resolves it, a tol below the dtype's floor is raised to it with
a warning, ``solver="auto"`` is encode's default, a zero atom gets a zero code; and batch-OMP is
the per-sample OMP it stands for."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve.inference import ConvergenceWarning, PrecisionWarning


def own_gap(X, D, Z, alpha, positive=False):
    """The codes' relative gap, in float64."""
    X, D, Z = (np.asarray(a, dtype=np.float64) for a in (X, D, Z))
    return sparsolve.duality_gap(X, D, Z, alpha, positive) / sparsolve.objective(X, D, Z, alpha)


@pytest.fixture(scope="module")
def random_rows():
    """The issue's problem: 2,000 random float32 rows, 256 unit atoms in 64 dimensions."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 64)).astype(np.float32)
    D = rng.standard_normal((256, 64)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return X, D


@pytest.mark.parametrize("form", ["gram", "factored"])
def test_cd_reports_the_gap_of_the_codes_it_returns_on_float32(random_rows, form):
    """cd said 3.8e-7 from its running correlation while the codes' own gap was up to 5e-5, and marked
    1,526 rows over tol converged; the certificate now comes from the codes, and holds."""
    X, D = random_rows
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)  # 1e-6 is cd's float32 floor: no warning
        Z, info = sparsolve.encode(X, D, 0.5, solver="cd", form=form, tol=1e-6, return_info=True)
    own = own_gap(X, D, Z, 0.5)
    assert Z.dtype == np.float32 and info.converged.all()
    assert (own <= 1e-6).all()
    assert (info.rel_gap >= own - 1e-12).all()  # an upper bound, never an estimate below the truth
    assert (info.n_iter < 2000).all()  # no row spends every sweep on a drifting correlation


@pytest.mark.parametrize("solver", ["fista", "lca", "ista"])
def test_the_loops_solvers_report_true_certificates_on_float32(random_rows, solver):
    X, D = random_rows[0][:300], random_rows[1]
    Z, info = sparsolve.encode(X, D, 0.5, solver=solver, tol=1e-4, max_iter=20000, return_info=True)
    own = own_gap(X, D, Z, 0.5)
    assert info.converged.all() and (own <= 1e-4).all()
    # an upper bound, by at most the rounding bound the certificate allows (a tenth of tol)
    assert (info.rel_gap >= own - 1e-12).all() and (info.rel_gap <= own + 1e-5).all()


@pytest.mark.parametrize("solver, floor", [("cd", 1e-6), ("fista", 1e-5)])
def test_a_tol_below_the_dtypes_floor_is_raised_to_it_with_a_warning(random_rows, solver, floor):
    X, D = random_rows[0][:200], random_rows[1]
    with pytest.warns(PrecisionWarning, match=rf"tol=1e-08 is below what solver='{solver}' can certify on "
                                              rf"float32 data; using its floor tol={floor:g}"):
        Z, info = sparsolve.encode(X, D, 0.5, solver=solver, tol=1e-8, max_iter=20000, return_info=True)
    assert info.converged.all() and (own_gap(X, D, Z, 0.5) <= floor).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)  # float64 data: certified at 1e-8 as asked
        _, info64 = sparsolve.encode(X.astype(np.float64), D.astype(np.float64), 0.5, solver=solver, tol=1e-8,
                                     max_iter=20000, return_info=True)
    assert info64.converged.all() and (info64.rel_gap <= 1e-8).all()


def test_encode_defaults_to_auto_like_every_other_entry_point(random_rows):
    X, D = random_rows[0][:50], random_rows[1]
    _, info = sparsolve.encode(X, D, 0.5, return_info=True)
    assert info.solver == "cd"
    _, info = sparsolve.encode(torch.from_numpy(X), torch.from_numpy(D), 0.5, solver="auto", return_info=True)
    assert info.solver == "cd"  # CPU tensors: the host's solver
    with pytest.raises(ValueError, match=r"solver='magic'.*'auto'"):
        sparsolve.encode(X, D, 0.5, solver="magic")


@pytest.mark.parametrize("solver, options", [("cd", {"form": "gram"}), ("cd", {"form": "factored"}),
                                             ("fista", {}), ("lca", {}), ("omp", {"n_nonzero_coefs": 5})])
def test_a_zero_atom_gets_a_zero_code(random_rows, solver, options):
    """As scikit-learn, SPAMS and celer do; the other atoms' codes are those of D without it."""
    X, D = random_rows[0][:100].astype(np.float64), random_rows[1].astype(np.float64)
    zero = [4, 9, 255]
    D[zero] = 0
    keep = np.setdiff1d(np.arange(D.shape[0]), zero)
    Z, info = sparsolve.encode(X, D, 0.5, solver=solver, tol=1e-8, return_info=True, **options)
    assert Z.shape == (100, 256) and (Z[:, zero] == 0).all() and info.converged.all()
    np.testing.assert_allclose(Z[:, keep], sparsolve.encode(X, D[keep], 0.5, solver=solver, tol=1e-8, **options),
                               atol=1e-10)
    warm = sparsolve.encode(X, D, 0.5, solver=solver, tol=1e-8, init=Z, **options)  # a warm start keeps them 0
    assert (warm[:, zero] == 0).all()
    everything_zero = sparsolve.encode(X, np.zeros_like(D), 0.5, solver=solver, **options)
    assert everything_zero.shape == (100, 256) and not everything_zero.any()


def per_sample_omp(x, D, k, tol):
    """Textbook OMP for one sample: pick the atom most correlated with the residual, refit the
    selected atoms by least squares, stop at k atoms or ‖r‖² ≤ tol‖x‖²."""
    chosen, z = [], np.zeros(D.shape[0])
    r = x.copy()
    while len(chosen) < k and r @ r > tol * (x @ x):
        j = int(np.argmax(np.abs(D @ r)))
        if j in chosen:
            break
        chosen.append(j)
        coef, *_ = np.linalg.lstsq(D[chosen].T, x, rcond=None)
        z[:] = 0
        z[chosen] = coef
        r = x - z @ D
    return z


@pytest.mark.parametrize("k, tol", [(1, 0.0), (5, 0.0), (12, 0.0), (30, 0.05)])
def test_batch_omp_equals_a_straightforward_per_sample_omp(k, tol):
    rng = np.random.default_rng(k)
    D = rng.standard_normal((80, 20))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((60, 20))
    Z, info = sparsolve.encode(X, D, 1.0, solver="omp", n_nonzero_coefs=min(k, 20), tol=tol, return_info=True)
    expected = np.array([per_sample_omp(x, D, min(k, 20), tol) for x in X])
    np.testing.assert_allclose(Z, expected, atol=1e-9)
    r = X - Z @ D
    np.testing.assert_allclose(info.residual_energy, (r * r).sum(1) / (X * X).sum(1), rtol=1e-8)


def test_a_row_that_cannot_certify_says_so_rather_than_claiming_tol(random_rows):
    """Where even float64 work leaves a float32 code above tol (its own rounding), the row is reported
    unconverged, with a ConvergenceWarning, never certified."""
    X, D = random_rows[0][:400], random_rows[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Z, info = sparsolve.encode(X, D, 0.02, solver="cd", tol=1e-6, return_info=True)
    own = own_gap(X, D, Z, 0.02)
    assert (own[info.converged] <= 1e-6).all() and (info.rel_gap >= own - 1e-12).all()
