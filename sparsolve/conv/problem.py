"""The convolutional lasso instance that the shared solvers iterate on.

For each signal x (C, *S) of a batch, with the operator D of :mod:`.operator`,

    F(z) = ½‖x − Dz‖² + α‖z‖₁          (optionally z ≥ 0)

:class:`ConvProblem` has what :func:`sparsolve.inference.loop.iterate` and the update rules of
ISTA, FISTA and LCA ask of a problem -- ``correlation``, ``terms``, ``take``, ``xsq``, ``L``,
``alpha``, ``positive`` -- so those solvers run on it unchanged.  Their state is one row a signal:
the codes (K, *P) flattened, so every row-wise step of theirs (the restart test ⟨·,·⟩ of a row,
the momentum β per row) and the loop's certificate (the dual scale max|c| of a row, ‖z‖₁ of a row)
act on whole signals, which is what the convolutional gap needs: one dual point per signal.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import backend
from .operator import ConvOperator


def _row_sums(A):
    return A.reshape(A.shape[0], -1).sum(axis=1)


@dataclass
class ConvProblem:
    """min_z ½‖x − Dz‖² + α‖z‖₁ (+ z ≥ 0) for the signals ``X`` (n, C, *S), codes as flat rows
    (n, K·|P|).  ``take`` keeps a subset of the signals so that converged ones stop costing work."""

    op: ConvOperator
    X: object
    alpha: float
    positive: bool
    L: float
    xsq: object

    @classmethod
    def build(cls, X, op, alpha, positive, L):
        return cls(op, X, float(alpha), bool(positive), float(L), _row_sums(X * X))

    @property
    def form(self):
        return self.op.form

    def codes(self, Z):
        """The flat rows Z as code maps (n, K, *P) (a view)."""
        return Z.reshape((Z.shape[0], *self.op.geometry.code_shape))

    def residual(self, Z):
        """r = x − Dz, (n, C, *S)."""
        return self.X - self.op.synthesize(self.codes(Z))

    def correlation(self, Z):
        """c = Dᵀ(x − Dz) as flat rows, the negative gradient of ½‖x − Dz‖² at z."""
        return self.op.analyze(self.residual(Z)).reshape(Z.shape)

    def terms(self, Z, C=None):
        """(c, ‖r‖², ⟨x, r⟩) at Z, each per signal (c as flat rows).  The two sums are taken in float64
        (signal-sized, cheap next to the products): a float32 sum over a whole image's pixels loses
        about 1e-5 of ‖r‖², a tenth of a 1e-3 gap, and the certificate would disagree with encode_conv's
        float64 check of the same codes."""
        R = self.residual(Z)
        C = self.op.analyze(R).reshape(Z.shape)
        R64 = backend.astype(R, "float64")
        return C, _row_sums(R64 * R64), _row_sums(backend.astype(self.X, "float64") * R64)

    def spectral_drive(self):
        """(Dᵀx)^ of every signal, for the Fourier-domain solve (:mod:`.admm`)."""
        return self.op.drive(self.X)

    def regularized_solve(self, drive, B, rho, fused=False):
        """(DᵀD + ρI)⁻¹ (Dᵀx + ρB) for flat codes B and one ρ per signal, as flat rows."""
        return self.op.regularized_solve(drive, self.codes(B), rho, fused).reshape(B.shape)

    def take(self, keep):
        """The sub-problem of the signals ``keep`` (an index array)."""
        return replace(self, X=self.X[keep], xsq=self.xsq[keep])
