"""fit at interpretability width: inexact EM (FitConfig.tol_warmup: coarse codes in the first steps,
tol from then on, the last step's codes certified to tol, resume exact mid-schedule); a tol no step
can certify refused at the start; update="auto" by width; the host's blocked online pass; the
products with sparse codes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve.config import COARSE_TOL, SGD_ABOVE, FitConfig
from sparsolve.data import SyntheticActivations
from sparsolve.learning import reducer as R

FIT = dict(solver="cd", batch_size=100, seed=3, positive=True, progress=False, forget=20.0)


@pytest.fixture(scope="module")
def activations():
    gen = SyntheticActivations(24, 64, mean_active=3.0, seed=1)
    return gen.sample(1200, split=0)


def test_the_schedule_falls_geometrically_to_tol_and_stays():
    cfg = FitConfig(64, 0.1, tol=1e-3, tol_warmup=4)
    tols = [cfg.step_tol(t) for t in range(7)]
    np.testing.assert_allclose(tols[:4], [COARSE_TOL * (1e-3 / COARSE_TOL) ** (t / 4) for t in range(4)])
    assert tols[4:] == [1e-3] * 3
    assert [FitConfig(64, 0.1, tol=0.5, tol_warmup=4).step_tol(t) for t in (0, 2)] == [0.5, 0.5]  # never looser than tol
    assert FitConfig(64, 0.1).step_tol(0) == 1e-3  # off by default
    with pytest.raises(ValueError, match="tol_warmup"):
        FitConfig(64, 0.1, tol_warmup=-1)


def test_each_step_encodes_at_its_scheduled_tol_and_the_last_is_certified(activations, monkeypatch):
    seen = []
    encode = R.encode

    def spy(*args, **kwargs):
        Z, info = encode(*args, **kwargs)
        seen.append((kwargs["tol"], info.rel_gap.max(), bool(info.converged.all())))
        return Z, info

    monkeypatch.setattr(R, "encode", spy)
    model = sparsolve.fit(activations, 64, 0.1, tol=1e-4, tol_warmup=8, **FIT)
    cfg = FitConfig(64, 0.1, tol=1e-4, tol_warmup=8)
    assert [t for t, _, _ in seen] == [cfg.step_tol(t) for t in range(12)]
    assert seen[0][0] == COARSE_TOL and seen[-1][0] == 1e-4
    tol, worst, converged = seen[-1]
    assert converged and worst <= 1e-4  # the final dictionary's step: certified to tol
    # and the model's own codes of the data, at tol, certify
    Z, info = sparsolve.encode(activations, model.dictionary, 0.1, positive=True, tol=1e-4, return_info=True)
    assert info.converged.all()


def test_resume_mid_schedule_equals_the_uninterrupted_run(activations, tmp_path):
    full = sparsolve.fit(activations, 64, 0.1, tol_warmup=8, **FIT)
    ckpt = tmp_path / "run.npz"

    class Crash(RuntimeError):
        pass

    def crash(step, D, record):
        if step == 6:  # mid-schedule: steps 0..7 are coarse
            raise Crash

    with pytest.raises(Crash):
        sparsolve.fit(activations, 64, 0.1, tol_warmup=8, checkpoint=ckpt, checkpoint_every=4, callback=crash, **FIT)
    assert sparsolve.load(ckpt).history["step"][-1] == 4
    resumed = sparsolve.fit(activations, 64, 0.1, tol_warmup=8, checkpoint=ckpt, checkpoint_every=4, **FIT)
    np.testing.assert_array_equal(resumed.dictionary, full.dictionary)
    np.testing.assert_allclose(resumed.history["objective"], full.history["objective"])
    with pytest.raises(ValueError, match="tol_warmup"):  # another schedule is another run
        sparsolve.fit(activations, 64, 0.1, tol_warmup=4, checkpoint=ckpt, **FIT)


def test_a_tol_that_no_step_can_certify_is_refused_before_the_first(activations, monkeypatch):
    monkeypatch.setattr(R, "encode", lambda *a, **k: pytest.fail("a step ran before the refusal"))
    with pytest.raises(ValueError, match=r"tol=1e-08 is below what solver='cd' can certify on float32 data "
                                         r"\(1e-06\); pass tol >= 1e-06, or float64 data"):
        sparsolve.fit(activations.astype(np.float32), 64, 0.1, tol=1e-8, tol_warmup=4, **FIT)
    with pytest.raises(ValueError, match=r"below what solver='fista' can certify on float32 data \(1e-05\)"):
        sparsolve.fit(activations.astype(np.float32), 64, 0.1, **{**FIT, "solver": "fista"}, tol=1e-6)


def test_auto_update_is_online_up_to_the_width_and_sgd_above():
    assert FitConfig(SGD_ABOVE, 0.1).resolved(10_000).update == "online"
    assert FitConfig(SGD_ABOVE + 1, 0.1).resolved(10_000).update == "sgd"
    assert FitConfig(SGD_ABOVE + 1, 0.1, update="online").resolved(10_000).update == "online"


@pytest.mark.parametrize("norm", ["unit", "ball"])
def test_the_hosts_blocked_online_pass_equals_the_sequential_one(norm):
    from sparsolve.rules import NORM_RULES, base, online

    rule = NORM_RULES[norm]()
    rng = np.random.default_rng(0)
    m, p = online.BLOCKED_ON_HOST + 37, 20  # a short last block
    D = rng.standard_normal((m, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = (rng.random((3000, m)) < 0.01) * rng.random((3000, m))
    Z[:, 5] = 0  # an unused atom keeps its row
    A, B = Z.T @ Z / 3000, Z.T @ (Z @ D + 0.1 * rng.standard_normal((3000, p))) / 3000
    sequential = D.copy()
    online._online_numba(sequential, A, B, rule.floor, 0.0, base.UNUSED)
    blocked = online.online(D, A, B, rule, 0.0)
    np.testing.assert_allclose(blocked, sequential, atol=1e-10)
    assert (blocked[5] == D[5]).all() and not np.shares_memory(blocked, D)


@pytest.mark.parametrize("density", [0.004, 0.5])
def test_products_with_sparse_codes_equal_the_dense_ones(density):
    from sparsolve import backend

    rng = np.random.default_rng(1)
    Z = ((rng.random((300, 500)) < density) * rng.standard_normal((300, 500))).astype(np.float32)
    D, X = rng.standard_normal((500, 40)).astype(np.float32), rng.standard_normal((300, 40)).astype(np.float32)
    np.testing.assert_allclose(backend.codes_times(Z, D), Z @ D, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.codes_transpose_times(Z, X), Z.T @ X, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.codes_gram(Z), Z.T @ Z, rtol=1e-5, atol=1e-5)
    Zt = torch.from_numpy(Z)  # other kinds take the dense product
    np.testing.assert_allclose(backend.codes_times(Zt, torch.from_numpy(D)).numpy(), Z @ D, rtol=1e-5, atol=1e-5)
