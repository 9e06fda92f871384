"""examples/versus_saes.py at smoke size, run as a user would: every method has a row, the
sparsolve rows hold real measurements, and a peer that is not installed is reported as not
run (with the reason), never dropped.  The refined rows (an autoencoder's start, exact
finish) reach the same lasso optimum as a cold start; SAELens' JumpReLU trains by its own
code where SAELens is installed."""
import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsolve.data import SyntheticActivations

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("versus_saes_under_test", ROOT / "benchmarks" / "versus_saes.py")
benchmark = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = benchmark  # its dataclasses look their module up there
SPEC.loader.exec_module(benchmark)

pytestmark = pytest.mark.slow


def test_versus_saes_example_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "versus_saes.py"), "--smoke", "--out",
                           str(tmp_path), "--threads", "1"], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONPATH": str(ROOT)})  # this checkout's sparsolve
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads((tmp_path / "versus_saes_example.json").read_text(encoding="utf-8"))
    rows = {r["method"]: r for r in report["rows"]}
    depths = [f"AE t*={t}" for t in (0, 1, 5)]
    assert list(rows) == ["fit (exact)", *(m for t in depths for m in (t, f"{t} then cd")), "sparsify TopK",
                          "SAELens L1", "SAELens TopK", "SAELens JumpReLU"]
    for method in ("fit (exact)", *depths, *(f"{t} then cd" for t in depths)):
        r = rows[method]
        assert r["note"] == ""
        assert 0 <= r["recovered"] <= 1 and 0 < r["mean_max_cos"] <= 1 and 0 <= r["dead"] <= 1
        assert r["l0"] > 0 and r["fvu"] >= 0 and r["seconds"] > 0 and r["encode_seconds"] > 0
    for t in depths:  # the refined row reuses its autoencoder: the same atoms, and the cold solve timed beside it
        refined, own = rows[f"{t} then cd"], rows[t]
        assert refined["recovered"] == own["recovered"] and refined["seconds"] == own["seconds"]
        assert refined["cold_seconds"] > 0 and math.isnan(own["cold_seconds"])
        assert f"(cold {refined['cold_seconds']:.2f})" in (tmp_path / "versus_saes_example.md").read_text("utf-8")
    # Exact inference on fit's dictionary reconstructs: well under the mean's FVU of 1.
    assert rows["fit (exact)"]["fvu"] < 0.5
    for method, module in (("sparsify TopK", "sparsify"), ("SAELens L1", "sae_lens"), ("SAELens TopK", "sae_lens"),
                           ("SAELens JumpReLU", "sae_lens")):
        if report["peers"][module] == "ok":
            assert rows[method]["note"] == "" or rows[method]["note"].startswith("not run:")
        else:
            assert rows[method]["note"].startswith("not run:") and math.isnan(rows[method]["fvu"])
            assert f"PEER NOT RUN: {module}" in proc.stdout
    # The inference-only comparison covers every trained SAE and the amortised encoders.
    gaps = {g["method"] for g in report["inference_only"]}
    assert set(depths) <= gaps and not any(" then " in g for g in gaps)
    for g in report["inference_only"]:
        if "note" in g:  # a lasso solution has at most d non-zeros: a much denser SAE is not matched
            assert g["l0"] > report["d"] / 2 and g["note"].startswith("not compared")
        else:
            assert abs(g["l0_exact_on_its_decoder"] - g["l0"]) <= 0.25 * g["l0"] + 0.5
    md = (tmp_path / "versus_saes_example.md").read_text(encoding="utf-8")
    assert "amortisation gap" in md and md.count("\n|") >= 2 + len(rows)
    assert (tmp_path / "versus_saes_example.png").stat().st_size > 1000


def tiny(tokens=2_048):
    gen = SyntheticActivations(8, 16, mean_active=2.0, seed=0)
    args = argparse.Namespace(solver="cd", device="cpu", batch=256, fit_batch=256, epochs=1, seed=0, lr=3e-3,
                              sae_lr=1e-3, autoencoders={})
    return gen, gen.sample(tokens, split=0), gen.sample(300, split=1), args


def lasso(X, Z, D, alpha):
    R = X - Z @ D
    return 0.5 * (R * R).sum(1) + alpha * np.abs(Z).sum(1)


def test_refined_rows_reach_the_cold_optimum():
    """Amortized start, exact finish: the codes certify the same relative gap (1e-4) as a cold
    start on the autoencoder's decoder, so the two objectives agree to that gap."""
    _, X, X_test, args = tiny()
    D, encode, decode, extra = benchmark.run_refined(X, 16, 0.2, 0, args)
    Z = encode(X_test)
    cold = benchmark.exact_codes(X_test, D, 0.2, "cd")
    assert Z.shape == (300, 16) and (Z >= 0).all() and extra["cold_seconds"] > 0 and extra["encode_seconds"] > 0
    np.testing.assert_allclose(lasso(X_test, Z, D, 0.2), lasso(X_test, cold, D, 0.2), rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(decode(Z), Z @ D)
    assert not args.autoencoders  # the refined row was the autoencoder's last use


def test_saelens_jumprelu_trains_by_its_own_code():
    pytest.importorskip("sae_lens", reason="SAELens is not installed (pip install -e '.[peers]')")
    gen, X, X_test, args = tiny(8_192)
    fvus = {}
    for c in (0.01, 1.0):
        atoms, encode, decode = benchmark.run_saelens(X, 16, "JumpReLU", c, args)
        Z = encode(X_test)
        assert atoms.shape == (16, 8) and Z.shape == (300, 16) and np.isfinite(Z).all()
        fvus[c] = (float(((X_test - decode(Z)) ** 2).sum() / ((X_test - X_test.mean(0)) ** 2).sum()),
                   float((Z != 0).sum(1).mean()))
    # its knob is a sparsity knob: a larger L0 coefficient gives fewer active latents
    assert fvus[1.0][1] < fvus[0.01][1], fvus
