"""The one benchmark harness: each benchmark is a case that writes JSON; RESULTS.md is generated.

A benchmark script ends with one call::

    from harness import record          # benchmarks/ is the script's folder
    record("encode_interleaved",         # the case: benchmarks/results/<case>.json
           title="Inference: cd against SPAMS, interleaved (benchmarks/encode.py --interleaved)",
           tables={"16×16, 1,024 atoms": rows},   # rows: a list of dicts, one per table row
           figures={"spams_over_cd_16x16_learned": 3.06},  # the numbers a README sentence may quote
           comparison="equal accuracy (relative gap 1e-4), runs alternating",
           notes="the set-up, in a paragraph the script writes")

and gets, in ``benchmarks/results/<case>.json``: the figures and tables, the command line
that produced them, the date, the machine (CPU or GPU, cores, BLAS and its threads, torch and
numba threads, the load average before and after), and the versions of sparsolve, its commit
and every peer that is imported.  A case is one setting of one benchmark: a script that has
several settings (``--quick``, a size, a device) names one case for each, so that a quick
check never overwrites the full run.  ``SPARSOLVE_RESULTS=DIR`` sends a run's JSON to DIR
instead (a trial run; nothing committed changes).

After writing into ``benchmarks/results/`` :func:`record` regenerates ``benchmarks/RESULTS.md``
from every JSON file: a section a case (sorted by title), each followed by its hand-written
reading from ``benchmarks/READINGS.md`` (a ``## <case>`` heading per reading), which
regeneration never touches.  ``python benchmarks/harness.py`` does the same by hand, and
``python benchmarks/harness.py --check`` fails when a JSON file is malformed or RESULTS.md is
not what the JSON would generate (tests/test_benchmarks.py runs it).

Results carried over from the hand-written RESULTS.md of before this harness hold
``"migrated": {...}``: their tables and figures were transcribed from that text, with the date,
command and machine it recorded, and were not rerun.

The README quotes figures of cases: a sentence names its case by a link to
``benchmarks/RESULTS.md#<case>``, and tests/test_benchmarks.py checks that every number it
quotes is one of that case's figures (as rounded in the sentence).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
READINGS_MD = HERE / "READINGS.md"

#: The libraries whose versions a result records when they are imported.
PEERS = ("numpy", "scipy", "numba", "torch", "sklearn", "spams", "sparsify", "sae_lens", "sporco", "alphacsc",
         "triton", "cupy")
#: What every result file holds (``migrated`` and ``figures``/``tables`` contents aside).
FIELDS = {"case": str, "title": str, "date": str, "command": (str, type(None)), "machine": dict,
          "versions": dict, "comparison": (str, type(None)), "figures": dict, "tables": dict,
          "notes": (str, type(None))}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average (None where the system has none): say it with every timing."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine() -> dict:
    """What a timing depends on: CPU or GPU, cores, BLAS and its threads, torch and numba threads,
    the load average now."""
    info = {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(), "load": load_average()}
    torch = sys.modules.get("torch")
    if torch is not None:  # read before threadpoolctl's inspection, which can reset torch's count
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    if "numba" in sys.modules:
        info["numba_threads"] = sys.modules["numba"].get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [f"{i['internal_api']} {i.get('version', '')} ({i['num_threads']} threads)"
                        for i in threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        info["blas"] = None
    if torch is not None and torch.get_num_threads() != info["torch_threads"]:
        torch.set_num_threads(info["torch_threads"])
    return info


def versions() -> dict:
    """The version of sparsolve (and its git commit) and of every imported peer."""
    out = {}
    for name in ("sparsolve", *PEERS):
        if name not in sys.modules:
            continue  # importing a peer here would cost seconds and change nothing measured
        out[name] = getattr(sys.modules[name], "__version__", "?")
    try:
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
    if isinstance(value, float) and value != value:
        return None  # JSON has no NaN: a missing value
    return value


def _command() -> str | None:
    if not sys.argv or not sys.argv[0]:
        return None
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(HERE.parent)
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def _results_folder(results_dir: Path | None = None) -> Path:
    """Where results go: ``results_dir``, else $SPARSOLVE_RESULTS, else benchmarks/results."""
    if results_dir is not None:
        return Path(results_dir)
    return Path(os.environ["SPARSOLVE_RESULTS"]) if os.environ.get("SPARSOLVE_RESULTS") else RESULTS_DIR


def record(case: str, *, title: str, tables: dict | None = None, figures: dict | None = None,
           comparison: str | None = None, notes: str | None = None, load_before=None,
           results_dir: Path | None = None) -> Path:
    """Write ``<results>/<case>.json`` (atomically) and return its path; regenerate RESULTS.md
    when it went to benchmarks/results.

    ``case``: a file-name-safe key, one for each setting of a benchmark; ``title``: the section
    heading in RESULTS.md; ``tables``: {caption: [row dict, ...]}, rendered as markdown tables in
    the order given (round the numbers to what they mean: a float is shown to at most 6
    significant digits); ``figures``: {name: number} that the README may quote; ``comparison``:
    what the methods are held equal on ("equal data", "equal wall time", "equal certified
    accuracy", ...); ``notes``: the set-up and the script's own reading, one paragraph or a few;
    ``load_before``: the load average when the measurement started (:func:`load_average`; by
    default none is recorded, only the load at the end)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", case):
        raise ValueError(f"case={case!r}: use letters, digits, '_', '-' and '.' only (it names a file)")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("title: a non-empty string (the section heading in RESULTS.md)")
    for name, value in (("tables", tables), ("figures", figures)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name}: a dict, not {type(value).__name__}")
    for caption, rows in (tables or {}).items():
        if not isinstance(rows, (list, tuple)) or not all(isinstance(r, dict) for r in rows):
            raise TypeError(f"tables[{caption!r}]: a list of dicts, one per row")
    info = machine()
    load_after = info.pop("load")
    payload = {
        "case": case,
        "title": title,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": _command(),
        "machine": {**info, "load_before": load_before, "load_after": load_after},
        "versions": versions(),
        "comparison": comparison,
        "figures": _jsonable(figures or {}),
        "tables": _jsonable(tables or {}),
        "notes": notes,
    }
    validate(payload)
    folder = _results_folder(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print("\n".join(section(payload)[4:]), flush=True)  # the section, without its anchor and heading
    print(f"wrote {_shown(path)}", flush=True)
    if folder.resolve() == RESULTS_DIR.resolve():
        write_results()
    return path


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def validate(payload: dict, source: str = "result") -> dict:
    """``payload`` if it is a well-formed result; else a ValueError naming ``source`` and the field."""
    if not isinstance(payload, dict):
        raise ValueError(f"{source}: a JSON object, not {type(payload).__name__}")
    for key, kind in FIELDS.items():
        if key not in payload:
            raise ValueError(f"{source}: no {key!r} field")
        if not isinstance(payload[key], kind):
            raise ValueError(f"{source}: {key!r} is {type(payload[key]).__name__}")
    for name, value in payload["figures"].items():
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ValueError(f"{source}: figure {name!r} is {type(value).__name__}; a figure is a number")
    for caption, rows in payload["tables"].items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{source}: table {caption!r} is not a list of row objects")
    return payload


def load(case: str, results_dir: Path | None = None) -> dict:
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    path = folder / f"{case}.json"
    if not path.exists():
        raise KeyError(f"no result {case!r} (no {_shown(path)})")
    return validate(json.loads(path.read_text(encoding="utf-8")), _shown(path))


def cases(results_dir: Path | None = None) -> list[dict]:
    """Every result in ``results_dir`` (benchmarks/results), validated, in RESULTS.md's order."""
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out = []
    for path in sorted(folder.glob("*.json")):
        payload = validate(json.loads(path.read_text(encoding="utf-8")), _shown(path))
        if payload["case"] != path.stem:
            raise ValueError(f"{_shown(path)}: its case is {payload['case']!r}; the file must be named after it")
        out.append(payload)
    return sorted(out, key=lambda c: (c["title"].casefold(), c["case"]))


def figure(case: str, name: str, results_dir: Path | None = None):
    """One figure of one case: what a README sentence quotes."""
    figures = load(case, results_dir)["figures"]
    if name not in figures:
        raise KeyError(f"case {case!r} has no figure {name!r}; it has {sorted(figures)}")
    return figures[name]


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 1000 else str(v)
    if isinstance(v, float):
        if v != v:
            return "–"
        short = f"{v:.6g}"
        if float(short) != v:  # a measured float: 4 significant digits
            short = f"{v:.4g}"
        if "e" not in short and abs(v) >= 1000 and float(short) == round(v):
            short = f"{v:,.0f}"
        return short
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def readings(path: Path = READINGS_MD) -> dict:
    """The hand-written readings: {case: text} from ``## <case>`` headings (text before the first
    heading is the file's own introduction)."""
    if not path.exists():
        return {}
    out, case, lines = {}, None, []
    for line in path.read_text(encoding="utf-8").splitlines():
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
    if m.get("description"):
        parts = [m["description"].rstrip(".")]
    else:
        parts = [m.get("gpu") or m.get("cpu"), f"{m.get('cores')} cores"]
        if m.get("blas"):
            parts.append("BLAS " + "; ".join(m["blas"]))
        for key, label in (("torch_threads", "torch threads"), ("numba_threads", "numba threads")):
            if m.get(key) is not None:
                parts.append(f"{label} {m[key]}")
    load = [("before", m.get("load_before")), ("after", m.get("load_after"))]
    load = ", ".join(f"{w} {v[0] if isinstance(v, list) else v}" for w, v in load if v is not None)
    if load:
        parts.append(f"load average (1 min) {load}")
    return "; ".join(str(p) for p in parts if p)


def _provenance(c: dict) -> str:
    commit = c["versions"].get("commit")
    at = f" at commit `{commit}`" if commit else ""
    migrated = c.get("migrated")
    if migrated:
        return (f"*Case `{c['case']}`: measured {c['date']}{at}; `{c.get('command')}`.  Transcribed from the "
                f"hand-written RESULTS.md ({migrated.get('from', 'before the harness')}), not rerun.*")
    return f"*Case `{c['case']}`: {c['date']}{at}; `{c.get('command')}`.*"


def section(c: dict, reading: str | None = None) -> list[str]:
    """One case's section of RESULTS.md, as lines."""
    out = [f'<a id="{c["case"]}"></a>', "", f"## {c['title']}", "", _provenance(c), "",
           f"Machine: {_machine_line(c['machine'])}.", ""]
    if c.get("comparison"):
        out += [f"Comparison: {c['comparison']}.", ""]
    if c.get("notes"):
        out += [c["notes"].strip(), ""]
    for caption, rows in c.get("tables", {}).items():
        out += [f"**{caption}**", "", markdown_table(rows), ""]
    if c.get("figures"):
        out += ["Figures: " + ", ".join(f"`{k}` = {_cell(v)}" for k, v in c["figures"].items()) + ".", ""]
    if reading:
        out += ["*Reading:*", "", reading, ""]
    return out


def render(results_dir: Path | None = None, readings_path: Path = READINGS_MD) -> str:
    found = cases(results_dir)
    notes = readings(readings_path)
    out = ["# Benchmark results", "",
           "Generated by `python benchmarks/harness.py` from `benchmarks/results/*.json`; do not edit by hand.",
           "Each section names the command that regenerates it; the readings under *Reading* are hand-written, "
           "in `benchmarks/READINGS.md`.", ""]
    out += [f"* [{c['title']}](#{c['case']})" for c in found] + [""]
    for c in found:
        out += section(c, notes.get(c["case"]))
    orphan = sorted(set(notes) - {c["case"] for c in found})
    if orphan:
        out += ["## Readings without a result", ""]
        for case in orphan:
            out += [f"### {case}", "", notes[case], ""]
    return "\n".join(out).rstrip() + "\n"


def write_results() -> Path:
    """Regenerate benchmarks/RESULTS.md from benchmarks/results/*.json and READINGS.md."""
    text = render()
    tmp = RESULTS_MD.with_name(f".{RESULTS_MD.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, RESULTS_MD)
    print(f"wrote {_shown(RESULTS_MD)} ({len(text.splitlines())} lines)", flush=True)
    return RESULTS_MD


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate benchmarks/RESULTS.md from benchmarks/results/*.json")
    parser.add_argument("--check", action="store_true", help="fail if RESULTS.md differs from what would be generated")
    args = parser.parse_args(argv)
    if args.check:
        try:
            text = render()
        except ValueError as e:
            print(f"benchmarks/results: {e}", file=sys.stderr)
            return 1
        current = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else ""
        if current != text:
            print("benchmarks/RESULTS.md is stale: run `python benchmarks/harness.py`", file=sys.stderr)
            return 1
        print("benchmarks/RESULTS.md matches benchmarks/results/*.json and READINGS.md")
        return 0
    write_results()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
