"""sparsolve.data.read_matrix: what ``sparsolve fit DATA`` reads, and its errors for every bad file."""
import io as stdio
import zipfile

import numpy as np
import pytest

from sparsolve.cli import main
from sparsolve.data import read_matrix
from sparsolve.io import DataFileError


def test_npy_is_memory_mapped(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "X.npy", X)
    got = read_matrix(tmp_path / "X.npy")
    assert isinstance(got, np.memmap) and not got.flags.writeable
    np.testing.assert_array_equal(got, X)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_with_one_array(tmp_path, save):
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    save(tmp_path / "X.npz", patches=X)
    got = read_matrix(tmp_path / "X.npz")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, X)


def test_npz_with_several_arrays_or_none(tmp_path):
    np.savez(tmp_path / "two.npz", X=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(DataFileError, match=r"holds 2 arrays \(X, y\).*save only X"):
        read_matrix(tmp_path / "two.npz")
    np.savez(tmp_path / "none.npz")
    with pytest.raises(DataFileError, match="holds 0 arrays"):
        read_matrix(tmp_path / "none.npz")


def test_directory_missing_file_and_other_formats(tmp_path):
    with pytest.raises(DataFileError, match="is a directory; pass a .npy file"):
        read_matrix(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_matrix(tmp_path / "absent.npy")
    (tmp_path / "X.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DataFileError, match="neither a .npy file nor an .npz"):
        read_matrix(tmp_path / "X.csv")


@pytest.mark.parametrize("array, match", [
    (np.zeros(5), r"shape \(5,\); expected a non-empty \(n_samples, n_features\)"),
    (np.zeros((2, 3, 4)), r"shape \(2, 3, 4\)"),
    (np.zeros((0, 3)), r"shape \(0, 3\)"),
    (np.array([["a", "b"]]), "expected real numbers"),
])
def test_arrays_that_are_not_a_data_matrix(tmp_path, array, match):
    np.save(tmp_path / "X.npy", array)
    with pytest.raises(DataFileError, match=match):
        read_matrix(tmp_path / "X.npy")


def test_pickled_arrays_are_refused_unread(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[object()]], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="not a readable .npy"):
        read_matrix(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", X=np.array([[object()]], dtype=object))
    with pytest.raises(DataFileError, match="Python objects"):
        read_matrix(tmp_path / "obj.npz")


def test_headers_declaring_more_than_the_file_holds(tmp_path):
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    buf = stdio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    raw = buf.getvalue() + bytes(64)
    (tmp_path / "X.npy").write_bytes(raw)
    with pytest.raises(DataFileError, match="not a readable .npy"):
        read_matrix(tmp_path / "X.npy")
    with zipfile.ZipFile(tmp_path / "X.npz", "w") as zf:
        zf.writestr("X.npy", raw)
    with pytest.raises(DataFileError, match=r"declares shape \(1000000, 1000000\)"):
        read_matrix(tmp_path / "X.npz")


def test_cli_reads_an_npz_and_names_a_bad_path_in_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "X.npz", X=rng.standard_normal((300, 16)))
    out = tmp_path / "m.npz"
    assert main(["fit", str(tmp_path / "X.npz"), "--atoms", "4", "--max-steps", "1", "--out", str(out),
                 "--no-progress"]) == 0
    assert "(300, 16)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="^sparsolve fit: .* is a directory"):
        main(["fit", str(tmp_path), "--out", str(out), "--no-progress"])
    np.savez(tmp_path / "two.npz", X=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(SystemExit, match="^sparsolve fit: .* holds 2 arrays"):
        main(["fit", str(tmp_path / "two.npz"), "--out", str(out), "--no-progress"])
