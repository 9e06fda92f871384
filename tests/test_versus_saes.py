"""examples/versus_saes.py at smoke size, run as a user would: every method has a row, the
sparsolve rows hold real measurements, and a peer that is not installed is reported as not
run (with the reason), never dropped."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_versus_saes_example_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "versus_saes.py"), "--smoke", "--out",
                           str(tmp_path), "--threads", "1"], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONPATH": str(ROOT)})  # this checkout's sparsolve
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads((tmp_path / "versus_saes_example.json").read_text(encoding="utf-8"))
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == ["fit (exact)", "AE t*=0", "AE t*=1", "AE t*=5", "sparsify TopK", "SAELens L1",
                          "SAELens TopK"]
    for method in ("fit (exact)", "AE t*=0", "AE t*=1", "AE t*=5"):
        r = rows[method]
        assert r["note"] == ""
        assert 0 <= r["recovered"] <= 1 and 0 < r["mean_max_cos"] <= 1 and 0 <= r["dead"] <= 1
        assert r["l0"] > 0 and r["fvu"] >= 0 and r["seconds"] > 0
    # Exact inference on fit's dictionary reconstructs: well under the mean's FVU of 1.
    assert rows["fit (exact)"]["fvu"] < 0.5
    for method, module in (("sparsify TopK", "sparsify"), ("SAELens L1", "sae_lens"), ("SAELens TopK", "sae_lens")):
        if report["peers"][module] == "ok":
            assert rows[method]["note"] == "" or rows[method]["note"].startswith("not run:")
        else:
            assert rows[method]["note"].startswith("not run:") and math.isnan(rows[method]["fvu"])
            assert f"PEER NOT RUN: {module}" in proc.stdout
    # The inference-only comparison covers every trained SAE and the amortised encoders.
    gaps = {g["method"] for g in report["inference_only"]}
    assert {"AE t*=0", "AE t*=1", "AE t*=5"} <= gaps
    for g in report["inference_only"]:
        assert abs(g["l0_exact_on_its_decoder"] - g["l0"]) <= 0.25 * g["l0"] + 0.5
    md = (tmp_path / "versus_saes_example.md").read_text(encoding="utf-8")
    assert "amortisation gap" in md and md.count("\n|") >= 2 + len(rows)
    assert (tmp_path / "versus_saes_example.png").stat().st_size > 1000
