"""``ConvFitConfig``: every setting of :func:`sparsolve.conv.fit_conv`, one typed field each.

As :class:`sparsolve.config.FitConfig`: each field's docstring sits right below it, the command line's
``sparsolve fit-conv`` flags are generated from the fields (cli.py), a checkpoint records ``asdict`` of
the config and a resume compares them (``resume_mismatch``).  The fields that mean what FitConfig's
mean have its names (alpha, norm, beta, forget, tol, max_iter, positive, seed, ...).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..checks import choice, nonnegative_float, optional, positive_float, positive_int, seed
from ..fields import Config, listed
from ..rules import NORM_RULES
from .operator import BOUNDARIES
from .solvers import REGISTRY
from .update import BOUNDARIES as FIT_BOUNDARIES

CONV_SOLVERS = ("auto", *REGISTRY)
CONV_DEVICES = (None, "cpu", "cuda")
NORM_WORDS = listed(f"{name} ({rule.summary})" for name, rule in NORM_RULES.items())
#: Passes over the signals when neither n_epochs nor max_steps is given.
N_EPOCHS = 1


@dataclass
class ConvFitConfig(Config):
    """Every setting of :func:`sparsolve.conv.fit_conv`, the online learning of a filter bank D,
    min_D mean_x min_z ½‖x − Σ_k d_k ∗ z_k‖² + α Σ_k ‖z_k‖₁ under a norm rule on the filters."""

    n_filters: int
    """number of filters K ≥ 1"""
    filter_size: int
    """the filters' side (square filters for images) or length (1-D signals), in samples"""
    alpha: float
    """the L1 weight α > 0 of ½‖x − Σ d_k ∗ z_k‖² + α Σ‖z_k‖₁"""
    boundary: str = "valid"
    """where codes live: valid (every position where the whole filter fits) or circular (periodic signals)"""
    solver: str = "auto"
    """inference solver of encode_conv: auto (cd on CPU for valid, admm for circular; fista on GPU), cd, admm, fista, ista or lca"""
    norm: str = "unit"
    """norm rule on the filters, each filter a row (sparsolve.rules): {NORM_WORDS}"""
    batch_size: int = 8
    """signals (images) per step"""
    n_epochs: int | None = None
    """passes over the signals"""
    max_steps: int | None = None
    """stop after this many steps in all"""
    positive: bool = False
    """nonnegative codes z ≥ 0"""
    tol: float = 1e-2
    """the inner loop's relative duality gap per signal: learning needs good codes, not certified optima"""
    max_iter: int | None = None
    """the inner loop's iteration cap"""
    beta: float | None = None
    """weight β of norm=penalty's weight decay β Σ‖d‖²"""
    forget: float = 5.0
    """forgetting exponent of the running statistics, ρ_t = (1 − 1/t)^forget"""
    passes: int = 2
    """sweeps of block coordinate descent over the filters per step"""
    shuffle: bool = True
    """visit the signals in a seeded random order each epoch"""
    checkpoint_every: int = 20
    """steps between checkpoints (a checkpoint is also written at the end and on Ctrl-C)"""
    device: str | None = None
    """where the steps run: none keeps the data where it is, cpu, or cuda (torch)"""
    seed: int | None = None
    """seeds the first filters and the order of the signals"""
    solver_options: dict = field(default_factory=dict)
    """options for the inference solver (e.g. check_every for fista)"""

    def __post_init__(self):
        self.n_filters = positive_int(self.n_filters, "n_filters", "the number of filters, e.g. n_filters=32")
        self.filter_size = positive_int(self.filter_size, "filter_size", "the filters' side, e.g. filter_size=8")
        self.alpha = positive_float(self.alpha, "alpha")
        if self.boundary in BOUNDARIES and self.boundary not in FIT_BOUNDARIES:
            raise ValueError(f"fit_conv learns with boundary {' or '.join(map(repr, FIT_BOUNDARIES))}, not "
                             f"{self.boundary!r} (its cut-off filters have no Toeplitz statistics); encode_conv "
                             f"codes with any boundary")
        for name, choices in self.CHOICES.items():
            choice(getattr(self, name), name, choices)
        self.batch_size = positive_int(self.batch_size, "batch_size")
        self.n_epochs = optional(self.n_epochs, positive_int, "n_epochs")
        self.max_steps = optional(self.max_steps, positive_int, "max_steps")
        self.max_iter = optional(self.max_iter, positive_int, "max_iter")
        self.passes = positive_int(self.passes, "passes", "sweeps over the filters per step")
        self.checkpoint_every = positive_int(self.checkpoint_every, "checkpoint_every", "steps between checkpoints")
        self.tol = positive_float(self.tol, "tol")
        self.beta = optional(self.beta, nonnegative_float, "beta")
        self.forget = nonnegative_float(self.forget, "forget")
        self.check_booleans()
        self.seed = seed(self.seed)
        self.solver_options = dict(self.solver_options or {})
        if self.solver != "auto":
            REGISTRY[self.solver].check(self.solver_options, positive=self.positive)
        elif self.solver_options:
            raise ValueError(f"solver options {sorted(self.solver_options)} need a named solver (auto picks by the "
                             f"device and the boundary); pick one of {sorted(REGISTRY)}")
        if self.solver != "auto" and self.boundary not in REGISTRY[self.solver].BOUNDARIES:
            raise ValueError(f"solver={self.solver!r} supports boundary "
                             f"{' and '.join(map(repr, REGISTRY[self.solver].BOUNDARIES))}, not {self.boundary!r}")

    RUN_FIELDS = ("n_epochs", "max_steps", "checkpoint_every", "device", "seed")
    #: The fields that name one of a few choices, and those choices.
    CHOICES = {"boundary": FIT_BOUNDARIES, "solver": CONV_SOLVERS, "norm": tuple(NORM_RULES), "device": CONV_DEVICES}

    @staticmethod
    def default_words():
        return {"n_epochs": f"{N_EPOCHS}; none when only max_steps is given", "max_steps": "no cap",
                "max_iter": "encode_conv's own", "beta": "α", "seed": "none: a fresh seed"}

    def resolved(self, n_signals):
        """This config with the data-dependent defaults filled in, for ``n_signals`` signals."""
        if self.batch_size > n_signals:
            raise ValueError(f"batch_size={self.batch_size} is larger than the data ({n_signals} signals); use "
                             f"batch_size <= {n_signals}")
        n_epochs = N_EPOCHS if self.n_epochs is None and self.max_steps is None else self.n_epochs
        return dataclasses.replace(self, n_epochs=n_epochs, beta=self.alpha if self.beta is None else self.beta)
