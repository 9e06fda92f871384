"""Figures for dictionaries, training histories, codes and solver comparisons.

Every function builds a :class:`matplotlib.figure.Figure` directly (no
pyplot, so no display or global state is needed), returns it, and also writes
a PNG when ``path`` is given.

Atoms are drawn with a symmetric scale per atom: an atom ``d`` is shown as
``0.5 + 0.5 * d / max|d|``, so mid-grey is zero, and black/white (or the
saturated colours) are the atom's extreme values of either sign.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sparsolve.data import patches

__all__ = ["plot_dictionary", "plot_history", "plot_receptive_fields", "plot_compare"]

_HISTORY_PANELS = {
    "mse": ("mse",),
    "l1": ("l1",),
    "nnz_frac": ("nnz_frac",),
    "dead_frac": ("dead_frac",),
    "norms": ("norm_min", "norm_mean", "norm_max"),
}
_COMPARE_REQUIRED = ("method", "ms_per_1000", "rel_gap")


def _save(fig: Figure, path) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def _symmetric_unit(atoms: np.ndarray) -> np.ndarray:
    """Map each atom (first axis) to [0, 1] with 0.5 meaning zero."""
    flat = atoms.reshape(atoms.shape[0], -1)
    peak = np.abs(flat).max(axis=1)
    # An all-zero atom (e.g. a dead one) stays mid-grey instead of dividing by 0.
    peak[peak == 0] = 1.0
    scaled = 0.5 + 0.5 * flat / peak[:, None]
    return scaled.reshape(atoms.shape)


def _as_atoms(D, patch_shape, name: str = "D") -> tuple[np.ndarray, tuple[int, ...]]:
    D = np.asarray(D)
    if D.ndim == 1:
        D = D[None, :]
    if D.ndim != 2 or D.shape[0] == 0:
        raise ValueError(
            f"{name}: expected a 2-D array (n_atoms, n_features), got shape {D.shape}."
        )
    if not np.issubdtype(D.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array, got dtype {D.dtype}.")
    shape = patches.patch_shape(D.shape[1], patch_shape)
    if len(shape) == 3 and shape[2] not in (1, 3):
        raise ValueError(f"patch_shape: can draw 1 or 3 channels, got {shape[2]}.")
    atoms = D.astype(np.float64).reshape((D.shape[0],) + shape)
    if len(shape) == 3 and shape[2] == 1:
        atoms = atoms[..., 0]
    return atoms, shape


def _mosaic(atoms: np.ndarray, ncols: int, gap: int = 1) -> np.ndarray:
    """Tile scaled atoms (n, h, w[, 3]) into one image with white gaps."""
    n, h, w = atoms.shape[:3]
    nrows = math.ceil(n / ncols)
    extra = atoms.shape[3:]
    canvas = np.ones((nrows * (h + gap) + gap, ncols * (w + gap) + gap) + extra)
    for k, atom in enumerate(atoms):
        r, c = divmod(k, ncols)
        top, left = gap + r * (h + gap), gap + c * (w + gap)
        canvas[top:top + h, left:left + w] = atom
    return canvas


def _show_patch(ax, patch: np.ndarray, title: str | None = None) -> None:
    """Draw one already scaled patch in [0, 1]."""
    if patch.ndim == 2:
        ax.imshow(patch, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(patch, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def plot_dictionary(D, *, patch_shape=None, whitening=None, ncols: int | None = None,
                    ax=None, title: str | None = None, path=None) -> Figure:
    """Draw the atoms of ``D`` (n_atoms, n_features) as a grid of patches.

    Atoms are grey ``(s, s)`` or colour ``(s, s, 3)`` patches, inferred from
    ``n_features = s^2`` or ``3 s^2`` unless ``patch_shape`` is given.  If a
    fitted :class:`sparsolve.data.Whitening` is passed, atoms are first mapped
    to pixel space with ``whitening.unwhiten_atoms(D)`` (``D A^T``).  Each atom
    is scaled symmetrically (see module docstring) and the grid is one image,
    ``ncols`` wide (default ``ceil(sqrt(n_atoms))``), drawn in ``ax`` if given
    or in a new Figure with one Axes.
    """
    if whitening is not None:
        D = whitening.unwhiten_atoms(D)
    atoms, _ = _as_atoms(D, patch_shape)
    n = atoms.shape[0]
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    elif isinstance(ncols, bool) or not isinstance(ncols, numbers.Integral) or ncols < 1:
        raise ValueError(f"ncols: expected a positive integer, got {ncols!r}.")
    ncols = min(int(ncols), n)
    image = _mosaic(_symmetric_unit(atoms), ncols)

    if ax is None:
        nrows = math.ceil(n / ncols)
        scale = 6.0 / max(ncols, nrows)
        fig = Figure(figsize=(max(2.0, ncols * scale), max(2.0, nrows * scale)))
        ax = fig.add_subplot()
    fig = ax.figure
    _show_patch(ax, image, title)
    return _save(fig, path)


def plot_history(history, keys=None, path=None) -> Figure:
    """Plot training curves, one panel per quantity.

    ``history`` is a dict of equal-length lists.  The x axis is
    ``history["samples_seen"]`` when present, else the step index.  ``keys``
    chooses the panels among ``"mse"``, ``"l1"``, ``"nnz_frac"``,
    ``"dead_frac"``, ``"norms"`` (``norm_min``/``norm_mean``/``norm_max`` on one
    panel), ``"seconds"`` or any other key of ``history``; by default every
    one of those that ``history`` holds.
    """
    if not isinstance(history, dict) or not history:
        raise TypeError("history: expected a non-empty dict of equal-length lists.")
    lengths = {k: len(v) for k, v in history.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history: all lists must have the same length, got {lengths}.")

    def series_of(key):
        if key in _HISTORY_PANELS:
            return [k for k in _HISTORY_PANELS[key] if k in history]
        return [key] if key in history else []

    if keys is None:
        keys = [k for k in (*_HISTORY_PANELS, "seconds") if series_of(k)]
        if not keys:
            keys = [k for k in history if k != "samples_seen"]
    else:
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in keys if not series_of(k)]
        if missing:
            raise ValueError(f"keys: {missing} not in history (available: {sorted(history)}).")
    if not keys:
        raise ValueError("history: nothing to plot besides 'samples_seen'.")

    n_steps = next(iter(lengths.values()))
    if "samples_seen" in history:
        x, xlabel = np.asarray(history["samples_seen"], dtype=float), "samples seen"
    else:
        x, xlabel = np.arange(n_steps), "step"

    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for series in series_of(key):
            ax.plot(x, np.asarray(history[series], dtype=float), label=series)
        if key == "norms":
            ax.legend(fontsize=7)
        ax.set_title(key)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_receptive_fields(x, D, Z_or_codes, *, top: int = 16, patch_shape=None,
                          path=None) -> Figure:
    """Show one input patch, its reconstruction and the atoms it uses.

    ``x`` is one patch (n_features,), ``D`` the dictionary (n_atoms,
    n_features) and ``Z_or_codes`` its code (n_atoms,) (or a (1, n_atoms)
    row).  Panels: the input ``x``, the reconstruction ``z @ D``, then the
    atoms with non-zero coefficient, at most ``top`` of them, ordered by
    decreasing ``|z_k|``.  Each atom is drawn as ``sign(z_k) d_k`` (its
    contribution's shape) and titled with ``z_k``.
    """
    atoms, shape = _as_atoms(D, patch_shape)
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size != int(np.prod(shape)):
        raise ValueError(f"x: expected one patch of {int(np.prod(shape))} values, got {x.size}.")
    z = np.asarray(Z_or_codes, dtype=np.float64)
    if z.ndim == 2 and z.shape[0] == 1:
        z = z[0]
    if z.shape != (atoms.shape[0],):
        raise ValueError(
            f"Z_or_codes: expected the code of one sample, shape ({atoms.shape[0]},) or "
            f"(1, {atoms.shape[0]}), got {z.shape}; pass Z[i] for sample i."
        )
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise ValueError(f"top: expected a positive integer, got {top!r}.")

    order = np.argsort(-np.abs(z), kind="stable")
    order = order[z[order] != 0][:top]
    flat_atoms = atoms.reshape(atoms.shape[0], -1)
    reconstruction = z @ flat_atoms
    panels = [(x, "input"), (reconstruction, "reconstruction")]
    panels += [(np.sign(z[k]) * flat_atoms[k], f"#{k}: {z[k]:+.2g}") for k in order]

    ncols = min(6, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(1.6 * ncols, 1.8 * nrows), layout="constrained")
    img_shape = atoms.shape[1:]
    scaled = _symmetric_unit(np.stack([p.reshape(img_shape) for p, _ in panels]))
    for i, (image, (_, label)) in enumerate(zip(scaled, panels)):
        _show_patch(fig.add_subplot(nrows, ncols, i + 1), image, label)
    fig.suptitle(f"{len(order)} of {int(np.count_nonzero(z))} active atoms", fontsize=9)
    return _save(fig, path)


def plot_compare(rows, curve=None, path=None) -> Figure:
    """Compare sparse-coding methods: objective gap against time.

    ``rows`` is a list of dicts with at least ``"method"``, ``"ms_per_1000"``
    (milliseconds to code 1000 samples) and ``"rel_gap"`` (relative objective
    gap to the reference solution, ``(F - F*) / |F*|``); ``"objective"``,
    ``"mse"``, ``"l0"`` and ``"dead_frac"`` are optional.  Panels:

    1. bars of ``rel_gap`` per method;
    2. ``rel_gap`` against ``ms_per_1000``, one labelled point per method;
    3. if ``curve = {"depth": [...], "fista_iters": [...]}`` is given, the
       number of FISTA iterations matching each unrolled depth.

    Gap axes are symlog so that the reference method's gap of 0 is drawn.
    """
    if not isinstance(rows, (list, tuple)) or not rows:
        raise ValueError("rows: expected a non-empty list of dicts, one per method.")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"rows[{i}]: expected a dict, got {type(row).__name__}.")
        missing = [k for k in _COMPARE_REQUIRED if k not in row]
        if missing:
            raise ValueError(f"rows[{i}]: missing keys {missing}; required: {_COMPARE_REQUIRED}.")
    if curve is not None:
        if not isinstance(curve, dict) or not {"depth", "fista_iters"} <= set(curve):
            raise ValueError("curve: expected a dict with keys 'depth' and 'fista_iters'.")
        if len(curve["depth"]) != len(curve["fista_iters"]):
            raise ValueError("curve: 'depth' and 'fista_iters' must have the same length.")

    methods = [str(r["method"]) for r in rows]
    gaps = np.array([float(r["rel_gap"]) for r in rows])
    times = np.array([float(r["ms_per_1000"]) for r in rows])
    positive = np.abs(gaps[gaps != 0])
    # Below linthresh the symlog axis is linear; put it under the smallest
    # non-zero gap so every real gap sits in the logarithmic part.
    linthresh = float(positive.min()) / 10 if positive.size else 1e-6

    n_panels = 3 if curve is not None else 2
    fig = Figure(figsize=(5.0 * n_panels, 4.0), layout="constrained")
    ax_bar = fig.add_subplot(1, n_panels, 1)
    colours = [f"C{i % 10}" for i in range(len(rows))]
    ax_bar.bar(np.arange(len(rows)), gaps, color=colours)
    ax_bar.set_xticks(np.arange(len(rows)), methods, rotation=45, ha="right", fontsize=8)
    ax_bar.set_yscale("symlog", linthresh=linthresh)
    ax_bar.set_ylabel("relative objective gap")
    ax_bar.grid(axis="y", alpha=0.3)

    ax_sc = fig.add_subplot(1, n_panels, 2)
    ax_sc.scatter(times, gaps, c=colours)
    for t, g, m in zip(times, gaps, methods):
        ax_sc.annotate(m, (t, g), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if np.all(times > 0):
        ax_sc.set_xscale("log")
    ax_sc.set_yscale("symlog", linthresh=linthresh)
    if gaps.min() >= 0:
        # symlog pads below zero otherwise, wasting half the panel.
        ax_sc.set_ylim(bottom=0.0, top=gaps.max() * 2 if gaps.max() > 0 else None)
    ax_sc.set_xlabel("ms per 1000 samples")
    ax_sc.set_ylabel("relative objective gap")
    ax_sc.grid(alpha=0.3)

    if curve is not None:
        ax_c = fig.add_subplot(1, n_panels, 3)
        ax_c.plot(curve["depth"], curve["fista_iters"], marker="o")
        ax_c.set_xlabel("unrolled depth")
        ax_c.set_ylabel("FISTA iterations for the same objective")
        ax_c.grid(alpha=0.3)
    return _save(fig, path)
