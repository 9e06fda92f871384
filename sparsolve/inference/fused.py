"""A fused CUDA kernel (Triton) for FISTA's element-wise update: the one
backend-specific fast path in the iterative solvers.

Given the correlation c = (x − yD)Dᵀ from the library's matrix product, FISTA's
step (see :mod:`sparsolve.inference.fista`) is, for each row,

    z' = T_{α/L}(y + c/L)
    t' = (1 + √(1 + 4t²)) / 2,   β = (t − 1)/t'
    if ⟨y − z', z' − z⟩ > 0:  β = 0, t' = 1            (adaptive restart)
    y' = z' + β (z' − z)

Written with array operations this is about fifteen passes over (n, m) arrays, and
on a GPU those passes, not the product, set the time.  The kernel gives each row
one program that reads c, y and z once and writes z' and y': five (n, m)
transfers, the least this update can move.  The outputs are fresh arrays, not the
inputs overwritten: Triton assumes that its pointer arguments do not alias, and an
in-place version gave wrong float64 results on an H200 (a load re-issued after the
store that overwrote it is our reading; the out-of-place kernel is the cure either way).  T is :func:`sparsolve.prox.prox_l1`
with the same formula (u − clip(u, −t, t), or max(u − t, 0) when z ≥ 0).

Why it is kept: benchmarks/encode.py --device cuda measures the step with and
without it, against the floor, in the same run (benchmarks/RESULTS.md).

Used when ``fused="auto"`` (the default) and z is a contiguous CUDA tensor with at
most ``MAX_ATOMS`` columns and Triton is importable; otherwise FISTA runs its
array-operation step, which is the reference the tests compare this kernel with.
"""
from __future__ import annotations

import functools

from .. import backend

# A row lives in registers; beyond this many atoms it would spill.
MAX_ATOMS = 16384
FUSED_CHOICES = ("auto", True, False)


@functools.cache
def _kernel():
    """The compiled Triton kernel, or None where Triton cannot be imported."""
    modules = backend.triton_modules()
    if modules is None:
        return None
    triton, tl = modules

    @triton.jit
    def fista_rows(c_ptr, y_ptr, z_ptr, t_ptr, z_out, y_out, t_out, m, stride_c, stride_y, stride_z, stride_out,
                   sizes_ptr, POSITIVE: tl.constexpr, RESTART: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        inv_L = tl.load(sizes_ptr)
        thresh = tl.load(sizes_ptr + 1)
        cols = tl.arange(0, BLOCK)
        inside = cols < m
        c = tl.load(c_ptr + row * stride_c + cols, mask=inside, other=0.0)
        y = tl.load(y_ptr + row * stride_y + cols, mask=inside, other=0.0)
        z = tl.load(z_ptr + row * stride_z + cols, mask=inside, other=0.0)
        u = y + c * inv_L
        if POSITIVE:
            z_new = tl.maximum(u - thresh, 0.0)
        else:
            z_new = u - tl.minimum(tl.maximum(u, -thresh), thresh)
        t = tl.load(t_ptr + row)
        if t.dtype == tl.float32:  # rounded to nearest as torch rounds: Triton's float32 sqrt and / are approximate
            t_new = 0.5 * (1.0 + tl.sqrt_rn(1.0 + 4.0 * t * t))
            beta = tl.div_rn(t - 1.0, t_new)
        else:
            t_new = 0.5 * (1.0 + tl.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new
        if RESTART:
            uphill = tl.sum((y - z_new) * (z_new - z), axis=0) > 0
            beta = tl.where(uphill, 0.0, beta)
            t_new = tl.where(uphill, 1.0, t_new)
        tl.store(z_out + row * stride_out + cols, z_new, mask=inside)
        tl.store(y_out + row * stride_out + cols, z_new + beta * (z_new - z), mask=inside)
        tl.store(t_out + row, t_new)

    return triton, fista_rows


def available() -> bool:
    return _kernel() is not None


def supports(x) -> bool:
    """Whether the kernel can run at all on arrays like ``x``: CUDA torch tensors, Triton installed."""
    return backend.is_torch(x) and backend.on_gpu(x) and available()


def usable(z) -> bool:
    """Whether the kernel can run on the state array z (rows, atoms)."""
    return supports(z) and z.shape[1] <= MAX_ATOMS and z.stride(1) == 1


def step_sizes(z, L: float, alpha: float):
    """[1/L, α/L] as a tensor of z's dtype on z's device.  Triton would pass Python
    floats as float32, and a float32 α/L moves the fixed point off the float64 lasso."""
    import torch

    return torch.tensor([1.0 / L, alpha / L], dtype=z.dtype, device=z.device)


def fista_update(c, y, z, t, sizes, positive: bool, restart: bool):
    """One FISTA update from the correlation c (module docstring): the new (z, y, t).
    ``sizes`` comes from :func:`step_sizes`."""
    import torch

    n, m = z.shape
    z_new, y_new, t_new = torch.empty_like(z), torch.empty_like(z), torch.empty_like(t)
    if n == 0:
        return z_new, y_new, t_new
    for name, a in (("c", c), ("y", y)):
        if a.shape != z.shape or a.stride(1) != 1 or a.dtype != z.dtype:
            raise ValueError(f"{name} must be a row-contiguous {tuple(z.shape)} {z.dtype} array like z")
    triton, kernel = _kernel()
    block = triton.next_power_of_2(m)
    kernel[(n,)](c, y, z, t, z_new, y_new, t_new, m, c.stride(0), y.stride(0), z.stride(0), z_new.stride(0), sizes,
                 POSITIVE=bool(positive), RESTART=bool(restart), BLOCK=block,
                 num_warps=4 if block <= 2048 else 8)
    return z_new, y_new, t_new
