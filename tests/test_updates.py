"""Dictionary updates: the blocked online pass equals the sequential numba kernel for every norm
rule; the Adam step keeps each rule's meaning."""
import numpy as np
import pytest

from sparsolve.learning import norms, updates

torch = pytest.importorskip("torch")

RULES = [("unit", 0.0), ("ball", 0.0), ("penalty", 0.2), ("none", 0.0)]


def statistics(m=40, p=12, n=200, seed=3, unused=(5, 17)):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p))
    Z = np.abs(rng.standard_normal((n, m))) * (rng.random((n, m)) < 0.2)
    Z[:, list(unused)] = 0.0
    X = Z @ D + 0.1 * rng.standard_normal((n, p))
    A, B = updates.batch_statistics(X, Z)
    return D, A, B


@pytest.mark.parametrize("norm,beta", RULES)
@pytest.mark.parametrize("block", [1, 7, 64])
def test_blocked_online_pass_equals_the_sequential_kernel(norm, beta, block):
    # The numba kernel is the sequential pass d_1, d_2, ... in order; the blocked pass reorders
    # the arithmetic (products per block, a triangular solve without a projection), so the two
    # agree to rounding, unused atoms (A_jj = 0) kept as they were included.
    D, A, B = statistics()
    decay = norms.decay(norm, beta)
    sequential = updates.online(D, A, B, norm, decay)
    blocked = updates.online_blocked(*(torch.from_numpy(a) for a in (D, A, B)), norm, decay, block=block)
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
    sequential = updates.online(D, A, B, "unit", 0.0)
    used = np.setdiff1d(np.arange(40), [5, 17])
    jacobi = (B - A @ D + np.diag(A)[:, None] * D)[used] / np.diag(A)[used, None]
    jacobi /= np.linalg.norm(jacobi, axis=1, keepdims=True)
    assert np.abs(jacobi - sequential[used]).max() > 1e-3


@pytest.mark.parametrize("norm", ["unit", "penalty"])
def test_online_on_torch_cpu_and_float32_follows_the_input(norm):
    D, A, B = statistics()
    decay = norms.decay(norm, 0.2)
    ref = updates.online(D, A, B, norm, decay)
    t = [torch.from_numpy(a.astype(np.float32)) for a in (D, A, B)]
    out = updates.online(*t, norm, decay)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-4)
    # the input is not overwritten
    np.testing.assert_array_equal(t[0].numpy(), D.astype(np.float32))
