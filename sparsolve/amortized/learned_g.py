"""The seed's learned-G encoder: a sparse autoencoder with a recurrent inner loop.

With x̃ = x − b_d, for t = 0 … t*−1 (Gregor & LeCun's learned LCA, the seed's
"explaining away" network)::

    μ₀ = W_e x̃ + b_e
    z_t = T(μ_t)
    Δμ = (μ₀ − G z_t) − μ_t
    μ_{t+1} = μ_t + γ Δμ
    x̂ = W_d T(μ_{t*}) + b_d

T is ReLU (the seed) or, in the signed variant, the soft threshold at a learned
per-unit θ ≥ 0 (a bias cannot fold a symmetric threshold the way b_e folds ReLU's).
t* = 0 is the plain one-layer autoencoder x̂ = W_d T(W_e x̃ + b_e) + b_d, which has no
G (``LearnedG.G`` is None); t* = 1 with γ = 1 is the residual form T(μ₀ − G T(μ₀)).
Positive off-diagonal entries of G inhibit (explaining away), negative ones excite (facilitation).

**Untied** (``tied=False``, outside the seed's spec, which shares one G and one γ
across the steps): every step t has its own G_t, bias b_t and step γ_t,

    μ_{t+1} = μ_t + γ_t ((μ₀ + b_t − G_t z_t) − μ_t),

which with γ_t = 1 is μ_{t+1} = μ₀ + b_t − G_t z_t: LISTA with per-step weights
(Gregor & LeCun's untied variant, the form Chen et al. 2018 analyse).  The
thresholds θ of the signed variant stay shared.

With W_e = D, b_e = −α, G = DDᵀ − I, W_d = Dᵀ (D is (n_atoms, n_features), one
atom per row) the loop is exactly the non-negative LCA of
:mod:`sparsolve.inference.lca`, shifted by the bias: μ_t(here) = μ_t(LCA) − α,
so T(μ_t) is LCA's output after t steps (:meth:`LearnedG.from_dictionary`).  With
the weights scaled by 1/L (L = ‖D‖₂²) and γ = 1 it is ISTA instead, LISTA's start.
Untied, every G_t starts as that G, b_t = 0 and γ_t = γ: the same encoder, free to
specialise each step.

**Accelerated** (``accelerate=True``, outside the seed's spec, tied only): the same step
taken from an extrapolated point, with Nesterov's momentum on μ and per-sample adaptive
restart -- the accelerated LCA of :mod:`sparsolve.inference.lca`, run by its own ``step``
on this loop's μ₀, G and γ::

    ν_t = μ_t + β_t (μ_t − μ_{t−1}),   μ_{t+1} = ν_t + γ ((μ₀ − G T(ν_t)) − ν_t),

with β_t FISTA's and a restart (β = 0) where ⟨ν_t − μ_{t+1}, μ_{t+1} − μ_t⟩ > 0.  The first
step is the seed's, so t* ≤ 1 is unchanged, and the fixed points are the seed loop's.
Momentum needs γ ≤ 1/‖G + I‖₂ (from the dictionary: γ ≤ 1/L); where a (learned) γ is
larger the loop takes the seed's steps instead, as LCA does.

Rows are samples: in code, μ₀ = x̃ W_eᵀ + b_e and G z is z Gᵀ.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import backend
from ..threads import threads_for
from ..inference.lca import LCA
from ..inference.problem import lipschitz
from ..io import load_npz, reading, register, save_npz
from ..prox import soft_threshold

KIND = "learned_g"


def check_t_star(t_star) -> int:
    if isinstance(t_star, bool) or not isinstance(t_star, (int, np.integer)) or t_star < 0:
        raise ValueError(f"t_star must be an integer ≥ 0 (the number of inner-loop steps), got {t_star!r}")
    return int(t_star)


def check_gamma(gamma) -> float:
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise TypeError(f"gamma must be a number > 0, got {type(gamma).__name__}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"gamma must be a finite number > 0 (the inner-loop step size), got {gamma!r}")
    return value


def _check_tied(tied) -> bool:
    if not isinstance(tied, (bool, np.bool_)):
        raise TypeError(f"tied must be True (one G and γ shared by every step, the seed's encoder) or False "
                        f"(per-step G_t, b_t, γ_t), got {tied!r}")
    return bool(tied)


def _check_accelerate(accelerate, tied) -> bool:
    if not isinstance(accelerate, (bool, np.bool_)):
        raise TypeError(f"accelerate must be True (Nesterov's momentum on μ, LCA's accelerated loop) or False "
                        f"(the seed's loop), got {accelerate!r}")
    if accelerate and not tied:
        raise ValueError("accelerate=True needs tied=True: the momentum runs one G and γ over every step; "
                         "pass tied=True or accelerate=False")
    return bool(accelerate)


class _Loop:
    """The learned loop in the form LCA's ``step`` iterates: its ``correlation(z) + z`` is
    μ₀ − G z, the drive less the lateral interaction; ``alpha`` is the threshold T applies
    (0 for ReLU: b_e holds −α; θ for the signed variant) and ``L`` = ‖G + I‖₂, which makes
    LCA take momentum where γ ≤ 1/L."""

    def __init__(self, mu0, G, alpha):
        self.mu0, self.G, self.alpha = mu0, G, alpha
        G64 = G.detach().double()
        norm = float(torch.linalg.matrix_norm(G64 + torch.eye(G.shape[0], dtype=G64.dtype, device=G.device), ord=2))
        # less a few roundings of G's dtype: from a dictionary γ = 1/L, stored as exp(log γ).
        # (An SVD per forward pass: m³, small beside t* steps of a batch for m up to a few thousand.)
        self.L = norm * (1 - 8 * torch.finfo(G.dtype).eps)

    def correlation(self, z):
        return self.mu0 - z @ self.G.T - z

    def row_sum(self, V):
        """Each row's sum over the atoms (one process holds them all)."""
        return V.sum(dim=1)

    def row_max(self, V):
        return V.amax(dim=1)


def dictionary_array(dictionary, name: str = "dictionary") -> np.ndarray:
    """The (n_atoms, n_features) float array of an array, tensor or fitted model
    (anything with a ``.dictionary`` attribute)."""
    if dictionary is None:
        raise ValueError(f"{name} is required: pass a (n_atoms, n_features) array or a fitted model")
    if hasattr(dictionary, "dictionary") and not backend.is_array(dictionary):
        dictionary = dictionary.dictionary
    D = np.asarray(backend.to_numpy(dictionary))
    if D.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_atoms, n_features), one atom per row; got shape {D.shape}")
    if not np.issubdtype(D.dtype, np.floating):
        D = D.astype(np.float64)
    if not np.isfinite(D).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return D


def data_array(X, D=None) -> np.ndarray:
    """X as a finite float64 (n_samples, n_features) numpy array, checked against D's features."""
    X = np.asarray(backend.to_numpy(X), dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or Inf; clean or drop those samples")
    if D is not None and X.shape[1] != D.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but the dictionary has {D.shape[1]}: the dictionary must be "
                         "(n_atoms, n_features) with one atom per row (did you pass D.T?)")
    return X


class LearnedG(torch.nn.Module):
    """The seed's encoder/decoder (see the module docstring for the equations).

    Parameters W_e (n_atoms, n_features), b_e (n_atoms), G (n_atoms, n_atoms),
    W_d (n_features, n_atoms) whose columns are the atoms, b_d (n_features), the
    step γ (learnable when ``learn_gamma``, kept > 0 by learning log γ) and, when
    ``signed``, the thresholds θ (n_atoms).  A fresh module is the untrained
    autoencoder: unit-norm random atoms W_d, W_e = W_dᵀ, G = 0 (no lateral
    interaction until training finds some), zero biases, θ = 0.

    At t* = 0 no step runs, so there is no G: ``G`` is None, the state_dict has no
    ``"G"`` and nothing (n_atoms × n_atoms) is allocated -- the module is the plain
    one-layer autoencoder, with an SAE's parameters and cost per step.  (γ stays, with no
    effect.)  Files written when a t* = 0 module still held a G load all the same,
    whatever that G holds: at t* = 0 it took no part in the encoder, and it is dropped.

    ``tied=True`` (the default, the seed's spec) shares G and γ across the steps.
    ``tied=False`` gives each step t its own G_t, b_t and γ_t: G is then
    (t*, n_atoms, n_atoms), ``b_steps`` (t*, n_atoms) and ``log_gamma`` (t*,).
    ``accelerate=True`` runs the loop with momentum (module docstring), tied only.
    """

    def __init__(self, n_features: int, n_atoms: int, t_star: int, gamma: float = 1.0, learn_gamma: bool = False,
                 signed: bool = False, *, tied: bool = True, accelerate: bool = False, dtype=torch.float32,
                 device=None, seed=None):
        super().__init__()
        for name, v in (("n_features", n_features), ("n_atoms", n_atoms)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.n_features, self.n_atoms = int(n_features), int(n_atoms)
        self.t_star = check_t_star(t_star)
        self.signed = bool(signed)
        self.learn_gamma = bool(learn_gamma)
        self.tied = _check_tied(tied)
        self.accelerate = _check_accelerate(accelerate, self.tied)
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        atoms = torch.randn(self.n_features, self.n_atoms, generator=gen, dtype=torch.float64)
        atoms = atoms / atoms.norm(dim=0, keepdim=True)
        kw = {"dtype": dtype, "device": device}
        self.W_e = torch.nn.Parameter(atoms.T.to(**kw).contiguous())
        self.b_e = torch.nn.Parameter(torch.zeros(self.n_atoms, **kw))
        steps = () if self.tied else (self.t_star,)
        if self.t_star:
            self.G = torch.nn.Parameter(torch.zeros(*steps, self.n_atoms, self.n_atoms, **kw))
        else:
            self.register_parameter("G", None)
        if not self.tied:
            self.b_steps = torch.nn.Parameter(torch.zeros(self.t_star, self.n_atoms, **kw))
        self.W_d = torch.nn.Parameter(atoms.to(**kw))
        self.b_d = torch.nn.Parameter(torch.zeros(self.n_features, **kw))
        log_gamma = torch.full(steps, math.log(check_gamma(gamma)), **kw)
        if self.learn_gamma:
            self.log_gamma = torch.nn.Parameter(log_gamma)
        else:
            self.register_buffer("log_gamma", log_gamma)
        if self.signed:
            self.theta = torch.nn.Parameter(torch.zeros(self.n_atoms, **kw))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_dictionary(cls, D, alpha, t_star, gamma=None, signed=False, learn_gamma=False, *, scheme="lca",
                        tied=True, accelerate=False, dtype=None, device=None):
        """An encoder that runs a known lasso solver for t* steps, decoding with W_d = Dᵀ, b_d = 0.

        ``scheme="lca"`` (the seed's): W_e = D, G = DDᵀ − I, b_e = −α (ReLU) or
        b_e = 0, θ = α (signed), and γ defaults to LCA's 1/L with L = ‖D‖₂².  The
        encoder is then ``sparsolve.encode(X, D, alpha, solver="lca", positive=not
        signed, gamma=γ, max_iter=t*, tol=0, accelerate=False)`` (the seed's dynamics).

        ``scheme="ista"``: every weight scaled by the step 1/L -- W_e = D/L,
        G = DDᵀ/L − I, b_e = −α/L (or θ = α/L) -- and γ = 1, so that μ_{t+1} = μ₀ − G z_t
        makes z_{t+1} = T(z_t + (x − z_t D)Dᵀ/L − α/L): the encoder is ISTA's iterate
        t* + 1 from z = 0 (Gregor & LeCun's LISTA initialisation).

        ``tied=False``: every step's G_t is that G, b_t = 0 and γ_t = γ, so the untied
        encoder starts as the same solver (untied LISTA's start with ``scheme="ista"``).

        ``accelerate=True`` (tied): the same weights, run as LCA's accelerated loop, so with
        ``scheme="lca"`` the encoder is ``sparsolve.encode(X, D, alpha, solver="lca", max_iter=t*,
        tol=0, accelerate=True)`` (with ``scheme="ista"``, ISTA with the same momentum).  What it changes is the codes at t*: at γ = 1/L the seed's loop
        contracts like ISTA, the accelerated one like FISTA (on 8×8 patches at unit variance, a
        scikit-learn dictionary with L ≈ 22 and coherence ≈ 0.9, t* = 500: benchmarks/RESULTS.md,
        amortized defaults).  It is outside the seed's spec; ``fit_amortized(accelerate=True)``
        trains this network.  t* ≤ 1 is the same either way.

        ``dtype`` defaults to D's (float32 or float64)."""
        D = dictionary_array(D, "D")
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha}")
        if scheme not in ("lca", "ista"):
            raise ValueError(f"scheme={scheme!r} is not known; choose 'lca' or 'ista'")
        L = lipschitz(D)
        step = 1.0 if scheme == "lca" else 1.0 / L
        if gamma is None:
            gamma = 1.0 / L if scheme == "lca" else 1.0
        if dtype is None:
            dtype = torch.float64 if D.dtype == np.float64 else torch.float32
        m, p = D.shape
        model = cls(p, m, t_star, gamma, learn_gamma, signed, tied=tied, accelerate=accelerate, dtype=dtype,
                    device=device)
        Dt = torch.as_tensor(D, dtype=torch.float64)
        with torch.no_grad():
            model.W_e.copy_(step * Dt)
            model.W_d.copy_(Dt.T)
            if model.G is not None:
                model.G.copy_(step * (Dt @ Dt.T) - torch.eye(m, dtype=torch.float64))  # broadcast over the steps
            if signed:
                model.b_e.zero_()
                model.theta.fill_(step * alpha)
            else:
                model.b_e.fill_(-step * alpha)
        return model

    # ------------------------------------------------------------------ the network

    @property
    def gamma(self):
        """The current step γ, a float; untied, the tuple (γ_0, …, γ_{t*−1}).  (The
        network itself uses exp(log_gamma), differentiably.)"""
        gamma = self.log_gamma.detach().exp().cpu()
        return float(gamma) if self.tied else tuple(gamma.tolist())

    @property
    def dictionary(self) -> np.ndarray:
        """The decoder's atoms W_dᵀ, (n_atoms, n_features), as a numpy array."""
        return self.W_d.detach().T.cpu().numpy()

    def threshold(self, mu):
        if self.signed:
            # θ is kept ≥ 0 here rather than by the optimiser: a negative θ is no threshold.
            return soft_threshold(mu, self.theta.clamp(min=0))
        # nonneg_threshold(μ, 0), the same values and gradient, less its μ − 0: a (batch × n_atoms) pass
        return mu.clamp(min=0)

    def encode(self, x):
        """z = T(μ_{t*}), for x of shape (..., n_features); numpy in, numpy out."""
        return self._run(x, "n_features", self._encode)

    def decode(self, z):
        """x̂ = W_d z + b_d, for z of shape (..., n_atoms); numpy in, numpy out."""
        return self._run(z, "n_atoms", self._decode)

    def forward(self, x):
        """x̂ = decode(encode(x))."""
        return self._run(x, "n_features", lambda t: self._decode(self._encode(t)))

    def _encode(self, x):
        mu0 = (x - self.b_d) @ self.W_e.T + self.b_e
        if not self.t_star:
            return self.threshold(mu0)  # the plain autoencoder: no loop, no G
        mu, gamma = mu0, self.log_gamma.exp()
        if self.accelerate:
            loop = _Loop(mu0.reshape(-1, self.n_atoms), self.G, self.theta.clamp(min=0) if self.signed else 0.0)
            lca = LCA(positive=not self.signed, gamma=gamma, accelerate=True)
            state = lca.init(loop, torch.zeros_like(loop.mu0))
            for _ in range(self.t_star):
                lca.step(loop, state)
            return lca.current(loop, state).reshape(mu0.shape)
        if self.tied:
            for _ in range(self.t_star):
                mu = mu + gamma * ((mu0 - self.threshold(mu) @ self.G.T) - mu)
        else:
            for G, b, g in zip(self.G, self.b_steps, gamma):
                mu = mu + g * ((mu0 + b - self.threshold(mu) @ G.T) - mu)
        return self.threshold(mu)

    def _decode(self, z):
        return z @ self.W_d.T + self.b_d

    def _run(self, a, width_name, fn):
        ref = self.W_e
        if isinstance(a, torch.Tensor):
            if a.device != ref.device:
                raise ValueError(f"input is on {a.device} but the encoder is on {ref.device}; "
                                 f"move one of them, e.g. model.to({str(a.device)!r})")
            self._check_width(a, width_name)
            with self.threads(a):
                return fn(a.to(ref.dtype))
        a = np.asarray(backend.to_numpy(a))
        self._check_width(a, width_name)
        t = torch.as_tensor(a, dtype=ref.dtype, device=ref.device)
        with torch.no_grad(), self.threads(t):
            out = fn(t)
        return out.cpu().numpy()

    def threads(self, x):
        """The threads for running the network on the rows of ``x`` (:func:`sparsolve.threads.threads_for`,
        by the size of one product, rows × n_atoms × max(n_atoms, n_features)): on the host, one
        torch thread up to tens of thousands of rows, where a second one mostly waits to be
        scheduled (``encode`` of 2,000 rows, 128 atoms, t* = 5, on the shared 2-core machine: 257 ms
        on two threads, 28 ms on one; benchmarks/threads.py)."""
        rows = x.numel() // max(1, x.shape[-1])
        return threads_for(x, rows * self.n_atoms * max(self.n_atoms, self.n_features))

    def _check_width(self, a, width_name):
        width = getattr(self, width_name)
        if a.ndim < 1 or a.shape[-1] != width:
            raise ValueError(f"input must have shape (..., {width_name}={width}), got {tuple(a.shape)}")

    def extra_repr(self) -> str:
        gamma = f"{self.gamma:.4g}" if self.tied else "(" + ", ".join(f"{g:.4g}" for g in self.gamma) + ")"
        return (f"n_features={self.n_features}, n_atoms={self.n_atoms}, t_star={self.t_star}, "
                f"gamma={gamma}, learn_gamma={self.learn_gamma}, signed={self.signed}, tied={self.tied}"
                + (", accelerate=True" if self.accelerate else ""))

    # ------------------------------------------------------------------ files

    def config(self) -> dict:
        return {"n_features": self.n_features, "n_atoms": self.n_atoms, "t_star": self.t_star,
                "learn_gamma": self.learn_gamma, "signed": self.signed, "tied": self.tied,
                "accelerate": self.accelerate, "dtype": str(self.W_e.dtype).replace("torch.", "")}

    def arrays(self) -> dict:
        """Every parameter and buffer as a host numpy array, by name."""
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    def save(self, path):
        """Write a ``learned_g`` .npz file atomically (no pickle); returns its path."""
        return save_npz(path, KIND, self.arrays(), self.config())

    @classmethod
    def load(cls, path, device=None):
        """The encoder saved by :meth:`save`; raises ModelFileError for another kind of file."""
        arrays, meta = load_npz(path, KIND)
        with reading(path):
            return cls.from_state(arrays, meta, device=device)

    @classmethod
    def from_state(cls, arrays: dict, meta: dict, device=None):
        # files written before untied encoders existed hold tied ones; a t* = 0 file written
        # while t* = 0 still had a G holds one, which the module no longer has (class docstring)
        model = cls(meta["n_features"], meta["n_atoms"], meta["t_star"], 1.0, meta["learn_gamma"],
                    meta["signed"], tied=meta.get("tied", True), accelerate=meta.get("accelerate", False),
                    dtype=getattr(torch, meta["dtype"]), device=device)
        model.load_state_dict({k: torch.as_tensor(arrays[k]) for k in model.state_dict()})
        return model


register(KIND, LearnedG.load)
