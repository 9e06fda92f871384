"""Compiling a Triton kernel for an H100/H200 (sm_90) on a machine without a GPU, for the tests
that check what Triton's interpreter cannot: that a kernel lowers, how it rounds (the PTX), and
that it fits its registers (tests/test_online_triton.py, tests/test_fused.py)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def compile_for_sm90(kernel, signature: dict, constexprs: dict, num_warps: int):
    """``kernel`` compiled for sm_90: its ``asm`` holds the "ttgir", "ptx" and "cubin"."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    return triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                          target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def assert_no_spills(compiled, folder: Path) -> None:
    """No stack in the cubin (a spill is local memory), where Triton ships cuobjdump to read it."""
    import triton

    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not cuobjdump.exists():
        return
    cubin = folder / "kernel.cubin"
    cubin.write_bytes(compiled.asm["cubin"])
    usage = subprocess.run([str(cuobjdump), "--dump-resource-usage", str(cubin)], capture_output=True,
                           text=True).stdout
    assert " STACK:0 " in usage, usage
