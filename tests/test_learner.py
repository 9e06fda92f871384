"""learning/learner.py: the step's stages, the statistics seam, and the history."""
import numpy as np
import pytest

from sparsolve.config import UPDATES, FitConfig
from sparsolve.learning import learner as L
from sparsolve.learning.fit import new_learner


def _X(n=300, p=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, p))


def test_every_update_is_in_the_table():
    assert set(L.UPDATE_RULES) == set(UPDATES)


def test_the_statistics_stage_goes_through_reduce(monkeypatch):
    X = _X()
    seen = []

    def reduce(stats):
        seen.append(stats[0].shape)
        return stats

    a = new_learner(X, FitConfig(8, 0.1, solver="cd", batch_size=100, seed=0).resolved(300))
    monkeypatch.setattr(a, "reduce", reduce)
    a.step(X[:100])
    a.step(X[100:200])
    assert seen == [(8, 8), (8, 8)]
    # sgd forms no statistics: the seam reduces its gradient, and a reduce that halves it
    # changes the step (Adam's first step is the sign of the gradient, so a scaling would not)
    b = new_learner(X, FitConfig(8, 0.1, solver="cd", update="sgd", batch_size=100, seed=0).resolved(300))
    c = new_learner(X, FitConfig(8, 0.1, solver="cd", update="sgd", batch_size=100, seed=0).resolved(300))
    grads = []
    monkeypatch.setattr(c, "reduce", lambda s: grads.append(s[0].shape) or (s[0] * (np.arange(8) % 2)[:, None],))
    b.step(X[:100])
    c.step(X[:100])
    assert grads == [(8, X.shape[1])]
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
    torch = pytest.importorskip("torch")
    X = _X()
    a = new_learner(X, FitConfig(8, 0.1, solver="fista", batch_size=100, seed=0).resolved(300))
    b = new_learner(torch.from_numpy(X), FitConfig(8, 0.1, solver="fista", batch_size=100, seed=0).resolved(300))
    for i in range(2):
        ra = a.step(X[100 * i:100 * (i + 1)])
        b.step(torch.from_numpy(X[100 * i:100 * (i + 1)]))
    assert isinstance(b.history._values["mse"][0], torch.Tensor)  # kept on the device until read
    ha, hb = a.history.as_dict(), b.history.as_dict()
    assert all(isinstance(v, float) for v in hb["mse"])
    np.testing.assert_allclose(hb["objective"], ha["objective"], rtol=1e-6)
    assert ha["objective"][-1] == pytest.approx(float(ra["objective"]))
    assert ha["step"] == [1, 2]


def test_auto_solver_is_cd_on_the_host():
    assert L.solver_for("auto", np.zeros((2, 2))) == "cd"
    assert L.solver_for("lca", np.zeros((2, 2))) == "lca"
