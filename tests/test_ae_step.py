"""benchmarks/ae_step.py runs (one timed step, RESULTS.md left alone) and times the t* = 0
autoencoder without a G; a peer that is not installed is a "not run" row, never a missing one."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import ae_step  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.slow  # a benchmark's smoke run: every peer trains


def test_ae_step_smoke(capsys):
    rows = ae_step.main(["--steps", "1", "--warmup", "1", "--no-write"])
    seconds, _, note = rows["AE t*=0"]
    assert note == "no G" and len(seconds) == 1 and seconds[0] > 0
    assert set(rows) == {"AE t*=0", "SAELens L1", "SAELens TopK", "sparsify TopK"}
    for name in ("SAELens L1", "SAELens TopK", "sparsify TopK"):
        s, _, note = rows[name]
        assert (s is None and note.startswith("not run: ")) or (len(s) == 1 and note == "")
    assert "AE t*=0 (no G)" in capsys.readouterr().out  # the table row is printed
