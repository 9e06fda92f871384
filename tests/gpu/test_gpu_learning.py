"""The learning pieces on CUDA: the blocked online pass (torch and cupy) equals the sequential
numba kernel, and queues without reading anything back to the host.

Run with ``python -m pytest -q -m gpu tests/gpu``; skipped where there is no CUDA device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsolve.rules import norm_rule
from sparsolve.rules.online import batch_statistics, online

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

RULES = [("unit", 0.0), ("ball", 0.0), ("penalty", 0.2), ("none", 0.0)]


def _statistics(m=300, p=48, n=600, seed=4):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p))
    Z = np.abs(rng.standard_normal((n, m))) * (rng.random((n, m)) < 0.1)
    Z[:, [3, 200]] = 0.0
    A, B = batch_statistics(Z @ D + 0.1 * rng.standard_normal((n, p)), Z)
    return D, A, B


@pytest.mark.parametrize("norm,beta", RULES)
def test_online_on_cuda_equals_the_numba_kernel(norm, beta):
    D, A, B = _statistics()
    rule = norm_rule(norm)
    decay = rule.decay(beta)
    reference = online(D, A, B, rule, decay)
    out = online(*(torch.from_numpy(a).cuda() for a in (D, A, B)), rule, decay)
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), reference, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(out.cpu().numpy()[[3, 200]], D[[3, 200]])


@pytest.mark.parametrize("norm", ["unit", "none"])
def test_online_on_cuda_has_no_host_sync(norm):
    D, A, B = (torch.from_numpy(a).cuda() for a in _statistics())
    online(D, A, B, norm_rule(norm), 0.0)  # warm up (cuBLAS handles, the solver's workspace)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any device-to-host read raises
    try:
        online(D, A, B, norm_rule(norm), 0.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@pytest.mark.parametrize("norm,beta", RULES)
def test_online_on_cupy_equals_the_numba_kernel(norm, beta):
    cupy = pytest.importorskip("cupy")
    D, A, B = _statistics()
    rule = norm_rule(norm)
    decay = rule.decay(beta)
    reference = online(D, A, B, rule, decay)
    out = online(*(cupy.asarray(a) for a in (D, A, B)), rule, decay)
    np.testing.assert_allclose(cupy.asnumpy(out), reference, rtol=1e-10, atol=1e-10)


def test_shard_stream_to_cuda_equals_the_host_stream(tmp_path):
    from sparsolve.data.shards import ShardStream

    rng = np.random.default_rng(0)
    for i, n in enumerate((300, 211)):
        np.save(tmp_path / f"s{i}.npy", rng.standard_normal((n, 32)).astype(np.float32))
    options = dict(batch_size=128, seed=1, block_rows=64, window_blocks=2)
    host = list(ShardStream(tmp_path, **options))
    device = list(ShardStream(tmp_path, device="cuda", **options))
    assert all(b.is_cuda for b in device)
    for a, b in zip(host, device):
        np.testing.assert_array_equal(a, (b * 1).cpu().numpy())  # used on this stream after the copy


# ---- fit's host reads and bf16 storage on CUDA ------------------------------------------------

def _tokens(n=1200, p=24, m=16, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = rng.standard_normal((n, m)) * (rng.random((n, m)) < 0.2)
    return torch.from_numpy((Z @ D + 0.01 * rng.standard_normal((n, p))).astype(np.float32)).cuda()


def test_a_step_between_reads_reads_nothing_outside_encode(monkeypatch):
    """Between reads (sync_every) fit's step queues its work without a device-to-host read;
    encode's certificates are its own (allowed here)."""
    from sparsolve.config import FitConfig
    from sparsolve.learning import reducer as L
    from sparsolve.learning.fit import new_learner

    X = _tokens()
    learner = new_learner(X[:100], FitConfig(16, 0.05, solver="fista", batch_size=100, sync_every=8,
                                             dead_after=10 ** 6, seed=0).resolved(1200))
    learner.step(X[:100])  # the first dictionary and the memory plan read the device once
    real = L.encode

    def encode(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("default")
        try:
            return real(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(L, "encode", encode)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any other device-to-host read raises
    try:
        for i in range(1, 4):
            learner.step(X[100 * i:100 * (i + 1)], index=i)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(learner.pending) == 4 and len(learner.history) == 0
    learner.sync()
    assert len(learner.history) == 4 and learner.history.as_dict()["step"] == [1, 2, 3, 4]


def test_fit_on_cuda_learns_the_same_whatever_sync_every():
    import sparsolve

    X = _tokens()
    # no atom dies within 12 steps: dead atoms are resampled at read steps only, so a death would
    # move the resampling (tests/test_fit_sync.py checks that schedule on CPU torch)
    settings = dict(solver="fista", batch_size=100, max_steps=12, dead_after=10 ** 6, seed=0, progress=False)
    a = sparsolve.fit(X, 16, 0.05, sync_every=1, **settings)
    b = sparsolve.fit(X, 16, 0.05, **settings)  # the GPU default, 16
    np.testing.assert_array_equal(a.dictionary, b.dictionary)
    for key in a.history:
        if key != "seconds":
            assert a.history[key] == b.history[key], key


def test_bfloat16_storage_on_cuda():
    import sparsolve

    X = _tokens()
    settings = dict(solver="fista", batch_size=100, n_epochs=2, tol=0.01, seed=0, progress=False)
    full = sparsolve.fit(X.bfloat16().float(), 16, 0.05, **settings)
    half = sparsolve.fit(X, 16, 0.05, storage="bfloat16", **settings)
    D = torch.from_numpy(half.dictionary)  # the model keeps a host copy
    assert D.dtype == torch.float32 and torch.equal(D, D.bfloat16().float())
    late = slice(-5, None)
    assert np.mean(half.history["objective"][late]) == pytest.approx(np.mean(full.history["objective"][late]),
                                                                     rel=0.02)


def test_host_arrays_stream_to_cuda_with_the_next_batch_prefetched():
    """fit(numpy, device="cuda") copies each batch through pinned memory while the step before
    it runs (batches.Source): the same dictionary as the same rows given as a CUDA tensor."""
    import sparsolve

    X = _tokens()
    settings = dict(solver="fista", batch_size=100, max_steps=6, seed=0, progress=False)
    a = sparsolve.fit(X.cpu().numpy(), 16, 0.05, device="cuda", **settings)
    b = sparsolve.fit(X, 16, 0.05, **settings)
    np.testing.assert_array_equal(a.dictionary, b.dictionary)


def test_fit_from_a_torch_cpu_tensor_on_cuda_prefetches_and_learns_the_same():
    """A torch CPU tensor learned from on CUDA goes through backend.start_copy (pinned memory, a
    non-blocking copy on a side stream): the same run as from its numpy array."""
    import sparsolve
    from sparsolve import backend

    X = _tokens().cpu()
    moved = backend.start_copy(X[:7], "cuda")()
    assert moved.is_cuda and torch.equal(moved.cpu(), X[:7])
    settings = dict(solver="fista", batch_size=100, max_steps=6, seed=0, device="cuda", progress=False)
    a = sparsolve.fit(X, 16, 0.05, **settings)
    b = sparsolve.fit(X.numpy(), 16, 0.05, **settings)
    np.testing.assert_array_equal(backend.to_numpy(a.dictionary), backend.to_numpy(b.dictionary))
