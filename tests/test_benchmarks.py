"""The benchmark results are data: RESULTS.md is generated from benchmarks/results/*.json, and every
number the README's Benchmarks section quotes is a figure of the case it names.

A README claim names its case by a link to ``benchmarks/RESULTS.md#<case>``; a nested bullet also
draws on the cases of the bullet it sits in.  Every number written in the claim's prose (not in
code spans, links or dates) must be one of those cases' figures, or a number in their titles (the
set-up: "16×16", "1,024 atoms"), as rounded in the sentence: "3.06" matches 3.0612, "21–39×"
matches 20.7 and 38.5, "7%" matches 7.3 or 0.073."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness  # noqa: E402

NUMBER = re.compile(r"(?<![\w.])(\d(?:[\d,]*\d)?(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w])")
CITE = re.compile(r"\]\(benchmarks/RESULTS\.md#([A-Za-z0-9_.\-]+)\)")


def test_results_md_is_what_the_json_generates():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "harness.py"), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_result_says_when_where_and_how_it_was_measured():
    cases = harness.cases()
    assert len(cases) >= 20
    for c in cases:
        assert re.match(r"\d{4}-\d{2}-\d{2}", c["date"]), c["case"]
        assert c["command"] and c["machine"] and c["tables"], c["case"]
        if "migrated" in c:  # transcribed, not rerun: say so, and from where
            assert "RESULTS.md" in c["migrated"]["from"] and c["migrated"]["note"]
    gpu = [c for c in cases if c["case"].endswith("_cuda")]
    assert gpu and all(c["machine"].get("gpu") for c in gpu)  # a GPU number keeps its card


def test_record_writes_a_result_the_renderer_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/demo.py", "--quick"])
    path = harness.record("demo_quick", title="A demo", tables={"t": [{"a": 1, "b": 0.123456789}]},
                          figures={"x": 2.5}, comparison="equal data", notes="set-up", results_dir=tmp_path)
    result = json.loads(path.read_text())
    assert result["command"].endswith("demo.py --quick") and result["figures"] == {"x": 2.5}
    assert result["machine"]["cores"] and "load_after" in result["machine"] and "commit" in result["versions"]
    text = harness.render(tmp_path, readings_path=tmp_path / "none.md")
    assert "## A demo" in text and "| 1 | 0.1235 |" in text and "`x` = 2.5" in text
    with pytest.raises(ValueError, match="case="):
        harness.record("a/b", title="t", results_dir=tmp_path)
    with pytest.raises(TypeError, match="tables"):
        harness.record("c", title="t", tables={"t": "not rows"}, results_dir=tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"case": "broken"}))
    with pytest.raises(ValueError, match="broken.json: no 'title'"):
        harness.render(tmp_path)


def _benchmarks_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Benchmarks\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _claims(section: str):
    """(prose, cases) of each bullet; a nested bullet also gets its parent's cases."""
    items, parent = [], []
    for block in re.split(r"\n(?=\s*[*-] )", section):
        stripped = block.lstrip()
        if not stripped.startswith(("* ", "- ")):
            continue
        cases = CITE.findall(block)
        nested = block.startswith((" ", "\t"))
        if not nested:
            parent = cases
        items.append((block, cases + (parent if nested else [])))
    return items


def _numbers(prose: str) -> list[str]:
    prose = re.sub(r"`[^`]*`", " ", prose)  # code
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
    prose = re.sub(r"\d{4}-\d{2}-\d{2}", " ", prose)  # dates
    return NUMBER.findall(prose)


def _matches(written: str, value: float, percent: bool) -> bool:
    """Whether ``value`` rounds to ``written`` (as many digits as the sentence gives)."""
    x = float(written.replace(",", ""))
    if "e" in written:
        mantissa = written.split("e")[0]
        digits = len(mantissa.replace(".", "").lstrip("0")) or 1
        half = 0.5 * 10 ** (math.floor(math.log10(abs(x))) - digits + 1)
    else:
        decimals = len(written.split(".")[1]) if "." in written else 0
        half = 0.5 * 10 ** -decimals
    candidates = [value, 100 * value] if percent else [value]
    return any(abs(v - x) <= half * (1 + 1e-9) for v in candidates)


def _values(case: dict) -> list[float]:
    values = [float(v) for v in case["figures"].values() if isinstance(v, (int, float))]
    values += [float(n.replace(",", "")) for n in NUMBER.findall(case["title"])]
    return values


def test_every_number_in_the_readme_benchmarks_is_a_figure_of_its_case():
    cases = {c["case"]: c for c in harness.cases()}
    claims = _claims(_benchmarks_section())
    assert len(claims) >= 5
    checked = 0
    for prose, cited in claims:
        assert cited, f"a claim that names no case (link it to benchmarks/RESULTS.md#<case>): {prose[:120]!r}"
        unknown = [c for c in cited if c not in cases]
        assert not unknown, f"{unknown} are not cases of benchmarks/results: {prose[:120]!r}"
        values = [v for c in cited for v in _values(cases[c])]
        clean = re.sub(r"`[^`]*`", " ", prose)
        for written in _numbers(prose):
            percent = bool(re.search(re.escape(written) + r"\s*%", clean))
            assert any(_matches(written, v, percent) for v in values), \
                f"{written} is not a figure of {cited}: {prose[:160]!r}"
            checked += 1
    assert checked >= 40
