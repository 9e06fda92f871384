"""SparseCodingModel: encode/reconstruct/score, save -> load, and sparsolve.load's dispatch."""
import sys
import types

import numpy as np
import pytest

import sparsolve
from sparsolve import io
from sparsolve.data import natural_image_patches
from sparsolve.io import ModelFileError


@pytest.fixture(scope="module")
def patches():
    return natural_image_patches(8, 800, seed=11)


@pytest.fixture(scope="module")
def model(patches):
    return sparsolve.fit(patches, 16, 0.01, solver="cd", batch_size=200, n_epochs=2, seed=0, progress=False)


def test_model_methods(model, patches):
    X = patches[:50]
    Z = model.encode(X, tol=1e-8)
    assert Z.shape == (50, 16)
    np.testing.assert_allclose(model.reconstruct(X, tol=1e-8), Z @ model.dictionary)
    expected = sparsolve.objective(X, model.dictionary, Z, 0.01).mean()
    assert model.score(X, tol=1e-8) == pytest.approx(expected, rel=1e-6)
    torch = pytest.importorskip("torch")
    Zt = model.encode(torch.from_numpy(X), tol=1e-8)
    assert isinstance(Zt, torch.Tensor)
    np.testing.assert_allclose(Zt.numpy(), Z, atol=1e-6)


def test_encode_with_another_solver_drops_training_options(patches):
    lca = sparsolve.fit(patches, 8, 0.01, solver="lca", gamma=0.5, max_steps=2, batch_size=200, seed=0,
                        progress=False)
    Z = lca.encode(patches[:10], solver="cd")  # gamma would be an unknown option for cd
    assert Z.shape == (10, 8)


def test_save_then_load_gives_the_same_model(model, tmp_path, patches):
    path = model.save(tmp_path / "model.npz")
    back = sparsolve.load(path)
    assert isinstance(back, sparsolve.SparseCodingModel)
    np.testing.assert_array_equal(back.dictionary, model.dictionary)
    assert back.alpha == model.alpha and back.solver == model.solver and back.positive == model.positive
    assert back.settings == model.settings
    assert back.history.keys() == model.history.keys()
    for k in model.history:
        np.testing.assert_array_equal(back.history[k], model.history[k])
    np.testing.assert_array_equal(back.encode(patches[:20]), model.encode(patches[:20]))


def test_saved_file_is_not_a_pickle(model, tmp_path):
    path = model.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as f:  # would raise if any entry needed pickle
        assert "dictionary" in f.files


def test_load_reads_a_checkpoint_as_a_model(patches, tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    fitted = sparsolve.fit(patches, 8, 0.01, solver="cd", batch_size=200, max_steps=3, checkpoint=ckpt,
                           seed=0, progress=False)
    np.testing.assert_array_equal(sparsolve.load(ckpt).dictionary, fitted.dictionary)


def test_load_dispatches_learned_g(tmp_path, monkeypatch):
    path = io.save_npz(tmp_path / "g.npz", "learned_g", {"W": np.zeros(2)}, {})
    calls = []

    class LearnedG:
        @staticmethod
        def load(p):
            calls.append(p)
            return "a learned G"

    monkeypatch.setitem(sys.modules, "sparsolve.amortized", types.SimpleNamespace(LearnedG=LearnedG))
    assert sparsolve.load(path) == "a learned G"
    assert calls == [path]


def test_load_refuses_non_sparsolve_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelFileError, match="not a readable sparsolve file"):
        sparsolve.load(junk)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a sparsolve file"):
        sparsolve.load(plain)
    other = io.save_npz(tmp_path / "other.npz", "something_else", {"a": np.zeros(1)}, {})
    with pytest.raises(ModelFileError, match="does not know"):
        sparsolve.load(other)
    incomplete = io.save_npz(tmp_path / "incomplete.npz", "sparse_coding_model", {"a": np.zeros(1)},
                             {"alpha": 1.0, "solver": "cd", "positive": False})
    with pytest.raises(ModelFileError, match="dictionary"):
        sparsolve.load(incomplete)


def test_encode_defaults_to_cd_on_the_host_whatever_the_training_solver(patches):
    lca = sparsolve.fit(patches, 8, 0.01, solver="lca", gamma=0.5, max_steps=2, batch_size=200, seed=0,
                        progress=False)
    X = patches[:30]
    Z = lca.encode(X, tol=1e-8)  # gamma, an lca option, would be refused by cd: it is not passed
    np.testing.assert_array_equal(Z, sparsolve.encode(X, lca.dictionary, 0.01, solver="cd", tol=1e-8))
    with pytest.warns(sparsolve.ConvergenceWarning, match="solver='lca'"):  # named: the training's, with gamma
        assert lca.encode(X, solver="lca", max_iter=3, tol=1e-8).shape == (30, 8)
