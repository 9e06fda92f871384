"""learning/learner.py: the step's stages, the reducer it is handed, and the history."""
import numpy as np
import pytest

from sparsolve.config import FitConfig
from sparsolve.inference import solver_for
from sparsolve.learning.fit import new_learner
from sparsolve.learning.history import on_host
from sparsolve.learning.learner import Learner
from sparsolve.learning.reducer import Identity


def _X(n=300, p=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, p))


class Spy(Identity):
    """A reducer that records what the step hands its statistics seam, and may change the sums."""

    def __init__(self, change=None):
        self.seen, self.change = [], change

    def statistics(self, rule, X, Z, R, D, used, rows):
        stats, used, rows = super().statistics(rule, X, Z, R, D, used, rows)
        self.seen.append((tuple(s.shape for s in stats), used.shape, rows))
        return (stats if self.change is None else self.change(stats)), used, rows


def _learner(X, reducer, **settings):
    config = FitConfig(8, 0.1, solver="cd", batch_size=100, seed=0, **settings).resolved(300)
    return Learner(config, X.shape[1], 0, reducer=reducer)


def test_the_statistics_go_through_the_reducer():
    """The step hands (its statistics, atom use, rows) to its reducer and steps with what the reducer
    returns (in a data-parallel run: the global batch's sums)."""
    X = _X()
    spy = Spy()
    a = _learner(X, spy)
    a.step(X[:100])
    a.step(X[100:200])
    assert spy.seen == [(((8, 8), (8, 16)), (8,), 100)] * 2
    # sgd forms no m×m statistics: the reducer gets its (m, p) gradient, and one that zeroes half of
    # it changes the step (Adam's first step is the gradient's sign, so a scaling would not)
    spy = Spy()
    b = _learner(X, spy, update="sgd")
    b.step(X[:100])
    assert spy.seen == [(((8, X.shape[1]),), (8,), 100)]
    c = _learner(X, Spy(change=lambda stats: (stats[0] * (np.arange(8) % 2)[:, None],)), update="sgd")
    c.step(X[:100])
    assert not np.allclose(b.D, c.D)
    plain = _learner(X, None, update="sgd")  # the default reducer: one process, the same step as the spy's
    plain.step(X[:100])
    np.testing.assert_array_equal(plain.D, b.D)


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
    assert not on_host(records[1])
    b.sync()
    assert on_host(records[0]) and len(b.history) == 2
    ha, hb = a.history.as_dict(), b.history.as_dict()
    assert all(isinstance(v, float) for v in hb["mse"])
    assert hb["mse"][1] == records[1]["mse"]
    np.testing.assert_allclose(hb["objective"], ha["objective"], rtol=1e-6)
    assert ha["objective"][-1] == pytest.approx(float(ra["objective"]))
    assert ha["step"] == [1, 2]


def test_auto_solver_is_cd_on_the_host():
    assert solver_for("auto", np.zeros((2, 2))) == "cd"
    assert solver_for("lca", np.zeros((2, 2))) == "lca"
