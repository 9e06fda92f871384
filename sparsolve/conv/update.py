"""The filter update of online convolutional dictionary learning: the batch's statistics and block
coordinate descent on the filters, in the convolutional form of Mairal et al.'s online update.

For a batch of signals x_n with codes z_n, the dictionary loss  ½ mean_n ‖x_n − Σ_k z_nk ∗ d_k‖²  is a
quadratic in the filters whose coefficients are the codes' statistics (alphacsc's "ztz" and "ztX"):

    A_kl(δ) = mean_n Σ_p z_nk[p] z_nl[p + δ]        |δ| < f: the codes' cross-correlations, (K, K, *(2f − 1))
    B_kc(τ) = mean_n Σ_p z_nk[p] x_nc[p + τ]        0 ≤ τ < f: codes against data, (K, C, *f)

    loss(D) = ½ mean‖x‖² − Σ_k ⟨B_k, d_k⟩ + ½ Σ_k ⟨d_k, Σ_l A_kl ∗ d_l⟩,
    ∇_k     = Σ_l A_kl ∗ d_l − B_k,      (A_kl ∗ d_l)[c, τ] = Σ_δ A_kl(δ) d_l[c, τ − δ]

Both statistics come from one transform of the codes and the signals on the operator's frame; exact for
boundaries "valid" (the frame holds every lag without wrapping) and "circular" (the lags are circular, as
the model is).  ("same" cuts the filters at the edges, which no Toeplitz A describes.)  The online update
keeps running means Ā, B̄ of them (the caller's forgetting), and each step makes ``passes`` sweeps of
block coordinate descent over the filters, each a projected gradient step with the filter's own curvature,

    d_k ← P( d_k − (∇_k + 2β d_k) / (L_k + 2β) ),     L_k = max_ω |Â_kk(ω)|,

P the norm rule's projection (from the caller) and 2β the penalty rule's decay.  The products A ∗ d run
in the Fourier domain on a grid of M ≥ 2f − 1 points an axis, where the circular convolution equals the
linear one on the taps that matter.  A filter no code used (L_k = 0) is left as it is.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .operator import smooth_size

#: The boundaries whose statistics are exact (module docstring).
BOUNDARIES = ("valid", "circular")


def statistics(op, X, Z):
    """(A, B): the batch means of the module docstring, for signals X (n, C, *S) and codes Z (n, K, *P)
    under the operator ``op`` (its frame and geometry), in X's kind and dtype."""
    g = op.geometry
    xp = backend.namespace(X)
    n = X.shape[0]
    Zf = op.transform(Z)
    Xf = op.transform(X)
    conj = xp.conj(Zf)
    Af = xp.einsum("nk...,nl...->kl...", conj, Zf) / n
    Bf = xp.einsum("nk...,nc...->kc...", conj, Xf) / n
    A = backend.irfftn(Af, g.frame, g.axes)
    B = backend.irfftn(Bf, g.frame, g.axes)
    # lags −(f − 1) … f − 1 of A: rolled so that lag 0 sits at f − 1, then cut
    A = backend.roll(A, [f - 1 for f in g.filters], g.axes)
    A = A[(..., *(slice(0, 2 * f - 1) for f in g.filters))]
    B = B[(..., *(slice(0, f) for f in g.filters))]
    return A + 0, B + 0  # own memory: the running means are built from them


class FilterUpdate:
    """Block coordinate descent on the filters for the statistics (A, B) (module docstring)."""

    def __init__(self, A, B, filters):
        self.filters = tuple(filters)
        self.grid = tuple(smooth_size(2 * f - 1) for f in self.filters)
        self.axes = tuple(range(-len(self.filters), 0))
        placed = backend.pad(A, [(0, m - (2 * f - 1)) for m, f in zip(self.grid, self.filters)])
        placed = backend.roll(placed, [-(f - 1) for f in self.filters], self.axes)  # lag δ at index δ mod M
        self.Af = backend.rfftn(placed, self.grid, self.axes)  # (K, K, *F), Hermitian in (k, l)
        self.Bf = backend.rfftn(B, self.grid, self.axes)  # (K, C, *F)
        K = A.shape[0]
        diag = backend.to_numpy(self.Af[np.arange(K), np.arange(K)]).reshape(K, -1)
        self.L = np.abs(diag).max(axis=1)  # L_k = max_ω |Â_kk(ω)| bounds the block's curvature

    def gradient_spectrum(self, Df, k=None):
        """∇ (all filters, or filter k) in the Fourier domain, from the filters' spectrum Df."""
        xp = backend.namespace(Df)
        if k is None:
            return xp.einsum("kl...,lc...->kc...", self.Af, Df) - self.Bf
        return xp.einsum("l...,lc...->c...", self.Af[k], Df) - self.Bf[k]

    def loss(self, D):
        """Σ_k ⟨d_k, ½ Σ_l A_kl ∗ d_l − B_k⟩: the loss of the module docstring less ½ mean‖x‖²."""
        Df = backend.rfftn(D, self.grid, self.axes)
        xp = backend.namespace(Df)
        half = 0.5 * xp.einsum("kl...,lc...->kc...", self.Af, Df) - self.Bf
        H = backend.irfftn(half, self.grid, self.axes)[(..., *(slice(0, f) for f in self.filters))]
        return (D * H).sum()

    def run(self, D, project, decay=0.0, passes=1):
        """D after ``passes`` sweeps over the filters; ``project(d, previous)`` puts one filter (1, C, *f)
        under the norm rule (``previous``: the filter before the step, for one that came out zero),
        ``decay`` is 2β of the penalty rule (0 otherwise)."""
        D = D + 0
        Df = backend.rfftn(D, self.grid, self.axes)
        crop = (..., *(slice(0, f) for f in self.filters))
        for _ in range(passes):
            for k in range(D.shape[0]):
                if self.L[k] <= 0:
                    continue
                grad = backend.irfftn(self.gradient_spectrum(Df, k), self.grid, self.axes)[crop] + decay * D[k]
                new = project(D[k:k + 1] - grad[None] / (self.L[k] + decay), D[k:k + 1])
                D[k] = new[0]
                Df[k] = backend.rfftn(new, self.grid, self.axes)[0]
        return D
