"""A resume reads the data the checkpoint's run read: every consumed batch's digest is recorded,
and a resume on data where any of those batches changed is refused, naming the first such step.

Rows the run had not reached yet may change: the resumed run is then the uninterrupted run on
the new data, which is what a resume promises.  Shard directories are checked by their contents
(sizes and hashes), wherever the directory lies and however its path is written."""
import os
import shutil

import numpy as np
import pytest

from sparsolve.learning.digests import digest
# fit from its module: the README test's patched sparsolve.fit (max_steps capped) can outlive it
from sparsolve.learning.fit import fit

FIT = dict(solver="cd", batch_size=100, seed=7, progress=False)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(3).standard_normal((1000, 12))


def _checkpoint(X, tmp_path, steps=3, **kw):
    ckpt = tmp_path / "run.npz"
    fit(X, 6, 0.1, max_steps=steps, checkpoint=ckpt, **{**FIT, **kw})
    return ckpt


def test_one_changed_row_of_a_consumed_batch_is_refused_naming_its_step(data, tmp_path):
    ckpt = _checkpoint(data, tmp_path, shuffle=False)  # steps 1..3 read rows 0..299
    changed = data.copy()
    changed[150, 4] += 1e-9
    with pytest.raises(ValueError, match=r"run\.npz was written on other data: the batch of step 2 \(epoch 0, "
                                         r"batch 1\) differs"):
        fit(changed, 6, 0.1, max_steps=6, checkpoint=ckpt, shuffle=False, **FIT)
    later = data.copy()
    later[700] = 0.0  # not read yet: the resumed run is the uninterrupted run on this data
    resumed = fit(later, 6, 0.1, max_steps=6, checkpoint=ckpt, shuffle=False, **FIT)
    whole = fit(later, 6, 0.1, max_steps=6, shuffle=False, **FIT)
    np.testing.assert_array_equal(resumed.dictionary, whole.dictionary)


def test_rows_1_to_99_times_minus_3_are_refused(data, tmp_path):
    """The issue's case: 16 sampled rows never saw the change."""
    ckpt = _checkpoint(data, tmp_path)
    changed = data.copy()
    changed[1:100] *= -3
    with pytest.raises(ValueError, match="on other data: the batch of step 1 "):
        fit(changed, 6, 0.1, max_steps=6, checkpoint=ckpt, **FIT)


def test_a_change_in_an_earlier_epoch_is_refused(data, tmp_path):
    ckpt = _checkpoint(data, tmp_path, steps=12)  # 10 steps an epoch: into epoch 1
    changed = data.copy()
    changed[999] *= 2  # read in epoch 0 whatever the order
    with pytest.raises(ValueError, match=r"the batch of step \d+ \(epoch 0, batch \d\) differs"):
        fit(changed, 6, 0.1, max_steps=14, checkpoint=ckpt, **FIT)


def test_a_memmap_changed_on_disk_is_refused(data, tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, data)
    ckpt = _checkpoint(np.load(path, mmap_mode="r"), tmp_path, shuffle=False)
    disk = np.load(path, mmap_mode="r+")
    disk[250, 0] = -disk[250, 0]
    disk.flush()
    del disk
    with pytest.raises(ValueError, match=r"the batch of step 3 \(epoch 0, batch 2\) differs"):
        fit(np.load(path, mmap_mode="r"), 6, 0.1, max_steps=6, checkpoint=ckpt, shuffle=False, **FIT)


def test_a_torch_tensor_resumes_on_the_same_rows_and_is_refused_on_others(data, tmp_path):
    torch = pytest.importorskip("torch")
    ckpt = _checkpoint(torch.from_numpy(data), tmp_path)
    fit(torch.from_numpy(data.copy()), 6, 0.1, max_steps=4, checkpoint=ckpt, **FIT)  # same rows: resumes
    changed = data.copy()
    changed[:, 3] += 1.0
    with pytest.raises(ValueError, match="the batch of step 1 "):
        fit(torch.from_numpy(changed), 6, 0.1, max_steps=6, checkpoint=ckpt, **FIT)


@pytest.mark.parametrize("one_pass", [False, True])
def test_a_list_of_batches_that_differs_after_the_first_is_refused(data, tmp_path, one_pass):
    batches = np.split(data, 10)
    source = (lambda b: iter(b)) if one_pass else (lambda b: b)
    ckpt = _checkpoint(source(batches), tmp_path, steps=4)
    changed = [b.copy() for b in batches]
    changed[2][17, 5] = 3.0
    with pytest.raises(ValueError, match=r"the batch of step 3 \(epoch 0, batch 2\) differs"):
        fit(source(changed), 6, 0.1, max_steps=8, checkpoint=ckpt, **FIT)
    resumed = fit(source(batches), 6, 0.1, max_steps=8, checkpoint=ckpt, **FIT)
    np.testing.assert_array_equal(resumed.dictionary, fit(source(batches), 6, 0.1, max_steps=8, **FIT).dictionary)


def test_a_list_that_lost_a_consumed_batch_is_refused(data, tmp_path):
    batches = np.split(data, 10)
    ckpt = _checkpoint(batches, tmp_path, steps=12, n_epochs=2)  # into the second pass
    with pytest.raises(ValueError, match=r"step 10 \(epoch 0, batch 9\).*no longer"):
        fit(batches[:9], 6, 0.1, max_steps=14, n_epochs=2, checkpoint=ckpt, **FIT)


# ---- shard directories: by contents, not by path --------------------------------------------------

@pytest.fixture
def shards(tmp_path, data):
    folder = tmp_path / "acts"
    folder.mkdir()
    for i, part in enumerate(np.split(data.astype(np.float32), [400, 700])):
        np.save(folder / f"part{i}.npy", part)
    return folder


def test_a_replaced_shard_is_refused_naming_it(shards, tmp_path):
    ckpt = _checkpoint(shards, tmp_path)
    replacement = np.load(shards / "part1.npy")
    replacement[5, 5] += 1.0
    np.save(shards / "part1.npy", replacement)  # same name, size and shape: other rows
    with pytest.raises(ValueError, match=r"other data: shard part1\.npy differs"):
        fit(shards, 6, 0.1, max_steps=6, checkpoint=ckpt, **FIT)


def test_the_same_shards_by_relative_absolute_or_moved_path_resume(shards, tmp_path, monkeypatch):
    ckpt = _checkpoint(shards, tmp_path)
    monkeypatch.chdir(tmp_path)
    fit("acts", 6, 0.1, max_steps=4, checkpoint=ckpt, **FIT)  # relative: the same data
    moved = tmp_path / "elsewhere" / "acts"
    shutil.copytree(shards, moved)
    resumed = fit(moved, 6, 0.1, max_steps=5, checkpoint=ckpt, **FIT)
    assert resumed.history["step"] == [1, 2, 3, 4, 5]
    os.remove(moved / "part2.npy")
    with pytest.raises(ValueError, match="other data"):
        fit(moved, 6, 0.1, max_steps=6, checkpoint=ckpt, **FIT)


def test_device_digests_are_recorded_and_checked_as_host_ones(data, tmp_path, monkeypatch):
    """The GPU path without a GPU: torch CPU batches digested with mix64, the kind a CUDA batch gets,
    kept as pending tensors until the checkpoint reads them, and replayed with the same kind."""
    torch = pytest.importorskip("torch")
    import sparsolve
    from sparsolve.learning import digests

    monkeypatch.setattr(digests, "kind_for", lambda batch: "mix64")
    ckpt = _checkpoint(torch.from_numpy(data), tmp_path)
    assert sparsolve.io.load_npz(ckpt)[1]["data"]["digest"] == "mix64"
    monkeypatch.undo()  # the resume uses the checkpoint's kind, whatever its first batch would choose
    fit(torch.from_numpy(data), 6, 0.1, max_steps=4, checkpoint=ckpt, **FIT)
    changed = data.copy()
    changed[:, 0] = -changed[:, 0]
    with pytest.raises(ValueError, match="the batch of step 1 "):
        fit(torch.from_numpy(changed), 6, 0.1, max_steps=6, checkpoint=ckpt, **FIT)


# ---- the digest itself ---------------------------------------------------------------------------

def test_the_device_digest_is_exact_and_the_same_in_every_library():
    """mix64, the digest computed where a GPU batch lies (no copy to the host), is integer
    arithmetic: numpy and torch give the same value, and it sees a sign flip of two entries
    (which cancels in a plain weighted sum mod 2⁶⁴), a swap of two rows and one changed bit."""
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
    base = digest(X, "mix64")
    assert int(digest(torch.from_numpy(X), "mix64")) == int(base)
    flipped = X.copy()
    flipped[3, 2] *= -1
    flipped[40, 7] *= -1
    swapped = X[[1, 0, *range(2, 64)]]
    bit = X.copy()
    bit.view(np.int32)[10, 0] ^= 1
    for other in (flipped, swapped, bit, X.astype(np.float64)):
        assert int(digest(other, "mix64")) != int(base)
    for other in (flipped, swapped, bit, X.astype(np.float64)):
        assert digest(other, "sha256") != digest(X, "sha256")
    bf16 = torch.from_numpy(X).to(torch.bfloat16)  # no numpy form: hashed through its bits
    assert digest(bf16, "sha256") == digest(bf16.clone(), "sha256")
    assert int(digest(bf16, "mix64")) == int(digest(bf16.clone(), "mix64"))
