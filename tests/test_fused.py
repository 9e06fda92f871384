"""The fused FISTA kernel (sparsolve/inference/fused.py) without a GPU: run in Triton's
interpreter against FISTA's array-operation step, and compiled for an H100 (sm_90) to check
what the interpreter cannot: that float32 takes the correctly rounded sqrt and division that
torch takes (Triton's float32 defaults are approximate), and that the row fits its registers.

The interpreter needs TRITON_INTERPRET=1 before Triton compiles anything, so it runs in a
subprocess (see tests/test_online_triton.py).  Skipped where Triton is not installed (CI).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sparsolve
from sparsolve.inference import fused

torch = pytest.importorskip("torch")

# The child: FISTA for 40 steps from zero with the kernel (interpreted, on CPU tensors) and with
# the array-operation step, on the same problem; restart and the non-negative prox both taken.
_CHILD = """
import json, sys
import numpy as np, torch
import sparsolve
from sparsolve import backend
from sparsolve.inference import fused
backend.host_view = lambda x: x  # keep the tensors as tensors, as on a GPU (CPU torch is solved on numpy views)
fused.usable = lambda z: True  # CPU tensors: the interpreter runs the kernel on them
launches = 0
kernel_update = fused.fista_update
def counted(*args):
    global launches
    launches += 1
    return kernel_update(*args)
fused.fista_update = counted
rng = np.random.default_rng(0)
out = {}
for dtype in ("float64", "float32"):
    for positive in (False, True):
        D = rng.standard_normal((30, 12)); D /= np.linalg.norm(D, axis=1, keepdims=True)
        X = rng.standard_normal((9, 12))
        X, D = (torch.from_numpy(a).to(getattr(torch, dtype)) for a in (X, D))
        key = f"{dtype}-{positive}"
        for path, option in (("kernel", "auto"), ("arrays", False)):
            out[f"{key}-{path}"] = sparsolve.encode(X, D, 0.1, solver="fista", positive=positive, tol=0.0,
                                                    max_iter=40, fused=option).numpy()
np.savez(sys.argv[1], **out)
print(json.dumps(launches))
"""


@pytest.mark.slow  # a subprocess in Triton's interpreter
def test_interpreted_kernel_equals_the_array_step(tmp_path):
    pytest.importorskip("triton", reason="Triton is not installed: the interpreter test needs it")
    root = str(Path(sparsolve.__file__).resolve().parent.parent)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "out.npz")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) >= 4 * 40  # the kernel did the steps
    out = np.load(tmp_path / "out.npz")
    for dtype in ("float64", "float32"):
        for positive in (False, True):
            kernel, arrays = out[f"{dtype}-{positive}-kernel"], out[f"{dtype}-{positive}-arrays"]
            assert (np.abs(arrays) > 0).sum() > 5 and (arrays == 0).sum() > 5  # a sparse, non-trivial code
            if positive:
                assert arrays.min() >= 0
            # y + c·(1/L) against y + c/L: a rounding apart per step, not more
            np.testing.assert_allclose(kernel, arrays, rtol=0, atol=1e-12 if dtype == "float64" else 1e-5)


@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_kernel_compiles_for_an_h100_rounded_as_torch(dtype, tmp_path):
    pytest.importorskip("triton", reason="Triton is not installed")
    if os.environ.get("TRITON_INTERPRET"):
        pytest.skip("TRITON_INTERPRET is set: the kernel would not be compiled")
    from triton_compile import assert_no_spills, compile_for_sm90

    _, kernel = fused._kernel()
    signature = {name: f"*{dtype}" for name in ("c_ptr", "y_ptr", "z_ptr", "t_ptr", "z_out", "y_out", "t_out",
                                                "sizes_ptr")}
    signature.update(m="i32", stride_c="i32", stride_y="i32", stride_z="i32", stride_out="i32",
                     POSITIVE="constexpr", RESTART="constexpr", BLOCK="constexpr")
    compiled = compile_for_sm90(kernel, signature, {"POSITIVE": False, "RESTART": True, "BLOCK": 1024}, num_warps=4)
    ptx = compiled.asm["ptx"]
    assert "sqrt" in ptx and "div" in ptx  # the momentum's sqrt and division are there to check
    assert "div.full" not in ptx and "sqrt.approx" not in ptx and "div.approx" not in ptx
    assert_no_spills(compiled, tmp_path)
