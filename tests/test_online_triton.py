"""The Triton kernel for the online pass's in-block steps (sparsolve/learning/_online_triton.py)
against the Python loop it replaces (sparsolve.rules.online._in_block_steps) and the numba reference pass.

On a CPU the kernel runs in Triton's interpreter (TRITON_INTERPRET=1), in one subprocess for
all cases: the variable must be set before Triton compiles a kernel, and setting it in this
pytest process would make every later Triton kernel here (the fused FISTA step of the GPU
tests) interpreted too.  The interpreter runs a program's threads one after another, so it
checks the arithmetic, the masks and the tails (p not a multiple of the tile, a short last
block, unused atoms, p = 1), but it cannot reveal a race between one step's writes and the
next step's reads: the gpu-marked test below, on the compiled kernel, is that check.
Skipped where Triton is not installed (CI has none).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sparsolve
from sparsolve.rules import _online_triton, norm_rule, online

torch = pytest.importorskip("torch")

# name: (m atoms, p features, block, norm, dtype, unused atoms).  p = 300 takes two feature tiles,
# the second partial (test_the_cases_reach_the_tails); m = 40 in blocks of 7 and m = 70 in
# blocks of 64 end on a short block, and blocks of 64 read the earlier rows in 4 chunks.
CASES = {
    "unit-float64": (40, 12, 7, "unit", "float64", [5, 17]),
    "ball-float64": (40, 12, 7, "ball", "float64", [5, 17]),
    "unit-float32": (40, 12, 7, "unit", "float32", [5, 17]),
    "ball-float32": (40, 12, 7, "ball", "float32", [5, 17]),
    "unit-float64-partial-tile": (70, 300, 64, "unit", "float64", [3, 66]),
    "ball-float32-partial-tile": (70, 300, 64, "ball", "float32", [3, 66]),
    "unit-p1": (10, 1, 4, "unit", "float64", [2]),
    "ball-p1": (10, 1, 4, "ball", "float64", [2]),
}

# The child: run online_blocked with its in-block steps on the kernel (interpreted, CPU tensors),
# counting the launches, and save each case's new dictionary.
_CHILD = """
import json, sys
import numpy as np, torch
from sparsolve.rules import _online_triton, norm_rule, online
cases = json.loads(sys.argv[1]); inputs = np.load(sys.argv[2])
launches = {}
kernel_steps = _online_triton.in_block_steps
def counted(*args):
    launches[name] += 1
    return kernel_steps(*args)
_online_triton.in_block_steps = counted
_online_triton.usable = lambda D: True  # CPU tensors: the interpreter runs the kernel on them
out = {}
for name, (m, p, block, norm, dtype, unused) in cases.items():
    launches[name] = 0
    D, A, B = (torch.from_numpy(inputs[name + part]).to(getattr(torch, dtype)) for part in ("D", "A", "B"))
    out[name] = online.online_blocked(D, A, B, norm_rule(norm), 0.0, block=block).numpy()
np.savez(sys.argv[3], **out)
print(json.dumps(launches))
"""


def _statistics(m, p, unused, seed=3):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, p)) / np.sqrt(p)  # norms about 1: "ball" leaves some rows inside
    Z = np.abs(rng.standard_normal((5 * m, m))) * (rng.random((5 * m, m)) < 0.2)
    Z[:, unused] = 0.0
    A, B = online.batch_statistics(Z @ D + 0.1 * rng.standard_normal((5 * m, p)), Z)
    return D, A, B


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    """{case: (inputs, the kernel's new D)} and {case: launches}, from one interpreter subprocess."""
    pytest.importorskip("triton", reason="Triton is not installed: the kernel's interpreter tests need it")
    folder = tmp_path_factory.mktemp("online_triton")
    inputs = {name: _statistics(m, p, unused) for name, (m, p, _, _, _, unused) in CASES.items()}
    np.savez(folder / "in.npz", **{name + part: a for name, arrays in inputs.items()
                                   for part, a in zip(("D", "A", "B"), arrays)})
    root = str(Path(sparsolve.__file__).resolve().parent.parent)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(CASES), str(folder / "in.npz"),
                           str(folder / "out.npz")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(folder / "out.npz")
    return {name: (inputs[name], out[name]) for name in CASES}, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_cases_reach_the_tails():
    tile = _online_triton.tile_for(300)
    assert tile < 300 and 300 % tile and _online_triton.tile_for(1) == 32
    assert 64 > 3 * _online_triton.CHUNK and 64 % _online_triton.CHUNK == 0 and 7 < _online_triton.CHUNK


@pytest.mark.slow  # a subprocess in Triton's interpreter
@pytest.mark.parametrize("name", list(CASES))
def test_interpreted_kernel_equals_the_loop_and_the_numba_pass(interpreted, name):
    results, launches = interpreted
    m, p, block, norm, dtype, unused = CASES[name]
    (D, A, B), kernel = results[name]
    assert launches[name] == math.ceil(m / block)  # one launch a block: the kernel did run
    loop = online.online_blocked(*(torch.from_numpy(a).to(getattr(torch, dtype)) for a in (D, A, B)),
                                 norm_rule(norm), 0.0, block=block).numpy()
    reference = online.online(D, A, B, norm_rule(norm), 0.0)  # the sequential numba pass, float64
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(kernel, loop, rtol=0, atol=tol)
    np.testing.assert_allclose(kernel, reference, rtol=0, atol=tol)
    np.testing.assert_array_equal(kernel[unused], D[unused].astype(dtype))  # unused atoms keep their rows
    used = np.setdiff1d(np.arange(m), unused)
    norms_after = np.linalg.norm(kernel[used].astype(np.float64), axis=1)
    if norm == "unit":
        np.testing.assert_allclose(norms_after, 1.0, atol=tol)
    else:  # some rows projected onto the sphere, some left inside the ball
        assert norms_after.max() <= 1 + tol and (norms_after < 1 - 1e-3).any() and (norms_after > 1 - tol).any()
    assert np.abs(kernel - D).max() > 1e-3  # the pass moved the dictionary


@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_kernel_compiles_for_an_h100_without_spills(dtype, tmp_path):
    """Triton compiles for a GPU it does not have (sm_90: H100/H200), which checks what the
    interpreter does not: that the kernel type-checks and lowers, keeps each step's barrier, reads
    the earlier rows past L1, takes the correctly rounded sqrt and division (Triton's float32
    defaults are approximate), and fits its registers (no stack: a spill is local memory)."""
    pytest.importorskip("triton", reason="Triton is not installed")
    if os.environ.get("TRITON_INTERPRET"):
        pytest.skip("TRITON_INTERPRET is set: the kernel would not be compiled")
    from triton_compile import assert_no_spills, compile_for_sm90

    signature = {name: f"*{dtype}" for name in ("v_ptr", "c_ptr", "u_ptr", "inv_ptr")}
    signature.update(floor="fp32", k="i32", p="i32", stride_v="i32", stride_c="i32", stride_u="i32",
                     CHUNK="constexpr", TILE="constexpr")
    tile = _online_triton.MAX_TILE
    compiled = compile_for_sm90(_online_triton._kernel(), signature, {"CHUNK": _online_triton.CHUNK, "TILE": tile},
                                num_warps=tile // 32)
    assert "ttg.barrier" in compiled.asm["ttgir"]  # tl.debug_barrier (a reduction's barriers come later)
    ptx = compiled.asm["ptx"]
    assert "ld.global.cg" in ptx
    assert "div.full" not in ptx and "sqrt.approx" not in ptx  # 1/s_t rounded as torch rounds it
    assert_no_spills(compiled, tmp_path)


# ---- the compiled kernel on CUDA: the check for races ---------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm", ["unit", "ball"])
@pytest.mark.parametrize("m,p,block", [(300, 700, 64), (150, 3000, 64), (90, 1, 7)])
def test_cuda_kernel_equals_the_loop(monkeypatch, norm, dtype, m, p, block):
    """The compiled kernel against the Python loop on the same CUDA tensors: p = 700 and 3,000
    take 3 and 12 feature tiles a step and blocks of 64 read the earlier rows in up to 4 chunks,
    so a step that read an earlier u_i before every thread had written it would show here;
    three runs must agree bit for bit."""
    if not _online_triton.available():
        pytest.skip("Triton is not installed")
    D, A, B = (torch.from_numpy(a).to("cuda", getattr(torch, dtype)) for a in _statistics(m, p, [1, m - 2]))
    assert _online_triton.usable(D)
    runs = [online.online_blocked(D, A, B, norm_rule(norm), 0.0, block=block) for _ in range(3)]
    with monkeypatch.context() as patch:
        patch.setattr(_online_triton, "usable", lambda D: False)
        loop = online.online_blocked(D, A, B, norm_rule(norm), 0.0, block=block)
    tol = 1e-11 if dtype == "float64" else 3e-5
    np.testing.assert_allclose(runs[0].cpu().numpy(), loop.cpu().numpy(), rtol=0, atol=tol)
    for again in runs[1:]:
        assert torch.equal(again, runs[0])
    assert torch.equal(runs[0][[1, m - 2]], D[[1, m - 2]])
