"""Time every code block of README.md at the sizes written in it, and say the load.

    PYTHONPATH=. python docs/readme_times.py            # every block
    PYTHONPATH=. python docs/readme_times.py --only 1 3  # blocks 1 and 3 (numbered as printed)

tests/test_readme.py checks that the blocks run (with their sizes capped, so it takes seconds); this
script gives the times the README states beside them.  It runs in a temporary folder, as a reader
would: the python blocks in order in one namespace (a block whose first line is ``# needs: ...`` in
its own, where those modules import), and of each bash block the lines that run sparsolve itself
(``sparsolve ...``, ``python -m sparsolve ...``, ``python -c ...``, ``torchrun ...``, ``python docs/...``)
in a shell; a
command's ``DATA.npy`` is 10,000 8×8 patches of the photos.  (The API reference's build writes docs/api/, which git ignores.)  Installs, the test suite and the
benchmark commands are listed, not run: the README states their times where they are.  Each line
printed is: block, kind, first line, seconds, the 1-minute load average before and after.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNS = ("sparsolve ", "python -m sparsolve", "python -c ", "torchrun ", "python docs/")


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced python or bash block, in order."""
    return re.findall(r"^```(python|bash)\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def load() -> float:
    return os.getloadavg()[0]


def needs(code: str) -> list[str]:
    first = code.split("\n", 1)[0]
    return [m.strip() for m in first.split(":", 1)[1].split(",")] if first.startswith("# needs:") else []


def run_bash(code: str, env: dict) -> list[tuple[str, float]] | None:
    """Run the block's sparsolve lines: (line, seconds) of each; None when it has none."""
    lines = [line.split("  #", 1)[0].strip() for line in code.splitlines()]
    lines = [line for line in lines if line.startswith(RUNS)]
    if not lines:
        return None
    if any("DATA.npy" in line for line in lines) and not Path("DATA.npy").exists():
        import numpy as np

        from sparsolve.data import natural_image_patches

        np.save("DATA.npy", natural_image_patches(8, 10_000, seed=4))
    times = []
    for line in lines:
        start = time.perf_counter()
        subprocess.run(line, shell=True, check=True, env=env, stdout=subprocess.DEVNULL)
        times.append((line, time.perf_counter() - start))
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", type=int, nargs="*", help="the block numbers to run (python blocks before "
                        "them still run, unless --alone, since they build the namespace)")
    parser.add_argument("--alone", action="store_true", help="with --only: do not run the python blocks before")
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    sys.path.insert(0, str(ROOT))
    namespace = {"__name__": "readme"}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for folder in ("examples", "benchmarks", "docs"):  # the commands name scripts relative to the repository
            os.symlink(ROOT / folder, folder)
        for i, (lang, code) in enumerate(blocks(), 1):
            wanted = args.only is None or i in args.only
            if not wanted and (args.alone or lang != "python" or needs(code)):
                continue
            head = code.strip().splitlines()[0][:70]
            before, start = load(), time.perf_counter()
            if lang == "python":
                missing = [m for m in needs(code) if not _imports(m)]
                if missing:
                    print(f"{i:2d} python  {head!r}: skipped, {', '.join(missing)} missing", flush=True)
                    continue
                exec(compile(code, f"README.md block {i}", "exec"), {"__name__": "readme"} if needs(code)
                     else namespace)  # noqa: S102 -- the README's own code
            else:
                lines = run_bash(code, env)
                if lines is None:
                    print(f"{i:2d} bash    {head!r}: not run (install, tests or a benchmark)", flush=True)
                    continue
                for line, seconds in lines:
                    print(f"   line    {line[:70]!r}: {seconds:.1f} s", flush=True)
            if wanted:
                print(f"{i:2d} {lang:7s} {head!r}: {time.perf_counter() - start:.1f} s, load {before:.1f} -> "
                      f"{load():.1f}", flush=True)
    return 0


def _imports(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
