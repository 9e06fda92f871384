"""fit(center=True): the decoder bias b -- learned on x − b, kept by the model, applied by encode,
decode and score, carried by model files and checkpoints (learning/offset.py)."""
import numpy as np
import pytest

import sparsolve
from sparsolve import metrics
from sparsolve.io import ModelFileError

FIT = dict(n_atoms=32, alpha=0.1, solver="cd", seed=0, progress=False, n_epochs=2, batch_size=256)


@pytest.fixture(scope="module")
def planted():
    """Zero-mean data from 32 planted unit features in 16 dimensions (signed codes, 8% firing), and
    a shift c of norm 3: X + c has an offset that no sparse code explains."""
    rng = np.random.default_rng(0)
    F = rng.standard_normal((32, 16))
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    Z = (rng.random((6000, 32)) < 0.08) * rng.uniform(0.5, 1.5, (6000, 32)) * rng.choice([-1, 1], (6000, 32))
    X = Z @ F + 0.01 * rng.standard_normal((6000, 16))
    c = rng.standard_normal(16)
    return X, F, 3 * c / np.linalg.norm(c)


@pytest.fixture(scope="module")
def centred(planted):
    X, _, c = planted
    return sparsolve.fit(X + c, center=True, **FIT)


def test_fit_on_shifted_data_recovers_the_atoms_of_fit_on_the_data(planted, centred):
    X, F, c = planted
    plain = sparsolve.fit(X, **FIT)
    on_X = sparsolve.fit(X, center=True, **FIT)
    # the centred batches of X + c are those of X: the same atoms, and offsets c apart
    assert np.abs((centred.dictionary * on_X.dictionary).sum(axis=1)).min() > 0.999
    np.testing.assert_allclose(centred.offset, on_X.offset + c, atol=1e-9)
    # ... which find the planted features as well as the plain fit on the zero-mean X
    found = metrics.recovery(centred.dictionary, F).recovered
    assert found >= 0.7 and found >= metrics.recovery(plain.dictionary, F).recovered - 0.05
    # while without the offset the shift defeats the fit
    assert metrics.recovery(sparsolve.fit(X + c, **FIT).dictionary, F).recovered < 0.3


def test_decode_of_encode_reconstructs_with_the_offset_and_the_gap_is_certified_on_centred_data(planted, centred):
    X, _, c = planted
    Xc = X[:500] + c
    Z = centred.encode(Xc, tol=1e-6)
    assert metrics.fvu(Xc, centred.decode(Z)) < 0.05
    np.testing.assert_allclose(centred.decode(Z) - centred.offset, Z @ centred.dictionary)
    np.testing.assert_allclose(centred.reconstruct(Xc, tol=1e-6), centred.decode(Z))
    F = sparsolve.objective(Xc - centred.offset, centred.dictionary, Z, centred.alpha)
    gap = sparsolve.duality_gap(Xc - centred.offset, centred.dictionary, Z, centred.alpha)
    assert np.all(gap <= 1e-6 * F + 1e-12)
    assert centred.score(Xc, tol=1e-6) == pytest.approx(F.mean())
    # the lasso of the uncentred data is another problem, with a larger objective
    assert centred.score(Xc) < sparsolve.SparseCodingModel(centred.dictionary, centred.alpha).score(Xc)


def test_the_offset_survives_save_and_load_and_older_files_load_without_one(centred, tmp_path):
    back = sparsolve.load(centred.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(back.offset, centred.offset)
    assert back.decoder_scale is None and "offset=True" in repr(back)
    # a file written without an offset (as every file before offsets) loads with none
    old = sparsolve.load(sparsolve.SparseCodingModel(centred.dictionary, 0.1).save(tmp_path / "old.npz"))
    assert old.offset is None
    np.testing.assert_array_equal(old.decode(np.eye(32)[:2]), centred.dictionary[:2])
    # a model read from an SAE: no α, and its decoder's norms
    scale = np.linspace(0.5, 2.0, 32)
    sae_like = sparsolve.SparseCodingModel(centred.dictionary, None, offset=centred.offset, decoder_scale=scale)
    back = sparsolve.load(sae_like.save(tmp_path / "sae.npz"))
    assert back.alpha is None
    np.testing.assert_array_equal(back.decoder_scale, scale)
    np.testing.assert_allclose(back.to_sae_codes(np.ones((1, 32))), 1 / scale[None])


def test_a_damaged_offset_is_named(centred, tmp_path):
    from sparsolve import io

    path = centred.save(tmp_path / "m.npz")
    arrays, meta = io.load_npz(path)
    arrays["offset"] = arrays["offset"][:3]
    io.save_npz(path, "sparse_coding_model", arrays, meta)
    with pytest.raises(ModelFileError, match="offset"):
        sparsolve.load(path)


def test_an_iterable_is_centred_by_a_running_mean_frozen_after_center_samples(planted):
    X, _, c = planted
    batches = [X[i:i + 256] + c for i in range(0, 4096, 256)]
    model = sparsolve.fit(batches, center=True, center_samples=1000, **{**FIT, "n_epochs": 1})
    # frozen once 1,000 rows were seen: after the 4th batch of 256
    np.testing.assert_allclose(model.offset, (X[:1024] + c).mean(axis=0), atol=1e-12)


def test_a_resumed_centred_run_equals_the_uninterrupted_one(planted, tmp_path):
    X, _, c = planted
    batches = [X[i:i + 256] + c for i in range(0, 3072, 256)]
    kw = dict(FIT, n_epochs=1, center=True, center_samples=1000)
    full = sparsolve.fit(batches, **kw)

    class Crash(RuntimeError):
        pass

    def crash(step, D, record):
        if step == 3:  # before the running mean freezes (at step 4)
            raise Crash

    with pytest.raises(Crash):
        sparsolve.fit(batches, checkpoint=tmp_path / "run.npz", checkpoint_every=1, callback=crash, **kw)
    partial = sparsolve.load(tmp_path / "run.npz")
    np.testing.assert_allclose(partial.offset, (X[:768] + c).mean(axis=0), atol=1e-12)
    resumed = sparsolve.fit(batches, checkpoint=tmp_path / "run.npz", **kw)
    np.testing.assert_array_equal(resumed.offset, full.offset)
    np.testing.assert_array_equal(resumed.dictionary, full.dictionary)


def test_the_estimator_centres_and_inverse_transform_adds_the_offset_back(planted):
    X, _, c = planted
    est = sparsolve.DictionaryLearning(n_components=32, alpha=0.1, center=True, n_epochs=1, random_state=0)
    est.fit(X[:2000] + c)
    assert metrics.fvu(X[:200] + c, est.inverse_transform(est.transform(X[:200] + c))) < 0.1
    with pytest.raises(ValueError, match="partial_fit"):
        sparsolve.DictionaryLearning(center=True).partial_fit(X[:100])


@pytest.mark.parametrize("kwargs, error, match", [(dict(center="yes"), TypeError, "center must be True or False"),
                                                  (dict(center_samples=0), ValueError, "center_samples")])
def test_bad_center_settings_name_the_argument(planted, kwargs, error, match):
    X, _, _ = planted
    with pytest.raises(error, match=match):
        sparsolve.fit(X, 8, 0.1, **kwargs)


def test_nan_rows_are_named_before_they_enter_the_mean(planted):
    X, _, _ = planted
    bad = np.vstack([X, X])
    bad[9000, 3] = np.nan  # in the second block of rows that the mean reads
    with pytest.raises(ValueError, match="row 9000"):
        sparsolve.fit(bad, 8, 0.1, center=True, progress=False)
    batches = [X[:256], bad[8900:9100]]
    with pytest.raises(ValueError, match="batch 1"):
        sparsolve.fit(batches, 8, 0.1, center=True, progress=False)


def test_the_mean_is_not_the_bias_of_non_negative_codes():
    """The caveat the README states: planted features with non-negative codes and no bias have a
    mean E[z]F that is no offset; subtracting it makes the codes of x − mean signed and dense, and
    fewer features are found than by the plain fit."""
    from sparsolve.data import SyntheticActivations

    gen = SyntheticActivations(n_features=16, n_planted=32, mean_active=2.0, exponent=0.5, seed=0, dtype="float64")
    X = gen.sample(6000)
    kw = dict(FIT, positive=True)
    plain = metrics.recovery(sparsolve.fit(X, **kw).dictionary, gen.features).recovered
    centred = metrics.recovery(sparsolve.fit(X, center=True, **kw).dictionary, gen.features).recovered
    assert plain >= centred + 0.1, (plain, centred)
