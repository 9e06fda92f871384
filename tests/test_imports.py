"""The import graph of sparsolve/ has no cycle: every import statement, at module level or inside a
function, read from the source (ast), so an import hidden in a function to dodge a cycle still counts.

An edge goes from a module to each module it imports and to each package that import enters from
outside (importing ``sparsolve.inference.problem`` from ``sparsolve.memory`` runs
``sparsolve/inference/__init__.py`` first, so memory depends on all that package's __init__ imports).
A module's own packages are not entered by its imports: they are already being initialised."""
from __future__ import annotations

import ast
from pathlib import Path

import sparsolve

ROOT = Path(sparsolve.__file__).parent


def _modules():
    """{dotted name: path} of every module and package under sparsolve/."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(name, path):
    """The dotted names an import statement of module ``name`` may load (a ``from X import y`` loads X,
    and X.y where y is a submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def _inside(module, package):
    return module == package or module.startswith(package + ".")


def import_graph():
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for target in _imported(name, path):
            if target not in modules:
                continue
            parts = target.split(".")
            entered = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # its packages, then itself
            graph[name].update(t for t in entered if t in modules and not _inside(name, t))
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions_and_packages_entered():
    graph = import_graph()
    # learner imports the model at module level; cli imports learning inside _fit
    assert "sparsolve.learning.model" in graph["sparsolve.learning.learner"]
    assert "sparsolve.learning.fit" in graph["sparsolve.cli"] or "sparsolve.learning" in graph["sparsolve.cli"]
    # memory reads the rules' registry: entering the package sparsolve.rules runs its __init__
    assert {"sparsolve.rules"} <= graph["sparsolve.memory"]
    # and the detector finds a cycle where there is one
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_memory_imports_nothing_above_it():
    """memory.py sits below inference and learning (both use it): it reads the rules, not them."""
    above = ("sparsolve.inference", "sparsolve.learning", "sparsolve.config", "sparsolve.amortized")
    assert not [t for t in import_graph()["sparsolve.memory"] if any(_inside(t, a) for a in above)]
