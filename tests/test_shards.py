"""Activation shards: streamed rows equal the same rows in memory, a resumed stream equals an
uninterrupted one, and bad shard directories are refused before any row is read."""
import numpy as np
import pytest

from sparsolve.data.shards import ShardStream, open_shards

torch = pytest.importorskip("torch")


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, 6)).astype(np.float32) for n in (250, 97, 313)]


@pytest.fixture
def directory(tmp_path, arrays):
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"part{i:02d}.npy", a)
    (tmp_path / "README.txt").write_text("not a shard")
    return tmp_path


OPTIONS = dict(batch_size=64, seed=3, block_rows=40, window_blocks=3)


def _collect(stream, epochs=1):
    return [b for _ in range(epochs) for b in stream]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_streamed_rows_equal_the_rows_in_memory(directory, arrays, prefetch):
    whole = np.concatenate(arrays)
    stream = ShardStream(directory, prefetch=prefetch, **OPTIONS)
    memory = ShardStream(arrays, prefetch=prefetch, **OPTIONS)
    for epoch in range(2):
        rows = stream.epoch_rows(epoch)
        np.testing.assert_array_equal(np.sort(rows), np.arange(whole.shape[0]))  # each row once
        streamed, in_memory = list(stream), list(memory)
        assert [b.shape[0] for b in streamed] == [64] * 10 + [20]
        for got, same, lo in zip(streamed, in_memory, range(0, whole.shape[0], 64)):
            np.testing.assert_array_equal(got, whole[rows[lo:lo + 64]])
            np.testing.assert_array_equal(got, same)
    # the order is shuffled across shards and changes between epochs
    first, second = stream.epoch_rows(0), stream.epoch_rows(1)
    assert not np.array_equal(first, second)
    shard_of = np.searchsorted([250, 347], first, side="right")
    assert any(len(np.unique(shard_of[lo:lo + 64])) > 1 for lo in range(0, first.size, 64))  # batches mix shards
    assert not np.array_equal(shard_of, np.sort(shard_of))  # and the shards are not visited in order


def test_unshuffled_stream_is_the_shards_in_order(directory, arrays):
    batches = list(ShardStream(directory, batch_size=100, shuffle=False))
    np.testing.assert_array_equal(np.concatenate(batches), np.concatenate(arrays))


@pytest.mark.parametrize("stop_after", [1, 4, 10])
def test_resumed_stream_equals_an_uninterrupted_one(directory, stop_after):
    straight = _collect(ShardStream(directory, **OPTIONS), epochs=2)
    first = ShardStream(directory, **OPTIONS)
    seen = []
    for batch in first:
        seen.append(batch)
        if len(seen) == stop_after:
            break
    state = dict(first.state_dict())  # what a checkpoint keeps
    resumed = ShardStream(directory, **OPTIONS)
    resumed.load_state_dict(state)
    seen += _collect(resumed, epochs=2)[: len(straight) - stop_after]
    assert len(seen) == len(straight)
    for a, b in zip(seen, straight):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_other_settings(directory):
    state = ShardStream(directory, **OPTIONS).state_dict()
    other = ShardStream(directory, **{**OPTIONS, "seed": 4})
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)


def test_torch_cpu_device_gives_tensors(directory, arrays):
    batches = list(ShardStream(directory, device="cpu", **OPTIONS))
    assert all(isinstance(b, torch.Tensor) and b.dtype == torch.float32 for b in batches)
    assert sum(b.shape[0] for b in batches) == sum(a.shape[0] for a in arrays)


def test_a_reader_error_reaches_the_consumer(directory):
    stream = ShardStream(directory, **OPTIONS)
    stream.shards[1] = None  # a shard that can no longer be read, discovered by the thread
    with pytest.raises(TypeError):
        list(stream)


def test_empty_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no .npy files"):
        ShardStream(tmp_path, batch_size=8)
    with pytest.raises(ValueError, match="does not exist"):
        ShardStream(tmp_path / "missing", batch_size=8)


def test_shards_of_other_widths_are_refused(directory):
    np.save(directory / "part99.npy", np.zeros((5, 7), np.float32))
    with pytest.raises(ValueError, match=r"part99.npy has 7 features but .*part00.npy has 6"):
        ShardStream(directory, batch_size=8)


def test_shards_of_other_dtypes_are_refused(directory):
    np.save(directory / "part99.npy", np.zeros((5, 6), np.float64))
    with pytest.raises(ValueError, match="part99.npy is float64 but .* is float32"):
        ShardStream(directory, batch_size=8)


def test_a_truncated_shard_is_refused(directory):
    path = directory / "part01.npy"
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"part01.npy is truncated: its header says 97 rows"):
        ShardStream(directory, batch_size=8)


def test_an_object_shard_is_refused_by_its_dtype_before_it_is_mapped(tmp_path):
    np.save(tmp_path / "a.npy", np.array([[1.0, "x"]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"a.npy has dtype object; shards must hold floats"):
        open_shards(tmp_path)


def test_a_folder_named_like_a_shard_is_named_as_a_folder(directory):
    (directory / "sub.npy").mkdir()
    with pytest.raises(ValueError, match="holds a folder named sub.npy; shards are .npy files"):
        open_shards(directory)
    with pytest.raises(ValueError, match="sub.npy is a folder, not a .npy file"):
        open_shards([directory / "sub.npy"])
    with pytest.raises(ValueError, match="part00.npy is a file; a path here must be a directory of .npy shards"):
        open_shards(directory / "part00.npy")


def test_float16_shards_are_learned_from_in_float32(tmp_path, arrays):
    """float16 passes the shard check, so it must pass the solvers too: its rows come out as
    float32, exactly."""
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"part{i}.npy", a.astype(np.float16))
    batches = list(ShardStream(tmp_path, batch_size=100, shuffle=False))
    assert {b.dtype for b in batches} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(np.concatenate(batches), np.concatenate(arrays).astype(np.float16))
    model = fit(tmp_path, 4, 0.1, max_steps=2, **FIT)
    assert np.isfinite(model.dictionary).all() and model.history["step"] == [1, 2]


def test_other_bad_shards_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 3, 2), np.float32))
    with pytest.raises(ValueError, match="must be 2-D"):
        open_shards(tmp_path)
    (tmp_path / "a.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable .npy"):
        open_shards(tmp_path)
    with pytest.raises(ValueError, match="floats"):
        open_shards([np.zeros((3, 2), np.int64)])
    with pytest.raises(TypeError, match="torch array; pass .npy paths or numpy arrays"):
        open_shards([torch.zeros(3, 2)])
    with pytest.raises(TypeError, match="list"):
        open_shards([[1.0, 2.0]])
    with pytest.raises(ValueError, match="batch_size"):
        ShardStream([np.zeros((3, 2))], batch_size=0)
    with pytest.raises(ValueError, match="device"):
        ShardStream([np.zeros((3, 2))], batch_size=2, device="nonsense")


# ---- fit on shards ------------------------------------------------------------------------------
# fit from its module: the README test's patched sparsolve.fit (max_steps capped) can outlive it
from sparsolve.learning.fit import fit  # noqa: E402

FIT = dict(solver="cd", batch_size=64, seed=5, progress=False)


def test_fit_on_a_shard_stream_equals_fit_on_the_same_rows_in_memory(directory, arrays):
    stream = ShardStream(directory, **OPTIONS)
    streamed = fit(stream, 8, 0.1, n_epochs=1, **FIT)
    rows = np.concatenate(arrays)[stream.epoch_rows(0)]  # the stream's order, fit unshuffled
    in_memory = fit(rows, 8, 0.1, n_epochs=1, shuffle=False, **FIT)
    assert streamed.history["samples_seen"][-1] == rows.shape[0]
    np.testing.assert_array_equal(streamed.dictionary, in_memory.dictionary)


@pytest.mark.parametrize("crash_at", [8, 13])  # mid-epoch 0, and mid-epoch 1 (11 batches an epoch)
def test_fit_on_a_shard_directory_resumes_mid_epoch_exactly(directory, tmp_path, crash_at):
    import sparsolve

    full = fit(str(directory), 8, 0.1, n_epochs=2, **FIT)
    assert len(full.history["step"]) == 22
    ckpt = tmp_path / "run.npz"

    class Crash(RuntimeError):
        pass

    def crash(step, D, record):
        if step == crash_at:
            raise Crash

    with pytest.raises(Crash):
        fit(directory, 8, 0.1, n_epochs=2, checkpoint=ckpt, checkpoint_every=3, callback=crash, **FIT)
    assert sparsolve.load(ckpt).history["step"][-1] == crash_at // 3 * 3
    resumed = fit(directory, 8, 0.1, n_epochs=2, checkpoint=ckpt, checkpoint_every=3, **FIT)
    np.testing.assert_array_equal(resumed.dictionary, full.dictionary)
    assert resumed.history["samples_seen"] == full.history["samples_seen"]


def test_fit_on_a_directory_without_shards_is_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no .npy files"):
        fit(tmp_path, 8, 0.1, progress=False)
