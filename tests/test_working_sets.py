"""cd's factored form (inference/working_sets.py) and the gap-safe screening that prunes its working
sets (inference/screening.py): the same codes as the unscreened float64 solve, and never an atom
removed that is active at the optimum -- on planted problems, coherent dictionaries included."""
from __future__ import annotations

import numpy as np
import pytest

import sparsolve
from sparsolve.inference import screening, working_sets
from sparsolve.inference.certificate import certify


def planted(kind, seed=0, n=120, p=24, m=96, dtype=np.float64, active=4):
    """(X, D): rows of X are sparse non-negative combinations of atoms of D plus noise.  ``kind``:
    "random" (unit Gaussian atoms), "coherent" (groups of four near-copies of one direction,
    |cos| ≈ 0.9-0.97 within a group), "data" (atoms that are themselves data rows, as fit starts)."""
    rng = np.random.default_rng(seed)
    if kind == "coherent":
        base = rng.standard_normal((m // 4, p))
        D = np.repeat(base, 4, axis=0) + 0.25 * rng.standard_normal((m, p))
    else:
        D = rng.standard_normal((m, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n, m))
    for row in Z:
        row[rng.choice(m, active, replace=False)] = rng.uniform(0.5, 1.5, active)
    X = Z @ D + 0.01 * rng.standard_normal((n, p))
    if kind == "data":
        src = rng.standard_normal((m, m // 8)) * (rng.random((m, m // 8)) < 0.1) @ D[: m // 8]
        src += 0.01 * rng.standard_normal(src.shape)
        keep = np.linalg.norm(src, axis=1) > 0
        D[keep] = src[keep] / np.linalg.norm(src[keep], axis=1, keepdims=True)
    return X.astype(dtype), D.astype(dtype)


def reference(X, D, alpha, positive):
    """The unscreened float64 solution: Gram-form cd to a relative gap of 1e-12."""
    Z, info = sparsolve.encode(X.astype(np.float64), D.astype(np.float64), alpha, solver="cd", form="gram",
                               positive=positive, tol=1e-12, return_info=True)
    assert info.converged.all()
    return Z


@pytest.mark.parametrize("kind", ["random", "coherent", "data"])
@pytest.mark.parametrize("positive", [False, True])
def test_screening_never_removes_an_atom_active_at_the_optimum(kind, positive):
    X, D = planted(kind, seed=1)
    alpha = 0.05
    Zs = reference(X, D, alpha, positive)
    active = Zs != 0
    dnorm = np.linalg.norm(D, axis=1)
    removed = 0
    # along a path from z = 0 to the optimum: the start, FISTA's early iterates, and points near z*
    starts = [np.zeros_like(Zs)]
    starts += [sparsolve.encode(X, D, alpha, solver="fista", positive=positive, tol=0, max_iter=k) for k in (3, 20)]
    starts += [Zs * (1 + 1e-3 * np.random.default_rng(2).standard_normal(Zs.shape)), Zs]
    for Z in starts:
        Z = np.clip(Z, 0, None) if positive else Z
        cert = certify(X, D, Z, alpha, positive)
        out = np.zeros(cert.C.shape, dtype=bool)
        screening.screen(cert.C, cert.margin, cert.scale, cert.gap, dnorm, alpha, positive, out)
        assert not (out & active).any(), f"an active atom was screened ({kind}, positive={positive})"
        removed += int(out.sum())
    assert removed > 0.5 * X.shape[0] * D.shape[0]  # the test is not vacuous: near z* most atoms go


@pytest.mark.parametrize("kind", ["random", "coherent", "data"])
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_factored_form_equals_the_unscreened_float64_solve(kind, positive, dtype):
    X, D = planted(kind, seed=3, dtype=dtype)
    alpha = 0.05
    # float32 codes: their own rounding moves c by about u·‖z‖, a relative gap of u·‖z‖/α ≈ 1e-6 here
    tol = 1e-10 if dtype == np.float64 else 1e-5
    Zs = reference(X, D, alpha, positive)
    stats = {}
    Z, n_iter, rel_gap, converged = working_sets.solve(X, D, alpha, positive, np.zeros(Zs.shape, dtype), tol, 2000,
                                                       first=4, stats=stats)
    assert converged.all() and Z.dtype == dtype
    assert stats["rounds"] >= 2  # with 4 atoms to start, the working sets had to grow
    # the reported gap is an upper bound on the codes' own, and within tol
    X64, D64 = X.astype(np.float64), D.astype(np.float64)
    own = sparsolve.duality_gap(X64, D64, Z.astype(np.float64), alpha, positive) / sparsolve.objective(
        X64, D64, Z.astype(np.float64), alpha)
    assert (own <= tol).all() and (rel_gap >= own - 1e-12).all()
    assert ((Z != 0) == (Zs != 0)).mean() > 0.999
    np.testing.assert_allclose(Z, Zs, atol=1e-7 if dtype == np.float64 else 2e-3)


def test_encode_takes_the_factored_form_and_warm_starts():
    X, D = planted("coherent", seed=4)
    alpha = 0.05
    Zg, gram = sparsolve.encode(X, D, alpha, solver="cd", form="gram", tol=1e-10, return_info=True)
    Zf, fact = sparsolve.encode(X, D, alpha, solver="cd", form="factored", tol=1e-10, return_info=True)
    assert gram.form == "gram" and fact.form == "factored" and fact.converged.all()
    np.testing.assert_allclose(Zf, Zg, atol=1e-7)
    # from the solution of a nearby α, fewer sweeps
    Z1 = sparsolve.encode(X, D, 1.1 * alpha, solver="cd", form="factored", tol=1e-10)
    Zw, warm = sparsolve.encode(X, D, alpha, solver="cd", form="factored", tol=1e-10, init=Z1, return_info=True)
    assert warm.converged.all() and warm.n_iter.sum() < fact.n_iter.sum()
    np.testing.assert_allclose(Zw, Zg, atol=1e-7)


def test_auto_form_goes_without_the_gram_matrix_for_wide_dictionaries(monkeypatch):
    from sparsolve import backend, memory

    X, D = planted("random", seed=5, n=40, p=8, m=96)  # 12 atoms per feature
    _, wide = sparsolve.encode(X, D, 0.05, solver="cd", return_info=True)
    _, narrow = sparsolve.encode(X, D[:32], 0.05, solver="cd", return_info=True)  # 4 per feature
    assert wide.form == "factored" and narrow.form == "gram"
    # 12 atoms per feature: the float32 Gram blocks of 32 atoms in 8 features are singular, and
    # their rounding made them indefinite (the support's factor went NaN before the damping
    # followed the blocks' precision)
    assert wide.converged.all() and narrow.converged.all()
    # and wherever G = DDᵀ would not fit beside the rows
    fixed, _, per_row, gram = memory._sizes(8, 32, None, 8, 40)
    monkeypatch.setattr(backend, "free_bytes", lambda x: int((fixed + 40 * per_row + gram // 2) / memory.FRACTION))
    _, tight = sparsolve.encode(X, D[:32], 0.05, solver="cd", return_info=True)
    assert tight.form == "factored" and tight.converged.all()


def test_a_row_out_of_sweeps_stops_unconverged_with_its_true_gap():
    X, D = planted("coherent", seed=6)
    with pytest.warns(sparsolve.inference.ConvergenceWarning):
        Z, info = sparsolve.encode(X, D, 0.01, solver="cd", form="factored", tol=1e-12, max_iter=1,
                                   return_info=True)
    assert not info.converged.all() and (info.n_iter <= 2).all()
    own = sparsolve.duality_gap(X, D, Z, 0.01) / sparsolve.objective(X, D, Z, 0.01)
    np.testing.assert_allclose(info.rel_gap, own, rtol=1e-6, atol=1e-12)
