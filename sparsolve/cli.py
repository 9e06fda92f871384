"""The command line: ``sparsolve fit [DATA.npy] --atoms 256 --alpha 0.1 --solver lca --out model.npz``.

Without DATA it runs the library's main job on the default data -- 12×12 patches of the two
photographs shipped with scikit-learn, whitened by Olshausen & Field's filter
(:func:`sparsolve.data.natural_image_patches` with ``whiten="of"``; nothing is downloaded) -- and
learns localised Gabor-like atoms; it prints a summary with the fractions of Gabor-like and
localised atoms and saves a PNG of the dictionary.
``python -m sparsolve`` (no arguments) does the same.

The training flags are generated from the fields of :class:`sparsolve.config.FitConfig`
(``--batch-size`` for ``batch_size``; help text from the field docstrings), so a new
option is written once, in config.py.  The dict ``solver_options`` is the repeatable
``--solver-option KEY=VALUE``: each VALUE is read as the chosen solver declares its KEY
(``OPTION_TYPES``), and the solver's own check refuses a bad one before any data is read.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import types
import typing
from pathlib import Path

from . import __version__, io
from .config import FitConfig, alpha_or_l0, check_solver_options, default_help, field_docs
from .data.images import PICTURE_ATOMS, PICTURE_PATCH, WHITENED_ALPHA
from .inference import REGISTRY, solver_class

# The main job without DATA: the default picture (sparsolve.data.images), 100,000 samples of
# whitened natural-image patches that learn localised Gabor-like atoms (benchmarks/picture.py).
DEFAULT_PATCHES = 20000
IMAGE_ATOMS = PICTURE_ATOMS
IMAGE_EPOCHS = 5

# The command line's own defaults and short names for some fields.  n_atoms and alpha stay None
# here: for a DATA file fit chooses them from the data, by the rule the Python API uses
# (sparsolve.learning.choose); the default data has its own (see _fit).
_CLI_DEFAULTS = {"seed": 0}
_CLI_HELP = {"seed": str(_CLI_DEFAULTS["seed"]),
             "device": "cpu"}
_CLI_MORE = {"n_epochs": f"; {IMAGE_EPOCHS} for the default data",
             "n_atoms": f"; {IMAGE_ATOMS} for the default data",
             "alpha": f"; {WHITENED_ALPHA} for the default whitened data"}
# Fields whose docstring differs on the command line: its data are files, so "keep the data where
# it is" (device None) means the CPU, and is no choice to offer.
_CLI_DOCS = {"device": "where the steps run: cpu, or cuda (torch)"}
_ALIASES = {"n_atoms": ["--atoms"], "n_epochs": ["--epochs"]}
# Dict fields: one KEY=VALUE a flag, the flag repeated.
_REPEATED = {"solver_options": "--solver-option"}


def _scalar(annotation):
    """int, float, str or bool from a field's annotation (``int | None`` is int)."""
    hint = eval(annotation, {}, {}) if isinstance(annotation, str) else annotation  # noqa: S307 -- our own source
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE; write e.g. --solver-option gamma=0.5")
    return key.strip(), value


def _solver_option_help(doc, registry=REGISTRY):
    kinds = "; ".join(f"{name}: {cls.option_usage()}" for name, cls in registry.items() if cls.option_usage())
    return (f"{doc}, as KEY=VALUE, once per option, read as the --solver declares it ({kinds}); "
            "e.g. --solver lca --solver-option threshold=nonneg --solver-option accelerate=false")


def default_shown(name) -> str:
    """The default that ``sparsolve fit --help`` shows for a FitConfig field (default_help's words,
    or the command line's own)."""
    return _CLI_HELP.get(name) or default_help(FitConfig)[name] + _CLI_MORE.get(name, "")


def _add_config_flags(parser, cls=FitConfig, *, cli_defaults=_CLI_DEFAULTS, shown=None, aliases=_ALIASES,
                      docs_here=_CLI_DOCS, registry=REGISTRY):
    """One flag a field of the settings dataclass ``cls`` (FitConfig for fit, ConvFitConfig for
    fit-conv); ``shown(name)`` words a field's default; returns {field: its flags}."""
    shown = default_shown if shown is None else shown
    docs = field_docs(cls)
    flags = {}  # field -> its flags, as argparse names them in errors
    for f in dataclasses.fields(cls):
        if f.name in _REPEATED:
            flags[f.name] = _REPEATED[f.name]
            help_text = _solver_option_help(docs.get(f.name, ""), registry).replace("%", "%%")
            parser.add_argument(_REPEATED[f.name], dest=f.name, action="append", type=_key_value, default=None,
                                metavar="KEY=VALUE", help=help_text)
            continue
        flag = "--" + f.name.replace("_", "-")
        default = cli_defaults.get(f.name, f.default)
        kind = _scalar(f.type)
        doc = docs_here.get(f.name) or docs.get(f.name, "")
        help_text = f"{doc} (default: {shown(f.name)})".replace("%", "%%")
        names = [*aliases.get(f.name, []), flag]
        flags[f.name] = "/".join(names)
        if kind is bool:
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
            continue
        choices = cls.CHOICES.get(f.name)
        choices = None if choices is None else [c for c in choices if c is not None]
        parser.add_argument(*names, dest=f.name, type=kind, default=default, choices=choices, help=help_text)
    return flags


def _parser():
    p = argparse.ArgumentParser(prog="sparsolve", description="Sparse coding: learn a dictionary from data.")
    p.add_argument("--version", action="version", version=f"sparsolve {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="learn a dictionary (default data: natural-image patches)",
                       description="Learn a dictionary D with X ≈ Z D, min ½‖x − zD‖² + α‖z‖₁ per row.")
    f.add_argument("data", nargs="?", help="a .npy file of shape (n_samples, n_features), or a directory of "
                   ".npy shards (streamed); "
                   f"default: {DEFAULT_PATCHES} {PICTURE_PATCH}×{PICTURE_PATCH} natural-image patches")
    f.set_defaults(command_parser=f,  # for errors found after parsing, worded as argparse words its own
                   config_flags=_add_config_flags(f))
    f.add_argument("--checkpoint", default=None, help="checkpoint file: resume from it, save to it "
                   "(also on Ctrl-C)")
    f.add_argument("--out", default="model.npz", help="where to save the model (default: model.npz)")
    f.add_argument("--png", default=None, help="save a picture of the dictionary here "
                   "(default with no DATA: the --out path with .png)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_fit_conv_parser(sub)
    return p


COMMANDS = ("fit", "fit-conv")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["fit", *argv]  # bare `sparsolve` runs fit, and so do its flags or DATA alone
    args = _parser().parse_args(argv)
    if args.command == "fit-conv":
        return _fit_conv(args)
    return _fit(args)


def _check_picture(png):
    """Refuse, before any training, a --png that matplotlib cannot write: an unknown format (by its
    extension; none means PNG, as matplotlib appends it) or an unwritable place."""
    from matplotlib.backend_bases import FigureCanvasBase

    from .io import check_writable

    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(png).suffix.lower()[1:]
    if suffix and suffix not in kinds:
        raise ValueError(f"--png={png!r}: matplotlib cannot write .{suffix} files; use one of "
                         f"{', '.join('.' + k for k in sorted(kinds))}")
    check_writable(png if suffix else f"{png}.png", "--png")


def _settings(cls, config: dict, args, fail, check=None):
    """``cls(**config)``, every setting checked before any data is read (and by ``check(config)``
    first), an error naming the flag it came from."""
    try:
        if check is not None:
            check(config)
        return cls(**config)
    except (ValueError, TypeError) as e:
        field = re.match(r"\w+", str(e))
        if field and field.group() in args.config_flags:
            args.command_parser.error(f"argument {args.config_flags[field.group()]}: {e}")
        fail(e)


def _check_outputs(args, fail):
    """Refuse, before any training, an --out, --checkpoint or picture that cannot be written; returns
    the picture's path (--png, or beside --out for the default data; None: no picture)."""
    from .learning.checkpoint import check_writable  # the .npz path that will be written

    try:
        check_writable(args.out, "--out")
        if args.checkpoint is not None:
            check_writable(args.checkpoint, "--checkpoint")
        png = args.png or (str(Path(args.out).with_suffix(".png")) if args.data is None else None)
        if png is not None:
            _check_picture(png)
    except ValueError as e:
        fail(e)
    return png


def _fail(message):
    raise SystemExit(f"sparsolve fit: {message}")


def _interrupted(args, model, reducer):
    """Ctrl-C: say what was kept -- the checkpoint, or the model so far saved next to --out (a
    sibling, so that --out itself only ever holds a finished run) by rank 0 (``reducer.is_root``) --
    and exit with 130."""
    if args.checkpoint:
        said = f"; the checkpoint {args.checkpoint} holds the run so far: run the same command to resume it"
    elif model is None or not reducer.is_root:
        said = "; nothing was trained yet" if model is None else "; rank 0 keeps the model"
    else:
        out = Path(args.out)
        kept = out.with_name(f"{out.name[:-4] if out.suffix == '.npz' else out.name}.interrupted.npz")
        try:
            kept = model.save(kept)
        except OSError as e:
            _fail(f"interrupted; {e}")
        steps = len(model.history.get("step", []))
        said = (f" after step {steps}; the model so far is saved at {kept} (a run without --checkpoint cannot be "
                "resumed: pass --checkpoint run.npz to stop and resume runs)")
    print(f"sparsolve fit: interrupted{said}", file=sys.stderr)
    raise SystemExit(130)


def _solver_options(args, cls=FitConfig, lookup=solver_class, check=check_solver_options):
    """The --solver-option pairs as the solver's typed options, checked by the solver (the check that
    the config runs) before any data is read; an argparse error naming the flag and the solver's options.
    ``cls``, ``lookup`` and ``check``: the settings and the solvers' registry of the command (fit's, or
    fit-conv's)."""
    pairs = args.solver_options or []
    options = dict(pairs)  # a key given twice: the last one, as argparse does for a flag
    if not pairs:
        return options
    flag = _REPEATED["solver_options"]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    try:
        if args.solver != "auto":
            solver = lookup(args.solver)
            for key in options:
                if key in fields:
                    own = "--" + key.replace("_", "-")
                    own = f"{own} or --no-{own[2:]}" if _scalar(fields[key].type) is bool else f"{own} {options[key]}"
                    raise ValueError(f"{key} is a setting of {args.command}, not of the solver: write {own}")
                options[key] = solver.parse_option(key, options[key])
        check(args.solver, options, args.positive)
    except (ValueError, TypeError) as e:
        if args.solver == "auto":
            fix = "; e.g. --solver lca"
        else:
            usage = lookup(args.solver).option_usage()
            fix = (f"; --solver {args.solver} takes {flag} {usage}" if usage else
                   f"; --solver {args.solver} takes no {flag}")
        args.command_parser.error(f"argument {flag}: {e}{fix}")
    return options


def _fit(args):
    from .learning import distributed, fit
    from .learning.fit import default_reducer

    args.solver_options = _solver_options(args)
    config = {f.name: getattr(args, f.name) for f in dataclasses.fields(FitConfig)}
    chosen = [name for name in ("n_atoms", "alpha") if config[name] is None and not (name == "alpha" and
                                                                                  config["l0"] is not None)]
    if args.data is None:  # the default data's recipe; a DATA file's are chosen from it by fit
        for name, value in {"n_atoms": IMAGE_ATOMS, "alpha": WHITENED_ALPHA}.items():
            if name in chosen:
                config[name] = value
        chosen = []
    if args.data is None and config["n_epochs"] is None and config["max_steps"] is None:
        config["n_epochs"] = IMAGE_EPOCHS
    config = _settings(FitConfig, config, args, _fail, check=lambda c: alpha_or_l0(c["alpha"], c["l0"]))
    png = _check_outputs(args, _fail)
    if args.data is None:
        from .data import natural_image_patches

        X = natural_image_patches(PICTURE_PATCH, DEFAULT_PATCHES, seed=args.seed, whiten="of")
        source = (f"{DEFAULT_PATCHES} {PICTURE_PATCH}x{PICTURE_PATCH} natural-image patches (scikit-learn sample "
                  "images whitened by Olshausen & Field's filter, mean removed)")
    elif Path(args.data).is_dir():
        from .data.shards import open_shards

        try:
            shards = open_shards(args.data)  # checked before any work; fit streams them (ShardStream)
        except (OSError, ValueError) as e:
            _fail(f"{args.data} is a directory without usable shards: {e}")
        X = args.data
        source = (f"{args.data}: {len(shards)} shards, {sum(a.shape[0] for a in shards)} rows x "
                  f"{shards[0].shape[1]} features, streamed")
    else:
        from .data import read_matrix

        try:
            X = read_matrix(Path(args.data))
        except (OSError, ValueError) as e:
            _fail(e)
        source = f"{args.data} {X.shape}"
    distributed.init_from_env(args.device)  # under torchrun: join its group, so that the fit's reducer spans the ranks
    reducer = default_reducer(config)
    try:
        model = fit(X, None, None, config=config, checkpoint=args.checkpoint, progress=not args.no_progress)
    except (ValueError, TypeError) as e:
        _fail(e)
    except io.SaveError as e:  # the checkpoint could not be written: it names where it went instead
        _fail(f"{e}; resume from it with --checkpoint {e.fallback}" if e.fallback else e)
    except KeyboardInterrupt as e:
        _interrupted(args, getattr(e, "model", None), reducer)
    if not reducer.is_root:
        return 0  # every rank holds the same model; rank 0 saves and reports it
    try:
        out = model.save(args.out)
    except OSError as e:  # a SaveError names where the model went instead
        _fail(e)
    h = model.history
    print(f"data:       {source}")
    print(f"model:      {model.n_atoms} atoms x {model.n_features} features, alpha={model.alpha:.4g}, "
          f"solver={model.solver}, update={args.update}, norm={args.norm}"
          + (f" ({' and '.join(chosen)} chosen from the data: --help says how)" if chosen else ""))
    print(f"training:   {h['step'][-1]} steps, {h['samples_seen'][-1]} samples, {h['seconds'][-1]:.1f} s")
    print(f"last batch: objective {h['objective'][-1]:.5g}, mse {h['mse'][-1]:.3g}, "
          f"nonzeros {h['nnz_frac'][-1] * model.n_atoms:.1f} per sample, dead atoms {h['dead_frac'][-1]:.1%}, "
          f"atom norms {h['norm_min'][-1]:.3g}..{h['norm_max'][-1]:.3g}, resampled {sum(h['resampled'])}")
    if args.data is None:
        from .gabor import gabor_stats

        g = gabor_stats(model.dictionary)
        print(f"gabor:      {g.frac_good:.0%} of the atoms are Gabor-like (R² ≥ {g.threshold:g} for a fitted "
              f"2-D Gabor), median R² {g.median_r2:.2f}; {g.frac_localized:.0%} are localised (the fitted "
              f"envelope covers ≤ {g.localized:.0%} of the patch; median {g.summary()['median_envelope_area']:.0%})")
    print(f"saved:      {out}")
    if png is not None:
        from .plot import plot_dictionary

        plot_dictionary(model.dictionary, title=f"{model.n_atoms} atoms, alpha={model.alpha:g}", path=png)
        print(f"dictionary: {png}")
    return 0


# ---- sparsolve fit-conv: convolutional dictionary learning (sparsolve.conv) ---------------------------------

# The main job without DATA: whitened crops of the photos (sparsolve.data.natural_image_crops), and a
# setting that learns a bank of oriented edges (examples/results/conv_filters.png).
CONV_CROPS, CONV_CROP = 256, 64
CONV_FILTERS, CONV_FILTER_SIZE, CONV_ALPHA, CONV_EPOCHS = 32, 8, 1.0, 2
_CONV_CLI_DEFAULTS = {"n_filters": None, "filter_size": None, "alpha": None, "seed": 0}
_CONV_CLI_HELP = {"n_filters": f"{CONV_FILTERS}", "filter_size": f"{CONV_FILTER_SIZE}",
                  "alpha": f"{CONV_ALPHA}, for the default whitened crops", "seed": "0", "device": "cpu",
                  "n_epochs": f"1; {CONV_EPOCHS} for the default data"}
_CONV_ALIASES = {"n_filters": ["--filters"], "n_epochs": ["--epochs"]}


def _add_fit_conv_parser(sub):
    from .conv.config import ConvFitConfig
    from .conv.solvers import REGISTRY as CONV_REGISTRY

    words = default_help(ConvFitConfig)
    f = sub.add_parser("fit-conv", help="learn convolutional filters (default data: whitened crops of photos)",
                       description="Learn filters d_k with x ≈ Σ_k d_k ∗ z_k, min ½‖x − Σ d_k ∗ z_k‖² + α Σ‖z_k‖₁ "
                                   "per signal or image.")
    f.add_argument("data", nargs="?", help="a .npy file of shape (n_signals, channels, length) or (n_images, "
                   f"channels, height, width); default: {CONV_CROPS} whitened {CONV_CROP}×{CONV_CROP} crops of "
                   "the scikit-learn photos")
    f.set_defaults(command_parser=f, config_flags=_add_config_flags(
        f, ConvFitConfig, cli_defaults=_CONV_CLI_DEFAULTS, aliases=_CONV_ALIASES, docs_here=_CLI_DOCS,
        registry=CONV_REGISTRY, shown=lambda name: _CONV_CLI_HELP.get(name) or words[name]))
    f.add_argument("--checkpoint", default=None, help="checkpoint file: resume from it, save to it (also on Ctrl-C)")
    f.add_argument("--out", default="conv_model.npz", help="where to save the model (default: conv_model.npz)")
    f.add_argument("--png", default=None, help="save a picture of the filters here (default with no DATA: the "
                   "--out path with .png)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")


def _conv_check(solver, options, positive):
    from .conv.solvers import REGISTRY as CONV_REGISTRY

    if solver == "auto":
        if options:
            raise ValueError(f"solver options {sorted(options)} need a named solver: pick one of "
                             f"{', '.join(CONV_REGISTRY)}")
        return
    CONV_REGISTRY[solver].check(options, positive=positive)


def _fit_conv(args):
    import numpy as np

    from .conv import fit_conv
    from .conv.config import ConvFitConfig
    from .conv.solvers import REGISTRY as CONV_REGISTRY

    def fail(message):
        raise SystemExit(f"sparsolve fit-conv: {message}")

    args.solver_options = _solver_options(args, ConvFitConfig, CONV_REGISTRY.__getitem__, _conv_check)
    config = {f.name: getattr(args, f.name) for f in dataclasses.fields(ConvFitConfig)}
    for name, value in {"n_filters": CONV_FILTERS, "filter_size": CONV_FILTER_SIZE, "alpha": CONV_ALPHA}.items():
        if config[name] is None:
            config[name] = value
    if args.data is None and config["n_epochs"] is None and config["max_steps"] is None:
        config["n_epochs"] = CONV_EPOCHS
    config = _settings(ConvFitConfig, config, args, fail)
    png = _check_outputs(args, fail)
    if args.data is None:
        from .data import natural_image_crops

        X = natural_image_crops(CONV_CROP, CONV_CROPS, seed=args.seed, split="train")
        source = (f"{CONV_CROPS} {CONV_CROP}x{CONV_CROP} crops of the scikit-learn sample images (grey, whitened by "
                  "the patch recipe's rank-24 ZCA as a convolution)")
    else:
        try:
            X = np.load(args.data, allow_pickle=False)
        except (OSError, ValueError) as e:
            fail(f"cannot read {args.data} as a .npy array: {e}")
        source = f"{args.data} {X.shape}"
    try:
        model = fit_conv(X, config=config, checkpoint=args.checkpoint, progress=not args.no_progress)
    except (ValueError, TypeError) as e:
        fail(e)
    except KeyboardInterrupt:
        saved = f"; the checkpoint {args.checkpoint} holds the run so far" if args.checkpoint else ""
        print(f"sparsolve fit-conv: interrupted{saved}", file=sys.stderr)
        raise SystemExit(130) from None
    out = model.save(args.out)
    h = model.history
    print(f"data:       {source}")
    print(f"model:      {model.n_filters} filters of {'×'.join(map(str, model.filters.shape[2:]))} "
          f"({model.filters.shape[1]} channel(s)), alpha={model.alpha:g}, boundary={model.boundary}, norm={config.norm}")
    print(f"training:   {h['step'][-1]} steps, {h['samples_seen'][-1]} signals, {h['seconds'][-1]:.1f} s")
    print(f"last batch: objective {h['objective'][-1]:.5g}, mse {h['mse'][-1]:.3g}, nonzero codes "
          f"{h['nnz_frac'][-1]:.2%}, filter norms {h['norm_min'][-1]:.3g}..{h['norm_max'][-1]:.3g}")
    square = model.filters.ndim == 4 and model.filters.shape[1] == 1
    if square:
        from .gabor import gabor_stats

        g = gabor_stats(model.as_patch_dictionary(), model.filters.shape[2:])
        print(f"gabor:      {g.frac_good:.0%} of the filters are Gabor-like (R² ≥ {g.threshold:g} for a fitted "
              f"2-D Gabor), median R² {g.median_r2:.2f}; orientations 0/45/90/135°: "
              f"{g.orientation_histogram().tolist()}")
    print(f"saved:      {out}")
    if png is not None and square:
        from .plot import plot_dictionary

        plot_dictionary(model.as_patch_dictionary(), patch_shape=model.filters.shape[2:],
                        title=f"{model.n_filters} filters, alpha={model.alpha:g}", path=png)
        print(f"filters:    {png}")
    return 0
