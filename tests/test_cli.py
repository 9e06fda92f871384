"""The command line: ``sparsolve fit`` and ``python -m sparsolve``."""
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sparsolve
from sparsolve.data import PICTURE_PATCH
from sparsolve.cli import IMAGE_EPOCHS, main
from sparsolve.data import natural_image_patches


def test_fit_a_data_file(tmp_path, capsys):
    data = tmp_path / "X.npy"
    np.save(data, natural_image_patches(8, 600, seed=4))
    out = tmp_path / "model.npz"
    assert main(["fit", str(data), "--atoms", "16", "--alpha", "0.02", "--solver", "lca", "--max-steps", "3",
                 "--batch-size", "200", "--out", str(out), "--no-progress"]) == 0
    model = sparsolve.load(out)
    assert model.dictionary.shape == (16, 64)
    assert model.solver == "lca" and model.alpha == 0.02
    assert model.history["step"] == [1, 2, 3]
    printed = capsys.readouterr().out
    assert "16 atoms x 64 features" in printed and str(out) in printed
    assert not (tmp_path / "model.png").exists()  # a PNG only on request when DATA is given


def test_default_run_on_natural_images_saves_a_png(tmp_path, capsys):
    out = tmp_path / "default.npz"
    assert main(["fit", "--atoms", "16", "--max-steps", "2", "--out", str(out), "--no-progress"]) == 0
    png = tmp_path / "default.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "natural-image patches" in printed and "nonzeros" in printed and str(png) in printed
    assert "Gabor-like" in printed and "localised" in printed
    assert sparsolve.load(out).n_features == PICTURE_PATCH ** 2  # the default picture: 12×12 patches


@pytest.mark.slow  # a subprocess: a fresh interpreter imports torch and sparsolve
def test_python_dash_m(tmp_path):
    out = tmp_path / "m.npz"
    command = [sys.executable, "-m", "sparsolve", "fit", "--atoms", "8", "--max-steps", "1", "--solver", "fista",
               "--out", str(out), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.exists() and (tmp_path / "m.png").exists()


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(shutil.which("sparsolve") is None, reason="the console script is not installed")
def test_console_script_help():
    result = subprocess.run(["sparsolve", "fit", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--atoms" in result.stdout


def test_missing_data_file(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        main(["fit", str(tmp_path / "nope.npy")])


@pytest.mark.parametrize("flags, says", [(["--alpha", "0"], "alpha must be a finite number > 0"),
                                         (["--batch-size", "0"], "batch_size must be ≥ 1"),
                                         (["--tol", "-1"], "tol must be a finite number > 0")])
def test_bad_settings_are_reported_before_the_data_is_read(tmp_path, monkeypatch, capsys, flags, says):
    import sparsolve.data

    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the settings were checked")

    monkeypatch.setattr(sparsolve.data, "read_matrix", refuse)
    with pytest.raises(SystemExit):
        main(["fit", str(tmp_path / "X.npy"), *flags, "--out", str(tmp_path / "m.npz"), "--no-progress"])
    assert re.search(f"argument {flags[0]}: {says}", capsys.readouterr().err)


def test_npz_archive_and_directory_get_one_line_errors(tmp_path):
    # an archive of one array is read (sparsolve.data.read_matrix); of several, refused in one line
    np.savez(tmp_path / "arr.npz", X=np.ones((10, 4)), y=np.ones(10))
    with pytest.raises(SystemExit, match=r"sparsolve fit: .*arr.npz holds 2 arrays"):
        main(["fit", str(tmp_path / "arr.npz"), "--no-progress"])
    with pytest.raises(SystemExit, match="is a directory"):
        main(["fit", str(tmp_path), "--no-progress"])


def test_unwritable_out_is_refused_before_training(tmp_path, capsys):
    data = tmp_path / "X.npy"
    np.save(data, natural_image_patches(8, 300, seed=4))
    (tmp_path / "blocker").write_text("")
    with pytest.raises(SystemExit, match="--out=.*cannot be written"):
        main(["fit", str(data), "--atoms", "8", "--out", str(tmp_path / "blocker" / "m.npz"),
              "--no-progress"])
    assert "steps" not in capsys.readouterr().out  # nothing trained


def test_version_and_help_for_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and sparsolve.__version__ in capsys.readouterr().out
    from sparsolve.cli import _parser

    fit_parser = _parser()._subparsers._group_actions[0].choices["fit"]
    for action in fit_parser._actions:
        assert action.help, action.option_strings


def test_checkpoint_every_reaches_fit(tmp_path):
    data = tmp_path / "X.npy"
    np.save(data, natural_image_patches(8, 300, seed=4))
    ckpt = tmp_path / "run.npz"
    out = tmp_path / "m.npz"
    args = ["fit", str(data), "--atoms", "8", "--batch-size", "100", "--max-steps", "3", "--checkpoint-every", "2",
            "--checkpoint", str(ckpt), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    meta = sparsolve.io.load_npz(ckpt)[1]
    assert meta["config"]["checkpoint_every"] == 2


def test_a_directory_of_shards_is_streamed(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    X = natural_image_patches(8, 600, seed=4)
    np.save(shards / "a.npy", X[:350])
    np.save(shards / "b.npy", X[350:])
    out = tmp_path / "m.npz"
    main(["fit", str(shards), "--atoms", "8", "--batch-size", "100", "--out", str(out), "--no-progress"])
    assert "2 shards, 600 rows x 64 features, streamed" in capsys.readouterr().out
    model = sparsolve.load(out)
    assert model.dictionary.shape == (8, 64) and model.history["samples_seen"][-1] == 600


# ---- errors found before any training, each naming its flag ---------------------------------------

@pytest.fixture
def small_data(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, natural_image_patches(8, 300, seed=4))
    return path


@pytest.fixture
def no_training(monkeypatch):
    import sparsolve.learning

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the flags were checked")

    monkeypatch.setattr(sparsolve.learning, "fit", refuse)


@pytest.mark.parametrize("png, says", [("pic.xyz", r"--png=.*pic.xyz'?: matplotlib cannot write .xyz files; use one of "
                                                   r".*png"),
                                       ("blocker/pic.png", r"--png=.*cannot be written")])
def test_png_is_checked_before_training(small_data, tmp_path, no_training, png, says):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(SystemExit, match=says):
        main(["fit", str(small_data), "--out", str(tmp_path / "m.npz"), "--png", str(tmp_path / png),
              "--no-progress"])


def test_out_that_is_a_directory_is_refused(small_data, tmp_path, no_training):
    (tmp_path / "models").mkdir()
    for flag in ("--out", "--checkpoint"):
        args = {"--out": str(tmp_path / "m.npz"), flag: str(tmp_path / "models")}
        with pytest.raises(SystemExit, match=rf"{flag}=.*models' is a directory; give a file path such as "):
            main(["fit", str(small_data), *[v for kv in args.items() for v in kv], "--no-progress"])
    assert not (tmp_path / "models.npz").exists()


@pytest.mark.parametrize("flags, says", [(["--seed", "-1"], r"argument --seed: seed must be an integer ≥ 0"),
                                         (["--atoms", "0"], r"argument --atoms/--n-atoms: n_atoms must be ≥ 1"),
                                         (["--tol", "-1"], r"argument --tol: tol must be a finite number > 0")])
def test_bad_values_name_their_flag(small_data, tmp_path, no_training, capsys, flags, says):
    with pytest.raises(SystemExit) as e:
        main(["fit", str(small_data), *flags, "--out", str(tmp_path / "m.npz"), "--no-progress"])
    assert e.value.code == 2
    assert re.search(says, capsys.readouterr().err)


def test_flags_without_the_subcommand_run_fit(tmp_path, capsys):
    """Bare ``sparsolve`` runs fit on the default data, so ``sparsolve --no-progress`` (and any fit
    flag, or DATA alone) does too."""
    out = tmp_path / "m.npz"
    assert main(["--no-progress", "--atoms", "8", "--max-steps", "1", "--out", str(out), "--png",
                 str(tmp_path / "m.png")]) == 0
    assert sparsolve.load(out).history["step"] == [1]


def test_help_states_each_default_once_and_offers_only_valid_devices(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    text = text[text.index("options:"):]
    epochs = text[text.index("--epochs N_EPOCHS, --n-epochs N_EPOCHS"):text.index("--max-steps MAX_STEPS")]
    assert epochs.count("(default") == 1 and f"{IMAGE_EPOCHS} for the default data" in epochs, epochs
    device = text[text.index("--device {cpu,cuda}"):text.index("--storage")]
    assert "none" not in device.lower(), device


def _help_defaults():
    """{FitConfig field: the default its flag's help shows}, from ``sparsolve fit --help`` as printed."""
    import dataclasses
    import re

    from sparsolve.cli import _parser
    from sparsolve.config import FitConfig

    fit_parser = _parser()._subparsers._group_actions[0].choices["fit"]
    printed = " ".join(fit_parser.format_help().split())
    shown = {}
    for action in fit_parser._actions:
        if action.dest in {f.name for f in dataclasses.fields(FitConfig)} and action.dest != "solver_options":
            match = re.search(r"\(default: ([^()]*(?:\([^()]*\)[^()]*)*)\)$", action.help)
            assert match, action.dest
            assert " ".join(action.help.replace("%%", "%").split()) in printed  # as the user reads it
            shown[action.dest] = match.group(1)
    return shown


def test_help_shows_the_defaults_the_code_uses(monkeypatch, tmp_path):
    """Each default in ``sparsolve fit --help`` is the value the code uses: the field's own, or for
    the ones that depend on the data or on another setting, what fit actually picks."""
    import dataclasses
    import re

    from sparsolve import backend
    from sparsolve.config import FitConfig
    from sparsolve.learning import reducer
    from sparsolve.learning.fit import new_learner

    shown = _help_defaults()
    depends = {"n_atoms", "alpha", "batch_size", "n_epochs", "max_steps", "max_iter", "beta", "dead_after",
               "sync_every", "seed", "device"}
    for f in dataclasses.fields(FitConfig):
        if f.name in shown and f.name not in depends:
            assert shown[f.name] == ("none" if f.default is None else str(f.default)), f.name
    # the command line's own, for a data file: what a run without the flags gets
    data = tmp_path / "X.npy"
    np.save(data, natural_image_patches(8, 300, seed=4))
    assert main(["fit", str(data), "--max-steps", "1", "--batch-size", "100", "--out", str(tmp_path / "m"),
                 "--no-progress"]) == 0
    model = sparsolve.load(tmp_path / "m.npz")
    assert shown["n_atoms"].startswith(f"{model.n_atoms}; ") and shown["alpha"].startswith(f"{model.alpha:g}; ")
    assert shown["seed"] == str(model.settings["seed"])
    assert shown["device"] == "cpu" and model.settings["device"] is None  # a file's rows stay on the host

    plain, mod = FitConfig(8, 0.1).resolved(1000), FitConfig(8, 0.1, update="mod").resolved(1000)
    assert shown["batch_size"] == f"{plain.batch_size}, or all rows when there are fewer; all rows for update=mod"
    assert mod.batch_size == 1000 and FitConfig(8, 0.1).resolved(100).batch_size == 100
    epochs = re.match(r"(\d+); (\d+) for update=mod; none when only max_steps is given; (\d+) for the default data",
                      shown["n_epochs"])
    assert epochs and (plain.n_epochs, mod.n_epochs, IMAGE_EPOCHS) == tuple(int(e) for e in epochs.groups())
    assert FitConfig(8, 0.1, max_steps=3).resolved(1000).n_epochs is None and shown["max_steps"] == "no cap"
    assert shown["beta"] == "α" and plain.beta == plain.alpha
    formula = re.fullmatch(r"max\((\d+)·n_atoms, (\d+)·batch_size\)", shown["dead_after"])
    per_atom, per_batch = map(int, formula.groups())
    assert plain.dead_after == max(per_atom * 8, per_batch * plain.batch_size) == 512

    X = np.random.default_rng(0).standard_normal((120, 6))
    host, gpu = map(int, re.fullmatch(r"(\d+) on the host, (\d+) on a GPU", shown["sync_every"]).groups())
    learner = new_learner(X, FitConfig(4, 0.1, batch_size=60).resolved(120))
    assert learner.sync_every(X) == host
    with monkeypatch.context() as patch:
        patch.setattr(backend, "on_gpu", lambda x: True)
        assert learner.sync_every(X) == gpu

    # the inner loop's cap: what each solver's step hands encode
    caps = dict((s, int(n)) for n, s in re.findall(r"(\d+) for (\w+)", shown["max_iter"]))
    own = re.search(r"encode's own for (.*)$", shown["max_iter"])[1].split(" and ")
    assert set(caps) | set(own) == set(sparsolve.inference.REGISTRY)
    seen = {}
    real = reducer.encode

    def spy(X, D, alpha, **options):
        seen[options["solver"]] = options["max_iter"]
        return real(X, D, alpha, **options)

    monkeypatch.setattr(reducer, "encode", spy)
    for solver in [*caps, *own]:
        new_learner(X, FitConfig(4, 0.1, solver=solver, batch_size=60).resolved(120)).step(X[:60])
    assert seen == {**caps, **{s: None for s in own}}
