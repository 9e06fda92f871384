"""encode's host reads on the device path, counted on CPU torch (conftest's ``host_reads``).

On a CPU encode runs its solvers on numpy views of torch tensors (backend.host_view); here that
view is switched off, so the loop runs on torch tensors exactly as it does on a GPU, where every
read of the device waits for its queue.  What users get from the loop's design is that those
waits grow with the certificates (one every ``check_every`` iterations), not with the
iterations; the bounds below say so, with room for whatever else a correct encode may read, and
never pin a count (benchmarks/encode.py --reads reports the counts)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sparsolve
from sparsolve import backend

torch = pytest.importorskip("torch")

# The power iteration for L stops after at most this many steps, read a block of 16 at a time.
POWER_STEPS, BLOCK = 200, 16
# Reads a correct encode may make besides its certificates: the value checks of X and D, the
# end's criteria and verdicts, and a little room.
FIXED = 4


@pytest.mark.parametrize("solver", ["fista", "lca"])
def test_encode_reads_grow_with_certificates_not_iterations(monkeypatch, host_reads, solver, X, D_learned,
                                                            alpha):
    X32, D32 = X.astype(np.float32), D_learned.astype(np.float32)
    on_host, host_info = sparsolve.encode(X32, D32, alpha, solver=solver, tol=1e-4, check_every=5,
                                          return_info=True)
    monkeypatch.setattr(backend, "host_view", lambda x: x)  # the tensors' own path, as on a GPU
    Xt, Dt = torch.from_numpy(X32), torch.from_numpy(D32)
    with host_reads() as reads:
        Z, info = sparsolve.encode(Xt, Dt, alpha, solver=solver, tol=1e-4, check_every=5, return_info=True)
    certificates = int(info.n_iter.max()) // 5 + 1
    bound = certificates + FIXED + math.ceil(POWER_STEPS / BLOCK)
    # The bound means something only if a read per iteration would break it.
    assert info.n_iter.max() > bound
    assert 0 < len(reads) <= bound, reads
    # the same certified answer as the numpy path
    assert info.converged.all() and host_info.converged.all()
    assert (info.rel_gap <= 1e-4).all()
    Z64 = Z.numpy().astype(np.float64)
    gap = sparsolve.duality_gap(X, D_learned, Z64, alpha)
    F = 0.5 * ((X - Z64 @ D_learned) ** 2).sum(axis=1) + alpha * np.abs(Z64).sum(axis=1)
    np.testing.assert_allclose(gap / F, info.rel_gap, atol=2e-5)  # the reported gaps are the codes' own
    np.testing.assert_allclose(Z.numpy(), on_host, atol=1e-3)
    assert abs(F.mean() - (0.5 * ((X - on_host @ D_learned) ** 2).sum(axis=1)
                           + alpha * np.abs(on_host).sum(axis=1)).mean()) <= 1e-4 * F.mean()


def test_a_given_L_saves_the_power_iteration_reads(monkeypatch, host_reads, X, D_learned, alpha):
    """With L passed in (a learner's warm estimate) encode has no power iteration to read."""
    from sparsolve.inference import lipschitz

    monkeypatch.setattr(backend, "host_view", lambda x: x)
    Xt, Dt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(D_learned.astype(np.float32))
    L = lipschitz(Dt)
    with host_reads() as reads:
        _, info = sparsolve.encode(Xt, Dt, alpha, solver="fista", tol=1e-4, check_every=10, L=L,
                                   return_info=True)
    assert 0 < len(reads) <= int(info.n_iter.max()) // 10 + 1 + FIXED, reads


def test_a_diverging_run_is_stopped_by_the_flag_it_reads(monkeypatch, X, D_learned, alpha):
    monkeypatch.setattr(backend, "host_view", lambda x: x)
    Xt, Dt = torch.from_numpy(X), torch.from_numpy(D_learned)
    with pytest.raises(sparsolve.inference.DivergenceError, match="gamma"):
        sparsolve.encode(Xt, Dt, alpha, solver="lca", gamma=50.0, accelerate=False, tol=1e-6)


def test_the_power_iteration_reads_once_per_block(host_reads):
    """Its reads are bounded by its step cap over the block, whatever the matrix."""
    from sparsolve.inference import top_eigenvalue

    rng = np.random.default_rng(0)
    D = rng.standard_normal((64, 48))
    A = torch.from_numpy(D @ D.T)
    with host_reads() as reads:
        lam = top_eigenvalue(A, rtol=1e-9)
    assert 0 < len(reads) <= math.ceil(POWER_STEPS / BLOCK)
    assert lam == pytest.approx(np.linalg.eigvalsh(D @ D.T)[-1], rel=1e-6)
    with host_reads() as reads:
        assert top_eigenvalue(torch.zeros(5, 5)) == 0.0
    assert len(reads) <= math.ceil(POWER_STEPS / BLOCK)
