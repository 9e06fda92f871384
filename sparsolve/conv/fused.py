"""The host fast path of ADMM's step (:mod:`.admm`): its element-wise work as two numba kernels.

Written with array operations, a step of ADMM on a batch of images is some twenty passes over
code-sized arrays -- complex ones in the Fourier domain, real ones in space -- and on a CPU those
passes cost more than the two transforms (a profile of 8 images 128×128 with 32 filters: 55% of the
step).  Each kernel makes one pass, one signal a thread:

* :func:`spectral_solve`, the x-step's per-frequency solve with one channel (Sherman–Morrison):
  b = (Dᵀx)^ + ρ B̂,  ẑ = (b − conj(â) (âᵀb)/(ρ + ‖â‖²)) / ρ,  â = D̂(ω) the filters' transfer functions;
* :func:`update`, the relaxation, threshold and dual update, and the five squared norms that residual
  balancing reads:  v = y + λ(z − y) + u,  y' = T_{α/ρ}(v),  u' = v − y',  and y' − u' for the next step.

The array-operation step stays the reference (torch, cupy, several channels) and the tests compare the
two (tests/test_conv_encode.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..prox import threshold_scalar


@njit(parallel=True, cache=True)
def spectral_solve(drive, Bf, rho, S, energy, out):
    """out[n] = ẑ for each signal n (module docstring); drive, Bf, out: (n, K, F) complex; S: (K, F)."""
    n, K, F = drive.shape
    for i in prange(n):
        r = rho[i]
        acc = np.zeros(F, dtype=drive.dtype)
        for k in range(K):
            for f in range(F):
                b = drive[i, k, f] + r * Bf[i, k, f]
                out[i, k, f] = b
                acc[f] += S[k, f] * b
        for f in range(F):
            acc[f] /= r + energy[f]
        inv = 1.0 / r
        for k in range(K):
            for f in range(F):
                out[i, k, f] = (out[i, k, f] - np.conj(S[k, f]) * acc[f]) * inv


@njit(parallel=True, cache=True)
def update(z, y, u, rho, alpha, relax, positive, w, norms):
    """y, u ← y', u' in place and w ← y' − u' (module docstring), with norms[n] = (‖z‖², ‖y'‖², ‖z − y'‖²,
    ‖y' − y‖², ‖u'‖²) per signal; arrays (n, M)."""
    n, M = z.shape
    for i in prange(n):
        t = alpha / rho[i]
        zz = 0.0
        yy = 0.0
        zy = 0.0
        dy = 0.0
        uu = 0.0
        for j in range(M):
            zj = z[i, j]
            yj = y[i, j]
            v = yj + relax * (zj - yj) + u[i, j]
            yn = threshold_scalar(v, t, positive)
            un = v - yn
            zz += zj * zj
            yy += yn * yn
            zy += (zj - yn) * (zj - yn)
            dy += (yn - yj) * (yn - yj)
            uu += un * un
            y[i, j] = yn
            u[i, j] = un
            w[i, j] = yn - un
        norms[i, 0] = zz
        norms[i, 1] = yy
        norms[i, 2] = zy
        norms[i, 3] = dy
        norms[i, 4] = uu
