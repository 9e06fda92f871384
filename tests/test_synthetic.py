import numpy as np
import pytest
import torch

import sparsolve
from sparsolve import metrics
from sparsolve.data import SyntheticActivations


def test_deterministic_given_seed_and_streams_equal_the_array():
    g = SyntheticActivations(16, 64, mean_active=3.0, seed=3)
    a = g.sample(300, batch_size=100)
    b = SyntheticActivations(16, 64, mean_active=3.0, seed=3).sample(300, batch_size=100)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.concatenate(list(g.stream(100, 3))), a)
    np.testing.assert_array_equal(next(g.stream(100, 1, start=2)), a[200:])
    assert not np.allclose(SyntheticActivations(16, 64, mean_active=3.0, seed=4).sample(300, batch_size=100), a)
    assert not np.allclose(g.sample(300, batch_size=100, split=1), a)  # held out: other tokens
    np.testing.assert_allclose(np.linalg.norm(g.features, axis=1), 1.0)
    assert a.dtype == np.float32 and a.shape == (300, 16)


def test_frequency_law_and_noise_level():
    g = SyntheticActivations(32, 200, mean_active=4.0, exponent=1.0, group_size=1, noise=0.05, seed=1)
    X, Z = g.sample(40_000, return_codes=True)
    p = g.frequencies
    np.testing.assert_allclose(p.sum(), 4.0)
    np.testing.assert_allclose(p[:-1] / p[1:], (np.arange(2, 201) / np.arange(1, 200)) ** 1.0)
    seen = (Z != 0).mean(axis=0)
    # Binomial standard error per feature; 5 of them covers every feature here.
    assert np.all(np.abs(seen - p) < 5 * np.sqrt(p * (1 - p) / len(Z)) + 1e-4)
    np.testing.assert_allclose(metrics.l0(Z), 4.0, rtol=0.02)
    noise = X - Z @ g.features
    np.testing.assert_allclose(noise.std(), 0.05, rtol=0.02)
    assert abs(noise.mean()) < 1e-3
    low, high = g.magnitude
    active = Z[Z != 0]
    assert low <= active.min() and active.max() <= high
    np.testing.assert_allclose(active.mean(), (low + high) / 2, rtol=0.02)


def test_group_correlation_matches_the_gate_model():
    g = SyntheticActivations(8, 40, mean_active=4.0, exponent=0.5, group_size=4, correlation=0.8, seed=2)
    _, Z = g.sample(60_000, return_codes=True)
    S = (Z != 0).astype(float)
    p = g.frequencies
    gate = p[0::4] ** 0.8
    both = S.T @ S / len(S)
    for i, j in [(0, 1), (4, 7), (36, 39)]:  # one group each: P(both) = p_i p_j / π_G
        expected = p[i] * p[j] / gate[i // 4]
        assert abs(both[i, j] - expected) < 5 * np.sqrt(expected / len(S)), (i, j)
        assert both[i, j] > 1.5 * p[i] * p[j]
    for i, j in [(0, 4), (3, 39)]:  # different groups: independent
        assert abs(both[i, j] - p[i] * p[j]) < 5 * np.sqrt(p[i] * p[j] / len(S)), (i, j)
    # ρ = 0 turns the correlation off.
    _, Z0 = SyntheticActivations(8, 40, mean_active=4.0, exponent=0.5, correlation=0.0, seed=2).sample(
        60_000, return_codes=True)
    S0 = (Z0 != 0).astype(float)
    assert abs((S0[:, 0] * S0[:, 1]).mean() - p[0] * p[1]) < 5 * np.sqrt(p[0] * p[1] / len(S0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_features=0), "n_features"),
    (dict(correlation=1.0), "correlation"),
    (dict(mean_active=100.0), "mean_active"),
    (dict(magnitude=(2.0, 1.0)), "magnitude"),
    (dict(noise=-1.0), "noise"),
    (dict(dtype="int8"), "dtype"),
])
def test_bad_settings_name_the_argument(kwargs, match):
    settings = dict(n_features=8, n_planted=32) | kwargs
    with pytest.raises(ValueError, match=match):
        SyntheticActivations(**settings)


def test_recovery_controls():
    F = SyntheticActivations(64, 200, seed=0).features
    rng = np.random.default_rng(1)
    assert metrics.recovery(F, F).recovered == 1.0
    np.testing.assert_allclose(metrics.recovery(-3.0 * F[::-1], F).mean_max_cos, 1.0)  # sign, scale, order
    random = metrics.recovery(rng.standard_normal((200, 64)), F)
    assert random.recovered == 0.0 and random.mean_max_cos < 0.6
    half = np.concatenate([F[:100], rng.standard_normal((100, 64))])
    r = metrics.recovery(half, F, chunk=7)
    assert 0.49 <= r.recovered <= 0.51
    np.testing.assert_array_equal(r.max_cos[:100] > 0.9, True)
    # A perturbed atom at cos 0.85 is not a match at 0.9, but is at 0.8.
    v = rng.standard_normal(64)
    v -= (v @ F[0]) * F[0]
    near = 0.85 * F[0] + np.sqrt(1 - 0.85 ** 2) * v / np.linalg.norm(v)
    assert metrics.recovery(near[None], F[:1]).recovered == 0.0
    assert metrics.recovery(near[None], F[:1], threshold=0.8).recovered == 1.0
    # A dead (zero) atom matches nothing rather than dividing by zero.
    assert metrics.recovery(np.zeros((3, 64)), F).mean_max_cos == 0.0
    with pytest.raises(ValueError, match="features per atom"):
        metrics.recovery(F[:, :10], F)


def test_fvu_l0_dead_agree_with_direct_computation():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 6))
    X_hat = X + 0.3 * rng.standard_normal(X.shape)
    direct = sum(((X[i] - X_hat[i]) ** 2).sum() for i in range(50)) / sum(
        ((X[i] - X.mean(axis=0)) ** 2).sum() for i in range(50))
    np.testing.assert_allclose(metrics.fvu(X, X_hat), direct)
    np.testing.assert_allclose(metrics.fvu(torch.tensor(X), torch.tensor(X_hat)), direct)
    assert metrics.fvu(X, X) == 0.0
    np.testing.assert_allclose(metrics.fvu(X, np.broadcast_to(X.mean(axis=0), X.shape)), 1.0)
    Z = rng.standard_normal((40, 9)) * (rng.random((40, 9)) < 0.3)
    Z[:, 4] = 0
    assert metrics.l0(Z) == sum(int(np.count_nonzero(z)) for z in Z) / 40
    assert metrics.l0(torch.tensor(Z)) == metrics.l0(Z)
    assert metrics.dead_fraction(Z) == pytest.approx(1 / 9)
    with pytest.raises(ValueError, match="shape"):
        metrics.fvu(X, X_hat[:3])


def test_fit_recovers_planted_features():
    """sparsolve.fit with exact inference finds ≥ 95% of the planted features at |cos| > 0.9."""
    g = SyntheticActivations(32, 48, mean_active=3.0, exponent=0.5, noise=0.01, seed=0)
    X = g.sample(6_000)
    model = sparsolve.fit(X, n_atoms=64, alpha=0.05, solver="cd", positive=True, batch_size=256,
                          n_epochs=4, forget=20.0, seed=0, progress=False)
    r = metrics.recovery(model.dictionary, g.features)
    assert r.recovered >= 0.95, r
