"""The one benchmark harness: each benchmark is a case that writes JSON; RESULTS.md is generated.

A benchmark script ends with one call::

    from harness import record          # benchmarks/ is the script's folder
    record("encode_cd_vs_spams",         # the case: benchmarks/results/<case>.json
           title="Inference: cd against SPAMS (benchmarks/encode.py)",
           tables={"16×16, 1,024 atoms": rows},   # rows: a list of dicts, one per table row
           figures={"speedup_1e-4": 3.4},         # the numbers a README sentence may quote
           comparison="equal accuracy",           # what is held equal between the methods
           notes="optional one-paragraph reading written by the script")

and gets, in ``benchmarks/results/<case>.json``: the figures and tables, the command line
that produced them, the date, the machine (CPU, cores, BLAS and its threads, torch and numba
threads, the load average before and after), and the versions of sparsolve and every peer
that is importable.  Nothing else writes there.

``python benchmarks/harness.py`` regenerates ``benchmarks/RESULTS.md`` from every JSON file:
a section a case (sorted by title), each followed by its hand-written reading from
``benchmarks/READINGS.md`` (a ``## <case>`` heading per reading), which regeneration never
touches.  ``python benchmarks/harness.py --check`` fails when RESULTS.md is not what the JSON
would generate (a test runs it).  The README quotes figures through :func:`figure`.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
READINGS_MD = HERE / "READINGS.md"

#: The libraries whose versions a result records when they are importable.
PEERS = ("numpy", "scipy", "numba", "torch", "sklearn", "spams", "sparsify", "sae_lens", "sporco", "alphacsc",
         "triton", "cupy")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict:
    """What a timing depends on: CPU or GPU, cores, BLAS and its threads, torch and numba threads."""
    info = {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(), "load": _load()}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [f"{i['internal_api']} {i.get('version', '')} ({i['num_threads']} threads)"
                        for i in threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        info["blas"] = None
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    if "numba" in sys.modules:
        info["numba_threads"] = sys.modules["numba"].get_num_threads()
    return info


def versions() -> dict:
    """The version of sparsolve (and its git commit) and of every importable peer."""
    out = {}
    for name in ("sparsolve", *PEERS):
        if name not in sys.modules:
            continue  # importing a peer here would cost seconds and change nothing measured
        out[name] = getattr(sys.modules[name], "__version__", "?")
    try:
        import subprocess

        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                       text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["commit"] = None
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def record(case: str, *, title: str, tables: dict | None = None, figures: dict | None = None,
           comparison: str | None = None, notes: str | None = None, load_before=None,
           results_dir: Path | None = None) -> Path:
    """Write ``results/<case>.json`` (atomically) and return its path.

    ``case``: a file-name-safe key; ``title``: the section heading in RESULTS.md; ``tables``:
    {caption: [row dict, ...]}, rendered as markdown tables in the order given; ``figures``:
    {name: number} that the README may quote; ``comparison``: what the methods are held equal
    on ("equal data", "equal wall time", "equal certified accuracy", ...); ``notes``: the
    script's own reading; ``load_before``: the load average when the measurement started
    (default: now, which is the end)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", case):
        raise ValueError(f"case={case!r}: use letters, digits, '_', '-' and '.' only (it names a file)")
    info = machine()
    payload = {
        "case": case,
        "title": title,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.argv[0]).name and os.path.relpath(sys.argv[0], HERE.parent), *sys.argv[1:]])
        if sys.argv and sys.argv[0] else None,
        "machine": {**info, "load_before": load_before, "load_after": info.pop("load")},
        "versions": versions(),
        "comparison": comparison,
        "figures": _jsonable(figures or {}),
        "tables": _jsonable(tables or {}),
        "notes": notes,
    }
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def load(case: str, results_dir: Path | None = None) -> dict:
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    return json.loads((folder / f"{case}.json").read_text())


def figure(case: str, name: str, results_dir: Path | None = None):
    """One figure of one case: what a README sentence quotes."""
    figures = load(case, results_dir)["figures"]
    if name not in figures:
        raise KeyError(f"case {case!r} has no figure {name!r}; it has {sorted(figures)}")
    return figures[name]


def _cell(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "–"
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3g}"
    return "" if v is None else str(v)


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def readings(path: Path = READINGS_MD) -> dict:
    """The hand-written readings: {case: text} from ``## <case>`` headings."""
    if not path.exists():
        return {}
    out, case, lines = {}, None, []
    for line in path.read_text().splitlines():
        m = re.match(r"^## (\S+)\s*$", line)
        if m:
            if case is not None:
                out[case] = "\n".join(lines).strip()
            case, lines = m.group(1), []
        elif case is not None:
            lines.append(line)
    if case is not None:
        out[case] = "\n".join(lines).strip()
    return out


def _machine_line(m: dict) -> str:
    parts = [m.get("gpu") or m.get("cpu"), f"{m.get('cores')} cores"]
    if m.get("blas"):
        parts.append("BLAS " + "; ".join(m["blas"]))
    for key, label in (("torch_threads", "torch threads"), ("numba_threads", "numba threads")):
        if m.get(key) is not None:
            parts.append(f"{label} {m[key]}")
    load = [("before", m.get("load_before")), ("after", m.get("load_after"))]
    load = ", ".join(f"{w} {v[0] if isinstance(v, list) else v}" for w, v in load if v is not None)
    if load:
        parts.append(f"load (1 min) {load}")
    return "; ".join(str(p) for p in parts if p)


def render(results_dir: Path | None = None, readings_path: Path = READINGS_MD) -> str:
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    cases = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    cases.sort(key=lambda c: (c["title"], c["case"]))
    notes = readings(readings_path)
    out = ["# Benchmark results", "",
           "Generated by `python benchmarks/harness.py` from `benchmarks/results/*.json`; do not edit by hand.",
           "Each section names the command that regenerates it; the readings come from "
           "`benchmarks/READINGS.md`.", ""]
    for c in cases:
        out += [f"## {c['title']}", "", f"*Case `{c['case']}`, {c['date']}; `{c.get('command')}`*", "",
                f"Machine: {_machine_line(c['machine'])}.", ""]
        if c.get("comparison"):
            out += [f"Comparison: {c['comparison']}.", ""]
        for caption, rows in c.get("tables", {}).items():
            out += [f"**{caption}**", "", markdown_table(rows), ""]
        if c.get("figures"):
            out += ["Figures: " + ", ".join(f"`{k}` = {_cell(v)}" for k, v in c["figures"].items()) + ".", ""]
        if c.get("notes"):
            out += [c["notes"].strip(), ""]
        if c["case"] in notes:
            out += ["*Reading:*", "", notes[c["case"]], ""]
    orphan = sorted(set(notes) - {c["case"] for c in cases})
    if orphan:
        out += ["## Readings without a result", ""]
        for case in orphan:
            out += [f"### {case}", "", notes[case], ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate benchmarks/RESULTS.md from benchmarks/results/*.json")
    parser.add_argument("--check", action="store_true", help="fail if RESULTS.md differs from what would be generated")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
        if current != text:
            print("benchmarks/RESULTS.md is stale: run `python benchmarks/harness.py`", file=sys.stderr)
            return 1
        return 0
    tmp = RESULTS_MD.with_name(f".{RESULTS_MD.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS_MD)
    print(f"wrote {RESULTS_MD.relative_to(HERE.parent)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
