"""norm="unit_nonneg" (sparsolve/rules/unit_nonneg.py): non-negative unit atoms for non-negative data.

The rule is one file and one registry entry; these tests check that the rest of the library picks
it up (config, command line, every update rule, the online pass on host and device paths, dead-atom
resampling, dict_init) and that it does what it says: its projection and tangent against brute-force
answers, and a planted non-negative dictionary recovered under it."""
import numpy as np
import pytest
from scipy.optimize import minimize

import sparsolve
from sparsolve.config import FitConfig
from sparsolve.rules import NORM_RULES, norm_rule
from sparsolve.rules.online import batch_statistics, online, online_blocked

torch = pytest.importorskip("torch")
RULE = norm_rule("unit_nonneg")


def _nonneg_unit(D, atol=1e-12):
    return bool((D >= 0).all()) and np.allclose(np.linalg.norm(D, axis=1), 1.0, atol=atol)


def test_it_is_a_choice_everywhere_the_rules_are_listed():
    from sparsolve.cli import _parser

    assert "unit_nonneg" in NORM_RULES
    assert FitConfig(8, 0.1, norm="unit_nonneg").norm == "unit_nonneg"
    assert _parser().parse_args(["fit", "--norm", "unit_nonneg"]).norm == "unit_nonneg"
    assert "d ≥ 0" in _parser()._subparsers._group_actions[0].choices["fit"].format_help()


def test_projection_is_the_nearest_point_of_the_set():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((6, 5))
    P = RULE.project(U)
    assert _nonneg_unit(P)
    for u, p in zip(U, P):  # brute force: no non-negative unit vector is nearer to u
        trial = np.abs(rng.standard_normal((20000, 5)))
        trial /= np.linalg.norm(trial, axis=1, keepdims=True)
        assert np.linalg.norm(p - u) <= np.linalg.norm(trial - u, axis=1).min() + 1e-12


def test_a_row_with_nothing_positive_keeps_its_previous_row():
    previous = np.abs(np.random.default_rng(1).standard_normal((3, 4)))
    previous /= np.linalg.norm(previous, axis=1, keepdims=True)
    D = np.array([[-1.0, -2.0, 0.0, -0.5], [3.0, -4.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    out = RULE.project(D, previous=previous)
    np.testing.assert_allclose(out[[0, 2]], previous[[0, 2]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(out[1], [0.6, 0, 0, 0.8])
    np.testing.assert_allclose(RULE.project(D[:1]), [np.abs(D[0]) / np.linalg.norm(D[0])])  # no previous: |u|


def test_tangent_is_the_projection_onto_the_tangent_cone():
    """−tangent(g) is the point of the cone {v : ⟨v, d⟩ = 0, v_i ≥ 0 where d_i = 0} nearest −g."""
    rng = np.random.default_rng(2)
    D = np.abs(rng.standard_normal((5, 6))) * (rng.random((5, 6)) < 0.6)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    G = rng.standard_normal((5, 6))
    T = RULE.tangent(G, D)
    for d, g, t in zip(D, G, T):
        active = d == 0
        cons = [{"type": "eq", "fun": lambda v, d=d: v @ d}]
        cons += [{"type": "ineq", "fun": lambda v, i=i: v[i]} for i in np.flatnonzero(active)]
        best = minimize(lambda v, g=g: ((v + g) ** 2).sum(), np.zeros(6), constraints=cons, method="SLSQP",
                        options={"ftol": 1e-14, "maxiter": 500}).x
        np.testing.assert_allclose(-t, best, atol=1e-6)
    assert np.abs((T * D).sum(axis=1)).max() < 1e-12


def _statistics(m=40, p=12, n=300, seed=3, unused=(5, 17)):
    rng = np.random.default_rng(seed)
    D = np.abs(rng.standard_normal((m, p)))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.abs(rng.standard_normal((n, m))) * (rng.random((n, m)) < 0.2)
    Z[:, list(unused)] = 0.0
    X = Z @ np.abs(rng.standard_normal((m, p))) + 0.1 * rng.standard_normal((n, p))
    return (D, *batch_statistics(X, Z))


def _sequential_pass(D, A, B):
    """The online pass written out: d_j ← Π((B_j − A_j D + A_jj d_j) / A_jj), j in order."""
    D = D.copy()
    for j in range(D.shape[0]):
        if A[j, j] > 1e-12:
            D[j] = RULE.project(((B[j] - A[j] @ D + A[j, j] * D[j]) / A[j, j])[None], previous=D[j:j + 1])[0]
    return D


@pytest.mark.parametrize("block", [1, 7, 64])
def test_the_online_pass_is_the_sequential_pass_on_host_and_device_paths(block):
    D, A, B = _statistics()
    expected = _sequential_pass(D, A, B)
    host = online(D, A, B, RULE, 0.0)
    blocked = online_blocked(*(torch.from_numpy(a) for a in (D, A, B)), RULE, 0.0, block=block)
    np.testing.assert_allclose(host, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(blocked.numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(host[[5, 17]], D[[5, 17]])  # unused atoms keep their rows
    assert _nonneg_unit(host) and not np.allclose(host, D)


def _planted(n=3000, p=20, m=10, seed=0):
    rng = np.random.default_rng(seed)
    atoms = np.abs(rng.standard_normal((m, p))) * (rng.random((m, p)) < 0.4)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = rng.exponential(1.0, (n, m)) * (rng.random((n, m)) < 0.15)
    return np.abs(codes @ atoms + 0.01 * rng.standard_normal((n, p))), atoms


@pytest.mark.parametrize("update", ["online", "sgd", "mod"])
def test_every_update_keeps_the_atoms_non_negative_and_unit(update):
    X, _ = _planted(n=600)
    seen = []
    settings = dict(online={}, sgd=dict(lr=0.02), mod=dict(n_epochs=4))[update]
    # more atoms than the data's 10, and dead_after below a batch: unused atoms are resampled (from the
    # inputs, made atoms by the rule)
    model = sparsolve.fit(X, 24, 1.0, update=update, norm="unit_nonneg", positive=True, seed=1, progress=False,
                          batch_size=None if update == "mod" else 100, dead_after=50,
                          callback=lambda step, D, record: seen.append(_nonneg_unit(D, 1e-9)), **settings)
    assert all(seen) and len(seen) == len(model.history["step"])
    assert sum(model.history["resampled"]) > 0


def test_a_dict_init_with_negative_entries_is_put_under_the_rule():
    X, _ = _planted(n=200)
    D0 = np.random.default_rng(3).standard_normal((8, 20))
    D0[0] = -np.abs(D0[0])  # nothing positive: it starts as |d|/‖d‖
    model = sparsolve.fit(X, 8, 0.3, norm="unit_nonneg", dict_init=D0, max_steps=1, batch_size=100, seed=0,
                          progress=False, resample_dead=False)
    assert _nonneg_unit(model.dictionary)


def test_a_planted_non_negative_dictionary_is_recovered():
    X, atoms = _planted()
    model = sparsolve.fit(X, 10, 0.05, norm="unit_nonneg", positive=True, n_epochs=6, batch_size=200, seed=0,
                          progress=False)
    D = model.dictionary
    assert _nonneg_unit(D)
    cosine = (D @ atoms.T).max(axis=0)
    assert (cosine > 0.97).mean() >= 0.8, cosine
