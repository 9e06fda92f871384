"""learning/learner.py: the step's stages, the statistics seam, and the history."""
import numpy as np
import pytest

from sparsolve.config import UPDATES, FitConfig
from sparsolve.learning import learner as L
from sparsolve.learning.fit import new_learner


def _X(n=300, p=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, p))


def test_every_update_is_in_the_table():
    assert set(L.UPDATE_RULES) == set(UPDATES) - {"auto"}  # "auto" resolves to one of them (FitConfig.resolved)


def test_the_statistics_stage_goes_through_the_distributed_seam(monkeypatch):
    """The statistics stage hands (its statistics, atom use, rows) to distributed.step_sums and
    steps with what it returns (in a data-parallel run: the global batch's sums)."""
    from sparsolve.learning import distributed

    X = _X()
    seen = []
    real = distributed.step_sums

    def step_sums(stats, used, rows):
        seen.append((tuple(s.shape for s in stats), used.shape, rows))
        return real(stats, used, rows)

    monkeypatch.setattr(distributed, "step_sums", step_sums)
    a = new_learner(X, FitConfig(8, 0.1, solver="cd", batch_size=100, seed=0).resolved(300))
    a.step(X[:100])
    a.step(X[100:200])
    assert seen == [(((8, 8), (8, 16)), (8,), 100)] * 2
    # sgd forms no m×m statistics: the seam gets its (m, p) gradient, and a seam that zeroes
    # half of it changes the step (Adam's first step is the gradient's sign, so a scaling would not)
    b = new_learner(X, FitConfig(8, 0.1, solver="cd", update="sgd", batch_size=100, seed=0).resolved(300))
    c = new_learner(X, FitConfig(8, 0.1, solver="cd", update="sgd", batch_size=100, seed=0).resolved(300))
    seen.clear()
    b.step(X[:100])
    assert seen == [(((8, X.shape[1]),), (8,), 100)]
    monkeypatch.setattr(distributed, "step_sums",
                        lambda stats, used, rows: ((stats[0] * (np.arange(8) % 2)[:, None],), used, rows))
    c.step(X[:100])
    assert not np.allclose(b.D, c.D)


def test_a_failed_step_leaves_the_state_as_it_was():
    X = _X()
    a = new_learner(X, FitConfig(8, 0.1, solver="cd", batch_size=100, seed=0).resolved(300))
    a.step(X[:100])
    D, t = a.D.copy(), a.t
    bad = X[100:200].copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="batch 1 has NaN or Inf values .first in row 5"):
        a.step(bad, index=1)
    np.testing.assert_array_equal(a.D, D)
    assert a.t == t and len(a.history) == t


def test_history_read_later_is_exact():
    """Between reads (sync_every) a record's figures stay device scalars; the read puts the
    same numbers in the record and the history as a step-by-step run."""
    torch = pytest.importorskip("torch")
    X = _X()
    a = new_learner(X, FitConfig(8, 0.1, solver="fista", batch_size=100, seed=0).resolved(300))
    # dead_after: no atom can die in two steps, so nothing asks for an early read
    b = new_learner(torch.from_numpy(X), FitConfig(8, 0.1, solver="fista", batch_size=100, seed=0,
                                                   sync_every=3, dead_after=1000).resolved(300))
    records = []
    for i in range(2):
        ra = a.step(X[100 * i:100 * (i + 1)])
        records.append(b.step(torch.from_numpy(X[100 * i:100 * (i + 1)])))
    assert isinstance(records[0]["mse"], torch.Tensor) and len(b.history) == 0  # on the device until read
    assert not L.on_host(records[1])
    b.sync()
    assert L.on_host(records[0]) and len(b.history) == 2
    ha, hb = a.history.as_dict(), b.history.as_dict()
    assert all(isinstance(v, float) for v in hb["mse"])
    assert hb["mse"][1] == records[1]["mse"]
    np.testing.assert_allclose(hb["objective"], ha["objective"], rtol=1e-6)
    assert ha["objective"][-1] == pytest.approx(float(ra["objective"]))
    assert ha["step"] == [1, 2]


def test_auto_solver_is_cd_on_the_host():
    from sparsolve.inference import solver_for

    assert solver_for("auto", np.zeros((2, 2))) == "cd"
    assert solver_for("lca", np.zeros((2, 2))) == "lca"
