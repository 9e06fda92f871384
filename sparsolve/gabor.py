"""How Gabor-like are the atoms of a dictionary?

Sparse coding of natural image patches is expected to learn localised,
oriented, band-pass atoms that are well described by 2-D Gabor functions
(Olshausen & Field, 1996).  This module fits a Gabor function to each atom by
bounded nonlinear least squares and summarises the fits:

* :func:`gabor` -- the Gabor generator;
* :func:`fit_gabor` -- the fit of one atom, with its coefficient of
  determination R^2;
* :func:`gabor_stats` -- R^2 and tuning statistics over a whole dictionary;
* :func:`control_dictionaries` -- reference dictionaries (random, PCA, true
  Gabor) that put a learned dictionary's score in context.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
from scipy.optimize import least_squares

from sparsolve.data import natural_image_patches, patches

__all__ = [
    "PARAM_NAMES",
    "gabor",
    "fit_gabor",
    "gabor_stats",
    "GaborStats",
    "control_dictionaries",
]

PARAM_NAMES = ("x0", "y0", "sigma_x", "sigma_y", "theta", "freq", "phase", "amplitude")

# Half-amplitude half-width of a Gaussian of unit standard deviation.
_HALF_WIDTH = np.sqrt(2.0 * np.log(2.0))


def _shape2d(size) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise TypeError(f"size: expected an int or a (height, width) pair, got {size!r}.") from None
    if h < 1 or w < 1:
        raise ValueError(f"size: both sides must be >= 1, got {(h, w)}.")
    return h, w


def _terms(params, rows, cols):
    """The pieces of the Gabor formula shared by :func:`gabor` and its Jacobian."""
    x0, y0, sigma_x, sigma_y, theta, freq, phase, _ = params
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = cols - x0, rows - y0
    u, v = dx * c + dy * s, -dx * s + dy * c
    envelope = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    arg = 2.0 * np.pi * freq * u + phase
    return c, s, u, v, envelope, np.cos(arg), np.sin(arg)


def gabor(params, size) -> np.ndarray:
    """Evaluate a 2-D Gabor function on a pixel grid.

    ``params = (x0, y0, sigma_x, sigma_y, theta, freq, phase, amplitude)``;
    ``x`` is the column index and ``y`` the row index (pixel centres at
    integers).  With the coordinates rotated by ``theta``,

        u =  (x - x0) cos(theta) + (y - y0) sin(theta)
        v = -(x - x0) sin(theta) + (y - y0) cos(theta)

        g(x, y) = amplitude * exp(-u^2 / (2 sigma_x^2) - v^2 / (2 sigma_y^2))
                            * cos(2 pi freq u + phase)

    so ``theta`` is the direction of the wave vector, ``freq`` is in cycles
    per pixel, ``sigma_x`` is the envelope width across the stripes and
    ``sigma_y`` along them.  ``size`` is ``s`` or ``(height, width)``.
    """
    params = np.asarray(params, dtype=np.float64)
    if params.shape != (8,):
        raise ValueError(f"params: expected the 8 values {PARAM_NAMES}, got shape {params.shape}.")
    sigma_x, sigma_y = params[2], params[3]
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"params: sigma_x and sigma_y must be > 0, got {sigma_x}, {sigma_y}.")
    rows, cols = np.indices(_shape2d(size), dtype=np.float64)
    _, _, _, _, envelope, cos_arg, _ = _terms(params, rows, cols)
    return params[7] * envelope * cos_arg


def _canonical(params: np.ndarray) -> np.ndarray:
    """One representative of the equivalent parameter sets of a Gabor.

    ``(theta + pi, -phase)`` and ``(amplitude, phase)`` vs ``(-amplitude,
    phase + pi)`` describe the same function; the representative has
    ``theta`` in [0, pi), ``phase`` in [-pi, pi) and ``amplitude >= 0``.
    """
    p = params.copy()
    if p[7] < 0:
        p[7], p[6] = -p[7], p[6] + np.pi
    turns = np.floor(p[4] / np.pi)
    p[4] -= turns * np.pi
    if int(turns) % 2:
        p[6] = -p[6]
    p[6] = (p[6] + np.pi) % (2.0 * np.pi) - np.pi
    return p


def _initial_guesses(atom: np.ndarray, n_starts: int) -> list[np.ndarray]:
    """Starting points from the atom's energy centroid and its FFT peaks."""
    h, w = atom.shape
    energy = atom ** 2
    total = energy.sum()
    rows, cols = np.indices(atom.shape, dtype=np.float64)
    y0 = (rows * energy).sum() / total
    x0 = (cols * energy).sum() / total
    spread = np.sqrt(((rows - y0) ** 2 * energy + (cols - x0) ** 2 * energy).sum() / (2 * total))
    sigma = float(np.clip(spread, 0.8, max(h, w) / 2))

    # Zero padding refines the spectrum's grid to 1/32 cycle per pixel, which
    # an 8-pixel atom cannot resolve on its own.
    n_fft = max(32, 2 * max(h, w))
    spectrum = np.abs(np.fft.rfft2(atom - atom.mean(), s=(n_fft, n_fft)))
    spectrum[0, 0] = 0.0
    fy = np.fft.fftfreq(n_fft)[:, None]
    fx = np.fft.rfftfreq(n_fft)[None, :]
    peaks = np.argsort(spectrum, axis=None)[::-1]

    # Distinct wave vectors: the second candidate is the best peak away from
    # the first, not one of its neighbouring bins.
    candidates = []
    for idx in peaks[: 4 * n_fft]:
        r, c = np.unravel_index(idx, spectrum.shape)
        k = (float(fx[0, c]), float(fy[r, 0]))
        if all(np.hypot(k[0] - q[0], k[1] - q[1]) > 1.5 / max(h, w) for q in candidates):
            candidates.append(k)
        if len(candidates) == 2:
            break

    amplitude = float(np.abs(atom).max())
    starts = []
    for kx, ky in candidates:
        for phase in (0.0, np.pi / 2):
            starts.append(np.array([x0, y0, sigma, sigma, np.arctan2(ky, kx),
                                    np.hypot(kx, ky), phase, amplitude]))
    # Order: both phases of the main peak first, then the second peak.
    return starts[:n_starts]


def fit_gabor(atom_2d, *, n_starts: int = 2, max_nfev: int = 60,
              good_enough: float = 0.98) -> tuple[np.ndarray, float]:
    """Least-squares fit of :func:`gabor` to a 2-D atom.

    Minimises ``sum_xy (g(x, y; params) - atom(x, y))^2`` with
    :func:`scipy.optimize.least_squares` under the bounds: centre at most half
    the atom's width/height outside it, ``0.3 <= sigma <= 2 * side``,
    ``0 <= freq <= 0.5`` (Nyquist).  Starts come from the energy centroid and
    the largest peaks of the zero-padded FFT (orientation and frequency), with
    phases 0 and pi/2; ``n_starts`` of them (1..4) are tried in that order,
    stopping early once R^2 >= ``good_enough``.  ``max_nfev`` bounds each
    start's function evaluations.

    Returns ``(params, r2)``: ``params`` in the canonical form (theta in
    [0, pi), phase in [-pi, pi), amplitude >= 0) and

        R^2 = 1 - sum (atom - g)^2 / sum (atom - mean(atom))^2.

    A constant atom has nothing to explain and gets R^2 = 0.
    """
    atom = np.asarray(atom_2d, dtype=np.float64)
    if atom.ndim != 2:
        raise ValueError(f"atom_2d: expected a 2-D array (height, width), got shape {atom.shape}.")
    if not np.all(np.isfinite(atom)):
        raise ValueError("atom_2d: contains NaN or infinite values.")
    if not 1 <= n_starts <= 4:
        raise ValueError(f"n_starts: must be between 1 and 4, got {n_starts}.")
    ss_tot = float(((atom - atom.mean()) ** 2).sum())
    if ss_tot <= 1e-300:
        return np.full(8, np.nan), 0.0

    # The fit runs on the atom scaled to unit peak so that the bounds and the
    # solver's tolerances do not depend on the atom's norm.
    scale = float(np.abs(atom).max())
    target = (atom / scale).ravel()
    h, w = atom.shape
    side = max(h, w)
    # theta and phase are periodic; their bounds are wide so that the optimum
    # never sits on a bound, and _canonical wraps them afterwards.
    lower = [-w / 2, -h / 2, 0.3, 0.3, -2 * np.pi, 0.0, -4 * np.pi, -10.0]
    upper = [1.5 * w - 1, 1.5 * h - 1, 2.0 * side, 2.0 * side, 3 * np.pi, 0.5, 4 * np.pi, 10.0]

    rows, cols = np.indices((h, w), dtype=np.float64)
    rows, cols = rows.ravel(), cols.ravel()

    def residual(p):
        _, _, _, _, envelope, cos_arg, _ = _terms(p, rows, cols)
        return p[7] * envelope * cos_arg - target

    def jacobian(p):
        # The analytic Jacobian is ~9x cheaper than finite differences, which
        # dominates the cost of fitting hundreds of atoms.
        _, _, sx, sy, _, freq, _, amp = p
        c, s, u, v, envelope, cos_arg, sin_arg = _terms(p, rows, cols)
        ae = amp * envelope
        dg_du = ae * (-u / sx ** 2 * cos_arg - 2.0 * np.pi * freq * sin_arg)
        dg_dv = ae * (-v / sy ** 2 * cos_arg)
        return np.column_stack([
            -c * dg_du + s * dg_dv,
            -s * dg_du - c * dg_dv,
            ae * cos_arg * u ** 2 / sx ** 3,
            ae * cos_arg * v ** 2 / sy ** 3,
            v * dg_du - u * dg_dv,
            -ae * sin_arg * 2.0 * np.pi * u,
            -ae * sin_arg,
            envelope * cos_arg,
        ])

    best_params, best_r2 = None, -np.inf
    for start in _initial_guesses(atom / scale, n_starts):
        result = least_squares(residual, np.clip(start, lower, upper), jac=jacobian,
                               bounds=(lower, upper), max_nfev=max_nfev, x_scale="jac")
        # cost = 0.5 * sum(residual^2), on the atom scaled by 1 / scale.
        r2 = 1.0 - 2.0 * result.cost * scale ** 2 / ss_tot
        if r2 > best_r2:
            best_params, best_r2 = result.x.copy(), r2
        if best_r2 >= good_enough:
            break
    best_params[7] *= scale
    return _canonical(best_params), float(best_r2)


@dataclasses.dataclass
class GaborStats:
    """Gabor fits of a dictionary (see :func:`gabor_stats`).

    Per-atom arrays have one entry per atom; the tuning arrays
    (``orientation_deg``, ``frequency``, ``aspect_ratio``,
    ``bandwidth_octaves``) are NaN for atoms whose fit is below ``threshold``,
    because a poor fit's parameters do not describe the atom.
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

    @property
    def n_atoms(self) -> int:
        return int(self.r2.size)

    @property
    def good(self) -> np.ndarray:
        return self.r2 >= self.threshold

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
            f"concentration {s['orientation_concentration']:.2f}"
        )


def gabor_stats(D, patch_shape=None, *, threshold: float = 0.8, n_starts: int = 2,
                max_nfev: int = 60) -> GaborStats:
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
      infinite when ``f <= df`` (a low-pass atom).
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
