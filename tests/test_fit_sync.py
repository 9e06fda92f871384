"""fit's host reads (FitConfig.sync_every) and its bfloat16 storage (FitConfig.storage), on CPU torch.

A read of a torch tensor's values on the host (``.item()``, ``bool()``, ``.numpy()``, ...) is
what costs a GPU run a wait for the device; ``sync_every=k`` promises that fit's own bookkeeping
waits once every k steps.  The reads are counted on CPU torch (conftest's ``host_reads``) and
bounded, never pinned: benchmarks/encode.py --reads reports the counts.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_fit import planted  # tests/ is on the path (pytest's rootdir conftest)

import sparsolve
from sparsolve.learning import checkpoint as ckpt
from sparsolve.learning.fit import fit

torch = pytest.importorskip("torch")


def _data(n=600, p=16, m=8, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = rng.standard_normal((n, m)) * (rng.random((n, m)) < 0.3)
    return torch.from_numpy((Z @ D + 0.01 * rng.standard_normal((n, p))).astype(np.float32))


SETTINGS = dict(solver="fista", batch_size=50, max_steps=12, seed=0, progress=False)


def _same(a, b):
    np.testing.assert_array_equal(a.dictionary, b.dictionary)
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        if key != "seconds":  # wall time, the one figure that is not the computation's
            assert a.history[key] == b.history[key], key


@pytest.mark.parametrize("k", [4, 5])
def test_fit_reads_the_device_every_k_steps_and_learns_the_same(host_reads, k):
    X = _data()
    with host_reads() as every_step:
        step_by_step = fit(X, 8, 0.05, sync_every=1, dead_after=100_000, **SETTINGS)
    with host_reads() as every_k:
        model = fit(X, 8, 0.05, sync_every=k, dead_after=100_000, **SETTINGS)
    _same(step_by_step, model)
    # The two runs compute the same (checked above), so they make the same reads for their encodes,
    # L and updates, whatever the numerics; what sync_every=k must save is the bookkeeping's read
    # at each of the 12 steps that is not a read step: at least 12 − ⌈12/k⌉ reads fewer.
    assert len(every_step) - len(every_k) >= 12 - math.ceil(12 / k), (len(every_step), len(every_k))


def _dying(n=600):
    """Data with no component along e_15, and a first dictionary whose atom 7 is e_15: that atom
    is never used, dies after ``dead_after`` samples and is replaced."""
    X = _data(n)
    X[:, 15] = 0
    init = np.eye(8, 16, dtype=np.float32)
    init[7] = 0
    init[7, 15] = 1
    return X, init


def _resampled_at(model):
    return [s for s, r in zip(model.history["step"], model.history["resampled"]) if r]


def test_dead_atoms_are_resampled_at_read_steps():
    """A large batch (200 rows, the default dead_after = max(20·8, 2·200) = 2 batches): the idle
    ceiling reaches dead_after after two steps and stays there, so a dead-atom stage that looked
    at every step would read the device at every step from the second on.  It looks at the steps
    that read anyway."""
    X, init = _dying()
    settings = dict(SETTINGS, batch_size=200, max_steps=24, dict_init=init)
    k = 4
    model = fit(X, 8, 0.5, sync_every=k, **settings)
    at = _resampled_at(model)
    assert at, "the dead atom was never resampled"
    assert all(s % k == 0 for s in at), at  # only on the read steps
    assert at[0] == k  # dead after step 2, replaced at the first read step after
    dead = model.history["dead_frac"]  # entry i is step i + 1
    assert dead[0] == 0 and dead[1] == dead[k - 1] == 1 / 8  # counted in the history while it waits
    assert dead[k] == 0


def test_with_a_read_every_step_dead_atoms_go_when_they_die():
    """sync_every=1 (the host's default): the atom is replaced at the step where its idle count
    reaches dead_after, and the torch run is the numpy run."""
    X, init = _dying()
    settings = dict(SETTINGS, batch_size=200, max_steps=12, dict_init=init)
    on_torch = fit(X, 8, 0.5, sync_every=1, **settings)
    on_numpy = fit(X.numpy(), 8, 0.5, **settings)
    assert _resampled_at(on_torch)[0] == 2  # 2 batches of 200 = dead_after: replaced at the second step
    assert _resampled_at(on_torch) == _resampled_at(on_numpy)
    np.testing.assert_allclose(on_torch.dictionary, on_numpy.dictionary, atol=1e-5)
    np.testing.assert_allclose(on_torch.history["objective"], on_numpy.history["objective"], rtol=1e-5)


def test_a_resume_keeps_the_dead_atom_schedule(tmp_path):
    """Stopped at step 6 (sync_every=4: between reads) and resumed, with atoms dying: the
    resampling follows the step count, so the resumed run equals the uninterrupted one."""
    X, init = _dying()
    settings = dict(SETTINGS, dead_after=100, dict_init=init, sync_every=4)
    whole = fit(X, 8, 0.5, **settings)
    assert len(_resampled_at(whole)) >= 1
    fit(X, 8, 0.5, checkpoint=tmp_path / "c", **dict(settings, max_steps=6))
    resumed = fit(X, 8, 0.5, checkpoint=tmp_path / "c", **settings)
    _same(whole, resumed)


def test_a_bad_batch_is_caught_at_the_next_read_with_the_same_error(tmp_path):
    X = _data()
    X[5 * 50 + 7, 3] = float("nan")  # batch index 5, its row 7
    batches = np.split(X, 12)  # a stream: an in-memory array is scanned whole before training
    settings = dict(SETTINGS, shuffle=False)
    with pytest.raises(ValueError, match="batch 5 has NaN or Inf values .first in row 7") as now:
        fit(batches, 8, 0.05, sync_every=1, **settings)
    with pytest.raises(ValueError) as later:
        fit(batches, 8, 0.05, sync_every=4, checkpoint=tmp_path / "c", checkpoint_every=4, **settings)
    assert str(later.value) == str(now.value)
    # the checkpoint stands at step 4, written by a read that had checked every batch before it;
    # the save at step 8 read batch 5 first and refused
    saved = ckpt.restore(tmp_path / "c")[0]
    clean = fit(batches, 8, 0.05, sync_every=1, **dict(settings, max_steps=4))
    assert saved.t == 4
    np.testing.assert_array_equal(saved.D, clean.dictionary)
    assert saved.history.as_dict()["objective"] == clean.history["objective"]


def test_a_checkpoint_between_reads_is_exact(tmp_path):
    """A run stopped at step 6 (sync_every=4: the last read was at step 4) and resumed equals an
    uninterrupted run: the save reads the pending steps first."""
    X = _data()
    whole = fit(X, 8, 0.05, sync_every=4, **SETTINGS)
    fit(X, 8, 0.05, sync_every=4, checkpoint=tmp_path / "c", **dict(SETTINGS, max_steps=6))
    resumed = fit(X, 8, 0.05, sync_every=4, checkpoint=tmp_path / "c", **SETTINGS)
    _same(whole, resumed)


def test_the_progress_bar_and_callback_see_host_records(capsys):
    X = _data()
    seen = []
    fit(X, 8, 0.05, sync_every=5, callback=lambda t, D, r: seen.append(r), **SETTINGS)
    assert len(seen) == 12 and all(isinstance(r["objective"], float) for r in seen)
    fit(X, 8, 0.05, **dict(SETTINGS, sync_every=5, progress=True))
    assert "loss=" in capsys.readouterr().err


def test_sync_every_is_checked_and_may_change_on_resume():
    with pytest.raises(ValueError, match="sync_every"):
        sparsolve.FitConfig(8, 0.1, sync_every=0)
    assert "sync_every" in sparsolve.FitConfig.RUN_FIELDS


# ---- storage="bfloat16" -------------------------------------------------------------------------

def _planted(n):
    X, D = planted(n=n)
    return torch.from_numpy(X.astype(np.float32)), D


def _matched(D, D_true, cos=0.99):
    D = np.asarray(D, np.float64) / np.linalg.norm(D, axis=1, keepdims=True)
    return float((np.abs(D @ D_true.T).max(axis=0) > cos).mean())


def test_bfloat16_storage_learns_like_float32():
    """bf16 storage learns what float32 learns from the same (bf16-rounded) data: the rounding of
    the data alone can move a short run to another local optimum (seed 0, 5 epochs of 3,000 rows:
    20 of 24 atoms found either way, 24 from the unrounded data), so that is the fair reference."""
    X, D_true = _planted(n=1500)
    rounded = X.bfloat16().float()
    settings = dict(solver="fista", n_epochs=4, batch_size=128, forget=20, tol=0.01, seed=0, progress=False)
    full = fit(rounded, 24, 0.05, **settings)
    half = fit(X, 24, 0.05, storage="bfloat16", **settings)
    D = torch.from_numpy(np.asarray(half.dictionary))
    assert D.dtype == torch.float32 and torch.equal(D, D.bfloat16().float())  # exactly its bf16 values
    assert _matched(half.dictionary, D_true) >= _matched(full.dictionary, D_true) - 1 / 24
    assert _matched(half.dictionary, D_true) >= 0.75
    late = slice(-10, None)
    assert np.mean(half.history["objective"][late]) == pytest.approx(np.mean(full.history["objective"][late]),
                                                                     rel=0.01)
    assert half.history["objective"][-1] < 0.7 * half.history["objective"][0]


def test_bfloat16_storage_resumes_exactly(tmp_path):
    X, _ = _planted(n=600)
    settings = dict(solver="fista", batch_size=100, tol=0.01, storage="bfloat16", seed=0, progress=False)
    whole = fit(X, 24, 0.05, max_steps=6, **settings)
    fit(X, 24, 0.05, max_steps=3, checkpoint=tmp_path / "c", **settings)
    resumed = fit(X, 24, 0.05, max_steps=6, checkpoint=tmp_path / "c", **settings)
    _same(whole, resumed)
    with pytest.raises(ValueError, match="storage"):  # a resume in float32 would learn something else
        fit(X, 24, 0.05, max_steps=8, checkpoint=tmp_path / "c", **dict(settings, storage=None))


def test_bfloat16_storage_refuses_what_it_cannot_do():
    X, _ = _planted(n=300)
    with pytest.raises(ValueError, match=r"tol=0.001 is below what storage='bfloat16' can certify \(0.0078.*tol=0.01"):
        fit(X, 24, 0.05, storage="bfloat16", progress=False)
    with pytest.raises(ValueError, match="storage='bfloat16': numpy arrays have no bfloat16.*torch.from_numpy"):
        fit(X.numpy(), 24, 0.05, storage="bfloat16", tol=0.01, progress=False)
    with pytest.raises(ValueError, match="storage=.float16. is not known; choose one of .None, .bfloat16."):
        sparsolve.FitConfig(24, 0.05, storage="float16")
    with pytest.raises(ValueError, match="the data is bfloat16; pass storage='bfloat16'.*or convert it to float32"):
        fit(X.bfloat16(), 24, 0.05, progress=False)  # never silently converted
    # a stream's batches are checked as they come, before the step does any work
    from sparsolve.learning.fit import new_learner

    learner = new_learner(X, sparsolve.FitConfig(24, 0.05, storage="bfloat16", tol=0.01).resolved(300))
    with pytest.raises(ValueError, match="numpy arrays have no bfloat16"):
        learner.step(X.numpy()[:100])
    assert learner.t == 0 and learner.D is None


def test_bfloat16_data_is_learned_from_as_it_is():
    """bf16 activations (as models write them) with storage="bfloat16": the same run as their
    float32 values, since the step's rounding to bf16 leaves them as they are."""
    X, _ = _planted(n=400)
    settings = dict(solver="fista", batch_size=100, max_steps=4, tol=0.01, storage="bfloat16", seed=0,
                    progress=False)
    _same(fit(X.bfloat16(), 24, 0.05, **settings), fit(X.bfloat16().float(), 24, 0.05, **settings))


def test_warm_L_is_the_cold_L():
    """From the previous dictionary's eigenvector the estimate is the same λ_max (within the
    iteration's rtol), still from below and inside the 1e-3 margin."""
    from sparsolve.inference.problem import lipschitz_and_vector

    rng = np.random.default_rng(3)
    D = rng.standard_normal((40, 16))
    _, v = lipschitz_and_vector(D)
    moved = D + 1e-2 * rng.standard_normal(D.shape)
    warm, _ = lipschitz_and_vector(moved, v)
    cold, _ = lipschitz_and_vector(moved)
    exact = np.linalg.eigvalsh(moved.T @ moved)[-1]
    assert warm == pytest.approx(cold, rel=1e-6)
    assert exact <= warm <= exact * (1 + 1.01e-3)


def test_a_warm_start_that_lost_the_new_top_direction_still_finds_it():
    """Features in two disjoint blocks: the last top eigenvector lives in block A (zeros in B), and
    now block B's eigenvalue is the larger.  From that vector alone the power iteration stays in A
    and returns A's λ (L too small: the solver diverges); the mixed start finds λ_max."""
    from sparsolve.inference.problem import lipschitz_and_vector, power_iteration

    rng = np.random.default_rng(0)
    D = np.zeros((24, 16))  # more atoms than features: L from DᵀD (16 × 16)
    D[:12, :8] = rng.standard_normal((12, 8))
    D[12:, 8:] = 2 * rng.standard_normal((12, 8))
    M = D.T @ D
    exact = np.linalg.eigvalsh(M)[-1]
    in_A = np.linalg.eigh(M[:8, :8])[1][:, -1]
    start = np.concatenate([in_A, np.zeros(8)])
    assert power_iteration(M, start)[0] < 0.9 * exact  # the failure the mixed start prevents
    L, _ = lipschitz_and_vector(D, start)
    assert exact <= L <= exact * (1 + 1.01e-3)


@pytest.mark.parametrize("update", ["sgd", "online"])
def test_a_dictionary_changed_in_place_between_steps_is_the_one_used(update):
    """A fit callback or DictionaryLearning.components_ hands out the learner's own D: a change made
    to it in place must count as a new D, as an assigned one does (nothing cached from its old rows)."""
    from sparsolve.config import FitConfig
    from sparsolve.learning.fit import new_learner

    X = _data()
    config = FitConfig(8, 0.05, solver="fista", update=update, norm="unit", batch_size=100, seed=0).resolved(300)
    in_place, assigned = new_learner(X[:100], config), new_learner(X[:100], config)
    for learner in (in_place, assigned):
        learner.step(X[:100])
    in_place.D[0] *= -0.5
    edited = assigned.D.clone()
    edited[0] *= -0.5
    assigned.D = edited
    for learner in (in_place, assigned):
        learner.step(X[100:200], index=1)
        learner.step(X[200:300], index=2)
    torch.testing.assert_close(in_place.D, assigned.D, rtol=0, atol=0)
