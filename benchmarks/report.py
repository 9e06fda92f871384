"""What every benchmark shares: a description of the machine and the one writer of RESULTS.md."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """CPU model, cores, BLAS, torch and numba threads: what a timing depends on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i.get('version', '')} ({i['num_threads']} threads)"
                         for i in threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        blas = "unknown"
    import numba
    import torch

    return (f"{cpu}, {os.cpu_count()} cores; BLAS: {blas}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); numba {numba.get_num_threads()} threads; "
            f"Python {platform.python_version()}")


def write_section(section: str, text: str) -> None:
    """Replace (or append) one benchmark's section of RESULTS.md, leaving the others alone."""
    body = f"{section}\n\n{text.strip()}\n"
    old = RESULTS.read_text() if RESULTS.exists() else (
        "# Benchmark results\n\nEach section is written by the benchmark named in its heading; "
        "rerun that script to refresh it.\n")
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: body + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + body
    tmp = RESULTS.with_name(RESULTS.name + f".{os.getpid()}.tmp")
    tmp.write_text(new)
    os.replace(tmp, RESULTS)
