"""The examples run: both experiment scripts at --smoke size, and the notebook end to end (on the
photos, and on a CIFAR-format file), with the picture it must show.

The scripts are run as a user would (a subprocess, ``python examples/....py``), writing
into a temporary folder; the tables they write are parsed and checked row by row.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow


def run_script(name, out):
    # The checkout under test comes first on the path, not whatever sparsolve is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"{name} --smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def table_rows(markdown):
    """The body rows of the markdown table in ``markdown``, as lists of stripped cells."""
    lines = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    assert len(lines) >= 3, f"no table in:\n{markdown}"
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    for row in rows:
        assert len(row) == len(header), f"row {row} does not match header {header}"
    return header, rows


def test_norm_rules_smoke(tmp_path):
    run_script("norm_rules.py", tmp_path)
    header, rows = table_rows((tmp_path / "norm_rules.md").read_text(encoding="utf-8"))
    keys = [(r[0], r[1]) for r in rows]
    expected = [(m, n) for m in ("fit", "autoencoder t*=0") for n in ("unit", "penalty", "none")]
    expected += [(f"control: {c}", "unit") for c in ("random", "pca", "gabor")]
    assert keys == expected
    col = {name: header.index(name) for name in header}
    by_key = dict(zip(keys, rows))
    # The controls bracket the metric: a true Gabor bank fits, random atoms do not.
    assert float(by_key[("control: gabor", "unit")][col["Gabor frac (atoms)"]]) >= 0.9
    assert float(by_key[("control: random", "unit")][col["Gabor frac (atoms)"]]) <= 0.2
    # The unit rule holds the atoms at norm 1, in both methods.
    for method in ("fit", "autoencoder t*=0"):
        assert by_key[(method, "unit")][col["atom norm mean [min, max]"]] == "1 [1, 1]"
    for key in expected[:6]:
        row = by_key[key]
        assert 0 <= float(row[col["Gabor frac (atoms)"]]) <= 1
        assert float(row[col["L0"]]) >= 0 and float(row[col["MSE"]]) >= 0
    for key in expected[3:6]:
        assert 0 <= float(by_key[key][col["Gabor frac (encoder)"]]) <= 1
    for png in ("norm_rules_fit.png", "norm_rules_autoencoder.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_inner_loop_smoke(tmp_path):
    run_script("inner_loop.py", tmp_path)
    header, rows = table_rows((tmp_path / "inner_loop.md").read_text(encoding="utf-8"))
    col = {name: header.index(name) for name in header}
    keys = [(r[col["norm"]], r[col["λ"]].split(" (")[0], int(r[col["t*"]])) for r in rows]
    assert sorted(keys) == sorted((n, lam, t) for n in ("unit", "none") for lam in ("moderate", "too high")
                                  for t in (0, 1, 5, 20))
    inhibit = next(h for h in header if h.startswith("G off-diag > 0"))
    excite = next(h for h in header if h.startswith("G off-diag < 0"))
    for key, row in zip(keys, rows):
        assert 0 <= float(row[col["dead units"]]) <= 1
        assert 0 <= float(row[col["final nnz frac (train)"]]) <= 1
        if key[2] == 0:
            assert row[col[inhibit]].startswith("–")  # G is not used at t* = 0
        else:
            assert 0 <= float(row[col[inhibit]]) + float(row[col[excite]]) <= 1 + 1e-9
    for png in ("inner_loop_sparsity.png", "inner_loop_G.png"):
        assert (tmp_path / png).stat().st_size > 1000


def _cifar_format_batch(folder, n=2000, seed=0):
    """A CIFAR-10 ``data_batch_1`` of natural images: 96×96 crops of scikit-learn's photos, shrunk
    3× to 32×32 (CIFAR's images are shrunk photos too), so that the notebook's CIFAR path runs
    on real image statistics without the download."""
    import pickle

    from sparsolve.data.images import _sample_images_uint8

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        photo = _sample_images_uint8()[i % 2]
        r, c = rng.integers(0, photo.shape[0] - 96), rng.integers(0, photo.shape[1] - 96)
        small = photo[r:r + 96, c:c + 96].astype(float).reshape(32, 3, 32, 3, 3).mean(axis=(1, 3))
        rows.append(np.round(small).astype(np.uint8).transpose(2, 0, 1).ravel())  # CIFAR: channel-major
    batch = {b"batch_label": b"photo crops", b"labels": [0] * n, b"data": np.stack(rows),
             b"filenames": [b"crop.png"] * n}
    (folder / "cifar-10-batches-py").mkdir(parents=True)
    (folder / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=4))
    return folder


@pytest.mark.parametrize("images", ["photos", "cifar-format"])
def test_notebook_executes(tmp_path, monkeypatch, images):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", "python3"],
                       check=True, capture_output=True)
    # The default path of the notebook, no CIFAR-10: the embedded images; or a CIFAR-format file.
    cifar = _cifar_format_batch(tmp_path / "cifar") if images == "cifar-format" else tmp_path / "no-cifar"
    monkeypatch.setenv("SPARSOLVE_CIFAR10", str(cifar))
    # The kernel runs in tmp_path: the checkout under test comes first on its path, not whatever
    # sparsolve is installed (a relative PYTHONPATH=. would name tmp_path there).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    nb = nbformat.read(EXAMPLES / "cifar_patches.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), \
        "commit the notebook without outputs"
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert ("scikit-learn sample images" if images == "photos" else "CIFAR-10 (2000 images") in text
    assert "learned G, t*=5" in text  # the comparison table was printed
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4  # the figures were drawn
    # The picture: localised Gabor-like atoms, above the random and PCA controls; the Gabor bank
    # is the ceiling.  Rows: name, Gabor-like fraction, localised fraction, median envelope area.
    scores = {m[1]: (float(m[2]), float(m[3])) for m in
              re.finditer(r"^(learned|control \w+) +([\d.]+) +([\d.]+)", text, flags=re.M)}
    assert set(scores) == {"learned", "control random", "control pca", "control gabor"}, text
    gabor_like, localised = scores["learned"]
    assert gabor_like >= 0.5 and localised >= 0.5, text
    for control in ("random", "pca"):
        assert gabor_like > scores[f"control {control}"][0] and localised > scores[f"control {control}"][1], text
    assert scores["control gabor"][0] >= 0.9
