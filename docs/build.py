"""Generate sparsolve's API reference (HTML) from its docstrings, with pdoc.

    pip install -e ".[docs]"
    python docs/build.py                  # writes docs/api/index.html and one page a module
    python docs/build.py -o /tmp/api      # elsewhere

pdoc (https://pdoc.dev) renders the modules, classes, functions and the settings' fields as they are
documented in the source: a field's docstring is the string written right below it in
sparsolve/config.py.  Two things pdoc cannot see for itself are filled in here:

* the names a package imports lazily on first use (``sparsolve.fit``, ``SparseCodingModel``,
  ``FitConfig``, ``sparsolve.conv.fit_conv``, ...: a module ``__getattr__``), which are loaded before
  pdoc reads the package's ``__all__`` (pdoc looks them up in the module's ``__dict__``);
* each ``{NAME}`` in a settings field's docstring, the constant it stands for (the words the CLI's
  help and the estimator's parameters show: :func:`sparsolve.fields.field_docs`).

Every module under sparsolve/ whose name does not start with an underscore gets a page; one that
cannot be imported here (a GPU kernel without triton) is left out with pdoc's warning.

    python docs/build.py --summary        # the README's "API reference" list, one line an entry point

prints the list README.md's API section holds (tests/test_docs.py checks that they agree): each name of
``sparsolve.__all__`` and each module of :data:`USER_MODULES` with the first sentence of its docstring.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The modules the README's code imports from, besides sparsolve itself: the summary lists them.
USER_MODULES = ("sparsolve.data", "sparsolve.plot", "sparsolve.metrics", "sparsolve.gabor", "sparsolve.conv",
                "sparsolve.sae", "sparsolve.config")


def module_names() -> list[str]:
    """sparsolve and every public module under it."""
    import sparsolve

    names = ["sparsolve"]
    for info in pkgutil.walk_packages(sparsolve.__path__, "sparsolve."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def first_sentence(obj) -> str:
    """The first sentence of ``obj``'s docstring, its reST roles and literals as Markdown code."""
    paragraph = (inspect.getdoc(obj) or "").split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text).replace("``", "`")
    sentence = re.split(r"(?<=[.;])\s+(?=[A-Z`(])", text, maxsplit=1)[0].rstrip(" ,:;")
    return sentence if sentence.endswith((".", "?", "!")) else sentence + "."


def summary() -> str:
    """The Markdown list of the public entry points and the user's modules, one line each."""
    import sparsolve

    lines = [f"* `sparsolve.{name}`: {first_sentence(getattr(sparsolve, name))}" for name in sparsolve.__all__]
    lines += [f"* `{name}`: {first_sentence(importlib.import_module(name))}" for name in USER_MODULES]
    return "\n".join(lines) + "\n"


def _fill_field_docs(modules: dict) -> None:
    """Replace the raw field docstrings of every settings class pdoc documents with field_docs's."""
    import pdoc.doc

    from sparsolve.fields import Config, field_docs

    for module in modules.values():
        for member in module.members.values():
            if isinstance(member, pdoc.doc.Class) and isinstance(member.obj, type) and issubclass(member.obj, Config):
                docs = field_docs(member.obj)
                for name, variable in member.members.items():
                    if name in docs and isinstance(variable, pdoc.doc.Variable):
                        variable.docstring = docs[name]  # a cached_property: this sets the cache


def build(output: Path) -> list[Path]:
    """Write the reference under ``output``; returns the pages written."""
    import pdoc.doc
    import pdoc.render

    import sparsolve

    names = module_names()
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 -- pdoc says why below
            continue
        for public in getattr(module, "__all__", ()):
            if public not in vars(module) and hasattr(module, "__getattr__"):  # a lazy name: load it
                vars(module)[public] = getattr(module, public)
    pdoc.render.configure(docformat="restructuredtext", show_source=True,
                          footer_text=f"sparsolve {sparsolve.__version__}")
    modules = {}
    for name in names:
        try:
            modules[name] = pdoc.doc.Module.from_name(name)
        except Exception as e:  # noqa: BLE001 -- an optional dependency's module: leave it out, say so
            print(f"left out {name}: {type(e).__name__}: {e}", file=sys.stderr)
    _fill_field_docs(modules)
    written = []
    for module in modules.values():
        page = output / f"{module.fullname.replace('.', '/')}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(pdoc.render.html_module(module, modules), encoding="utf-8")
        written.append(page)
    for name, text in (("index.html", pdoc.render.html_index(modules)), ("search.js", pdoc.render.search_index(modules))):
        if text:
            (output / name).write_text(text, encoding="utf-8")
            written.append(output / name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate sparsolve's API reference with pdoc.")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "api", help="the folder to write "
                        "(default: docs/api)")
    parser.add_argument("--summary", action="store_true", help="print the README's list of entry points instead")
    args = parser.parse_args(argv)
    if args.summary:
        sys.stdout.write(summary())
        return 0
    pages = build(args.output)
    print(f"wrote {len(pages)} files to {args.output} (open {args.output / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
