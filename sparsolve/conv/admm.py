"""ADMM with the x-step solved in the Fourier domain: the fastest certified solver for circular
convolutional sparse coding on the host (benchmarks/RESULTS.md, encode_conv against SPORCO).

The lasso split as min ½‖x − Dz‖² + α‖y‖₁ subject to z = y, with the scaled dual u and a penalty ρ per
signal (Boyd et al. 2011; Bristow et al. 2013 and Wohlberg 2016 for the convolutional x-step)::

    z   = (DᵀD + ρI)⁻¹ (Dᵀx + ρ(y − u))          x-step: per frequency a K×K system of rank C
    z̃   = λ z + (1 − λ) y                          over-relaxation, λ = ``relax`` (1.8)
    y   = T_{α/ρ}(z̃ + u)                           the threshold: y is the sparse iterate
    u  += z̃ − y

Circular convolutions are diagonal in the Fourier domain, so the x-step is, at each frequency ω with
the C×K transfer matrix A = D̂(ω), (AᴴA + ρI)⁻¹ b = (b − Aᴴ(ρI + AAᴴ)⁻¹ A b)/ρ (Woodbury; with one
channel a division, Sherman–Morrison): no iteration, K + C transforms a step, as one FISTA step.  Unlike
FISTA's step 1/L, which the filters' strongest frequency sets, the solve treats every frequency with its
own curvature, which is why ADMM takes fewer steps on natural-image filters (a few hundred where
FISTA takes over a thousand, to a relative gap of 1e-3 on 128×128 images).

ρ follows each signal's residuals (residual balancing): with the relative primal residual
p = ‖z − y‖ / max(‖z‖, ‖y‖) and dual residual d = ‖y − y_prev‖ / ‖u‖, ρ is multiplied by √(p/d)
(bounded by ``rho_scaling``) when p/d leaves [1/μ, μ], μ = ``rho_ratio``, and u divided by the same factor.
The first ρ is 50α + 1 (SPORCO's ConvBPDN default, for signals of unit range).  The certificate is the
loop's duality gap at y, so the answer is certified exactly as FISTA's is.

Boundary "circular" only (the others are not diagonal in the Fourier domain), and the FFT form.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..checks import choice, positive_float, positive_int
from ..inference.base import Iterative
from ..prox import prox_l1
from .operator import FORMS


class ADMM(Iterative):
    """Options: those of :class:`~sparsolve.inference.base.Iterative` (``form`` must be "fft" or "auto";
    ``L`` is not used), plus ``relax`` (λ in (0, 2)), ``rho`` (the first ρ; default 50α + 1),
    ``rho_ratio`` (μ > 1), ``rho_scaling`` (the largest factor ρ moves by at once), ``rho_every`` (steps
    between updates of ρ) and ``fused`` ("auto": on numpy arrays with one channel, the step's element-wise
    work as numba kernels, :mod:`.fused`; False: array operations)."""

    name = "admm"
    default_max_iter = 5000
    BOUNDARIES = ("circular",)
    FORMS = FORMS
    AUTO_FORM = "fft"  # what form="auto" means here: the solve is in the Fourier domain
    OPTIONS = {**Iterative.OPTIONS, "relax": 1.8, "rho": None, "rho_ratio": 1.2, "rho_scaling": 10.0,
               "rho_every": 5, "fused": "auto"}
    OPTION_TYPES = {**Iterative.OPTION_TYPES, "form": FORMS, "relax": float, "rho": float, "rho_ratio": float,
                    "rho_scaling": float, "rho_every": int, "fused": ("auto", False)}

    @classmethod
    def _check(cls, opts, positive, X, D):
        super()._check(opts, positive, X, D)
        choice(opts["form"], "form", ("auto", "fft"))
        relax = positive_float(opts["relax"], "relax")
        if relax >= 2:
            raise ValueError(f"relax must be in (0, 2), got {relax}")
        if opts["rho"] is not None:
            positive_float(opts["rho"], "rho")
        if positive_float(opts["rho_ratio"], "rho_ratio") <= 1:
            raise ValueError(f"rho_ratio must be > 1, got {opts['rho_ratio']}")
        if positive_float(opts["rho_scaling"], "rho_scaling") <= 1:
            raise ValueError(f"rho_scaling must be > 1, got {opts['rho_scaling']}")
        positive_int(opts["rho_every"], "rho_every", "steps between updates of ρ")
        choice(opts["fused"], "fused", ("auto", False))

    def init(self, prob, Z0):
        rho = (50.0 * prob.alpha + 1.0) if self.rho is None else float(self.rho)
        self._steps = 0
        # the host fast path (fused.py): numpy arrays, one channel
        self._fused = (self.fused is not False and isinstance(Z0, np.ndarray)
                       and prob.op.geometry.channels == 1)
        # A warm start y₀ ≠ 0 starts with u = c(y₀)/ρ, the scaled dual that a solution has (c = α·sign y on
        # its support), so a start at the solution stays there, where u = 0 would send the next x-step
        # away from it; a cold start with u = 0, as SPORCO (u = Dᵀx/ρ took more steps)
        xp = backend.namespace(Z0)
        warm = abs(Z0).sum(axis=1) > 0
        u = Z0 * 0
        if bool(warm.any()):
            u = xp.where(warm[:, None], prob.correlation(Z0) / rho, u)
        y = Z0 + 0
        return {"y": y, "u": u, "w": y - u, "rho": backend.ones(Z0, (Z0.shape[0],)) * rho,
                "Dtx": prob.spectral_drive()}

    def step(self, prob, s):
        if self._fused:
            return self._fused_step(prob, s)
        y, u, rho = s["y"], s["u"], s["rho"]
        z = prob.regularized_solve(s["Dtx"], s["w"], rho)
        v = z - y
        v *= self.relax
        v += y  # the relaxed z̃
        v += u
        y_new = prox_l1(v, prob.alpha / rho[:, None], prob.positive)
        v -= y_new  # the new u
        self._steps += 1
        if self._steps % self.rho_every == 0:
            xp = backend.namespace(z)

            def sq(a):
                return (a * a).sum(axis=1)

            norms = xp.stack([sq(z), sq(y_new), sq(z - y_new), sq(y_new - y), sq(v)], axis=1)
            s["rho"], v = self._balanced(norms, rho, v)
        s["u"], s["y"], s["w"] = v, y_new, y_new - v

    def _fused_step(self, prob, s):
        """The step with its element-wise work in two numba kernels (fused.py), in place on y, u and w."""
        from . import fused as kernels

        y, u, w, rho = s["y"], s["u"], s["w"], s["rho"]
        z = prob.regularized_solve(s["Dtx"], w, rho, fused=True)
        norms = np.empty((y.shape[0], 5))
        kernels.update(z, y, u, np.ascontiguousarray(rho, np.float64), float(prob.alpha), float(self.relax),
                       bool(prob.positive), w, norms)
        self._steps += 1
        if self._steps % self.rho_every == 0:
            s["rho"], s["u"] = self._balanced(norms, rho, u)
            s["w"] = y - s["u"]

    def _balanced(self, norms, rho, u):
        """(ρ, u) after residual balancing (module docstring), per signal, from the squared norms
        (‖z‖², ‖y'‖², ‖z − y'‖², ‖y' − y‖², ‖u'‖²) of each signal's step."""
        xp = backend.namespace(norms)
        norms = xp.sqrt(norms)
        primal = norms[:, 2] / xp.clip(xp.maximum(norms[:, 0], norms[:, 1]), 1e-30, None)
        dual = norms[:, 3] / xp.clip(norms[:, 4], 1e-30, None)
        ratio = primal / xp.clip(dual, 1e-30, None)
        factor = xp.clip(xp.sqrt(ratio), 1 / self.rho_scaling, self.rho_scaling)
        outside = (ratio > self.rho_ratio) | (ratio < 1 / self.rho_ratio)
        factor = backend.astype(xp.where(outside, factor, factor * 0 + 1), backend.dtype_name(u))
        return rho * factor, u / factor[:, None]

    def current(self, prob, s):
        return s["y"]
