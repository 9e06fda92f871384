"""fit without n_atoms or alpha: both chosen from the data (sparsolve.learning.choose), logged, kept
in the model and its checkpoint, and shared by the command line and the estimator."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import sparsolve
from sparsolve.config import ALPHA_PER_SCALE, ATOMS_PER_FEATURE, SCALE_ROWS, FitConfig
from sparsolve.data import SyntheticActivations, natural_image_patches
from sparsolve.learning import choose
from sparsolve.metrics import recovery


def scale(X):
    """√(mean ‖x‖²) over the rows choose.py samples (all of them up to SCALE_ROWS)."""
    X = np.asarray(X, dtype=np.float64)
    return np.sqrt((X * X).sum(axis=1).mean())


@pytest.fixture(scope="module")
def patches():
    return natural_image_patches(8, 1500, seed=7)


def test_the_cards_call_as_written(patches, caplog):
    with caplog.at_level(logging.INFO, logger="sparsolve"):
        model = sparsolve.fit(patches, solver="lca", max_steps=3, seed=0, progress=False)
    assert model.n_atoms == ATOMS_PER_FEATURE * 64 == 128
    assert model.alpha == pytest.approx(ALPHA_PER_SCALE * scale(patches))
    assert model.settings["n_atoms"] == 128 and model.settings["alpha"] == model.alpha
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "sparsolve")
    assert "n_atoms=128" in said and f"alpha={model.alpha:.4g}" in said


def test_given_values_are_used_as_they_are(patches, caplog):
    with caplog.at_level(logging.INFO, logger="sparsolve"):
        model = sparsolve.fit(patches, 16, 0.05, max_steps=2, seed=0, progress=False)
    assert (model.n_atoms, model.alpha) == (16, 0.05)
    assert "chose" not in " ".join(r.getMessage() for r in caplog.records)
    # one of the two given, the other chosen
    assert sparsolve.fit(patches, 16, max_steps=1, seed=0, progress=False).alpha == pytest.approx(
        ALPHA_PER_SCALE * scale(patches))
    assert sparsolve.fit(patches, alpha=0.05, max_steps=1, seed=0, progress=False).n_atoms == 128


def test_alpha_follows_the_data_scale(patches):
    a = choose.for_data(FitConfig(), patches)
    b = choose.for_data(FitConfig(), 10 * patches)
    assert b.alpha == pytest.approx(10 * a.alpha) and a.n_atoms == b.n_atoms


def test_n_atoms_at_most_the_rows_and_a_dict_init_fixes_it(patches):
    assert choose.for_data(FitConfig(), patches[:40]).n_atoms == 40
    D0 = patches[100:124] / np.linalg.norm(patches[100:124], axis=1, keepdims=True)
    assert sparsolve.fit(patches, dict_init=D0, max_steps=1, progress=False).n_atoms == 24


def test_many_rows_are_sampled_evenly(patches):
    X = np.repeat(patches, 4, axis=0)  # 6,000 rows: more than the sample
    assert X.shape[0] > SCALE_ROWS
    rows = choose.sample_rows(X)
    assert rows.shape == (SCALE_ROWS, 64)
    assert choose.for_data(FitConfig(), X).alpha == pytest.approx(ALPHA_PER_SCALE * scale(rows))


def test_center_chooses_from_the_centred_rows():
    X = natural_image_patches(8, 600, seed=1) + 5.0  # a large offset no code should explain
    centred = choose.for_data(FitConfig(center=True), X).alpha
    assert centred == pytest.approx(ALPHA_PER_SCALE * scale(X - X.mean(axis=0)))
    assert choose.for_data(FitConfig(), X).alpha > 10 * centred


def test_l0_chooses_the_alpha_for_that_sparsity():
    gen = SyntheticActivations(32, 32, mean_active=3.0, exponent=0.5, seed=0, dtype="float64")
    X = gen.sample(3000)
    model = sparsolve.fit(X, l0=3, solver="cd", n_epochs=2, seed=0, progress=False)
    assert model.settings["l0"] == 3
    Z = model.encode(X[:1000])
    # the learned dictionary explains the rows with about that many atoms (a little fewer)
    assert 1.5 <= (Z != 0).sum(axis=1).mean() <= 4.5
    with pytest.raises(ValueError, match="pass alpha or l0, not both"):
        sparsolve.fit(X, alpha=0.1, l0=3, progress=False)


def test_planted_features_are_recovered_under_the_chosen_settings():
    gen = SyntheticActivations(16, 16, mean_active=2.0, exponent=0.5, seed=1, dtype="float64")
    model = sparsolve.fit(gen.sample(6000), solver="lca", n_epochs=2, seed=0, progress=False)
    assert model.n_atoms == 32
    assert recovery(model.dictionary, gen.features).recovered == 1.0


def test_a_shard_directory_chooses_as_its_rows_would(tmp_path, patches):
    for k in range(3):
        np.save(tmp_path / f"{k}.npy", patches[500 * k:500 * (k + 1)])
    config = choose.for_source(FitConfig(), str(tmp_path))
    whole = choose.for_data(FitConfig(), patches)
    assert (config.n_atoms, config.alpha) == (whole.n_atoms, pytest.approx(whole.alpha))


def test_an_iterable_needs_them_given(patches):
    batches = [patches[:500], patches[500:1000]]
    with pytest.raises(ValueError, match="pass n_atoms=..., alpha=..."):
        sparsolve.fit(iter(batches), progress=False)
    with pytest.raises(ValueError, match="cannot choose alpha"):
        sparsolve.fit(iter(batches), 16, progress=False)
    config = choose.for_data(FitConfig(max_steps=2), batches[0])  # the way out the error names
    assert sparsolve.fit(iter(batches), config=config, progress=False).alpha == config.alpha


def test_all_zero_data_is_refused():
    with pytest.raises(ValueError, match="every row of the data is zero"):
        sparsolve.fit(np.zeros((50, 8)), progress=False)


def test_a_resume_keeps_the_chosen_values(tmp_path, patches):
    path = tmp_path / "run.npz"
    whole = sparsolve.fit(patches, solver="cd", batch_size=100, max_steps=6, seed=0, progress=False)
    sparsolve.fit(patches, solver="cd", batch_size=100, max_steps=3, seed=0, progress=False, checkpoint=path)
    from sparsolve.learning.checkpoint import saved_config

    saved = saved_config(path)
    assert (saved["n_atoms"], saved["alpha"]) == (whole.n_atoms, whole.alpha)
    resumed = sparsolve.fit(patches, solver="cd", batch_size=100, max_steps=6, seed=0, progress=False,
                            checkpoint=path)
    np.testing.assert_array_equal(resumed.dictionary, whole.dictionary)
    assert resumed.alpha == whole.alpha


def test_a_resume_with_l0_takes_the_checkpoints_alpha(tmp_path, patches, monkeypatch):
    path = tmp_path / "run.npz"
    first = sparsolve.fit(patches, 32, l0=4, batch_size=100, max_steps=2, seed=0, progress=False, checkpoint=path)

    def refuse(*args, **kwargs):
        raise AssertionError("a resume must not choose alpha again")

    monkeypatch.setattr(choose, "alpha_for_l0", refuse)
    resumed = sparsolve.fit(patches, 32, l0=4, batch_size=100, max_steps=4, seed=0, progress=False, checkpoint=path)
    assert resumed.alpha == first.alpha and len(resumed.history["step"]) == 4


def test_the_estimator_chooses_alpha_by_the_same_rule(patches):
    est = sparsolve.DictionaryLearning(n_components=16, n_epochs=1, random_state=0).fit(patches)
    assert est.model_.alpha == pytest.approx(ALPHA_PER_SCALE * scale(patches))


def test_the_command_line_chooses_by_the_same_rule(tmp_path, patches):
    from sparsolve.cli import main

    data = tmp_path / "X.npy"
    np.save(data, patches)
    out = tmp_path / "m.npz"
    assert main(["fit", str(data), "--max-steps", "1", "--out", str(out), "--no-progress"]) == 0
    chosen = choose.for_data(FitConfig(), patches)
    model = sparsolve.load(out)
    assert (model.n_atoms, model.alpha) == (chosen.n_atoms, pytest.approx(chosen.alpha))
    assert main(["fit", str(data), "--l0", "4", "--atoms", "32", "--max-steps", "1", "--out", str(out),
                 "--no-progress"]) == 0
    assert sparsolve.load(out).settings["l0"] == 4
    with pytest.raises(SystemExit, match="pass alpha or l0, not both"):
        main(["fit", str(data), "--alpha", "0.1", "--l0", "4", "--out", str(out), "--no-progress"])


def test_the_estimator_refuses_alpha_and_l0_together(patches):
    with pytest.raises(ValueError, match="pass alpha or l0, not both"):
        sparsolve.DictionaryLearning(alpha=0.1, l0=3).fit(patches)
