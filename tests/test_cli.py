"""The command line: ``sparsolve fit`` and ``python -m sparsolve``."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sparsolve
from sparsolve.cli import main
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
    assert sparsolve.load(out).n_features == 64


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
def test_bad_settings_are_reported_before_the_data_is_read(tmp_path, monkeypatch, flags, says):
    import sparsolve.data

    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the settings were checked")

    monkeypatch.setattr(sparsolve.data, "read_matrix", refuse)
    with pytest.raises(SystemExit, match=says):
        main(["fit", str(tmp_path / "X.npy"), *flags, "--out", str(tmp_path / "m.npz"), "--no-progress"])


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
