"""A Triton kernel for the in-block steps of the blocked online pass (sparsolve.rules.online.online_blocked)
under a projected norm rule ("unit", "ball").

For a block J of k atoms (64 in fit), online_blocked's products give W (k, p), the rows
W_t = (B̄_t − Ā_t D + Ā_tt d_t^old) / (Ā_tt + decay) with the atoms of J at their old values
d_t^old, and the coupling C_ti = Ā_ti / (Ā_tt + decay).  The in-block steps are then, for t = 1..k in order,

    u_t = W_t − Σ_{i<t} C_ti Δ_i,     d_t^new = Π(u_t) = u_t / max(‖u_t‖, floor),
    Δ_t = κ_t (d_t^new − d_t^old),

with κ_t = 1 for a used atom and 0 for an unused one (it keeps its row).  Each Π is nonlinear,
so the steps are sequential; as array operations they are 11 small kernels a step, and on a GPU
those launches, not the arithmetic, set the time.  The kernel runs a whole block's steps in ONE
launch (one program): a pass over 1,024 atoms in blocks of 64 launches 167 kernels instead of
11,383 (``benchmarks/online_update.py --launches``).

It does not store Δ: with s_i = max(‖u_i‖, floor), Δ_i = κ_i (u_i / s_i − d_i^old), so

    u_t = V_t − Σ_{i<t} (C_ti κ_i / s_i) u_i,      V_t = W_t + Σ_{i<t} C_ti κ_i d_i^old,

where V is one small (k, k)·(k, p) product made before the launch.  A step is then one pass
over the p features (tiled): read V_t and the earlier u_i, write u_t, sum u_t², then write
1/s_t.  The new rows κ_t u_t / s_t + (1 − κ_t) d_t^old are formed after the launch.  The u_i and
1/s_i written by a step are read by other threads in the next steps: ``tl.debug_barrier()``
(__syncthreads, which orders global memory within the program's thread block) ends each step,
and those reads bypass L1 (``.cg``).

Used by online_blocked for float32/float64 CUDA torch tensors when Triton imports; everything
else (cupy, CPU, no Triton) runs the Python loop of online._in_block_steps, which the tests
compare this kernel with.  With ``TRITON_INTERPRET=1`` set before the first use, Triton's
interpreter runs it on CPU tensors (the tests do; the interpreter runs the threads one after
another, so it cannot show a missing barrier: the GPU test is the check for that).
"""
from __future__ import annotations

import functools

from .. import backend

# A step reads the earlier u_i CHUNK rows by TILE features at a time, one feature column per
# thread: with 16 rows a thread holds 16 values and their 16 addresses, 75 registers in float32
# and 126 in float64 without spills (ptxas for sm_90, Triton 3.9); 64 rows at once spilled.
CHUNK = 16
MAX_TILE = 256
_DTYPES = ("float32", "float64")


@functools.cache
def _kernel():
    """The jitted kernel (built on first use), or None where Triton cannot be imported."""
    modules = backend.triton_modules()
    return None if modules is None else _build(*modules)


def _build(triton, tl):
    """The in-block kernel of the module docstring, given triton and triton.language."""

    @triton.jit
    def in_block(v_ptr, c_ptr, u_ptr, inv_ptr, floor, k, p, stride_v, stride_c, stride_u,
                 CHUNK: tl.constexpr, TILE: tl.constexpr):
        rows = tl.arange(0, CHUNK)
        cols = tl.arange(0, TILE)
        for t in range(0, k):
            squares = tl.zeros([TILE], dtype=v_ptr.dtype.element_ty)
            for start in range(0, p, TILE):
                f = start + cols
                inside = f < p
                u = tl.load(v_ptr + t * stride_v + f, mask=inside, other=0.0)
                for first in range(0, t, CHUNK):  # the earlier rows, CHUNK at a time
                    i = first + rows
                    earlier = i < t
                    coef = (tl.load(c_ptr + t * stride_c + i, mask=earlier, other=0.0)
                            * tl.load(inv_ptr + i, mask=earlier, other=0.0, cache_modifier=".cg"))
                    prior = tl.load(u_ptr + i[:, None] * stride_u + f[None, :],
                                    mask=earlier[:, None] & inside[None, :], other=0.0, cache_modifier=".cg")
                    u -= tl.sum(coef[:, None] * prior, axis=0)
                tl.store(u_ptr + t * stride_u + f, u, mask=inside)
                squares += u * u
            total = tl.sum(squares, axis=0)
            if total.dtype == tl.float32:  # rounded to nearest as in torch: sqrt and / are approximate
                tl.store(inv_ptr + t, tl.div_rn(1.0, tl.maximum(tl.sqrt_rn(total), floor)))
            else:
                tl.store(inv_ptr + t, 1.0 / tl.maximum(tl.sqrt(total), floor))
            tl.debug_barrier()  # step t's u_t and 1/s_t, written by all threads, are read by all in step t + 1

    return in_block


def available() -> bool:
    return _kernel() is not None


def usable(D) -> bool:
    """Whether online_blocked runs its in-block steps here for the dictionary D: a float32 or
    float64 CUDA torch tensor, with Triton importable."""
    return (backend.is_torch(D) and backend.on_gpu(D) and backend.dtype_name(D) in _DTYPES
            and available())


def tile_for(p: int) -> int:
    """Features per tile for rows of p features: a power of two from 32 (one warp) to MAX_TILE."""
    return min(MAX_TILE, max(32, 1 << (int(p) - 1).bit_length()))


def in_block_steps(W, coupling, old, keep, floor):
    """The new rows of a block (module docstring), written over ``old`` (the block of D): W, old
    (k, p), coupling (k, k) strictly lower with the columns of unused atoms zero (the C_ti κ_i of
    the module docstring), keep (k,) booleans, floor > 0 the norm rule's.  Same arguments and
    effect as online._in_block_steps.  Four launches: V, the kernel, and the rows (two)."""
    k, p = W.shape
    V = (W + coupling @ old).contiguous()
    U = V.new_empty((k, p))
    inverse = V.new_empty((k,))
    kernel = _kernel()
    tile = tile_for(p)
    coupling = coupling.contiguous()
    # floor goes in as a float32 scalar: exact for "ball" (1); "unit"'s 1e-12 moves by 2e-8 of
    # itself, which changes only a u shorter than 1e-12
    kernel[(1,)](V, coupling, U, inverse, float(floor), k, p, V.stride(0), coupling.stride(0), U.stride(0),
                 CHUNK=CHUNK, TILE=tile, num_warps=tile // 32)
    U *= inverse[:, None]
    backend.namespace(U).where(keep[:, None], U, old, out=old)
