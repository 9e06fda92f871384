"""How Gabor-like is a whole dictionary: R² and tuning statistics over its atoms
(:func:`gabor_stats`), and reference dictionaries (random, PCA, true Gabor) that put
a learned dictionary's score in context (:func:`control_dictionaries`).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from sparsolve.data import natural_image_patches, patches

from .fit import _HALF_WIDTH, envelope_area, fit_gabor, gabor

__all__ = ["GaborStats", "gabor_stats", "control_dictionaries"]


@dataclasses.dataclass
class GaborStats:
    """Gabor fits of a dictionary (see :func:`gabor_stats`).

    Per-atom arrays have one entry per atom; the tuning arrays
    (``orientation_deg``, ``frequency``, ``aspect_ratio``,
    ``bandwidth_octaves``, ``envelope_area``) are NaN for atoms whose fit is below
    ``threshold``, because a poor fit's parameters do not describe the atom.

    Localisation: ``envelope_area`` is the share of the patch inside the fitted
    envelope's half-maximum ellipse (:func:`sparsolve.gabor.envelope_area`; 1 for a
    whole-patch grating), and an atom is *localised* when it is Gabor-like and
    ``envelope_area <= localized``.
    """

    r2: np.ndarray
    params: np.ndarray
    threshold: float
    frac_good: float
    median_r2: float
    orientation_deg: np.ndarray
    frequency: np.ndarray
    aspect_ratio: np.ndarray
    bandwidth_octaves: np.ndarray
    envelope_area: np.ndarray
    localized: float = 0.4

    @property
    def n_atoms(self) -> int:
        return int(self.r2.size)

    @property
    def good(self) -> np.ndarray:
        return self.r2 >= self.threshold

    @property
    def frac_localized(self) -> float:
        """The share of all atoms that are Gabor-like with ``envelope_area <= localized``."""
        with np.errstate(invalid="ignore"):
            return float(np.mean(self.good & (self.envelope_area <= self.localized)))

    def orientation_histogram(self, n_bins: int = 4) -> np.ndarray:
        """Counts of well-fitted atoms per orientation bin of width 180/n_bins degrees.

        Bins are centred on 0, 180/n_bins, ... degrees so that the default
        bins are horizontal, 45 degrees, vertical and 135 degrees.
        """
        width = 180.0 / n_bins
        theta = self.orientation_deg[self.good]
        bins = np.floor(((theta + width / 2) % 180.0) / width).astype(int)
        return np.bincount(bins, minlength=n_bins)

    def summary(self) -> dict:
        """Scalars only: R^2 summary and medians of the tuning of good fits."""
        good = self.good
        # The resultant length of exp(2i theta) is 0 for orientations spread
        # evenly over [0, 180) and 1 if all atoms share one orientation.
        theta = np.deg2rad(self.orientation_deg[good])
        concentration = float(np.abs(np.exp(2j * theta).mean())) if good.any() else np.nan

        def med(values):
            values = values[good]
            return float(np.median(values)) if values.size else np.nan

        return {
            "n_atoms": self.n_atoms,
            "threshold": self.threshold,
            "frac_good": self.frac_good,
            "median_r2": self.median_r2,
            "median_frequency": med(self.frequency),
            "median_aspect_ratio": med(self.aspect_ratio),
            "median_bandwidth_octaves": med(self.bandwidth_octaves),
            "orientation_concentration": concentration,
            "orientation_histogram": self.orientation_histogram().tolist(),
            "localized": self.localized,
            "frac_localized": self.frac_localized,
            "median_envelope_area": med(self.envelope_area),
        }

    def __str__(self) -> str:
        s = self.summary()
        return (
            f"GaborStats: {s['n_atoms']} atoms, R^2 >= {s['threshold']:g}: "
            f"{100 * s['frac_good']:.1f}%, median R^2 {s['median_r2']:.3f}\n"
            f"  good fits: median frequency {s['median_frequency']:.3f} cyc/px, "
            f"aspect ratio {s['median_aspect_ratio']:.2f}, "
            f"bandwidth {s['median_bandwidth_octaves']:.2f} oct\n"
            f"  orientations 0/45/90/135 deg: {s['orientation_histogram']}, "
            f"concentration {s['orientation_concentration']:.2f}\n"
            f"  localised (envelope area <= {s['localized']:g} of the patch): {100 * s['frac_localized']:.1f}%, "
            f"median envelope area {s['median_envelope_area']:.2f}"
        )


def gabor_stats(D, patch_shape=None, *, threshold: float = 0.8, n_starts: int = 2,
                max_nfev: int = 60, localized: float = 0.4) -> GaborStats:
    """Fit a Gabor to every atom of ``D`` and summarise the fits.

    Parameters
    ----------
    D : array (n_atoms, n_features)
        One atom per row.  Colour atoms (``patch_shape`` with 3 channels, or
        ``n_features = 3 s^2``) are averaged over channels before fitting.
    patch_shape : (height, width[, channels]) or None
        Inferred as a square (grey or 3-channel) patch when None.
    threshold : float
        An atom is "Gabor-like" when its R^2 >= threshold.
    n_starts, max_nfev : passed to :func:`fit_gabor`.
    localized : float
        A Gabor-like atom is "localised" when its ``envelope_area <= localized``: the
        default 0.4 counts a grating across the whole patch (area 1; the gratings that
        12×12 dictionaries of natural images learn score 0.43 and more) out, and a Gabor
        of σ_x = σ_y = 2 pixels in the middle of an 8×8 patch (0.25) in.

    Returns
    -------
    GaborStats with per-atom ``r2`` and ``params``, ``frac_good`` (fraction of
    atoms with R^2 >= threshold), ``median_r2`` and, for the good fits,

    * ``orientation_deg``: theta in degrees in [0, 180), direction of the wave
      vector (0 = vertical stripes);
    * ``frequency``: cycles per pixel;
    * ``aspect_ratio``: sigma_y / sigma_x, envelope length along the stripes
      over width across them;
    * ``bandwidth_octaves``: full half-amplitude bandwidth of the frequency
      response along the wave vector,
      ``log2((f + df) / (f - df))`` with ``df = sqrt(2 ln 2) / (2 pi sigma_x)``
      (the spectrum is a Gaussian of s.d. ``1 / (2 pi sigma_x)`` around ``f``);
      infinite when ``f <= df`` (a low-pass atom);
    * ``envelope_area``: the share of the patch's pixels where the fitted envelope
      ``exp(−u²/(2σ_x²) − v²/(2σ_y²))`` is at least ½
      (:func:`sparsolve.gabor.envelope_area`): the envelope's size against the patch;

    and ``frac_localized``, the share of all atoms that are Gabor-like with
    ``envelope_area <= localized``: Gabor-like and localised, as Olshausen & Field's
    receptive fields are, rather than gratings across the whole patch.
    """
    D = np.asarray(D)
    if D.ndim != 2:
        raise ValueError(f"D: expected a 2-D array (n_atoms, n_features), got shape {D.shape}.")
    if D.shape[0] == 0:
        raise ValueError("D: has no atoms.")
    if not np.issubdtype(D.dtype, np.number):
        raise TypeError(f"D: expected a numeric array, got dtype {D.dtype}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: must be in [0, 1], got {threshold}.")
    if not 0.0 <= localized <= 1.0:
        raise ValueError(f"localized: must be in [0, 1] (a share of the patch), got {localized}.")
    shape = patches.patch_shape(D.shape[1], patch_shape)
    atoms = D.astype(np.float64).reshape((D.shape[0],) + shape)
    if len(shape) == 3:
        atoms = atoms.mean(axis=3)

    n = atoms.shape[0]
    params = np.empty((n, 8))
    r2 = np.empty(n)
    for i, atom in enumerate(atoms):
        params[i], r2[i] = fit_gabor(atom, n_starts=n_starts, max_nfev=max_nfev)

    good = r2 >= threshold
    area = np.array([envelope_area(p, shape[:2]) if ok else np.nan for p, ok in zip(params, good)])
    sigma_x, sigma_y, freq = params[:, 2], params[:, 3], params[:, 5]
    with np.errstate(divide="ignore", invalid="ignore"):
        df = _HALF_WIDTH / (2.0 * np.pi * sigma_x)
        bandwidth = np.where(freq > df, np.log2((freq + df) / (freq - df)), np.inf)
        aspect = sigma_y / sigma_x

    def keep_good(values):
        return np.where(good, values, np.nan)

    return GaborStats(
        r2=r2,
        params=params,
        threshold=float(threshold),
        frac_good=float(good.mean()),
        median_r2=float(np.median(r2)),
        orientation_deg=keep_good(np.rad2deg(params[:, 4])),
        frequency=keep_good(freq),
        aspect_ratio=keep_good(aspect),
        bandwidth_octaves=keep_good(bandwidth),
        envelope_area=area,
        localized=float(localized),
    )


def _unit_rows(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def control_dictionaries(n_atoms: int, patch_size: int, X=None, seed=0) -> dict[str, np.ndarray]:
    """Reference dictionaries to compare a learned dictionary's Gabor score with.

    Returns a dict of unit-norm dictionaries with atoms of ``patch_size**2``
    features:

    * ``"random"``: ``n_atoms`` i.i.d. Gaussian atoms (not Gabor-like);
    * ``"pca"``: the leading ``min(n_atoms, patch_size**2)`` principal
      components of ``X`` (default: :func:`sparsolve.data.natural_image_patches`
      of that size) -- global, Fourier-like atoms;
    * ``"gabor"``: ``n_atoms`` exact Gabors with random centre in the middle
      half of the patch, orientation uniform in [0, pi), frequency uniform in
      [0.1, 0.35] cycles/pixel, ``sigma_x = clip(0.5 / freq, 1, s / 4)``,
      aspect ratio uniform in [1, 2] and uniform phase (R^2 = 1 by construction).
    """
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if not is_int(n_atoms) or n_atoms < 1:
        raise ValueError(f"n_atoms: expected a positive integer, got {n_atoms!r}.")
    if not is_int(patch_size) or patch_size < 2:
        raise ValueError(f"patch_size: expected an integer >= 2, got {patch_size!r}.")
    p = patch_size * patch_size
    rng = np.random.default_rng(seed)

    random_atoms = _unit_rows(rng.standard_normal((n_atoms, p)))

    if X is None:
        X = natural_image_patches(patch_size, 5000, seed=seed)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != p:
        raise ValueError(
            f"X: expected patches of shape (n_samples, {p}) for patch_size={patch_size}, "
            f"got {X.shape}."
        )
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    pca_atoms = Vt[: min(n_atoms, p)]

    s = float(patch_size)
    freq = rng.uniform(0.1, 0.35, n_atoms)
    sigma_x = np.clip(0.5 / freq, 1.0, s / 4)
    bank = np.empty((n_atoms, p))
    for i in range(n_atoms):
        params = [
            rng.uniform(s / 4, 3 * s / 4 - 1), rng.uniform(s / 4, 3 * s / 4 - 1),
            sigma_x[i], sigma_x[i] * rng.uniform(1.0, 2.0),
            rng.uniform(0.0, np.pi), freq[i], rng.uniform(-np.pi, np.pi), 1.0,
        ]
        bank[i] = gabor(params, patch_size).ravel()

    return {"random": random_atoms, "pca": pca_atoms, "gabor": _unit_rows(bank)}
