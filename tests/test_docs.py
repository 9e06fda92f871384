"""docs/build.py generates the API reference: a page for every public module, with the settings'
field docstrings filled in and the lazily imported entry points documented.  Skipped without pdoc
(``pip install -e ".[docs]"``; the test extra has it, so CI runs it)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import build  # noqa: E402 -- docs/build.py


def test_the_readme_lists_every_entry_point_as_the_docstrings_say():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"<!-- api-summary: python docs/build.py --summary -->\n(.*?)<!-- end api-summary -->", readme,
                       flags=re.S)
    assert listed, "README.md's API section lost its markers"
    assert listed.group(1) == build.summary(), "README.md's API list is stale: paste `python docs/build.py --summary`"
    import sparsolve

    for name in sparsolve.__all__:
        assert f"`sparsolve.{name}`:" in listed.group(1)


def test_first_sentence_turns_rest_into_markdown():
    def f():
        """Read a :class:`~sparsolve.SparseCodingModel` from ``path``,
        written by :func:`save`.  More text.

        Details."""

    assert build.first_sentence(f) == "Read a `sparsolve.SparseCodingModel` from `path`, written by `save`."


@pytest.mark.slow
def test_the_api_reference_builds(tmp_path):
    pytest.importorskip("pdoc")
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "build.py"), "-o", str(tmp_path)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "index.html").exists() and (tmp_path / "search.js").exists()
    for page in ("sparsolve.html", "sparsolve/config.html", "sparsolve/learning/choose.html", "sparsolve/plot.html"):
        assert (tmp_path / page).exists(), page
    top = (tmp_path / "sparsolve.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", top)
    # The entry points sparsolve loads on first use are on its page, with their docstrings.
    for name in ("fit", "SparseCodingModel", "FitConfig", "LearnedG", "encode", "alpha_for_l0"):
        assert f'id="{name}"' in top, name
    # A field's docstring, its {NAME} filled in as the CLI's help fills it.
    assert "inference solver of sparsolve.encode: auto (cd on CPU" in text
    docstrings = re.findall(r'<div class="docstring">(.*?)</div>', top, flags=re.S)
    assert docstrings and not any("{SOLVER_WORDS}" in d for d in docstrings)
