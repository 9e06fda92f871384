"""The 2-D Gabor function and its least-squares fit to one atom.

g(x, y) = A · exp(−x'²/(2σ_x²) − y'²/(2σ_y²)) · cos(2π f x' + φ), with (x', y') the
pixel offsets from (x0, y0) rotated by θ; :func:`fit_gabor` fits it to an atom by
bounded nonlinear least squares from a few starting guesses and reports R².
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.optimize import least_squares

__all__ = ["PARAM_NAMES", "gabor", "fit_gabor", "envelope_area"]

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


def envelope_area(params, size) -> float:
    """The share of a patch that a Gabor's envelope covers: its size against the patch.

    With ``(u, v)`` the rotated offsets of :func:`gabor`, the envelope is
    ``e(x, y) = exp(−u²/(2σ_x²) − v²/(2σ_y²))`` (1 at the centre), and

        envelope_area = #{pixels (x, y) of the patch : e(x, y) ≥ ½} / #{pixels}

    the fraction of the patch's pixels inside the envelope's half-maximum ellipse,
    whose semi-axes are ``√(2 ln 2) σ ≈ 1.18 σ`` (area ``2π ln 2 σ_x σ_y ≈ 4.4 σ_x σ_y``
    pixels).  A whole-patch grating (σ of the order of the patch or more) scores 1; a
    localised Gabor of σ_x = σ_y = 1.5 pixels in the middle of an 8×8 patch scores 0.19
    (12 of 64 pixels), and 0.05 in a 16×16 one.
    The part of the ellipse outside the patch does not count, so a Gabor near the
    border scores less than the same one in the middle.  ``params`` are :func:`gabor`'s
    eight; ``size`` is ``s`` or ``(height, width)``.
    """
    params = np.asarray(params, dtype=np.float64)
    if params.shape != (8,):
        raise ValueError(f"params: expected the 8 values {PARAM_NAMES}, got shape {params.shape}.")
    rows, cols = np.indices(_shape2d(size), dtype=np.float64)
    _, _, _, _, envelope, _, _ = _terms(params, rows, cols)
    return float(np.mean(envelope >= 0.5))


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
