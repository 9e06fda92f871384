"""SparseCodingModel: encode/reconstruct/score, save -> load, and sparsolve.load's dispatch."""

import numpy as np
import pytest

import sparsolve
from sparsolve import io
from sparsolve.io import ModelFileError


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
    Zt = model.encode(torch.tensor(X), tol=1e-8)  # a copy: the shared patches are read-only
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

    def load(p):
        calls.append(p)
        return "a learned G"

    monkeypatch.setitem(io._LOADERS, "learned_g", load)
    assert sparsolve.load(path) == "a learned G"
    assert calls == [path]


def test_load_reads_a_real_learned_g(tmp_path):
    enc = sparsolve.LearnedG.from_dictionary(np.eye(4)[:3], alpha=0.1, t_star=2)
    back = sparsolve.load(enc.save(tmp_path / "enc.npz"))
    assert isinstance(back, sparsolve.LearnedG)
    for k, v in enc.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy())


def test_register_a_new_kind(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_LOADERS", dict(io._LOADERS))
    io.register("toy", lambda p: ("toy", io.load_npz(p, "toy")[0]["a"].tolist()))
    path = io.save_npz(tmp_path / "toy.npz", "toy", {"a": np.arange(3)}, {})
    assert sparsolve.load(path) == ("toy", [0, 1, 2])
    with pytest.raises(TypeError, match="loader"):
        io.register("toy", "not callable")


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


# ------------------------------------------------------------ malformed and crafted files


def _model_meta(**changes):
    meta = {"alpha": 0.1, "solver": "cd", "positive": False}
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


def test_load_refuses_a_bare_npy(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))
    with pytest.raises(ModelFileError, match="bare numpy array"):
        sparsolve.load(tmp_path / "x.npy")


def test_load_refuses_a_directory(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        sparsolve.load(tmp_path)


@pytest.mark.parametrize("meta, match", [
    (_model_meta(alpha=None), "lacks the metadata entry 'alpha'"),
    (_model_meta(solver=None), "lacks the metadata entry 'solver'"),
    (_model_meta(alpha="0.1"), "'alpha' should be int or float"),
    (_model_meta(alpha=True), "'alpha' should be int or float"),
    (_model_meta(positive=0), "'positive' should be bool"),
    (_model_meta(settings=[1, 2]), "'settings' should be dict"),
])
def test_load_refuses_crafted_model_metadata(tmp_path, meta, match):
    path = io.save_npz(tmp_path / "m.npz", "sparse_coding_model", {"dictionary": np.eye(3)}, meta)
    with pytest.raises(ModelFileError, match=match):
        sparsolve.load(path)


def _write_npz(path, entries):
    """An .npz built by hand: entry name -> raw .npy bytes (so headers can lie)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in entries.items():
            zf.writestr(name + ".npy", raw)
    return path


def _npy_bytes(array=None, header=None, data=b""):
    import io as stdio

    buf = stdio.BytesIO()
    if header is None:
        np.save(buf, array, allow_pickle=False)
    else:
        np.lib.format.write_array_header_1_0(buf, header)
        buf.write(data)
    return buf.getvalue()


def test_load_refuses_metadata_that_is_not_an_object(tmp_path):
    path = _write_npz(tmp_path / "m.npz", {"__kind__": _npy_bytes(np.array("sparse_coding_model")),
                                           "__meta__": _npy_bytes(np.array("[1, 2]")),
                                           "dictionary": _npy_bytes(np.eye(2))})
    with pytest.raises(ModelFileError, match="not a JSON object"):
        sparsolve.load(path)
    path = _write_npz(tmp_path / "n.npz", {"__kind__": _npy_bytes(np.array("sparse_coding_model")),
                                           "__meta__": _npy_bytes(np.arange(3)),
                                           "dictionary": _npy_bytes(np.eye(2))})
    with pytest.raises(ModelFileError, match="not a string"):
        sparsolve.load(path)


@pytest.mark.parametrize("dictionary, match", [
    (np.ones(5), "non-empty 2-D array, got shape \\(5,\\)"),
    (np.ones((0, 4)), "non-empty 2-D"),
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([[True]]), "real numbers"),
])
def test_load_refuses_a_bad_dictionary(tmp_path, dictionary, match):
    path = io.save_npz(tmp_path / "m.npz", "sparse_coding_model", {"dictionary": dictionary}, _model_meta())
    with pytest.raises(ModelFileError, match=match):
        sparsolve.load(path)


def test_load_refuses_a_header_declaring_a_huge_array_before_allocating(tmp_path):
    # 1e12 float64 would be 8 TB: numpy would try to allocate it (MemoryError) before noticing
    # that the entry holds 24 bytes.
    huge = _npy_bytes(header={"descr": "<f8", "fortran_order": False, "shape": (10**12,)}, data=bytes(24))
    path = _write_npz(tmp_path / "m.npz", {"__kind__": _npy_bytes(np.array("sparse_coding_model")),
                                           "__meta__": _npy_bytes(np.array('{"alpha": 0.1}')),
                                           "dictionary": huge})
    with pytest.raises(ModelFileError, match="declares shape \\(1000000000000,\\)"):
        sparsolve.load(path)


def test_load_refuses_crafted_learned_g_and_checkpoint(tmp_path):
    g = io.save_npz(tmp_path / "g.npz", "learned_g", {"W_e": np.zeros((2, 2))}, {"n_atoms": 2})
    with pytest.raises(ModelFileError, match="incomplete or damaged"):
        sparsolve.load(g)
    c = io.save_npz(tmp_path / "c.npz", "fit_checkpoint", {"dictionary": np.ones(3)}, {"t": 1})
    with pytest.raises(ModelFileError):
        sparsolve.load(c)
    enc = sparsolve.LearnedG.from_dictionary(np.eye(4)[:3], alpha=0.1, t_star=2)
    arrays, meta = enc.arrays(), enc.config()
    wrong_shape = io.save_npz(tmp_path / "s.npz", "learned_g", {**arrays, "W_e": np.zeros((5, 5), np.float32)}, meta)
    with pytest.raises(ModelFileError, match="size mismatch for W_e"):
        sparsolve.LearnedG.load(wrong_shape)
    wrong_dtype = io.save_npz(tmp_path / "d.npz", "learned_g", arrays, {**meta, "dtype": "nonsense"})
    with pytest.raises(ModelFileError, match="nonsense"):
        sparsolve.load(wrong_dtype)


# ------------------------------------------------------------ writing


def test_save_removes_stale_temporaries_of_the_same_file(tmp_path):
    target = tmp_path / "run.npz"
    stale = [tmp_path / "run.npz.k3j_a9zq.tmp", tmp_path / "run.npz.0123abcd.tmp"]  # mkstemp's and ours
    kept = [tmp_path / "run.npz.notes.tmp", tmp_path / "other.npz.0123abcd.tmp", tmp_path / "run.npz.0123abcd"]
    for f in stale + kept:
        f.write_bytes(b"left by a save that was killed")
    io.save_npz(target, "toy", {"a": np.zeros(2)}, {})
    assert [f.name for f in stale if f.exists()] == []
    assert all(f.exists() for f in kept)
    assert sorted(p.name for p in tmp_path.glob("run.npz.*.tmp")) == ["run.npz.notes.tmp"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    import os
    import stat

    old = os.umask(umask)
    try:
        path = io.save_npz(tmp_path / "m.npz", "toy", {"a": np.zeros(2)}, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode

def test_encode_defaults_to_cd_on_the_host_whatever_the_training_solver(patches):
    lca = sparsolve.fit(patches, 8, 0.01, solver="lca", gamma=0.5, max_steps=2, batch_size=200, seed=0,
                        progress=False)
    X = patches[:30]
    Z = lca.encode(X, tol=1e-8)  # gamma, an lca option, would be refused by cd: it is not passed
    np.testing.assert_array_equal(Z, sparsolve.encode(X, lca.dictionary, 0.01, solver="cd", tol=1e-8))
    with pytest.warns(sparsolve.ConvergenceWarning, match="solver='lca'"):  # named: the training's, with gamma
        assert lca.encode(X, solver="lca", max_iter=3, tol=1e-8).shape == (30, 8)


def test_load_refuses_a_compressed_file_that_would_inflate_far_past_its_size(tmp_path, monkeypatch):
    """The issue's case: 1.9 MB of compressed zeros declaring 2 GB.  The declared sizes in the zip
    directory are summed before any entry is read, so nothing of that size is ever allocated."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, __kind__=np.array("sparse_coding_model"), __meta__=np.array('{"alpha": 0.1}'),
                        dictionary=np.zeros((4096, 8192)))  # 256 MB of zeros, a few hundred kB on disk
    allocations = []
    original = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: allocations.append(a) or original(*a, **k))
    with pytest.raises(ModelFileError, match=r"declares 268,435,\d+ bytes uncompressed in a [\d,]+-byte file"):
        sparsolve.load(path)
    assert allocations == []
    small = tmp_path / "small.npz"  # a small compressed file is read as before
    np.savez_compressed(small, __kind__=np.array("sparse_coding_model"),
                        __meta__=np.array('{"alpha": 0.1, "solver": "cd", "positive": false}'),
                        dictionary=np.eye(4))
    np.testing.assert_array_equal(sparsolve.load(small).dictionary, np.eye(4))
