"""``update="sgd"``: Olshausen & Field (1996)'s gradient step, taken by Adam (Kingma & Ba 2015).

The gradient of the batch loss  mean_x ½‖x − zD‖² + (decay/2) Σ‖d_j‖²  comes from the residual
R = X − ZD,

    ∇ = −ZᵀR / b + decay·D,

with no m×m array, so the rule serves dictionaries too wide for the online statistics.  The norm
rule's tangent keeps the part a projected step should follow (under ``"unit"`` each row loses its
part along its atom, as sparse-autoencoder trainers do), g = tangent(∇), and Adam steps on it:

    m_t = β₁ m_{t−1} + (1 − β₁) g,     v_t = β₂ v_{t−1} + (1 − β₂) g²,
    D ← D − lr · m̂_t / (√v̂_t + eps),   m̂_t = m_t / (1 − β₁ᵗ),  v̂_t = v_t / (1 − β₂ᵗ),

then the norm rule projects, as after every update.  State: the moments m, v (beside D, in its
library, device and dtype) and Adam's step count t; a resampled atom's rows of m and v restart at 0.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import backend
from ..checks import nonnegative_float, positive_float
from .base import UpdateRule, checked_arrays


def gradient(D, Z, R, decay):
    """∇_D of the batch loss  mean_x ½‖x − zD‖² + (decay/2) Σ‖d_j‖²,  from the codes Z (b, m) and
    the residual R = X − ZD (b, p):  −ZᵀR / b + decay·D.  It never forms ZᵀZ (m×m)."""
    grad = (Z.T @ R) / -max(1, R.shape[0])  # = −(ZᵀR)/b exactly, one operation fewer
    return grad + decay * D if decay else grad  # decay 0 (every rule but "penalty"): nothing to add


@dataclass(frozen=True)
class AdamSettings:
    """Adam's constants, checked on creation."""

    lr: float = 1e-3
    """The step size: each entry of D moves by about ``lr`` per step, whatever the gradient's scale."""
    beta1: float = 0.9
    """Decay of the running mean of the gradient, in [0, 1)."""
    beta2: float = 0.999
    """Decay of the running mean of the squared gradient, in [0, 1)."""
    eps: float = 1e-8
    """Added to √v̂ so that entries without gradient history take no huge step."""

    def __post_init__(self):
        positive_float(self.lr, "lr")
        positive_float(self.eps, "eps")
        for name in ("beta1", "beta2"):
            if not nonnegative_float(getattr(self, name), name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def adam_step(D, grad, state, s: AdamSettings):
    """(new D, new state): one Adam step from ``state`` = {"mean", "square", "t"} (moments None
    before the first step).  The bias corrections are host scalars (t is counted here), so the step
    reads nothing back from the device."""
    mean, square = state["mean"], state["square"]
    if mean is None:
        mean, square = grad * 0, grad * 0
    t = state["t"] + 1
    mean = s.beta1 * mean + (1 - s.beta1) * grad
    square = s.beta2 * square + (1 - s.beta2) * grad * grad
    xp = backend.namespace(D)
    step = s.lr / (1 - s.beta1 ** t)
    root = xp.sqrt(square / (1 - s.beta2 ** t))
    return D - step * mean / (root + s.eps), {"mean": mean, "square": square, "t": t}


class SGD(UpdateRule):
    name = "sgd"
    summary = "Adam on the gradient, no m×m statistics: for wide dictionaries"
    state_text = "Adam's moments"

    def __init__(self, config, norm):
        super().__init__(config, norm)
        self.settings = AdamSettings(lr=config.lr)

    def init(self, D):
        return {"mean": None, "square": None, "t": 0}

    def statistics(self, X, Z, R, D):
        return (self.norm.tangent(gradient(D, Z, R, self.decay), D),)

    def apply(self, D, stats, state, step):
        (grad,) = stats
        return adam_step(D, grad, state, self.settings)

    def reset_atoms(self, state, atoms):
        if state["mean"] is not None and atoms.size:
            idx = backend.like(atoms, state["mean"])
            state["mean"][idx, :] = 0
            state["square"][idx, :] = 0
        return state

    @classmethod
    def nbytes(cls, m, p, batch, itemsize):
        return 5 * m * p * itemsize  # the two moments, the gradient and two temporaries

    def state_dict(self, state):
        if state["mean"] is None:
            return {}, {"adam_t": None}
        return ({"adam_mean": backend.to_numpy(state["mean"]), "adam_square": backend.to_numpy(state["square"])},
                {"adam_t": state["t"]})

    def load_state_dict(self, arrays, values, m, p, dtype):
        found = checked_arrays(arrays, {"adam_mean": (m, p), "adam_square": (m, p)}, dtype)
        if not found:
            return self.init(None)
        if len(found) == 1:
            raise ValueError(f"checkpoint holds {next(iter(found))!r} without its pair (adam_mean and adam_square)")
        return {"mean": found["adam_mean"], "square": found["adam_square"], "t": int(values["adam_t"])}
