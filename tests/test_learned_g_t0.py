"""A t* = 0 LearnedG is the plain one-layer autoencoder and holds no G; files and checkpoints
written while it still held one load, and training gives what it gave then.

The files under tests/data/ were written by the code before the change
(tests/data/make_learned_g_files.py says how); ``learned_g_reference.npz`` holds what that
code computed."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import sparsolve
from sparsolve.io import load_npz

DATA = Path(__file__).resolve().parent / "data"
M, P = 6, 8
# at t* = 0 these described a G with no effect (from a dictionary, DDᵀ − I): now there is none, and they read 0
G_SIGNS = ("G_offdiag_pos_frac", "G_offdiag_neg_frac", "G_offdiag_mean")


def _make_files():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_learned_g_files", DATA / "make_learned_g_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _make_files()


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA / "learned_g_reference.npz") as f:
        return dict(f)


@pytest.mark.parametrize("kw", [{}, {"tied": False}, {"signed": True, "learn_gamma": True},
                                {"accelerate": True}])
def test_t0_holds_no_g(kw):
    model = sparsolve.LearnedG(P, M, 0, seed=0, **kw)
    assert model.G is None
    assert "G" not in model.state_dict() and "G" not in dict(model.named_parameters())
    assert "G" not in model.arrays()
    # nothing m × m: W_e, b_e, W_d, b_d (θ when signed, log γ when learned; untied, b_steps is (0, m))
    extra = (M if kw.get("signed") else 0) + (1 if kw.get("learn_gamma") else 0)
    assert sum(q.numel() for q in model.parameters()) == 2 * M * P + M + P + extra
    assert "t_star=0" in repr(model)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("tied, accelerate", [(True, False), (False, False), (True, True)])
def test_t0_from_dictionary_is_one_threshold(ref, signed, tied, accelerate):
    X, D, alpha = ref["X"], ref["D"], 0.3
    model = sparsolve.LearnedG.from_dictionary(D, alpha, 0, signed=signed, tied=tied, accelerate=accelerate)
    assert model.G is None
    drive = X @ D.T
    expected = np.sign(drive) * np.maximum(np.abs(drive) - alpha, 0) if signed else np.maximum(drive - alpha, 0)
    np.testing.assert_allclose(model.encode(X), expected, atol=1e-12)
    assert (expected != 0).any() and (expected == 0).any()


@pytest.mark.parametrize("name", ["t0", "t0_untied", "t0_nonzero_g"])
def test_files_written_with_a_g_at_t0_load(ref, name, tmp_path):
    path = DATA / f"learned_g_{name}.npz"
    arrays, meta = load_npz(path, "learned_g")
    assert meta["t_star"] == 0 and "G" in arrays  # the old layout, which is the point
    if name == "t0_nonzero_g":
        assert np.abs(arrays["G"]).min() > 0  # G had no effect at t* = 0, so dropping it changes nothing
    model = sparsolve.LearnedG.load(path)
    assert model.G is None and "G" not in model.state_dict()
    for k, v in model.arrays().items():
        np.testing.assert_array_equal(v, arrays[k])
    Z = model.encode(ref["X"])
    np.testing.assert_allclose(Z, ref[f"codes/{name}"], rtol=1e-12, atol=1e-14)
    assert (Z != 0).any()
    # and what it writes now loads back the same, without a G
    again = sparsolve.LearnedG.load(model.save(tmp_path / "again.npz"))
    assert again.G is None
    np.testing.assert_array_equal(again.encode(ref["X"]), Z)


def test_t_star_2_file_unchanged(ref):
    path = DATA / "learned_g_t2.npz"
    arrays, _ = load_npz(path, "learned_g")
    model = sparsolve.LearnedG.load(path)
    assert model.G.shape == (M, M)
    np.testing.assert_array_equal(model.G.detach().numpy(), arrays["G"])
    np.testing.assert_allclose(model.encode(ref["X"]), ref["codes/t2"], rtol=1e-12, atol=1e-14)


def _assert_run_matches(model, ref, name, t_star):
    arrays = model.arrays()
    saved = {k.split("/", 1)[1] for k in ref if k.startswith(name + "/") and "/history/" not in k}
    if t_star == 0:
        assert model.G is None and saved - set(arrays) == {"G"}
    else:
        assert set(arrays) == saved
    for k, v in arrays.items():
        np.testing.assert_allclose(v, ref[f"{name}/{k}"], rtol=1e-10, atol=1e-12, err_msg=f"{name}: {k}")
    keys = {k.rsplit("/", 1)[1] for k in ref if k.startswith(name + "/history/")}
    assert set(model.history_) - {"seconds"} == keys
    for k in keys - (set(G_SIGNS) if t_star == 0 else set()):
        np.testing.assert_allclose(model.history_[k], ref[f"{name}/history/{k}"], rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name}: history {k}")


@pytest.mark.parametrize("name", list(MAKE.RUNS))
def test_training_matches_the_code_with_g(ref, name):
    """t* = 0 trains exactly as it did while it carried a G (G had no gradient there), and
    t* ≥ 1 is unchanged."""
    model = MAKE.run(ref["X"], ref["D"], MAKE.RUNS[name])
    t_star = MAKE.RUNS[name]["t_star"]
    _assert_run_matches(model, ref, name, t_star)
    if t_star == 0:
        assert all(v == 0.0 for k in G_SIGNS for v in model.history_[k])
    else:
        assert model.history_["G_offdiag_pos_frac"][-1] + model.history_["G_offdiag_neg_frac"][-1] > 0.5


def test_checkpoint_written_with_g_at_t0_resumes(ref, tmp_path):
    """The old checkpoint numbered the optimizer's state with G among the parameters (W_e, b_e,
    G, W_d, b_d): resumed, W_d and b_d must get their own Adam moments back, so that 5 + 5
    steps equal the 10 of one run."""
    ck = tmp_path / "ck.npz"
    shutil.copy(DATA / "learned_g_t0_checkpoint.npz", ck)
    arrays, meta = load_npz(ck, "learned_g_checkpoint")
    assert meta["step"] == 5 and "model/G" in arrays and "opt/4/exp_avg" in arrays
    model = MAKE.run(ref["X"], ref["D"], {**MAKE.RUNS["ae_t0"], "checkpoint": ck})
    assert model.history_["step"][0] == 1 and len(model.history_["step"]) == 10
    _assert_run_matches(model, ref, "ae_t0", 0)
    # and the checkpoint it rewrote, now without G, resumes too
    more = MAKE.run(ref["X"], ref["D"], {**MAKE.RUNS["ae_t0"], "max_steps": 11, "checkpoint": ck})
    assert more.G is None and len(more.history_["step"]) == 11
    assert not torch.equal(more.W_d, model.W_d)
