"""A trained model is never lost: a save that fails (a full disk, a place the up-front check
could not see) writes the file to a fallback folder and says where before raising; Ctrl-C
without a checkpoint keeps the model so far; NaN in an in-memory array is refused before any
training, naming its row in the user's data."""
import errno
import os
import signal

import numpy as np
import pytest

import sparsolve
from sparsolve import io
from sparsolve.cli import main
from sparsolve.learning.fit import fit
from sparsolve.learning.learner import Learner

FIT = dict(solver="cd", batch_size=100, seed=0, progress=False)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(1).standard_normal((600, 10))


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder ``full`` whose writes fail with ENOSPC (at the rename, after the bytes were
    accepted, the hardest case), and a working folder elsewhere as the current directory."""
    full = tmp_path / "full"
    full.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    replace = os.replace

    def failing(src, dst, *a, **kw):
        if os.path.dirname(os.path.abspath(dst)) == str(full):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", failing)
    return full, work


def _rescued(folder):
    found = sorted(folder.glob("*.npz"))
    assert len(found) == 1, found
    return found[0]


def test_a_model_save_on_a_full_disk_lands_at_the_fallback(data, full_disk):
    full, work = full_disk
    model = fit(data, 4, 0.1, max_steps=2, **FIT)
    with pytest.raises(io.SaveError, match="No space left on device") as e:
        model.save(full / "model.npz")
    rescued = _rescued(work)
    assert str(rescued) in str(e.value) and e.value.fallback == rescued
    assert isinstance(e.value, OSError)  # code that caught the OSError before still does
    np.testing.assert_array_equal(sparsolve.load(rescued).dictionary, model.dictionary)
    assert not list(full.iterdir())  # no temporary left behind


def test_the_cli_out_on_a_full_disk_keeps_the_model(data, full_disk, capsys):
    full, work = full_disk
    np.save(work / "X.npy", data)
    with pytest.raises(SystemExit, match=r"could not write .*model\.npz .*No space left.* written to .*rescued"):
        main(["fit", "X.npy", "--atoms", "4", "--max-steps", "2", "--out", str(full / "model.npz"), "--no-progress"])
    assert sparsolve.load(_rescued(work)).history["step"] == [1, 2]


def test_the_cli_checkpoint_on_a_full_disk_says_where_it_went_and_how_to_resume(data, full_disk):
    full, work = full_disk
    np.save(work / "X.npy", data)
    flags = ["fit", "X.npy", "--atoms", "4", "--batch-size", "100", "--no-progress"]
    with pytest.raises(SystemExit, match=r"could not write .*run\.npz .*resume from it with --checkpoint .*rescued"):
        main([*flags, "--max-steps", "2", "--checkpoint", str(full / "run.npz")])
    rescued = _rescued(work)
    assert main([*flags, "--max-steps", "3", "--checkpoint", str(rescued)]) == 0
    assert sparsolve.load(work / "model.npz").history["step"] == [1, 2, 3]


def test_a_checkpoint_on_a_full_disk_lands_at_the_fallback_and_resumes_from_there(data, full_disk):
    full, work = full_disk
    with pytest.raises(io.SaveError) as e:
        fit(data, 4, 0.1, max_steps=3, checkpoint=full / "run.npz", **FIT)
    rescued = e.value.fallback
    assert rescued.parent == work
    resumed = fit(data, 4, 0.1, max_steps=4, checkpoint=rescued, **FIT)
    assert resumed.history["step"] == [1, 2, 3, 4]
    np.testing.assert_array_equal(resumed.dictionary, fit(data, 4, 0.1, max_steps=4, **FIT).dictionary)


def test_ctrl_c_in_python_fit_hands_back_the_model_so_far(data, ctrl_c_at):
    with pytest.raises(KeyboardInterrupt, match="nothing was saved.*checkpoint=") as e:
        fit(data, 4, 0.1, max_steps=6, callback=ctrl_c_at(3), **FIT)
    assert e.value.model.history["step"] == [1, 2, 3]
    np.testing.assert_array_equal(e.value.model.dictionary, fit(data, 4, 0.1, max_steps=3, **FIT).dictionary)


def _ctrl_c_after_step(monkeypatch, n):
    """A real SIGINT to this process as step n ends, as a Ctrl-C at the keyboard."""
    step = Learner.step

    def stepping(self, *a, **kw):
        record = step(self, *a, **kw)
        if self.t == n:
            os.kill(os.getpid(), signal.SIGINT)
        return record

    monkeypatch.setattr(Learner, "step", stepping)


def test_ctrl_c_in_the_cli_saves_the_model_next_to_out(data, tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "X.npy", data)
    _ctrl_c_after_step(monkeypatch, 2)
    out = tmp_path / "model.npz"
    with pytest.raises(SystemExit) as e:
        main(["fit", str(tmp_path / "X.npy"), "--atoms", "4", "--batch-size", "100", "--max-steps", "5",
              "--out", str(out), "--no-progress"])
    kept = tmp_path / "model.interrupted.npz"
    assert e.value.code == 130
    said = capsys.readouterr().err
    assert "interrupted after step 2" in said and str(kept) in said and "--checkpoint" in said
    assert not out.exists()  # the finished model's path is not taken by an unfinished one
    assert sparsolve.load(kept).history["step"] == [1, 2]


def test_nan_in_an_in_memory_array_is_refused_before_training_naming_its_row(data):
    bad = data.copy()
    bad[5, 3] = np.nan
    steps = []
    with pytest.raises(ValueError, match=r"X has NaN or Inf values \(first in row 5\)"):
        fit(bad, 4, 0.1, n_epochs=1, callback=lambda *a: steps.append(a), **FIT)
    assert steps == []  # refused before the first step


def test_nan_in_a_memmap_names_its_row_in_the_file(data, tmp_path):
    bad = data.copy()
    bad[5, 3] = np.inf
    np.save(tmp_path / "X.npy", bad)
    with pytest.raises(ValueError, match=r"X has NaN or Inf values \(first in row 5\b"):
        fit(np.load(tmp_path / "X.npy", mmap_mode="r"), 4, 0.1, n_epochs=1, **FIT)
