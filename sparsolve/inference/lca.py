"""LCA, the locally competitive algorithm (Rozell et al. 2008), as the seed's
explaining-away loop:

    μ₀ = x Dᵀ                                   (the drive)
    z_t = T(μ_t)
    μ_{t+1} = μ_t + γ ( (μ₀ − G z_t) − μ_t ),   G = D Dᵀ − I

G's off-diagonal entries are the lateral inhibition between atoms ("explaining
away").  Since μ₀ − G z = (x − zD)Dᵀ + z = c(z) + z, the loop never forms G in the
factored form.  At a fixed point μ = z + c(z) and z = T(μ): with the soft threshold
at α this says c_j = α·sign(z_j) on the support and |c_j| ≤ α off it -- the lasso's
optimality conditions, so LCA's fixed point is the lasso solution.

Thresholds T (at α): "soft" (the lasso), "nonneg" (the seed's ReLU, the lasso with
z ≥ 0) and "hard" (an L0-like energy; its fixed points are certified by the
residual max|Δμ| / max|μ| ≤ tol instead of a duality gap).  The output after t*
steps is T(μ_{t*}): t* = 0 is the plain layer T(xDᵀ), and t* = 1 with γ = 1 is the
residual form T(μ₀ − G T(μ₀)).  Linearised on a fixed support S the update is
μ ← (I − γ D_S D_Sᵀ) μ + const, stable for γ < 2/L; γ defaults to 1/L.
"""
from __future__ import annotations

from .. import backend
from ..prox import get_threshold


class LCA:
    name = "lca"

    def __init__(self, gamma=None, threshold: str = "soft"):
        self.gamma = gamma
        self.threshold = threshold
        self.T = get_threshold(threshold)
        self.is_lasso = threshold != "hard"

    def _gamma(self, prob):
        return 1.0 / prob.L if self.gamma is None else self.gamma

    def init(self, prob, Z0):
        # μ = z + c(z) is the point whose threshold reproduces z at a fixed point;
        # from z = 0 it is the drive μ₀ = xDᵀ.
        return {"mu": Z0 + prob.correlation(Z0)}

    def step(self, prob, s):
        mu = s["mu"]
        z = self.T(mu, prob.alpha)
        s["mu"] = mu + self._gamma(prob) * ((prob.correlation(z) + z) - mu)

    def current(self, prob, s):
        return self.T(s["mu"], prob.alpha)

    def residual(self, prob, s, C):
        """max|Δμ| / max|μ| for each sample, with Δμ = (μ₀ − G z) − μ = c + z − μ;
        ``C`` is the correlation c at z = T(μ), which the certificate has already formed."""
        xp = backend.namespace(s["mu"])
        mu = s["mu"]
        delta = xp.amax(abs(C + self.T(mu, prob.alpha) - mu), axis=1)
        return delta / xp.clip(xp.amax(abs(mu), axis=1), 1e-30, None)

    def divergence_hint(self, prob):
        return (
            f"gamma={self._gamma(prob):.4g} is too large: LCA is stable only for "
            f"gamma < 2/L = {2 / prob.L:.4g} (L = ‖D‖₂²). Pass a smaller gamma, or leave it unset."
        )
