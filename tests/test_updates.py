"""Update rules (sparsolve/rules/online.py, sgd.py): the blocked online pass equals the sequential
numba kernel for every norm rule; the Adam step is torch's and resumes from its state_dict; each
rule's state goes through a checkpoint's arrays, checked."""
import re

import numpy as np
import pytest

from sparsolve.config import FitConfig
from sparsolve.rules import UPDATE_RULES, norm_rule, update_rule
from sparsolve.rules.online import batch_statistics, online, online_blocked
from sparsolve.rules.sgd import AdamSettings, adam_step, gradient

torch = pytest.importorskip("torch")

RULES = [("unit", 0.0), ("ball", 0.0), ("penalty", 0.2), ("none", 0.0)]


def statistics(m=40, p=12, n=200, seed=3, unused=(5, 17)):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p))
    Z = np.abs(rng.standard_normal((n, m))) * (rng.random((n, m)) < 0.2)
    Z[:, list(unused)] = 0.0
    X = Z @ D + 0.1 * rng.standard_normal((n, p))
    A, B = batch_statistics(X, Z)
    return D, A, B


@pytest.mark.parametrize("norm,beta", RULES)
@pytest.mark.parametrize("block", [1, 7, 64])
def test_blocked_online_pass_equals_the_sequential_kernel(norm, beta, block):
    # The numba kernel is the sequential pass d_1, d_2, ... in order; the blocked pass reorders
    # the arithmetic (products per block, a triangular solve without a projection), so the two
    # agree to rounding, unused atoms (A_jj = 0) kept as they were included.
    D, A, B = statistics()
    rule = norm_rule(norm)
    decay = rule.decay(beta)
    sequential = online(D, A, B, rule, decay)
    blocked = online_blocked(*(torch.from_numpy(a) for a in (D, A, B)), rule, decay, block=block)
    np.testing.assert_allclose(blocked.numpy(), sequential, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(sequential[[5, 17]], D[[5, 17]])
    assert not np.allclose(sequential, D)
    if norm == "unit":
        used = np.setdiff1d(np.arange(40), [5, 17])
        np.testing.assert_allclose(np.linalg.norm(sequential[used], axis=1), 1.0)


def test_blocked_pass_is_not_a_jacobi_sweep():
    # A pass that used the old atoms throughout (Jacobi) would differ: the order matters,
    # so equality above is a real check of the in-block corrections.
    D, A, B = statistics()
    sequential = online(D, A, B, norm_rule("unit"), 0.0)
    used = np.setdiff1d(np.arange(40), [5, 17])
    jacobi = (B - A @ D + np.diag(A)[:, None] * D)[used] / np.diag(A)[used, None]
    jacobi /= np.linalg.norm(jacobi, axis=1, keepdims=True)
    assert np.abs(jacobi - sequential[used]).max() > 1e-3


@pytest.mark.parametrize("norm", ["unit", "penalty"])
def test_online_on_torch_cpu_and_float32_follows_the_input(norm):
    D, A, B = statistics()
    rule = norm_rule(norm)
    decay = rule.decay(0.2)
    ref = online(D, A, B, rule, decay)
    t = [torch.from_numpy(a.astype(np.float32)) for a in (D, A, B)]
    out = online(*t, rule, decay)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-4)
    # the input is not overwritten
    np.testing.assert_array_equal(t[0].numpy(), D.astype(np.float32))


# ---- the Adam step of update="sgd" -------------------------------------------------------


def test_adam_matches_torch_adam():
    rng = np.random.default_rng(0)
    D = rng.standard_normal((6, 5))
    grads = [rng.standard_normal((6, 5)) * 10.0 ** -k for k in range(5)]
    settings = AdamSettings(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6)
    state, ours = {"mean": None, "square": None, "t": 0}, D
    param = torch.nn.Parameter(torch.from_numpy(D.copy()))
    reference = torch.optim.Adam([param], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    for g in grads:
        ours, state = adam_step(ours, g, state, settings)
        param.grad = torch.from_numpy(g)
        reference.step()
    np.testing.assert_allclose(ours, param.detach().numpy(), rtol=1e-12, atol=1e-12)


def _rule(update, **settings):
    return update_rule(FitConfig(4, 0.1, update=update, batch_size=20, **settings).resolved(100))


def test_sgd_resumes_from_its_state_dict():
    """The moments and the step count go through a checkpoint's host arrays and come back on the
    batch's device: the resumed steps equal the uninterrupted ones exactly."""
    rng = np.random.default_rng(1)
    D = torch.from_numpy(rng.standard_normal((4, 3)))
    grads = [torch.from_numpy(rng.standard_normal((4, 3))) for _ in range(4)]
    rule = _rule("sgd")
    first, state = D, rule.init(D)
    for t, g in enumerate(grads, start=1):
        first, state = rule.apply(first, (g,), state, t)
    second, state = D, rule.init(D)
    for t, g in enumerate(grads[:2], start=1):
        second, state = rule.apply(second, (g,), state, t)
    arrays, values = rule.state_dict(state)
    assert set(arrays) == {"adam_mean", "adam_square"} and all(isinstance(a, np.ndarray) for a in arrays.values())
    resumed = rule.to(rule.load_state_dict(arrays, values, 4, 3, "float64"), second)
    for t, g in enumerate(grads[2:], start=3):
        second, resumed = rule.apply(second, (g,), resumed, t)
    assert isinstance(second, torch.Tensor)
    torch.testing.assert_close(second, first, rtol=0, atol=0)


@pytest.mark.parametrize("update", list(UPDATE_RULES))
def test_a_state_of_the_wrong_shape_or_dtype_is_refused_naming_the_array(update):
    rng = np.random.default_rng(4)
    rule = _rule(update, lr=0.01)
    X, D = rng.standard_normal((20, 3)), rng.standard_normal((4, 3))
    Z = rng.standard_normal((20, 4))
    D2, state = rule.apply(D, rule.statistics(X, Z, X - Z @ D, D), rule.init(D), 1)
    arrays, values = rule.state_dict(state)
    back = rule.load_state_dict(arrays, values, 4, 3, "float64")
    for key, value in back.items():  # the round trip keeps every entry
        np.testing.assert_array_equal(value, state[key])
    for name, a in arrays.items():
        wrong = (a.shape[0] + 1, *a.shape[1:])
        with pytest.raises(ValueError, match=re.escape(f"'{name}' has shape {wrong}") + ".*" + re.escape(f"{a.shape}")):
            rule.load_state_dict({**arrays, name: np.zeros(wrong)}, values, 4, 3, "float64")
        with pytest.raises(ValueError, match=f"'{name}' .* dtype float32, expected .* dtype float64"):
            rule.load_state_dict({**arrays, name: a.astype(np.float32)}, values, 4, 3, "float64")


@pytest.mark.parametrize("bad", [dict(lr=0), dict(lr=float("nan")), dict(beta1=1.0), dict(beta2=-0.1),
                                 dict(eps=0)])
def test_adam_settings_are_checked(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        AdamSettings(**bad)


def test_gradient_is_the_batch_loss_gradient():
    rng = np.random.default_rng(2)
    D, Z, X = rng.standard_normal((5, 4)), rng.standard_normal((7, 5)), rng.standard_normal((7, 4))
    A, B = batch_statistics(X, Z)
    np.testing.assert_allclose(gradient(D, Z, X - Z @ D, 0.3), A @ D - B + 0.3 * D, atol=1e-12)


def test_unit_rule_removes_the_gradient_along_each_atom_and_the_others_keep_it():
    rng = np.random.default_rng(3)
    D, g = rng.standard_normal((8, 5)), rng.standard_normal((8, 5))
    t = norm_rule("unit").tangent(g, D)
    np.testing.assert_allclose((t * D).sum(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(t + ((g * D).sum(1) / (D * D).sum(1))[:, None] * D, g, atol=1e-12)
    for rule in ("ball", "penalty", "none"):
        assert norm_rule(rule).tangent(g, D) is g


def _planted(n_atoms=16, n_features=12, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_atoms, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n, n_atoms))
    for i in range(n):
        support = rng.choice(n_atoms, 2, replace=False)
        Z[i, support] = rng.choice([-1.0, 1.0], 2) * rng.uniform(0.5, 1.5, 2)
    return Z @ D + 0.01 * rng.standard_normal((n, n_features)), D


def _adam_fit(X, n_atoms, alpha, norm, epochs, lr, seed=0):
    """The learning loop with update="sgd": encode, gradient, tangent, Adam, norm rule."""
    from sparsolve import encode

    rng = np.random.default_rng(seed)
    D = X[rng.choice(X.shape[0], n_atoms, replace=False)]
    D = D / np.linalg.norm(D, axis=1, keepdims=True)
    rule = norm_rule(norm)
    settings, state, decay, trace = AdamSettings(lr=lr), {"mean": None, "square": None, "t": 0}, rule.decay(alpha), []
    for _ in range(epochs):
        for rows in np.array_split(rng.permutation(X.shape[0]), X.shape[0] // 100):
            Z = encode(X[rows], D, alpha, solver="cd", tol=1e-3)
            grad = rule.tangent(gradient(D, Z, X[rows] - Z @ D, decay), D)
            new, state = adam_step(D, grad, state, settings)
            D = rule.project(new, previous=D)
            trace.append((np.linalg.norm(D, axis=1).mean(), np.abs(Z).sum(1).mean()))
    return D, np.array(trace)


def test_adam_with_unit_norms_recovers_a_planted_dictionary_and_the_ablation_shows_the_cheat():
    X, D_true = _planted()
    D, trace = _adam_fit(X, 16, 0.05, "unit", epochs=6, lr=0.02)
    np.testing.assert_allclose(trace[:, 0], 1.0)
    cosine = np.abs((D / np.linalg.norm(D, axis=1, keepdims=True)) @ D_true.T).max(axis=0)
    assert (cosine > 0.99).mean() >= 0.9
    free, free_trace = _adam_fit(X, 16, 0.05, "none", epochs=2, lr=0.02)
    # no rule: the atoms grow and the codes' L1 falls below the unit-norm codes' (the cheat)
    assert free_trace[-1, 0] > 1.3
    assert free_trace[-10:, 1].mean() < 0.8 * trace[-10:, 1].mean()
