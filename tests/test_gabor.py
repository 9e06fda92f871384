import numpy as np
import pytest

from sparsolve.data import natural_image_patches
from sparsolve.gabor import (
    GaborStats,
    control_dictionaries,
    envelope_area,
    fit_gabor,
    gabor,
    gabor_stats,
)


@pytest.fixture(scope="module")
def controls():
    return control_dictionaries(32, 8, X=natural_image_patches(8, 2000), seed=0)


def test_gabor_matches_its_definition():
    g = gabor([4.0, 3.0, 2.0, 3.0, 0.0, 0.25, 0.0, 2.0], (8, 10))
    assert g.shape == (8, 10)
    assert g[3, 4] == pytest.approx(2.0)
    # theta = 0: the wave runs along x (columns); a quarter period away the cosine is 0.
    assert g[3, 5] == pytest.approx(0.0, abs=1e-12)
    assert g[3, 6] == pytest.approx(-2.0 * np.exp(-0.5 * (2 / 2.0) ** 2))
    assert g[5, 4] == pytest.approx(2.0 * np.exp(-0.5 * (2 / 3.0) ** 2))
    # Rotating by 90 degrees exchanges the roles of rows and columns.
    square = [3.5, 3.5, 1.5, 2.5, 0.0, 0.2, 0.3, 1.0]
    rotated = list(square)
    rotated[4] = np.pi / 2
    np.testing.assert_allclose(gabor(rotated, 8), gabor(square, 8).T, atol=1e-12)


def test_gabor_bad_input():
    with pytest.raises(ValueError, match="params"):
        gabor([1, 2, 3], 8)
    with pytest.raises(ValueError, match="sigma"):
        gabor([4, 4, 0, 1, 0, 0.2, 0, 1], 8)
    with pytest.raises(TypeError, match="size"):
        gabor([4, 4, 1, 1, 0, 0.2, 0, 1], "8")


def test_fit_gabor_recovers_parameters():
    true = np.array([3.7, 4.2, 1.6, 2.4, 0.7, 0.22, 1.0, 0.5])
    atom = gabor(true, 8)
    params, r2 = fit_gabor(atom)
    assert r2 > 0.999
    np.testing.assert_allclose(params, true, atol=1e-3)


def test_fit_gabor_noise_and_canonical_form():
    rng = np.random.default_rng(1)
    true = np.array([4.0, 3.5, 1.8, 1.8, 2.8, 0.18, -2.0, 1.0])
    atom = -gabor(true, 8) + 0.02 * rng.standard_normal((8, 8))
    params, r2 = fit_gabor(atom)
    assert r2 > 0.95
    assert 0 <= params[4] < np.pi and -np.pi <= params[6] < np.pi and params[7] > 0
    np.testing.assert_allclose(gabor(params, 8), -gabor(true, 8), atol=0.05)


def test_fit_gabor_constant_and_bad_input():
    params, r2 = fit_gabor(np.ones((8, 8)))
    assert r2 == 0.0 and np.all(np.isnan(params))
    with pytest.raises(ValueError, match="atom_2d"):
        fit_gabor(np.zeros(64))
    with pytest.raises(ValueError, match="atom_2d"):
        fit_gabor(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="n_starts"):
        fit_gabor(np.eye(8), n_starts=0)


def test_control_dictionaries_shapes(controls):
    assert controls["random"].shape == (32, 64)
    assert controls["pca"].shape == (32, 64)
    assert controls["gabor"].shape == (32, 64)
    for D in controls.values():
        np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0)
    assert control_dictionaries(100, 4, seed=0)["pca"].shape == (16, 16)
    with pytest.raises(ValueError, match="X"):
        control_dictionaries(4, 8, X=np.zeros((10, 10)))
    with pytest.raises(ValueError, match="n_atoms"):
        control_dictionaries(0, 8)
    with pytest.raises(ValueError, match="patch_size"):
        control_dictionaries(4, 1)


def test_gabor_bank_scores_near_one(controls):
    stats = gabor_stats(controls["gabor"])
    assert isinstance(stats, GaborStats)
    assert stats.median_r2 > 0.95
    assert stats.frac_good > 0.9
    assert np.all(np.isfinite(stats.frequency[stats.good]))
    theta = stats.orientation_deg[stats.good]
    assert np.all((theta >= 0) & (theta < 180))
    assert stats.orientation_histogram().sum() == stats.good.sum()
    text = str(stats)
    assert "median R^2" in text and "32 atoms" in text


def test_random_atoms_score_low_and_pca_is_not_gabor_like(controls):
    random = gabor_stats(controls["random"])
    gabors = gabor_stats(controls["gabor"])
    assert random.frac_good <= 0.1
    assert random.median_r2 < 0.5
    assert np.all(np.isnan(random.frequency[~random.good]))
    pca = gabor_stats(controls["pca"])
    # PCA components are global Fourier-like patterns: a few of the lowest
    # frequencies fit, most do not.
    assert pca.median_r2 < gabors.median_r2
    assert pca.frac_good < 0.5
    # and those that fit are waves across the whole patch: none is localised
    assert pca.frac_localized == 0.0 and random.frac_localized == 0.0


def test_gabor_stats_colour_and_shapes():
    bank = control_dictionaries(4, 6, X=np.random.default_rng(0).standard_normal((50, 36)))["gabor"]
    colour = np.repeat(bank.reshape(4, 6, 6, 1), 3, axis=3).reshape(4, -1)
    stats = gabor_stats(colour)
    assert stats.r2.shape == (4,) and stats.params.shape == (4, 8)
    assert stats.median_r2 > 0.95
    rect = gabor_stats(np.stack([gabor([3, 2, 1.5, 1.5, 0.3, 0.2, 0, 1], (5, 7)).ravel()]),
                       patch_shape=(5, 7))
    assert rect.r2[0] > 0.99
    summary = rect.summary()
    assert set(summary) >= {"frac_good", "median_r2", "median_frequency",
                            "median_aspect_ratio", "median_bandwidth_octaves"}


def test_gabor_stats_bad_input():
    with pytest.raises(ValueError, match="D"):
        gabor_stats(np.zeros(64))
    with pytest.raises(ValueError, match="patch_shape"):
        gabor_stats(np.zeros((2, 50)))
    with pytest.raises(ValueError, match="patch_shape"):
        gabor_stats(np.zeros((2, 64)), patch_shape=(7, 7))
    with pytest.raises(ValueError, match="threshold"):
        gabor_stats(np.eye(64)[:2], threshold=2)
    with pytest.raises(TypeError, match="D"):
        gabor_stats(np.array([["a"] * 4]))


# ---------------------------------------------------------------- localisation


def test_envelope_area_is_the_share_of_the_patch_inside_the_half_maximum_ellipse():
    centred = [3.5, 3.5, 1.5, 1.5, 0.0, 0.2, 0.0, 1.0]
    # pixel centres within 1.18 σ = 1.77 px of (3.5, 3.5): the 4 nearest and the 8 next ones
    assert envelope_area(centred, 8) == pytest.approx(12 / 64)
    assert envelope_area(centred[:2] + [16.0, 16.0] + centred[4:], 8) == 1.0  # a whole-patch grating
    # a wider envelope covers more; the same Gabor in a corner, or in a bigger patch, a smaller share
    assert envelope_area(centred[:2] + [2.5, 2.5] + centred[4:], 8) > 12 / 64
    assert envelope_area([0.0, 0.0] + centred[2:], 8) < 12 / 64
    assert envelope_area([7.5, 7.5] + centred[2:], 16) == pytest.approx(12 / 256)
    # elongated along the stripes: the ellipse's area grows with σ_y, whatever the orientation
    for theta in (0.0, 0.6, np.pi / 2):
        long = [5.5, 5.5, 1.0, 3.0, theta, 0.2, 0.0, 1.0]
        assert 3 * envelope_area(long[:3] + [1.0] + long[4:], 12) <= envelope_area(long, 12) + 0.02
    with pytest.raises(ValueError, match="params"):
        envelope_area([1.0, 2.0], 8)


def _gabor_bank(n, side, sigma, seed=0):
    """Gabors of envelope σ in ``sigma`` (pixels), centred in the middle half of the patch."""
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(n):
        s = rng.uniform(*sigma)
        bank.append(gabor([rng.uniform(side / 4, 3 * side / 4 - 1), rng.uniform(side / 4, 3 * side / 4 - 1),
                           s, s * rng.uniform(1.0, 1.5), rng.uniform(0, np.pi), rng.uniform(0.15, 0.3),
                           rng.uniform(-np.pi, np.pi), 1.0], side).ravel())
    return np.array(bank)


def _gratings(n, side, seed=0):
    """Plane waves cos(2π f u + φ) across the whole patch: Gabor-like to the fit, not localised."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((side, side))
    out = []
    for _ in range(n):
        theta, f, phase = rng.uniform(0, np.pi), rng.uniform(0.1, 0.3), rng.uniform(-np.pi, np.pi)
        out.append(np.cos(2 * np.pi * f * (cols * np.cos(theta) + rows * np.sin(theta)) + phase).ravel())
    return np.array(out)


def test_small_gabors_score_localised_and_gratings_do_not():
    small = gabor_stats(_gabor_bank(12, 12, (1.0, 1.6)))
    assert small.frac_good == 1.0 and small.frac_localized == 1.0
    assert np.nanmax(small.envelope_area) <= 0.3
    gratings = gabor_stats(_gratings(12, 12))
    assert gratings.frac_good >= 0.9  # the R² metric alone calls them Gabor-like ...
    assert gratings.frac_localized == 0.0  # ... the envelope says they fill the patch
    assert np.nanmin(gratings.envelope_area) >= 0.9
    summary = small.summary()
    assert summary["frac_localized"] == 1.0 and summary["localized"] == 0.4
    assert summary["median_envelope_area"] == pytest.approx(np.median(small.envelope_area))
    assert "localised" in str(small)
    # the threshold is the caller's: nothing counts as localised at 0
    assert gabor_stats(_gabor_bank(4, 12, (1.0, 1.6)), localized=0.0).frac_localized == 0.0
    with pytest.raises(ValueError, match="localized"):
        gabor_stats(_gabor_bank(2, 12, (1.0, 1.6)), localized=1.5)
