"""Norm rules: the L1 cheat shows without one, and each rule holds the atoms where it says."""
import numpy as np

import sparsolve
from sparsolve.rules import norm_rule

FIT = dict(solver="cd", batch_size=250, seed=0, progress=False)


def _mean(values):
    return float(np.mean(values))


def test_no_norm_rule_shows_the_cheat(patches):
    free = sparsolve.fit(patches, 32, 0.01, norm="none", n_epochs=5, **FIT).history
    unit = sparsolve.fit(patches, 32, 0.01, norm="unit", n_epochs=5, **FIT).history
    first, last = slice(0, 8), slice(-8, None)
    # The atoms grow at every step ...
    assert np.all(np.diff(free["norm_mean"]) > 0)
    assert free["norm_mean"][-1] > 1.5 * free["norm_mean"][0]
    # ... the codes' L1 falls, below what the same data costs with unit atoms ...
    assert _mean(free["l1"][last]) < 0.7 * _mean(free["l1"][first])
    assert _mean(free["l1"][last]) < 0.8 * _mean(unit["l1"][last])
    # ... while the reconstruction holds.
    assert _mean(free["mse"][last]) < 1.2 * _mean(free["mse"][first])
    assert _mean(free["mse"][last]) < 1.2 * _mean(unit["mse"][last])


def test_unit_norm_holds_after_every_step(patches):
    seen = []

    def check(step, D, record):
        seen.append(np.abs(np.linalg.norm(D, axis=1) - 1).max())

    model = sparsolve.fit(patches, 32, 0.01, norm="unit", n_epochs=2, callback=check, **FIT)
    assert len(seen) == len(model.history["step"]) == 16
    assert max(seen) <= 1e-6
    assert max(abs(v - 1) for v in model.history["norm_min"] + model.history["norm_max"]) <= 1e-6


def test_ball_keeps_norms_at_most_one(patches):
    model = sparsolve.fit(patches, 32, 0.01, norm="ball", n_epochs=2, **FIT)
    assert max(model.history["norm_max"]) <= 1 + 1e-9


def test_penalty_norms_settle(patches):
    model = sparsolve.fit(patches, 32, 0.01, norm="penalty", n_epochs=5, **FIT)
    h = model.history
    late = np.array(h["norm_mean"][len(h["norm_mean"]) // 2:])
    assert max(h["norm_max"]) < 2  # bounded, unlike norm="none"
    assert late.max() < 1.1 * late.min()  # settled: no drift over the second half


def test_penalty_scale_follows_beta(patches):
    weak = sparsolve.fit(patches, 16, 0.01, norm="penalty", beta=1e-3, n_epochs=3, **FIT)
    strong = sparsolve.fit(patches, 16, 0.01, norm="penalty", beta=1e-1, n_epochs=3, **FIT)
    assert weak.history["norm_mean"][-1] > strong.history["norm_mean"][-1]


def test_project_restores_rows_that_came_out_zero():
    previous = np.ones((3, 4))
    D = np.array([[3.0, 4.0, 0, 0], [0, 0, 0, 0], [0.1, 0, 0, 0]])
    unit = norm_rule("unit").project(D, previous=previous)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0)
    np.testing.assert_allclose(unit[1], 0.5)
    ball = norm_rule("ball").project(D)
    np.testing.assert_allclose(ball[2], D[2])
    np.testing.assert_allclose(ball[0], D[0] / 5)
