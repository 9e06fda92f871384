"""README.md's code runs as written.

Every ```python block runs, in order, in one namespace, and every line of a ```bash
block that is a ``sparsolve`` or ``python -m sparsolve`` command runs through the CLI's
``main`` -- whatever the blocks say today, so that they cannot rot.  Only the sizes
shrink: the data sets, the atoms and the training steps are capped by wrapping the
library's functions (see :func:`small_sizes`), so the whole file runs in seconds.

A python block whose first line is ``# needs: module, module`` uses optional packages (the peers,
or safetensors where an environment lacks it): it runs on its own, in a fresh namespace, where
those modules import, and is skipped, saying which is missing, where they do not.
"""
from __future__ import annotations

import functools
import inspect
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import sparsolve
import sparsolve.amortized
import sparsolve.cli
import sparsolve.data
import sparsolve.data.images
import sparsolve.learning

README = Path(__file__).resolve().parents[1] / "README.md"

# The caps: at most this many patches, atoms and training steps per call.
CAPS = {"n_patches": 1200, "n_atoms": 16}
STEPS = 3


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def _needs(block: str) -> list[str]:
    """The modules a block's first line ``# needs: a, b`` names (none for other blocks)."""
    first = block.split("\n", 1)[0]
    return [m.strip() for m in first.split(":", 1)[1].split(",")] if first.startswith("# needs:") else []


def _commands() -> list[str]:
    """The sparsolve command lines of the bash blocks, without their comments."""
    lines = [line.split("#", 1)[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    return [line for line in lines if line.startswith(("sparsolve", "python -m sparsolve"))]


def _capped(func):
    """``func`` with the integer arguments named in CAPS capped, and ``max_steps`` set to STEPS
    where the caller leaves it at None."""
    sig = inspect.signature(func)
    var_kw = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        for name, cap in CAPS.items():
            value = bound.arguments.get(name, sig.parameters[name].default if name in sig.parameters else None)
            if isinstance(value, int) and value > cap:
                bound.arguments[name] = cap
        if "max_steps" in sig.parameters:
            if bound.arguments.get("max_steps") is None:
                bound.arguments["max_steps"] = STEPS
        elif var_kw is not None and bound.arguments.get(var_kw, {}).get("max_steps") is None:
            bound.arguments.setdefault(var_kw, {})["max_steps"] = STEPS
        return func(*bound.args, **bound.kwargs)

    return wrapper


@pytest.fixture
def small_sizes(monkeypatch, tmp_path):
    """Cap the data, atoms and steps of every call the README makes, and run in tmp_path."""
    patches = _capped(sparsolve.data.natural_image_patches)
    for module in (sparsolve.data, sparsolve.data.images):
        monkeypatch.setattr(module, "natural_image_patches", patches)
    # sparsolve's own name first: its lazy lookup reads the subpackage's, and monkeypatch
    # restores what it read, which must be the real function, not the capped one.
    fit = _capped(sparsolve.learning.fit)
    monkeypatch.setattr(sparsolve, "fit", fit, raising=False)
    monkeypatch.setattr(sparsolve.learning, "fit", fit)
    fit_amortized = _capped(sparsolve.amortized.fit_amortized)
    monkeypatch.setattr(sparsolve, "fit_amortized", fit_amortized, raising=False)
    monkeypatch.setattr(sparsolve.amortized, "fit_amortized", fit_amortized)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_code_to_check():
    assert len(_blocks("python")) >= 3
    assert any(c.split()[1:2] == ["fit"] for c in _commands())


def test_python_blocks_run_in_order(small_sizes):
    namespace = {"__name__": "readme"}
    for i, block in enumerate(_blocks("python")):
        if _needs(block):
            continue  # test_blocks_with_optional_modules runs it
        code = compile(block, f"README.md python block {i + 1}", "exec")
        exec(code, namespace)  # noqa: S102 -- the README's own code
    # The blocks did real work: a model was fitted and saved, and loads back as it was saved.
    model = namespace.get("model")
    assert model is not None and (small_sizes / "model.npz").exists()
    np.testing.assert_array_equal(sparsolve.load("model.npz").dictionary, model.dictionary)


@pytest.mark.parametrize("block", [b for b in _blocks("python") if _needs(b)],
                         ids=lambda b: "needs " + "+".join(_needs(b)))
def test_blocks_with_optional_modules(small_sizes, block):
    for module in _needs(block):
        pytest.importorskip(module)
    exec(compile(block, "README.md python block", "exec"), {"__name__": "readme"})  # noqa: S102


@pytest.mark.parametrize("command", _commands())
def test_sparsolve_commands_run(small_sizes, command, capsys):
    argv = shlex.split(command)
    argv = argv[3:] if argv[:3] == ["python", "-m", "sparsolve"] else argv[1:]
    for arg in argv:
        if arg.endswith(".npy") and not Path(arg).exists():
            np.save(arg, sparsolve.data.natural_image_patches(8, 600, seed=4))
    if "--help" in argv or "-h" in argv:
        with pytest.raises(SystemExit) as stop:
            sparsolve.cli.main(argv)
        assert stop.value.code == 0 and "usage" in capsys.readouterr().out
        return
    assert sparsolve.cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "saved:" in printed
    if len(argv) < 2 or argv[1].startswith("-"):  # no DATA: the main job reports its Gabor fraction
        assert "Gabor-like" in printed
