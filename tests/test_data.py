import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from sparsolve import data
from sparsolve.data import (
    Whitening,
    contrast_normalize,
    extract_patches,
    load_cifar10,
    load_cifar10_torchvision,
    load_natural_images,
    natural_image_patches,
    remove_mean,
    whiten_images,
)


# ---------------------------------------------------------------- images/patches

def test_load_natural_images_grey_and_colour():
    grey = load_natural_images()
    colour = load_natural_images(grey=False)
    assert len(grey) == len(colour) == 2
    for g, c in zip(grey, colour):
        assert g.ndim == 2 and c.ndim == 3 and c.shape[2] == 3
        assert g.shape == c.shape[:2]
        assert g.dtype == c.dtype == np.float64
        assert 0.0 <= g.min() and g.max() <= 1.0
        np.testing.assert_allclose(g, c @ [0.299, 0.587, 0.114])


def test_natural_image_patches_default():
    X = natural_image_patches(n_patches=500)
    assert X.shape == (500, 64) and X.dtype == np.float64
    np.testing.assert_allclose(X.mean(axis=1), 0.0, atol=1e-12)
    assert X.std() > 0.01
    np.testing.assert_array_equal(X, natural_image_patches(n_patches=500))
    assert not np.array_equal(X, natural_image_patches(n_patches=500, seed=1))


def test_natural_image_patches_options():
    X = natural_image_patches(6, 300, remove_mean=False, grey=False)
    assert X.shape == (300, 6 * 6 * 3)
    assert X.min() >= 0.0 and X.max() <= 1.0
    w = Whitening("pca", n_components=10)
    Y = natural_image_patches(8, 2000, whiten=w)
    assert Y.shape == (2000, 10)
    assert hasattr(w, "whitening_")
    assert natural_image_patches(8, 2000, whiten="zca").shape == (2000, 64)
    with pytest.raises(ValueError, match="whiten"):
        natural_image_patches(whiten="nope")


def test_extract_patches_random_matches_image_content():
    rng = np.random.default_rng(0)
    img = rng.random((20, 30, 3))
    X = extract_patches(img, 4, 50, seed=3)
    assert X.shape == (50, 48)
    windows = {img[r:r + 4, c:c + 4].tobytes() for r in range(17) for c in range(27)}
    assert all(x.reshape(4, 4, 3).tobytes() in windows for x in X)


def test_extract_patches_grid_and_lists():
    img = np.arange(12 * 10, dtype=float).reshape(12, 10)
    X = extract_patches(img, 4)
    assert X.shape == (3 * 2, 16)
    np.testing.assert_array_equal(X[1].reshape(4, 4), img[0:4, 4:8])
    X = extract_patches([img, img[:5, :5]], 3, stride=1)
    assert X.shape == (10 * 8 + 3 * 3, 9)
    stack = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    assert extract_patches(stack, 8).shape == (4, 192)
    assert extract_patches([img, img], 2, 7, seed=0).dtype == np.float64


@pytest.mark.parametrize(
    "images, kwargs, exc, match",
    [
        (np.zeros((5, 5)), dict(patch_size=6), ValueError, "larger than"),
        (np.zeros(5), dict(patch_size=2), ValueError, "images"),
        (np.zeros((2, 2, 2, 2, 2)), dict(patch_size=2), ValueError, "images"),
        ([np.zeros((5, 5)), np.zeros((5, 5, 3))], dict(patch_size=2), ValueError, "channels"),
        ([], dict(patch_size=2), ValueError, "empty"),
        ("image", dict(patch_size=2), TypeError, "images"),
        (np.zeros((5, 5)), dict(patch_size=0), ValueError, "patch_size"),
        (np.zeros((5, 5)), dict(patch_size=2.5), TypeError, "patch_size"),
        (np.zeros((5, 5)), dict(patch_size=2, n_patches=3, stride=1), ValueError, "stride"),
        (np.zeros((5, 5)), dict(patch_size=2, n_patches=0), ValueError, "n_patches"),
        (np.zeros((5, 5)), dict(patch_size=2, stride=0), ValueError, "stride"),
    ],
)
def test_extract_patches_bad_input(images, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        extract_patches(images, **kwargs)


def test_remove_mean_and_contrast_normalize():
    rng = np.random.default_rng(0)
    X = rng.random((40, 16)) * 3 + 1
    Xm = remove_mean(X)
    np.testing.assert_allclose(Xm.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(Xm + X.mean(axis=1, keepdims=True), X)
    Xn = contrast_normalize(X, eps=0.0)
    np.testing.assert_allclose(Xn.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(Xn.std(axis=1), 1)
    # A flat patch stays (near) zero instead of being divided by zero.
    assert np.all(np.isfinite(contrast_normalize(np.ones((2, 16)))))
    with pytest.raises(ValueError, match="X"):
        remove_mean(np.zeros(5))
    with pytest.raises(TypeError, match="X"):
        remove_mean(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="eps"):
        contrast_normalize(X, eps=-1)


# ---------------------------------------------------------------- whitening

def _correlated(n=5000, p=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) + rng.standard_normal(p)


@pytest.mark.parametrize("method", ["zca", "pca"])
def test_whitening_round_trip_and_identity_covariance(method):
    X = _correlated()
    w = Whitening(method, eps=1e-8)
    Y = w.fit_transform(X)
    assert Y.shape == X.shape
    np.testing.assert_allclose(np.cov(Y.T, bias=True), np.eye(10), atol=1e-5)
    np.testing.assert_allclose(w.inverse_transform(Y), X, atol=1e-9)
    np.testing.assert_allclose(w.inverse_transform(w.transform(X[:3])), X[:3], atol=1e-9)


def test_zca_is_symmetric_and_pca_truncates():
    X = _correlated()
    w = Whitening("zca").fit(X)
    np.testing.assert_allclose(w.whitening_, w.whitening_.T, atol=1e-12)
    p = Whitening("pca", eps=1e-8, n_components=4)
    Y = p.fit_transform(X)
    assert Y.shape == (5000, 4)
    np.testing.assert_allclose(np.cov(Y.T, bias=True), np.eye(4), atol=1e-5)
    # Truncated round trip = projection of the centred data on the top-4 subspace.
    Xc = X - X.mean(axis=0)
    U = p.components_.T
    np.testing.assert_allclose(p.inverse_transform(Y) - X.mean(axis=0), Xc @ U @ U.T, atol=1e-8)


def test_unwhiten_atoms_gives_pixel_space_generative_atoms():
    X = _correlated()
    w = Whitening("zca").fit(X)
    rng = np.random.default_rng(1)
    D = rng.standard_normal((3, 10))
    Z = rng.standard_normal((7, 3))
    np.testing.assert_allclose(w.inverse_transform(Z @ D), Z @ w.unwhiten_atoms(D) + w.mean_)


def test_whitening_on_mean_removed_patches_is_finite():
    X = natural_image_patches(8, 3000)
    w = Whitening("zca")
    Y = w.fit_transform(X)
    assert np.all(np.isfinite(Y))
    assert np.all(np.diag(np.cov(Y.T)) < 1.01)
    np.testing.assert_allclose(w.inverse_transform(Y), X, atol=1e-10)


def test_whitening_bad_input():
    with pytest.raises(ValueError, match="method"):
        Whitening("svd")
    with pytest.raises(ValueError, match="eps"):
        Whitening(eps=-1)
    with pytest.raises(ValueError, match="n_components"):
        Whitening("pca", n_components=0)
    with pytest.raises(ValueError, match="n_components"):
        Whitening("pca", n_components=20).fit(_correlated())
    with pytest.raises(ValueError, match="fit"):
        Whitening().transform(_correlated())
    w = Whitening().fit(_correlated())
    with pytest.raises(ValueError, match="features"):
        w.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="D"):
        w.unwhiten_atoms(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 samples"):
        Whitening().fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="eps"):
        Whitening(eps=0.0).fit(np.zeros((5, 3)))


# ---------------------------------------------------------------- CIFAR-10

def _batch(n, seed, label="training batch"):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


BATCHES = {f"data_batch_{i}": _batch(4, i) for i in range(1, 6)}
BATCHES["test_batch"] = _batch(3, 99, "testing batch")


def _write_folder(root, batches=BATCHES):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    return folder


def _write_archive(root, batches=BATCHES):
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, batch in batches.items():
            raw = pickle.dumps(batch, protocol=4) if not isinstance(batch, bytes) else batch
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def _expected(names):
    data = np.concatenate([BATCHES[n][b"data"] for n in names])
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) / 255.0
    labels = np.concatenate([BATCHES[n][b"labels"] for n in names])
    return images, labels


@pytest.mark.parametrize("layout", ["folder", "archive", "parent_of_folder", "parent_of_archive"])
def test_load_cifar10_layouts(tmp_path, layout):
    if layout in ("folder", "parent_of_folder"):
        path = _write_folder(tmp_path)
    else:
        path = _write_archive(tmp_path)
    if layout.startswith("parent"):
        path = tmp_path
    images, labels = load_cifar10(path)
    exp_images, exp_labels = _expected([f"data_batch_{i}" for i in range(1, 6)])
    assert images.shape == (20, 32, 32, 3)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_allclose(images, exp_images, atol=1e-6)
    np.testing.assert_array_equal(labels, exp_labels)

    images, labels = load_cifar10(path, train=False)
    exp_images, exp_labels = _expected(["test_batch"])
    np.testing.assert_allclose(images, exp_images, atol=1e-6)
    np.testing.assert_array_equal(labels, exp_labels)

    images, labels = load_cifar10(path, max_batches=2)
    np.testing.assert_allclose(images, _expected(["data_batch_1", "data_batch_2"])[0], atol=1e-6)


def test_load_cifar10_colour_layout_matches_cifar_format(tmp_path):
    batch = _batch(1, 0)
    # CIFAR stores 1024 red values, then 1024 green, then 1024 blue, row-major.
    batch[b"data"][0, :1024] = 255
    batch[b"data"][0, 1024:] = 0
    _write_folder(tmp_path, {"test_batch": batch})
    images, _ = load_cifar10(tmp_path, train=False)
    assert np.all(images[0, :, :, 0] == 1.0) and np.all(images[0, :, :, 1:] == 0.0)


def _py2_pickle(data, labels):
    """Write a batch the way Python 2's cPickle wrote the official files.

    Python 3 cannot emit Python 2 ``str`` opcodes, so the stream is assembled
    from raw opcodes: keys and the array buffer are SHORT_BINSTRING/BINSTRING and
    the array is rebuilt through numpy.core.multiarray._reconstruct.
    """
    import struct

    def s(b):
        return b"U" + bytes([len(b)]) + b
    n = data.shape[0]
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
        + b"K\x00\x85" + s(b"b") + b"\x87R"
        + b"(K\x01" + b"K" + bytes([n]) + b"M" + struct.pack("<H", 3072) + b"\x86"
        + b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
        + b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89" + b"T" + struct.pack("<i", data.nbytes) + data.tobytes() + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (b"\x80\x02}(" + s(b"batch_label") + s(b"testing batch 1 of 1")
            + s(b"data") + array + s(b"labels") + label_list + b"u.")


def test_load_cifar10_python2_pickle(tmp_path):
    batch = _batch(3, 5)
    raw = _py2_pickle(batch[b"data"], batch[b"labels"])
    assert pickle.loads(raw, encoding="bytes")[b"data"].shape == (3, 3072)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(raw)
    images, labels = load_cifar10(tmp_path, train=False)
    np.testing.assert_array_equal(labels, batch[b"labels"])
    np.testing.assert_allclose(
        images, batch[b"data"].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1) / 255.0, atol=1e-6)


def test_load_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="load_cifar10_torchvision"):
        load_cifar10(tmp_path)
    _write_folder(tmp_path, {"data_batch_1": _batch(2, 1)})
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        load_cifar10(tmp_path)


def test_load_cifar10_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="path"):
        load_cifar10(3)
    with pytest.raises(ValueError, match="max_batches"):
        load_cifar10(tmp_path, max_batches=0)


def test_load_cifar10_corrupt_archive(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"this is not a gzip file at all" * 10)
    with pytest.raises(ValueError, match="not a readable CIFAR-10 archive"):
        load_cifar10(path)
    good = _write_archive(tmp_path / "trunc")
    path.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError):
        load_cifar10(path)


def test_load_cifar10_archive_missing_members(tmp_path):
    path = _write_archive(tmp_path, {"data_batch_1": _batch(2, 1)})
    with pytest.raises(ValueError, match="lacks"):
        load_cifar10(path, max_batches=3)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"garbage bytes", "not a valid CIFAR-10 batch"),
        ([1, 2, 3], "expected a dict"),
        ({b"labels": [1]}, "missing"),
        ({b"data": np.zeros((1, 3072), np.float64), b"labels": [1]}, "uint8"),
        ({b"data": np.zeros((1, 100), np.uint8), b"labels": [1]}, "uint8"),
        ({b"data": [0] * 3072, b"labels": [1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "labels"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "labels"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["a"]}, "labels"),
    ],
)
def test_load_cifar10_wrong_content(tmp_path, payload, match):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    raw = payload if isinstance(payload, bytes) else pickle.dumps(payload, protocol=4)
    (folder / "test_batch").write_bytes(raw)
    with pytest.raises(ValueError, match=match):
        load_cifar10(tmp_path, train=False)


class _Evil:
    """Unpickling this would run a shell command that creates a file."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _EvilWrite:
    """Unpickling this would call open(target, 'w')."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("evil_cls", [_Evil, _EvilWrite])
@pytest.mark.parametrize("where", ["folder", "archive"])
def test_load_cifar10_refuses_malicious_pickle(tmp_path, evil_cls, where):
    side_effect = tmp_path / "pwned"
    batch = _batch(2, 0)
    batch[b"filenames"] = [evil_cls(side_effect), b"x.png"]
    batches = dict(BATCHES, data_batch_1=batch)
    root = tmp_path / "data"
    if where == "folder":
        _write_folder(root, batches)
    else:
        _write_archive(root, batches)
    with pytest.raises(ValueError, match="refusing to load global"):
        load_cifar10(root)
    assert not side_effect.exists()


def test_load_cifar10_refuses_python2_style_codecs_global(tmp_path):
    # Protocol 2 encodes bytes through _codecs.encode, a global that is not needed
    # by the real files (Python 2 wrote plain strings) and therefore refused.
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(_batch(1, 0), protocol=2))
    with pytest.raises(ValueError, match="_codecs"):
        load_cifar10(tmp_path, train=False)


def test_load_cifar10_torchvision(tmp_path, monkeypatch):
    # Without download the data already on disk is read by the safe loader.
    _write_folder(tmp_path)
    images, labels = load_cifar10_torchvision(tmp_path, download=False, train=False)
    assert images.shape == (3, 32, 32, 3) and labels.shape == (3,)
    # A missing torchvision gives an ImportError that says how to fix it.
    monkeypatch.setitem(__import__("sys").modules, "torchvision", None)
    monkeypatch.setitem(__import__("sys").modules, "torchvision.datasets", None)
    monkeypatch.setitem(__import__("sys").modules, "torchvision.datasets.utils", None)
    with pytest.raises(ImportError, match="pip install torchvision"):
        load_cifar10_torchvision(tmp_path / "empty", download=True)
    assert data.CIFAR10_URL.endswith("cifar-10-python.tar.gz")


def test_train_and_test_splits_share_no_pixel():
    from sparsolve.data import TRAIN_WIDTH, extract_patches, load_natural_images

    train = natural_image_patches(8, 3000, seed=0, split="train", remove_mean=False)
    test = natural_image_patches(8, 3000, seed=1, split="test", remove_mean=False)
    assert train.shape == test.shape == (3000, 64)
    # each split is drawn from its own region: the left TRAIN_WIDTH of each photo, or the rest
    right = [im[:, int(TRAIN_WIDTH * im.shape[1]):] for im in load_natural_images()]
    np.testing.assert_array_equal(test, extract_patches(right, 8, 3000, seed=1))
    # so no held-out patch is a training patch (random positions in whole photos repeat)
    assert not set(map(bytes, train)) & set(map(bytes, test))
    whole = natural_image_patches(8, 3000, seed=0, remove_mean=False)
    assert set(map(bytes, whole)) & set(map(bytes, natural_image_patches(8, 3000, seed=1, remove_mean=False)))


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match=r"split: expected one of \(None, 'train', 'test'\), got 'val'"):
        natural_image_patches(8, 10, split="val")


# ---------------------------------------------------------------- Olshausen & Field's whitening


def _radial_power(image, bands):
    """Mean power of the periodic spectrum of ``image`` in each radial band [lo, hi) of cycles/pixel."""
    power = np.abs(np.fft.fft2(image)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(image.shape[0]), np.fft.fftfreq(image.shape[1]), indexing="ij"))
    return [power[(f >= lo) & (f < hi)].mean() for lo, hi in bands]


def test_whiten_images_flattens_a_one_over_f_spectrum_and_rolls_off_above_the_cutoff():
    # pink noise: amplitude 1/|f|, the spectrum of natural images
    rng = np.random.default_rng(0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
    spectrum = np.where(f > 0, 1 / np.maximum(f, 1e-9), 0) * np.exp(2j * np.pi * rng.uniform(size=f.shape))
    pink = np.real(np.fft.ifft2(spectrum))
    bands = [(0.04, 0.08), (0.08, 0.16), (0.4, 0.5)]
    low, mid, _ = _radial_power(pink, bands)
    assert low / mid > 3  # 1/f²: each octave up has a quarter of the power per frequency
    (white,) = whiten_images(pink, cutoff=0.25)
    low, mid, high = _radial_power(white, bands)
    assert 0.5 < low / mid < 2  # flat
    assert high / mid < 1e-3  # exp(−(f/f0)⁴) removes what lies well above f0
    assert white.shape == pink.shape and white.std() == pytest.approx(1.0) and abs(white.mean()) < 1e-9


def test_whiten_images_takes_what_extract_patches_takes():
    images = load_natural_images(grey=False)
    small = [im[:40, :50] for im in images]
    colour = whiten_images(small)
    assert [im.shape for im in colour] == [(40, 50, 3)] * 2
    # each channel is filtered on its own, then the image scaled to unit variance as a whole
    (red,) = whiten_images(small[0][:, :, 0])
    np.testing.assert_allclose(colour[0][:, :, 0] / colour[0][:, :, 0].std(), red, atol=1e-12)
    assert [im.std() for im in colour] == pytest.approx([1.0, 1.0])
    assert whiten_images(np.stack(small))[1].shape == (40, 50, 3)
    (flat,) = whiten_images(np.full((16, 16), 0.5))
    assert not flat.any()  # a constant image has nothing to whiten, and is not divided by 0
    for cutoff in (0, 0.6, True, "0.3"):
        with pytest.raises(ValueError, match=r"cutoff: expected f0 in \(0, 0.5\]"):
            whiten_images(small, cutoff=cutoff)
    with pytest.raises(ValueError, match=r"images\[1\]: contains NaN"):
        whiten_images([small[0][:, :, 0], np.full((8, 8), np.nan)])


def test_whiten_of_filters_each_split_after_its_cut():
    X = natural_image_patches(12, 2000, whiten="of")
    assert X.shape == (2000, 144) and 0.8 < X.var() < 1.1
    right = [im[:, int(data.TRAIN_WIDTH * im.shape[1]):] for im in load_natural_images()]
    test = natural_image_patches(12, 500, seed=3, whiten="of", split="test")
    np.testing.assert_allclose(test, remove_mean(extract_patches(whiten_images(right), 12, 500, seed=3)))
    assert natural_image_patches(8, 100, grey=False, whiten="of").shape == (100, 192)
    with pytest.raises(ValueError, match="whiten: expected None, 'of', 'zca', 'pca'"):
        natural_image_patches(8, 10, whiten="OF")


# ---------------------------------------------------------------- the rank-k ZCA


def test_whiten_zca_keeps_the_leading_three_eighths_of_the_components():
    X = natural_image_patches(8, 2000, whiten="zca")
    assert X.shape == (2000, 64)
    assert np.linalg.matrix_rank(X) == 24  # full-rank ZCA would keep 63 (the mean is removed)
    assert natural_image_patches(8, 2000, whiten="pca").shape == (2000, 24)
    w = data.image_whitening(192, "pca")
    assert (w.method, w.n_components, w.eps) == ("pca", 72, 0.1)
    assert natural_image_patches(6, 500, grey=False, whiten="zca").shape == (500, 108)
    with pytest.raises(ValueError, match="method: expected 'zca' or 'pca'"):
        data.image_whitening(64, "svd")


def test_a_fitted_whitening_is_applied_as_it_is():
    w = data.image_whitening(64)
    X = natural_image_patches(8, 3000, whiten=w, split="train")
    mean, W = w.mean_.copy(), w.whitening_.copy()
    X_test = natural_image_patches(8, 500, seed=1, whiten=w, split="test")
    np.testing.assert_array_equal(w.mean_, mean)
    np.testing.assert_array_equal(w.whitening_, W)
    np.testing.assert_allclose(X_test, (natural_image_patches(8, 500, seed=1, split="test") - mean) @ W.T)
    assert X.shape == (3000, 64)


@pytest.mark.slow  # about 3 s quiet, 10 s on a loaded machine
def test_the_picture_recipe_learns_localised_gabors_above_the_pca_control():
    # The recipe of `sparsolve fit` without data (whiten="of", 12×12, α = WHITENED_ALPHA), at a
    # test size: 32 atoms, 8,000 samples.  Measured over seeds 0–2: Gabor-like 0.47–0.50 and
    # localised 0.41–0.44, against PCA's 0.25 and 0 (benchmarks/picture.py has the full size).
    import sparsolve
    from sparsolve.gabor import control_dictionaries, gabor_stats

    X = natural_image_patches(data.PICTURE_PATCH, 4000, whiten="of")
    model = sparsolve.fit(X, 32, data.WHITENED_ALPHA, solver="cd", n_epochs=2, seed=0, progress=False)
    stats = gabor_stats(model.dictionary)
    raw = natural_image_patches(data.PICTURE_PATCH, 2000, seed=1)
    pca = gabor_stats(control_dictionaries(32, data.PICTURE_PATCH, X=raw)["pca"])
    assert stats.frac_good >= pca.frac_good + 0.15 and stats.median_r2 >= 0.7
    assert stats.frac_localized >= 0.3 and pca.frac_localized == 0.0
