"""LCA, the locally competitive algorithm (Rozell et al. 2008), as the seed's
explaining-away loop, exact or accelerated.

Exact dynamics (``accelerate=False``), the seed's recursion::

    μ₀ = x Dᵀ                                   (the drive)
    z_t = T(μ_t)
    μ_{t+1} = μ_t + γ ( (μ₀ − G z_t) − μ_t ),   G = D Dᵀ − I   (here G is DDᵀ − I, not DDᵀ)

G's off-diagonal entries are the lateral inhibition between atoms ("explaining
away").  Since μ₀ − G z = (x − zD)Dᵀ + z = c(z) + z, the loop never forms G in the
factored form.  At a fixed point μ = z + c(z) and z = T(μ): with the soft threshold
at α this says c_j = α·sign(z_j) on the support and |c_j| ≤ α off it -- the lasso's
optimality conditions, so LCA's fixed point is the lasso solution.

Linearised on a fixed support S the update is μ ← (I − γ D_S D_Sᵀ) μ + const,
stable for γ < 2/L (L = ‖D‖₂²); γ defaults to 1/L.  At that γ the exact dynamics
contract like ISTA, by 1 − λ_min(D_S D_Sᵀ)/L a step: thousands of steps on
natural patches.

Accelerated (``accelerate=True``, the default in :func:`sparsolve.encode`): the same
update taken from an extrapolated point ν, with Nesterov's momentum on μ and
per-sample adaptive restart, exactly as FISTA does for z::

    ν_t     = μ_t + β_t (μ_t − μ_{t−1}),          β_t = (s_t − 1) / s_{t+1}
    μ_{t+1} = ν_t + γ ( (μ₀ − G T(ν_t)) − ν_t ),   s_{t+1} = (1 + √(1 + 4 s_t²)) / 2
    restart (s ← 1, ν ← μ_{t+1}) where ⟨ν_t − μ_{t+1}, μ_{t+1} − μ_t⟩ > 0

LCA's update is the descent direction −∂F/∂z read in μ (Rozell et al.: on the
support μ − z = α·sign z, so μ₀ − G z − μ = c − α·sign z), so momentum on μ buys
FISTA's rate, and the fixed points -- where Δμ = 0 and ν = μ -- are the same as
the exact dynamics'.  The first step (β₀ = 0) is the exact one, so t* = 0 and
t* = 1 reduce as the seed says either way.  Momentum needs γ ≤ 1/L (the default);
with a larger γ (up to the exact dynamics' limit 2/L) the exact dynamics run.

Thresholds T (at α): "soft" (the lasso), "nonneg" (the seed's ReLU, the lasso with
z ≥ 0) and "hard" (an L0-like energy; its fixed points are certified by the
residual max|Δμ| / max|μ| ≤ tol instead of a duality gap).  The output after t*
steps is T(μ_{t*}): t* = 0 is the plain layer T(xDᵀ), and t* = 1 with γ = 1 is the
residual form T(μ₀ − G T(μ₀)).
"""
from __future__ import annotations

from .. import backend
from ..checks import boolean, positive_float
from ..prox import THRESHOLDS, get_threshold
from .base import Iterative


class LCA(Iterative):
    """Options: those of :class:`.Iterative`, plus ``gamma`` (the step γ, default 1/L),
    ``threshold`` ("soft", "nonneg" -- the default when positive -- or "hard") and
    ``accelerate`` (True: the accelerated dynamics where γ ≤ 1/L; False: the seed's exact ones)."""

    name = "lca"
    default_max_iter = 20000
    OPTIONS = {**Iterative.OPTIONS, "gamma": None, "threshold": None, "accelerate": True}
    OPTION_TYPES = {**Iterative.OPTION_TYPES, "gamma": float, "threshold": tuple(THRESHOLDS), "accelerate": bool}

    def __init__(self, positive=False, **options):
        super().__init__(positive, **options)
        if self.threshold is None:
            self.threshold = "nonneg" if positive else "soft"
        self.T = get_threshold(self.threshold)
        self.is_lasso = self.threshold != "hard"
        self.criterion = "rel_gap" if self.is_lasso else "fixed_point_residual"

    @classmethod
    def _check(cls, opts, positive, X, D):
        super()._check(opts, positive, X, D)
        threshold = opts["threshold"]
        if threshold is not None:
            get_threshold(threshold)  # names the thresholds there are
            if positive and threshold in ("soft", "hard"):
                raise ValueError(f"threshold={threshold!r} contradicts positive=True (it returns signed codes); "
                                 "use threshold='nonneg'")
        if opts["gamma"] is not None:
            positive_float(opts["gamma"], "gamma")
        boolean(opts["accelerate"], "accelerate")

    def _gamma(self, prob):
        return 1.0 / prob.L if self.gamma is None else self.gamma

    def init(self, prob, Z0):
        # μ = z + c(z) is the point whose threshold reproduces z at a fixed point;
        # from z = 0 it is the drive μ₀ = xDᵀ.
        mu = Z0 + prob.correlation(Z0)
        # Nesterov's momentum is stable for steps up to 1/L only; between 1/L and the
        # exact dynamics' limit 2/L the exact dynamics run
        self._momentum = self.accelerate and self._gamma(prob) * prob.L <= 1 + 1e-12
        if not self._momentum:
            return {"mu": mu}
        return {"mu": mu, "nu": mu + 0, "s": backend.ones(Z0, (Z0.shape[0],))}

    def step(self, prob, s):
        if not self._momentum:
            mu = s["mu"]
            z = self.T(mu, prob.alpha)
            s["mu"] = mu + self._gamma(prob) * ((prob.correlation(z) + z) - mu)
            return
        xp = backend.namespace(s["mu"])
        mu, nu, t = s["mu"], s["nu"], s["s"]
        z = self.T(nu, prob.alpha)
        mu_new = nu + self._gamma(prob) * ((prob.correlation(z) + z) - nu)
        t_new = 0.5 * (1 + xp.sqrt(1 + 4 * t * t))
        beta = (t - 1) / t_new
        uphill = prob.row_sum((nu - mu_new) * (mu_new - mu)) > 0
        beta = xp.where(uphill, 0 * beta, beta)
        s["s"] = xp.where(uphill, 0 * t_new + 1, t_new)
        s["nu"] = mu_new + beta[:, None] * (mu_new - mu)
        s["mu"] = mu_new

    def current(self, prob, s):
        return self.T(s["mu"], prob.alpha)

    def residual(self, prob, s, C):
        """max|Δμ| / max|μ| for each sample, with Δμ = (μ₀ − G z) − μ = c + z − μ;
        ``C`` is the correlation c at z = T(μ), which the certificate has already formed."""
        xp = backend.namespace(s["mu"])
        mu = s["mu"]
        delta = prob.row_max(abs(C + self.T(mu, prob.alpha) - mu))
        return delta / xp.clip(prob.row_max(abs(mu)), 1e-30, None)

    def divergence_hint(self, prob):
        return (
            f"gamma={self._gamma(prob):.4g} is too large: LCA is stable only for "
            f"gamma < 2/L = {2 / prob.L:.4g} (L = ‖D‖₂²). Pass a smaller gamma, or leave it unset."
        )
