"""sparsolve.fit: recovery of a planted dictionary, resume, streaming, dead atoms, bad input."""
import numpy as np
import pytest

import sparsolve
from sparsolve.data import natural_image_patches

torch = pytest.importorskip("torch")


def planted(n_atoms=24, n_features=16, k=2, n=3000, noise=0.01, seed=0):
    """X = Z D* + noise with a unit-norm D* and k-sparse codes of magnitude 0.5..1.5."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_atoms, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n, n_atoms))
    for i in range(n):
        support = rng.choice(n_atoms, k, replace=False)
        Z[i, support] = rng.choice([-1.0, 1.0], k) * rng.uniform(0.5, 1.5, k)
    return Z @ D + noise * rng.standard_normal((n, n_features)), D


def recovered(D, D_true):
    """Fraction of true atoms matched by a learned atom with |cosine| > 0.99."""
    D = np.asarray(D) / np.linalg.norm(D, axis=1, keepdims=True)
    return float((np.abs(D @ D_true.T).max(axis=0) > 0.99).mean())


@pytest.fixture(scope="module")
def planted_data():
    return planted()


@pytest.mark.parametrize(
    "solver, update, kind, n_epochs",
    [
        ("lca", "online", "numpy", 5),
        ("fista", "online", "numpy", 5),
        ("lca", "sgd", "numpy", 8),
        ("fista", "sgd", "numpy", 8),
        ("lca", "online", "torch", 5),
        ("fista", "sgd", "torch", 8),
    ],
)
def test_planted_dictionary_is_recovered(planted_data, solver, update, kind, n_epochs):
    X, D_true = planted_data
    data = torch.from_numpy(X) if kind == "torch" else X
    # forget=20: a short memory, so codes of the early, wrong dictionaries leave the online
    # statistics soon (see fit's docstring); sgd keeps no statistics, and its Adam step
    # lr=0.02 moves each entry of a unit atom in 16 dimensions (~0.25) by ~8% a step.
    model = sparsolve.fit(data, 24, 0.05, solver=solver, update=update, n_epochs=n_epochs, batch_size=128,
                          forget=20, lr=0.02, seed=0, progress=False)
    assert model.dictionary.shape == (24, 16)
    assert recovered(model.dictionary, D_true) >= 0.95
    assert model.history["objective"][-1] < model.history["objective"][0]


def test_mod_full_batch_lowers_the_objective(planted_data):
    X, D_true = planted_data
    model = sparsolve.fit(X[:1000], 24, 0.05, solver="cd", update="mod", n_epochs=30, seed=0, progress=False)
    h = model.history
    assert len(h["step"]) == 30  # full batch: one step per epoch
    assert h["objective"][-1] < 0.9 * h["objective"][0]
    assert recovered(model.dictionary, D_true) >= 0.5


def test_history_has_every_quantity(planted_data):
    X, _ = planted_data
    model = sparsolve.fit(X, 8, 0.05, solver="cd", max_steps=3, batch_size=100, seed=0, progress=False)
    for key in ("mse", "l1", "nnz_frac", "dead_frac", "norm_min", "norm_mean", "norm_max", "samples_seen",
                "seconds", "resampled"):
        assert len(model.history[key]) == 3, key
    assert model.history["samples_seen"] == [100, 200, 300]
    assert all(0 <= v <= 1 for v in model.history["nnz_frac"])


FIT = dict(solver="cd", batch_size=100, seed=7, progress=False)


def test_streaming_fit_equals_in_memory_fit(patches):
    settings = dict(FIT, shuffle=False)
    in_memory = sparsolve.fit(patches, 16, 0.01, n_epochs=2, **settings)
    batches = [patches[i:i + 100] for i in range(0, len(patches), 100)]
    streamed = sparsolve.fit(batches, 16, 0.01, n_epochs=2, **settings)
    np.testing.assert_allclose(streamed.dictionary, in_memory.dictionary, rtol=0, atol=1e-12)
    one_pass = sparsolve.fit(iter(batches), 16, 0.01, **settings)
    assert one_pass.history["samples_seen"][-1] == len(patches)


def test_memmap_fit_equals_in_memory_fit(patches, tmp_path):
    path = tmp_path / "patches.npy"
    np.save(path, patches)
    mapped = np.load(path, mmap_mode="r")
    a = sparsolve.fit(mapped, 16, 0.01, max_steps=6, **FIT)
    b = sparsolve.fit(patches, 16, 0.01, max_steps=6, **FIT)
    np.testing.assert_array_equal(a.dictionary, b.dictionary)


def test_dead_atoms_are_resampled_and_counted(patches):
    # Four extra features that are always zero, and four atoms that live only there:
    # no residual ever correlates with them, so they die -- and get resampled unless
    # the policy is off.
    X = np.hstack([patches, np.zeros((len(patches), 4))])
    D0 = np.vstack([np.eye(68)[64:], X[:12]])
    kw = dict(FIT, dict_init=D0, n_epochs=2, dead_after=300)
    on = sparsolve.fit(X, 16, 0.01, **kw)
    off = sparsolve.fit(X, 16, 0.01, resample_dead=False, **kw)
    assert sum(on.history["resampled"]) >= 4
    assert sum(off.history["resampled"]) == 0
    assert off.history["dead_frac"][-1] == 4 / 16
    assert on.history["dead_frac"][-1] == 0
    np.testing.assert_array_equal(off.dictionary[:4], D0[:4])
    assert np.abs(on.dictionary[:4, 64:]).max() == 0  # replaced by (normalised) inputs


def test_callback_returning_false_stops(patches):
    model = sparsolve.fit(patches, 8, 0.01, n_epochs=3, callback=lambda step, D, rec: step < 4, **FIT)
    assert model.history["step"][-1] == 4


def test_progress_bar_shows_loss(patches, capsys):
    sparsolve.fit(patches, 8, 0.01, max_steps=2, solver="cd", batch_size=100, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "dead=" in err


def test_float32_torch_input_stays_float32(patches):
    model = sparsolve.fit(torch.from_numpy(patches.astype(np.float32)), 8, 0.01, max_steps=2, **{**FIT, "solver": "fista"})
    assert model.dictionary.dtype == np.float32


@pytest.mark.gpu
def test_fit_on_cuda(planted_data):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X, D_true = planted_data
    model = sparsolve.fit(X, 24, 0.05, solver="fista", device="cuda", n_epochs=5, batch_size=128, forget=20,
                          seed=0, progress=False)
    assert isinstance(model.dictionary, np.ndarray)
    assert recovered(model.dictionary, D_true) >= 0.95


# ---- bad input: one test each ------------------------------------------------------------


def test_bad_n_atoms(patches):
    with pytest.raises(ValueError, match="n_atoms"):
        sparsolve.fit(patches, 0, 0.1)


def test_bad_alpha(patches):
    with pytest.raises(ValueError, match="alpha"):
        sparsolve.fit(patches, 8, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        sparsolve.fit(patches, 8, -1.0)


def test_batch_size_larger_than_data(patches):
    with pytest.raises(ValueError, match="batch_size=5000 is larger than the data"):
        sparsolve.fit(patches, 8, 0.1, batch_size=5000)


def test_the_default_batch_size_fits_small_data(caplog):
    """Ten rows, no batch size given: one batch of all ten (as scikit-learn's online learner runs),
    said in the log and kept in the model's settings; a batch size the user gave is still checked."""
    X = np.random.default_rng(0).standard_normal((10, 6))
    with caplog.at_level("INFO", logger="sparsolve"):
        model = sparsolve.fit(X, 4, 0.1, solver="cd", n_epochs=3, seed=0, progress=False)
    assert model.settings["batch_size"] == 10 and model.history["step"] == [1, 2, 3]
    assert "batch_size=10" in caplog.text and "10 rows" in caplog.text
    with pytest.raises(ValueError, match="batch_size=20 is larger than the data"):
        sparsolve.fit(X, 4, 0.1, batch_size=20, progress=False)


def test_nan_in_a_batch_names_the_batch():
    X = natural_image_patches(8, 600, seed=1)
    batches = [X[:200], X[200:400].copy(), X[400:]]
    batches[1][17, 3] = np.nan
    with pytest.raises(ValueError, match="batch 1 has NaN"):
        sparsolve.fit(batches, 8, 0.01, solver="cd", progress=False)


def test_unknown_update(patches):
    with pytest.raises(ValueError, match="update='adam' is not known"):
        sparsolve.fit(patches, 8, 0.1, update="adam")


def test_unknown_norm(patches):
    with pytest.raises(ValueError, match="norm='l2' is not known"):
        sparsolve.fit(patches, 8, 0.1, norm="l2")
