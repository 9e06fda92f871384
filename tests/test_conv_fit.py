"""fit_conv: planted filters recovered, norm rules kept, checkpoints that resume and refuse, the model file."""
from __future__ import annotations

import numpy as np
import pytest

import sparsolve
from sparsolve.conv import ConvFitConfig, ConvModel, encode_conv, fit_conv
from sparsolve.conv.update import FilterUpdate


def _unit(D):
    return D / np.sqrt((D ** 2).sum(axis=tuple(range(1, D.ndim)), keepdims=True))


def planted_signals(n=96, length=160, K=4, f=9, density=0.015, noise=0.01, seed=0):
    """Signals made of K planted unit filters at sparse random positions (valid boundary), plus noise."""
    rng = np.random.default_rng(seed)
    D = _unit(rng.standard_normal((K, 1, f)))
    Z = rng.standard_normal((n, K, length - f + 1)) * (rng.random((n, K, length - f + 1)) < density)
    X = np.zeros((n, 1, length))
    for k in range(K):
        for i in range(n):
            X[i, 0] += np.convolve(Z[i, k], D[k, 0])
    return X + noise * rng.standard_normal(X.shape), D


def recovery_up_to_shifts(learned, planted):
    """For each planted filter, the largest |cos| with any learned filter at any relative shift (the peak of
    their full cross-correlation over the product of their norms)."""
    best = []
    for d in planted:
        best.append(max(np.abs(np.correlate(e[0], d[0], "full")).max() / (np.linalg.norm(e) * np.linalg.norm(d))
                        for e in learned))
    return np.array(best)


@pytest.fixture(scope="module")
def planted():
    return planted_signals()


def test_planted_filters_are_recovered(planted):
    X, D = planted
    model = fit_conv(X, 6, 9, 0.05, n_epochs=6, batch_size=16, seed=0, progress=False)
    cos = recovery_up_to_shifts(model.filters, D)
    assert (cos > 0.9).mean() >= 0.9, cos
    assert np.allclose(np.linalg.norm(model.filters.reshape(6, -1), axis=1), 1)  # the unit rule
    h = model.history
    assert len(h["objective"]) == 6 * 6 and h["objective"][-1] < h["objective"][0]


def test_the_update_lowers_its_quadratic_and_matches_the_gradient():
    """FilterUpdate's loss is ½‖x − Σ d ∗ z‖² − ½‖x‖² averaged over the batch, and a sweep lowers it."""
    from sparsolve.conv.operator import ConvOperator, geometry_of
    from sparsolve.conv.update import statistics

    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 2, 12, 11))
    D = _unit(rng.standard_normal((4, 2, 3, 3)))
    for boundary in ("valid", "circular"):
        Z = encode_conv(X, D, 0.3, boundary=boundary, tol=1e-6)
        g = geometry_of(X, D, boundary)
        A, B = statistics(ConvOperator(D, g, "fft"), X, Z)
        upd = FilterUpdate(A, B, g.filters)
        D2 = _unit(rng.standard_normal(D.shape))
        R = X - ConvOperator(D2, g, "direct").synthesize(Z)
        exact = 0.5 * (R ** 2).sum() / 3 - 0.5 * (X ** 2).sum() / 3
        assert np.isclose(upd.loss(D2), exact, rtol=1e-10)
        after = upd.run(D2, lambda d, previous: d, passes=3)
        assert upd.loss(after) < upd.loss(D2)


@pytest.mark.parametrize("norm", ["unit", "ball", "penalty", "none"])
def test_norm_rules(planted, norm):
    X, _ = planted
    model = fit_conv(X[:32], 4, 9, 0.05, norm=norm, batch_size=16, n_epochs=2, seed=0, progress=False)
    lengths = np.linalg.norm(model.filters.reshape(4, -1), axis=1)
    if norm == "unit":
        assert np.allclose(lengths, 1)
    elif norm == "ball":
        assert (lengths <= 1 + 1e-12).all()
    assert model.settings["norm"] == norm and model.history["norm_max"][-1] == pytest.approx(lengths.max())


def test_images_circular_and_the_model_file(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 1, 16, 16))
    model = fit_conv(X, 3, 4, 0.3, boundary="circular", batch_size=3, max_steps=3, seed=1, progress=False)
    assert model.filters.shape == (3, 1, 4, 4) and model.boundary == "circular"
    path = model.save(tmp_path / "conv.npz")
    again = sparsolve.load(path)
    assert isinstance(again, ConvModel)
    np.testing.assert_array_equal(again.filters, model.filters)
    Z = again.encode(X[:2], tol=1e-4)
    assert Z.shape == (2, 3, 16, 16)


def test_checkpoint_resumes_to_the_same_filters_and_refuses_other_data(tmp_path, planted, ctrl_c_at):
    X, _ = planted
    X = X[:48]
    settings = dict(n_filters=4, filter_size=9, alpha=0.05, batch_size=8, n_epochs=1, seed=3, progress=False)
    whole = fit_conv(X, **settings)
    path = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        fit_conv(X, checkpoint=path, callback=ctrl_c_at(2), **settings)
    resumed = fit_conv(X, checkpoint=path, **settings)
    np.testing.assert_allclose(resumed.filters, whole.filters, atol=1e-10)
    assert resumed.history["step"] == list(range(1, 7))
    with pytest.raises(ValueError, match="other data"):
        fit_conv(X + 1, checkpoint=path, **settings)
    with pytest.raises(ValueError, match="alpha=0.05 but this fit has alpha=0.1"):
        fit_conv(X, checkpoint=path, **{**settings, "alpha": 0.1})


def test_bad_settings_and_data_are_refused_before_any_work():
    X = np.zeros((4, 1, 20))
    with pytest.raises(ValueError, match="boundary 'valid' or 'circular', not 'same'"):
        ConvFitConfig(4, 5, 0.1, boundary="same")
    with pytest.raises(ValueError, match="too small for filter_size=11"):
        fit_conv(X, 2, 11, 0.1)
    with pytest.raises(ValueError, match="signal 1"):
        fit_conv(np.where(np.arange(80).reshape(4, 1, 20) == 25, np.nan, 1.0), 2, 3, 0.1)
    with pytest.raises(ValueError, match="X\\[:, None\\]"):
        fit_conv(X[:, 0], 2, 3, 0.1)
    with pytest.raises(ValueError, match="batch_size=8 is larger than the data"):
        fit_conv(X + 1, 2, 3, 0.1)
    with pytest.raises(TypeError, match="unknown option"):
        fit_conv(X + 1, 2, 3, 0.1, solver="fista", gamma=1.0, batch_size=2)


def test_the_command_line_fits_saves_and_refuses_bad_flags(tmp_path, capsys):
    import dataclasses

    import sparsolve.cli

    X, _ = planted_signals(n=8, length=60)
    data = tmp_path / "signals.npy"
    np.save(data, X)
    out = tmp_path / "conv.npz"
    assert sparsolve.cli.main(["fit-conv", str(data), "--filters", "3", "--filter-size", "5", "--alpha", "0.05",
                               "--batch-size", "4", "--max-steps", "2", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "saved:" in printed and "2 steps" in printed
    model = sparsolve.load(out)
    assert model.filters.shape == (3, 1, 5) and model.settings["max_steps"] == 2
    # every setting of ConvFitConfig is a flag of fit-conv
    parser = sparsolve.cli._parser()
    helptext = parser._subparsers._group_actions[0].choices["fit-conv"].format_help()
    for f in dataclasses.fields(ConvFitConfig):
        flag = "--solver-option" if f.name == "solver_options" else "--" + f.name.replace("_", "-")
        assert flag in helptext, flag
    with pytest.raises(SystemExit):
        sparsolve.cli.main(["fit-conv", str(data), "--boundary", "same"])
    assert "invalid choice: 'same'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sparsolve.cli.main(["fit-conv", str(data), "--solver", "admm", "--solver-option", "gamma=1"])
    assert "unknown option" in capsys.readouterr().err
