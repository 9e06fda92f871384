import numpy as np
import pytest
from matplotlib.figure import Figure

from sparsolve.data import Whitening
from sparsolve.plot import plot_compare, plot_dictionary, plot_history, plot_receptive_fields


def _png_ok(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _image(fig):
    (ax,) = fig.axes
    (im,) = ax.get_images()
    return im.get_array()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_plot_dictionary_grey(tmp_path, rng):
    D = rng.standard_normal((10, 64))
    fig = plot_dictionary(D, ncols=4, path=tmp_path / "sub" / "grey.png")
    assert isinstance(fig, Figure)
    image = _image(fig)
    # 3 rows x 4 columns of 8x8 atoms with 1-pixel gaps.
    assert image.shape == (3 * 9 + 1, 4 * 9 + 1)
    first = image[1:9, 1:9]
    np.testing.assert_allclose(first, 0.5 + 0.5 * D[0].reshape(8, 8) / np.abs(D[0]).max())
    _png_ok(tmp_path / "sub" / "grey.png")


def test_plot_dictionary_colour_and_options(tmp_path, rng):
    D = rng.standard_normal((5, 6 * 6 * 3))
    fig = plot_dictionary(D, path=tmp_path / "colour.png")
    assert _image(fig).shape == (2 * 7 + 1, 3 * 7 + 1, 3)
    _png_ok(tmp_path / "colour.png")
    # Rectangular atoms, an existing Axes, and a dead (all-zero) atom.
    D = np.vstack([rng.standard_normal((3, 12)), np.zeros(12)])
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_dictionary(D, patch_shape=(3, 4), ax=ax) is fig
    assert np.all(np.isfinite(_image(fig)))


def test_plot_dictionary_unwhitens(rng):
    X = rng.standard_normal((500, 16)) @ rng.standard_normal((16, 16))
    w = Whitening("zca").fit(X)
    D = rng.standard_normal((4, 16))
    shown = _image(plot_dictionary(D, whitening=w, ncols=4))
    expected = _image(plot_dictionary(w.unwhiten_atoms(D), ncols=4))
    np.testing.assert_allclose(shown, expected)


def test_plot_dictionary_bad_input(rng):
    with pytest.raises(ValueError, match="patch_shape"):
        plot_dictionary(rng.standard_normal((4, 50)))
    with pytest.raises(ValueError, match="D"):
        plot_dictionary(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="ncols"):
        plot_dictionary(np.zeros((2, 16)), ncols=0)
    with pytest.raises(ValueError, match="channels"):
        plot_dictionary(np.zeros((2, 32)), patch_shape=(4, 4, 2))


def _history(n=6, norms=True):
    h = {
        "mse": list(np.linspace(1, 0.1, n)),
        "l1": list(np.linspace(2, 1, n)),
        "nnz_frac": [0.1] * n,
        "dead_frac": [0.0] * n,
        "samples_seen": list(range(0, 100 * n, 100)),
        "seconds": list(np.arange(n) * 0.5),
    }
    if norms:
        h.update(norm_min=[0.9] * n, norm_mean=[1.0] * n, norm_max=[1.1] * n)
    return h


def test_plot_history(tmp_path):
    fig = plot_history(_history(), path=tmp_path / "history.png")
    assert len(fig.axes) == 6
    norms = [ax for ax in fig.axes if ax.get_title() == "norms"][0]
    assert len(norms.get_lines()) == 3
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), range(0, 600, 100))
    _png_ok(tmp_path / "history.png")
    fig = plot_history(_history(norms=False), keys=["mse", "l1"])
    assert [ax.get_title() for ax in fig.axes] == ["mse", "l1"]
    fig = plot_history({"loss": [3, 2, 1]})
    assert len(fig.axes) == 1
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [0, 1, 2]


def test_plot_history_bad_input():
    with pytest.raises(ValueError, match="same length"):
        plot_history({"mse": [1, 2], "l1": [1]})
    with pytest.raises(ValueError, match="keys"):
        plot_history(_history(), keys=["nope"])
    with pytest.raises(TypeError, match="history"):
        plot_history([1, 2, 3])


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_receptive_fields(tmp_path, rng, channels):
    p = 8 * 8 * channels
    D = rng.standard_normal((30, p))
    z = np.zeros(30)
    z[[3, 7, 11, 20]] = [0.5, -2.0, 1.0, 0.1]
    x = z @ D
    fig = plot_receptive_fields(x, D, z[None, :], top=3, path=tmp_path / "rf.png")
    # input, reconstruction and the 3 largest |z|: atoms 7, 11, 3 in that order.
    assert len(fig.axes) == 5
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["input", "reconstruction"]
    assert [t.split(":")[0] for t in titles[2:]] == ["#7", "#11", "#3"]
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)
    _png_ok(tmp_path / "rf.png")


def test_plot_receptive_fields_bad_input(rng):
    D = rng.standard_normal((5, 16))
    with pytest.raises(ValueError, match="x"):
        plot_receptive_fields(np.zeros(9), D, np.zeros(5))
    with pytest.raises(ValueError, match="Z_or_codes"):
        plot_receptive_fields(np.zeros(16), D, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="top"):
        plot_receptive_fields(np.zeros(16), D, np.ones(5), top=0)


ROWS = [
    dict(method="fista-1000", ms_per_1000=500.0, objective=1.0, rel_gap=0.0, mse=0.1, l0=5.0,
         dead_frac=0.0),
    dict(method="ista-50", ms_per_1000=20.0, objective=1.2, rel_gap=0.2, mse=0.2, l0=9.0,
         dead_frac=0.0),
    dict(method="lista-16", ms_per_1000=2.0, objective=1.01, rel_gap=0.01, mse=0.1, l0=6.0,
         dead_frac=0.1),
]


def test_plot_compare(tmp_path):
    fig = plot_compare(ROWS, path=tmp_path / "cmp.png")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].patches) == 3
    _png_ok(tmp_path / "cmp.png")
    fig = plot_compare(ROWS, curve={"depth": [1, 2, 4, 8], "fista_iters": [3, 6, 15, 40]},
                       path=tmp_path / "cmp2.png")
    assert len(fig.axes) == 3
    np.testing.assert_array_equal(fig.axes[2].get_lines()[0].get_ydata(), [3, 6, 15, 40])
    _png_ok(tmp_path / "cmp2.png")


def test_plot_compare_bad_input():
    with pytest.raises(ValueError, match="rows"):
        plot_compare([])
    with pytest.raises(ValueError, match="rel_gap"):
        plot_compare([dict(method="a", ms_per_1000=1.0)])
    with pytest.raises(TypeError, match="rows"):
        plot_compare(["a"])
    with pytest.raises(ValueError, match="curve"):
        plot_compare(ROWS, curve={"depth": [1]})
    with pytest.raises(ValueError, match="same length"):
        plot_compare(ROWS, curve={"depth": [1, 2], "fista_iters": [1]})
