"""sparsolve.compare: exact solvers against learned-G encoders on natural-image patches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve.plot import plot_compare


@pytest.fixture(scope="module")
def rows(X, D_learned, alpha):
    encoders = {f"lca T={t}": sparsolve.LearnedG.from_dictionary(D_learned, alpha, t) for t in (0, 5, 40)}
    return sparsolve.compare(X, D_learned, encoders, alpha=alpha, exact=("fista", "lca", "cd"), tol=1e-6)


def test_rows_hold_every_column(rows):
    assert [r["method"] for r in rows] == ["cd tol=1e-08 (reference)", "fista tol=1e-06", "lca tol=1e-06",
                                           "cd tol=1e-06", "lca T=0", "lca T=5", "lca T=40"]
    for r in rows:
        for key in ("method", "ms_per_1000", "objective", "rel_gap", "mse", "l0", "dead_frac"):
            assert key in r, key
        assert r["ms_per_1000"] > 0 and 0 <= r["dead_frac"] <= 1 and r["l0"] >= 0
    text = str(rows)
    assert "rel_gap" in text and "lca T=40" in text and "FISTA iterations" in text


def test_gaps_are_measured_against_the_certified_optimum(rows, X, D_learned, alpha):
    Z_star = sparsolve.encode(X, D_learned, alpha, solver="cd", positive=True, tol=1e-10)
    assert rows.optimum == pytest.approx(sparsolve.objective(X, D_learned, Z_star, alpha).mean(), rel=1e-8)
    by = {r["method"]: r for r in rows}
    assert by["cd tol=1e-08 (reference)"]["rel_gap"] == pytest.approx(0, abs=1e-9)
    for solver in ("fista", "lca", "cd"):
        assert 0 <= by[f"{solver} tol=1e-06"]["rel_gap"] < 1e-4
    # deeper LCA unrolling gets closer to the optimum
    gaps = [by[f"lca T={t}"]["rel_gap"] for t in (0, 5, 40)]
    assert gaps[0] > gaps[1] > gaps[2] > 0
    R = X - Z_star @ D_learned
    assert by["cd tol=1e-08 (reference)"]["mse"] == pytest.approx((R * R).mean(), rel=1e-6)
    assert by["cd tol=1e-08 (reference)"]["l0"] == pytest.approx((Z_star != 0).sum(axis=1).mean())


@pytest.mark.filterwarnings("ignore::sparsolve.ConvergenceWarning")
def test_iteration_matched_curve(rows, X, D_learned, alpha):
    c = rows.curve
    assert c["depth"] == [0, 5, 40]
    traj = np.asarray(c["fista_objective"])
    for target, k in zip(c["objective"], c["fista_iters"]):
        assert k is not None
        # k is the first FISTA iteration count whose mean objective reaches the encoder's
        assert traj[k] <= target and (k == 0 or traj[k - 1] > target)
    # the trajectory is encode's FISTA, one iteration at a time, in compare's float32
    k = 7
    Zk = sparsolve.encode(X.astype(np.float32), D_learned.astype(np.float32), alpha, solver="fista", positive=True,
                          tol=0, max_iter=k)
    assert traj[k] == pytest.approx(sparsolve.objective(X, D_learned, Zk.astype(np.float64), alpha).mean(), rel=1e-5)
    assert all(s > 0 for s in c["speedup"])


def test_plot_compare_takes_the_rows_and_curve(rows, tmp_path):
    fig = plot_compare(rows, rows.curve, path=tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").stat().st_size > 0
    assert len(fig.axes) == 3


def test_signed_encoders_compare_against_the_signed_lasso(X, D_learned, alpha):
    enc = sparsolve.LearnedG.from_dictionary(D_learned, alpha, 10, signed=True)
    rows = sparsolve.compare(X, D_learned, {"soft": enc}, alpha=alpha, exact=())
    Z_star = sparsolve.encode(X, D_learned, alpha, solver="cd", tol=1e-10)
    assert rows.optimum == pytest.approx(sparsolve.objective(X, D_learned, Z_star, alpha).mean(), rel=1e-8)
    with pytest.raises(ValueError, match="separate calls"):
        sparsolve.compare(X, D_learned, {"soft": enc, "relu": sparsolve.LearnedG.from_dictionary(D_learned, alpha, 1)},
                          alpha=alpha)


def test_compare_bad_shapes(X, D_learned, alpha):
    with pytest.raises(ValueError, match="features"):
        sparsolve.compare(X[:, :60], D_learned, alpha=alpha)
    small = sparsolve.LearnedG(64, 16, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="dictionary it was trained for"):
        sparsolve.compare(X, D_learned, {"small": small}, alpha=alpha)
    with pytest.raises(TypeError, match="LearnedG"):
        sparsolve.compare(X, D_learned, {"x": object()}, alpha=alpha)
