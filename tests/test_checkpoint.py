"""learning/checkpoint.py: resume, the refusals (other settings, other data), Ctrl-C and SIGTERM, output paths."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sparsolve
from sparsolve.data import natural_image_patches
from sparsolve.io import ModelFileError

FIT = dict(solver="cd", batch_size=100, seed=7, progress=False)


@pytest.mark.parametrize("update", ["online", "sgd"])  # sgd: Adam's moments go through the checkpoint
def test_resumed_run_equals_uninterrupted(patches, tmp_path, update):
    full = sparsolve.fit(patches, 16, 0.01, n_epochs=2, update=update, lr=0.01, **FIT)
    ckpt = tmp_path / "run.npz"

    class Crash(RuntimeError):
        pass

    def crash(step, D, record):
        if step == 17:
            raise Crash

    with pytest.raises(Crash):
        sparsolve.fit(patches, 16, 0.01, n_epochs=2, update=update, lr=0.01, checkpoint=ckpt, checkpoint_every=5,
                      callback=crash, **FIT)
    assert sparsolve.load(ckpt).history["step"][-1] == 15
    resumed = sparsolve.fit(patches, 16, 0.01, n_epochs=2, update=update, lr=0.01, checkpoint=ckpt,
                            checkpoint_every=5, **FIT)
    np.testing.assert_array_equal(resumed.dictionary, full.dictionary)
    assert resumed.history["step"] == full.history["step"]
    np.testing.assert_allclose(resumed.history["objective"], full.history["objective"])


def test_resume_with_other_settings_is_refused(patches, tmp_path):
    ckpt = tmp_path / "run.npz"
    sparsolve.fit(patches, 16, 0.01, max_steps=2, checkpoint=ckpt, **FIT)
    with pytest.raises(ValueError, match="alpha"):
        sparsolve.fit(patches, 16, 0.02, max_steps=4, checkpoint=ckpt, **FIT)


def test_corrupt_checkpoint_is_reported_and_left_intact(patches, tmp_path):
    ckpt = tmp_path / "run.npz"
    sparsolve.fit(patches, 8, 0.01, max_steps=2, checkpoint=ckpt, **FIT)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    truncated = ckpt.read_bytes()
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        sparsolve.fit(patches, 8, 0.01, max_steps=4, checkpoint=ckpt, **FIT)
    assert ckpt.read_bytes() == truncated  # not overwritten by a fresh run


def test_resume_on_other_data_is_refused_naming_both(patches, tmp_path):
    ckpt = tmp_path / "run.npz"
    sparsolve.fit(patches, 8, 0.01, max_steps=2, checkpoint=ckpt, **FIT)
    with pytest.raises(ValueError, match=rf"other data: it saw an array of shape \({len(patches)}, 64\), float64, this fit "
                                         rf"has an array of shape \({len(patches) - 100}, 64\)"):
        sparsolve.fit(patches[:-100], 8, 0.01, max_steps=4, checkpoint=ckpt, **FIT)
    with pytest.raises(ValueError, match=r"other data: the batch of step 1 \(epoch 0, batch 0\) differs"):
        sparsolve.fit(patches[::-1].copy(), 8, 0.01, max_steps=4, checkpoint=ckpt, **FIT)
    more = sparsolve.fit(patches, 8, 0.01, max_steps=3, checkpoint=ckpt, **FIT)  # the same data resumes
    assert more.history["step"] == [1, 2, 3]


def test_keyboard_interrupt_saves_a_checkpoint(patches, tmp_path, ctrl_c_at):
    ckpt = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        sparsolve.fit(patches, 8, 0.01, max_steps=6, checkpoint=ckpt, callback=ctrl_c_at(3), **FIT)
    assert sparsolve.load(ckpt).history["step"] == [1, 2, 3]  # before checkpoint_every=100 came round
    full = sparsolve.fit(patches, 8, 0.01, max_steps=6, **FIT)
    resumed = sparsolve.fit(patches, 8, 0.01, max_steps=6, checkpoint=ckpt, **FIT)
    np.testing.assert_array_equal(resumed.dictionary, full.dictionary)


@pytest.mark.slow  # a subprocess
def test_sigterm_saves_a_checkpoint(tmp_path):
    ckpt = tmp_path / "run.npz"
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        import sparsolve
        X = np.random.default_rng(0).standard_normal((400, 16))
        def term(step, D, record):
            if step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        sparsolve.fit(X, 8, 0.1, solver="cd", batch_size=50, max_steps=50, seed=0, progress=False,
                      checkpoint={str(ckpt)!r}, callback=term)
        print("not reached")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 143, result.stderr
    assert "not reached" not in result.stdout
    assert sparsolve.load(ckpt).history["step"] == [1, 2, 3]  # the step under way finished, then the save


def test_unwritable_checkpoint_path_is_refused_before_training(patches, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    calls = []
    with pytest.raises(ValueError, match="checkpoint=.*cannot be written"):
        sparsolve.fit(patches, 8, 0.01, max_steps=2, checkpoint=blocker / "run.npz",
                      callback=lambda *a: calls.append(a), **FIT)
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        sparsolve.fit(patches, 8, 0.01, max_steps=2, checkpoint=tmp_path / "dir.npz", **FIT)
    assert calls == []


def test_a_checkpoint_whose_statistics_have_the_wrong_shape_is_refused_naming_them(patches, tmp_path):
    """Checked on load, every array against the config's shapes: not a numpy broadcast error mid-resume."""
    from sparsolve import io

    ckpt = tmp_path / "run.npz"
    sparsolve.fit(patches, 16, 0.01, max_steps=2, checkpoint=ckpt, **FIT)
    arrays, meta = io.load_npz(ckpt, "fit_checkpoint")
    io.save_npz(ckpt, "fit_checkpoint", {**arrays, "stats_A": arrays["stats_A"][:15]}, meta)
    with pytest.raises(ModelFileError, match=r"'stats_A' has shape \(15, 16\) .*expected shape \(16, 16\)"):
        sparsolve.fit(patches, 16, 0.01, max_steps=4, checkpoint=ckpt, **FIT)
    io.save_npz(ckpt, "fit_checkpoint", {**arrays, "idle": arrays["idle"][:3]}, meta)
    with pytest.raises(ModelFileError, match=r"'idle' has shape \(3,\)"):
        sparsolve.fit(patches, 16, 0.01, max_steps=4, checkpoint=ckpt, **FIT)


@pytest.mark.parametrize("update", ["online", "sgd"])
def test_checkpoints_of_the_earlier_format_resume(tmp_path, update):
    """tests/data/fit_checkpoint_<update>_v0.npz were written by sparsolve before the update rules became
    objects (commit 5f86974), by the fit below stopped in its step 3 (so saved at step 2).  Resumed
    by this sparsolve, they give the uninterrupted run's dictionary, bit for bit."""
    import shutil
    from pathlib import Path

    X = natural_image_patches(8, 400, seed=3)
    settings = dict(solver="cd", update=update, lr=0.01, batch_size=100, n_epochs=2, seed=5, progress=False)
    path = tmp_path / "old.npz"
    shutil.copy(Path(__file__).parent / "data" / f"fit_checkpoint_{update}_v0.npz", path)
    assert sparsolve.load(path).history["step"] == [1, 2]
    resumed = sparsolve.fit(X, 8, 0.1, checkpoint=path, checkpoint_every=2, **settings)
    whole = sparsolve.fit(X, 8, 0.1, **settings)
    np.testing.assert_array_equal(resumed.dictionary, whole.dictionary)
    assert resumed.history["step"] == whole.history["step"] == list(range(1, 9))


def test_a_checkpoint_of_the_earlier_format_is_checked_on_what_it_recorded(tmp_path):
    """An earlier checkpoint has no digests: its sample of rows refuses other data, and its resumed
    run's next save records the digests of the batches read from the resume on."""
    import shutil
    from pathlib import Path

    from sparsolve import io

    X = natural_image_patches(8, 400, seed=3)
    settings = dict(solver="cd", update="online", lr=0.01, batch_size=100, n_epochs=2, seed=5, progress=False)
    path = tmp_path / "old.npz"
    shutil.copy(Path(__file__).parent / "data" / "fit_checkpoint_online_v0.npz", path)
    with pytest.raises(ValueError, match=r"written on other data: it saw an array of shape \(400, 64\), float64, "
                                         r"rows #\w+, this fit has an array of shape \(400, 64\), float64, rows #"):
        sparsolve.fit(X + 1.0, 8, 0.1, checkpoint=path, **settings)
    sparsolve.fit(X, 8, 0.1, checkpoint=path, checkpoint_every=2, max_steps=4, **settings)
    arrays, meta = io.load_npz(path, "fit_checkpoint")
    assert meta["data"]["digest"] == "sha256" and arrays["consumed"][:, 0].tolist() == [3, 4]

