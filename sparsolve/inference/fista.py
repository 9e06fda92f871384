"""FISTA (Beck & Teboulle 2009) with per-sample adaptive restart (O'Donoghue & Candès 2015).

    z_{k+1} = T_{α/L}( y_k + c(y_k) / L )
    t_{k+1} = (1 + √(1 + 4 t_k²)) / 2
    y_{k+1} = z_{k+1} + ((t_k − 1) / t_{k+1}) (z_{k+1} − z_k)

with c(y) = (x − yD)Dᵀ and L = ‖D‖₂².  Gradient restart, for each sample on its
own: when ⟨y_k − z_{k+1}, z_{k+1} − z_k⟩ > 0 the momentum points uphill, so that
sample's t is reset to 1 and y to z_{k+1}.  Restart keeps the O(1/k²) rate and
recovers the linear rate that the lasso's local strong convexity allows.

On CUDA the element-wise part of the step runs as one fused kernel
(:mod:`sparsolve.inference.fused`) unless ``fused=False``.
"""
from __future__ import annotations

from .. import backend
from ..checks import boolean, choice
from ..prox import prox_l1
from . import fused as fused_kernel
from .base import Iterative


class FISTA(Iterative):
    """Options: those of :class:`.Iterative`, plus ``restart`` (the adaptive restart above)
    and ``fused`` ("auto": the fused CUDA step where Triton is installed; False: never;
    True: require it)."""

    name = "fista"
    default_max_iter = 5000
    OPTIONS = {**Iterative.OPTIONS, "restart": True, "fused": "auto"}
    OPTION_TYPES = {**Iterative.OPTION_TYPES, "restart": bool, "fused": fused_kernel.FUSED_CHOICES}

    def __init__(self, positive=False, **options):
        super().__init__(positive, **options)
        self._sizes = None  # the fused kernel's [1/L, α/L], made once per problem

    @classmethod
    def _check(cls, opts, positive, X, D):
        super()._check(opts, positive, X, D)
        fused = choice(opts["fused"], "fused", fused_kernel.FUSED_CHOICES)
        boolean(opts["restart"], "restart")
        # fit checks its options before it has the data: encode checks fused=True again, with X
        if fused is True and X is not None and not fused_kernel.supports(X):
            raise ValueError("fused=True needs X as a CUDA torch tensor and Triton installed; "
                             "use fused='auto' to fall back to the array-operation step")

    def init(self, prob, Z0):
        return {"z": Z0 + 0, "y": Z0 + 0, "t": backend.ones(Z0, (Z0.shape[0],))}

    def step(self, prob, s):
        xp = backend.namespace(s["z"])
        z, y, t = s["z"], s["y"], s["t"]
        c = prob.correlation(y)
        if self.fused and fused_kernel.usable(z) and prob.shards is None:  # its restart test sums one shard
            if self._sizes is None:
                self._sizes = fused_kernel.step_sizes(z, prob.L, prob.alpha)
            s["z"], s["y"], s["t"] = fused_kernel.fista_update(c, y, z, t, self._sizes, prob.positive, self.restart)
            return
        z_new = prox_l1(y + c / prob.L, prob.alpha / prob.L, prob.positive)
        t_new = 0.5 * (1 + xp.sqrt(1 + 4 * t * t))
        beta = (t - 1) / t_new
        if self.restart:
            uphill = prob.row_sum((y - z_new) * (z_new - z)) > 0
            beta = xp.where(uphill, 0 * beta, beta)
            t_new = xp.where(uphill, 0 * t_new + 1, t_new)
        s["y"] = z_new + beta[:, None] * (z_new - z)
        s["z"], s["t"] = z_new, t_new

    def current(self, prob, s):
        return s["z"]
