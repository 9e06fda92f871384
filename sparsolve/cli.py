"""The command line: ``sparsolve fit [DATA.npy] --atoms 256 --alpha 0.1 --solver lca --out model.npz``.

Without DATA it runs the library's main job on a default -- 8×8 patches of the two
photographs shipped with scikit-learn (:func:`sparsolve.data.natural_image_patches`,
nothing is downloaded) -- prints a summary and saves a PNG of the dictionary.
``python -m sparsolve`` (no arguments) does the same.

The training flags are generated from the fields of :class:`sparsolve.config.FitConfig`
(``--batch-size`` for ``batch_size``; help text from the field docstrings), so a new
option is written once, in config.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path

import numpy as np

from . import __version__
from .config import FitConfig, field_docs

DEFAULT_PATCHES = 20000
DEFAULT_ALPHA = 0.02

# The command line's own defaults and short names for some fields.
_CLI_DEFAULTS = {"n_atoms": 256, "alpha": DEFAULT_ALPHA, "seed": 0}
_ALIASES = {"n_atoms": ["--atoms"], "n_epochs": ["--epochs"]}
_CHOICES = {"solver": "SOLVERS", "update": "UPDATES", "norm": "FIT_NORMS"}
_LEFT_OUT = ("solver_options",)  # a dict: the Python API's


def _scalar(annotation):
    """int, float, str or bool from a field's annotation (``int | None`` is int)."""
    hint = eval(annotation, {}, {}) if isinstance(annotation, str) else annotation  # noqa: S307 -- our own source
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _add_config_flags(parser):
    from . import config as cfg

    docs = field_docs(FitConfig)
    for f in dataclasses.fields(FitConfig):
        if f.name in _LEFT_OUT:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = _CLI_DEFAULTS.get(f.name, f.default)
        kind = _scalar(f.type)
        doc = docs.get(f.name, "")
        help_text = (doc if "default" in doc else f"{doc} (default: {default})").replace("%", "%%")
        names = [*_ALIASES.get(f.name, []), flag]
        if kind is bool:
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
            continue
        choices = getattr(cfg, _CHOICES[f.name]) if f.name in _CHOICES else None
        if f.name == "device":
            choices = [c for c in cfg.FIT_DEVICES if c is not None]
        parser.add_argument(*names, dest=f.name, type=kind, default=default, choices=choices, help=help_text)


def _parser():
    p = argparse.ArgumentParser(prog="sparsolve", description="Sparse coding: learn a dictionary from data.")
    p.add_argument("--version", action="version", version=f"sparsolve {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="learn a dictionary (default data: natural-image patches)",
                       description="Learn a dictionary D with X ≈ Z D, min ½‖x − zD‖² + α‖z‖₁ per row.")
    f.add_argument("data", nargs="?", help="a .npy file of shape (n_samples, n_features); "
                   f"default: {DEFAULT_PATCHES} 8×8 natural-image patches")
    _add_config_flags(f)
    f.add_argument("--checkpoint", default=None, help="checkpoint file: resume from it, save to it "
                   "(also on Ctrl-C)")
    f.add_argument("--out", default="model.npz", help="where to save the model (default: model.npz)")
    f.add_argument("--png", default=None, help="save a picture of the dictionary here "
                   "(default with no DATA: the --out path with .png)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv or ["fit"])
    return _fit(args)


def _fail(message):
    raise SystemExit(f"sparsolve fit: {message}")


def _load_data(path):
    path = Path(path)
    if not path.exists():
        _fail(f"no such file: {path}")
    if path.is_dir():
        _fail(f"{path} is a directory; give a .npy file of shape (n_samples, n_features)")
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        _fail(f"{path} is not a .npy array file ({e})")
    if not hasattr(X, "shape"):  # an .npz archive: np.load gives a mapping of arrays
        names = list(X.files)
        X.close()
        _fail(f"{path} is an .npz archive (arrays {names}); save the one data array with numpy.save(...) as .npy")
    return X


def _fit(args):
    from .learning import fit
    from .learning.checkpoint import check_writable

    config = {f.name: getattr(args, f.name) for f in dataclasses.fields(FitConfig) if f.name not in _LEFT_OUT}
    if args.data is None:
        from .data import natural_image_patches

        X = natural_image_patches(8, DEFAULT_PATCHES, seed=args.seed)
        source = f"{DEFAULT_PATCHES} 8x8 natural-image patches (scikit-learn sample images, mean removed)"
        if config["n_epochs"] is None and config["max_steps"] is None:
            config["n_epochs"] = 5
        png = args.png or str(Path(args.out).with_suffix(".png"))
    else:
        X = _load_data(args.data)
        source = f"{args.data} {X.shape}"
        png = args.png
    try:
        check_writable(args.out, "--out")
        model = fit(X, config.pop("n_atoms"), config.pop("alpha"), checkpoint=args.checkpoint,
                    progress=not args.no_progress, **config)
    except (ValueError, TypeError) as e:
        _fail(e)
    except KeyboardInterrupt:
        saved = f"; the checkpoint {args.checkpoint} holds the run so far" if args.checkpoint else ""
        _fail(f"interrupted{saved}")
    out = model.save(args.out)
    h = model.history
    print(f"data:       {source}")
    print(f"model:      {model.n_atoms} atoms x {model.n_features} features, alpha={model.alpha:g}, "
          f"solver={model.solver}, update={args.update}, norm={args.norm}")
    print(f"training:   {h['step'][-1]} steps, {h['samples_seen'][-1]} samples, {h['seconds'][-1]:.1f} s")
    print(f"last batch: objective {h['objective'][-1]:.5g}, mse {h['mse'][-1]:.3g}, "
          f"nonzeros {h['nnz_frac'][-1] * model.n_atoms:.1f} per sample, dead atoms {h['dead_frac'][-1]:.1%}, "
          f"atom norms {h['norm_min'][-1]:.3g}..{h['norm_max'][-1]:.3g}, resampled {sum(h['resampled'])}")
    print(f"saved:      {out}")
    if png is not None:
        from .plot import plot_dictionary

        plot_dictionary(model.dictionary, title=f"{model.n_atoms} atoms, alpha={model.alpha:g}", path=png)
        print(f"dictionary: {png}")
    return 0
