"""encode's host reads on the device path, counted on CPU torch (tests/host_reads.py).

On a CPU encode runs its solvers on numpy views of torch tensors (backend.host_view); here that
view is switched off, so the loop runs on torch tensors exactly as it does on a GPU, and every
read of the device by the loop and the solvers is counted.  A certificate reads once (the rows'
verdicts and the divergence flag); the end reads once (the criteria and verdicts); the value
checks of X and D read once, and the power iteration for L once per 16 of its steps."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sparsolve
from sparsolve import backend

torch = pytest.importorskip("torch")
from host_reads import counting  # noqa: E402  (needs torch)

LOOP = ("sparsolve.inference.loop", "sparsolve.inference.base", "sparsolve.inference.fista",
        "sparsolve.inference.lca", "sparsolve.inference.ista")


@pytest.mark.parametrize("solver", ["fista", "lca"])
def test_encode_reads_once_per_certificate_and_agrees(monkeypatch, solver, X, D_learned, alpha):
    X32, D32 = X.astype(np.float32), D_learned.astype(np.float32)
    on_host, host_info = sparsolve.encode(X32, D32, alpha, solver=solver, tol=1e-4, check_every=5,
                                          return_info=True)
    monkeypatch.setattr(backend, "host_view", lambda x: x)  # the tensors' own path, as on a GPU
    Xt, Dt = torch.from_numpy(X32), torch.from_numpy(D32)
    with counting(LOOP) as reads, counting(("sparsolve.inference",)) as every:
        Z, info = sparsolve.encode(Xt, Dt, alpha, solver=solver, tol=1e-4, check_every=5, return_info=True)
    assert every.count("sparsolve.inference") == 1  # the value checks of X and D, in one read
    assert 0 < every.count("sparsolve.inference.problem") <= math.ceil(200 / 16)  # L's power iteration
    certificates = int(info.n_iter.max()) // 5 + 1
    assert certificates > 3  # the rows finish at different certificates: the compaction is exercised
    assert len(np.unique(info.n_iter)) > 2
    assert len(reads) <= certificates + 1, reads
    assert len(reads) >= certificates  # the counter does see the loop's reads
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


def test_a_diverging_run_is_stopped_by_the_flag_it_reads(monkeypatch, X, D_learned, alpha):
    monkeypatch.setattr(backend, "host_view", lambda x: x)
    Xt, Dt = torch.from_numpy(X), torch.from_numpy(D_learned)
    with pytest.raises(sparsolve.inference.DivergenceError, match="gamma"):
        sparsolve.encode(Xt, Dt, alpha, solver="lca", gamma=50.0, accelerate=False, tol=1e-6)


def test_the_power_iteration_reads_once_per_block():
    from sparsolve.inference import top_eigenvalue

    rng = np.random.default_rng(0)
    D = rng.standard_normal((64, 48))
    A = torch.from_numpy(D @ D.T)
    with counting(("sparsolve.inference.problem",)) as reads:
        lam = top_eigenvalue(A, rtol=1e-9)
    assert 0 < len(reads) <= math.ceil(200 / 16)
    assert lam == pytest.approx(np.linalg.eigvalsh(D @ D.T)[-1], rel=1e-6)
    with counting(("sparsolve.inference.problem",)) as reads:
        assert top_eigenvalue(torch.zeros(5, 5)) == 0.0
    assert len(reads) == 1
