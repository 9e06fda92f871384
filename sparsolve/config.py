"""Typed settings: one field per option, validated once.

:class:`FitConfig` holds every setting of :func:`sparsolve.fit` (and
:class:`AmortizedConfig` those of :func:`sparsolve.fit_amortized`).  Each field
carries its docstring right below it; :func:`~sparsolve.fields.field_docs` reads them, so that the
command line's help (cli.py) and the estimator's parameters (estimator.py) are
generated from the fields and a new option is written once, here.  A checkpoint
records ``dataclasses.asdict(config)`` and a resume compares configs
(:meth:`FitConfig.resume_mismatch`).

Names have one meaning across both trainers:

* ``norm="penalty"`` is weight decay β Σ‖d_j‖² on the atoms (``fit``);
  the seed's inverse penalty β Σ 1/‖w_j‖² on the encoder rows (``fit_amortized``)
  is ``norm="inverse_penalty"``.
* ``device=None`` keeps the data where it is; ``"auto"`` means CUDA when available.
* ``positive=True`` means nonnegative codes, in both (``signed`` is its negation).
* ``beta=None`` takes the rule's default: α for fit's weight decay, :data:`AMORTIZED_BETA` for
  fit_amortized's inverse penalty.

Every default is written once: as the field's default, or, where it depends on the data or on
another setting, as a constant here or an attribute of the rule or solver it belongs to
(sparsolve.rules, sparsolve.inference).  ``fields.default_help`` words each one from there, and the
docstrings that explain a default take its numbers from the constants (``{NAME}`` in a field
docstring is the constant NAME of this module).

The old spellings (fit's ``device="auto"``, fit_amortized's ``norm="penalty"`` and
``signed=``) still work for one release, with a DeprecationWarning.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

from .checks import choice, nonnegative_float, optional, positive_float, positive_int, seed
from .fields import Config, default_help, field_docs, listed
from .inference import REGISTRY, SOLVER_CHOICES, check_solver_options
from .rules import NORM_RULES, UPDATE_RULES

FIT_DEVICES = (None, "cpu", "cuda")
#: Rows per step when batch_size is not given: min(BATCH_SIZE, rows), so that small data still
#: trains (an update rule meant for full batches takes every row).
BATCH_SIZE = 256
#: Passes over the data when neither n_epochs nor max_steps is given (a rule may have its own).
N_EPOCHS = 1
#: dead_after's default, max(DEAD_AFTER_PER_ATOM·n_atoms, DEAD_AFTER_PER_BATCH·batch_size): long
#: enough that a rarely used but live atom is not mistaken for a dead one.
DEAD_AFTER_PER_ATOM, DEAD_AFTER_PER_BATCH = 20, 2
#: Steps between host reads on a GPU when sync_every is not set (1 on the host, where a read
#: costs nothing).  A read waits for the queue to drain; one in 16 steps leaves at most
#: 1/16 of a step's launch latency exposed.
GPU_SYNC_EVERY = 16
#: Inner-loop iteration caps for learning when max_iter is not set.  A cap, not the tol, ends
#: LCA/ISTA/FISTA on early, badly conditioned dictionaries; the codes are still good enough for an
#: M-step, and the cap keeps one step's cost bounded.  cd and omp use encode's own.  LCA's is low
#: because its accelerated form gets an M-step's worth of accuracy in a few dozen iterations: at
#: 50, fit reaches cd's held-out objective in 1.3× cd's time, and ends lower (benchmarks/fit.py;
#: at 500, 5×).
LEARNING_MAX_ITER = {"lca": 50, "ista": 500, "fista": 300}
#: fit's storage types, and the smallest relative duality gap each can certify: bfloat16 keeps
#: 8 significant bits, so rounding x and D perturbs every entry by up to u = 2⁻⁸ ≈ 3.9e-3 of
#: itself; the residual x − zD, and with it ½‖x − zD‖² and the dual objective built from it,
#: are then known to about (1 + u)² − 1 ≈ 2u of themselves, so a gap below 2u = 2⁻⁷ ≈ 7.8e-3 of
#: F(z) certifies nothing about the unrounded problem (as TF32's 2⁻¹⁰ mantissa makes its floor ~1e-3).
STORAGE_TOL = {"bfloat16": 2.0 ** -7}


# The choices' words in the help, from the registries.
SOLVER_WORDS = listed(["auto (cd on CPU, fista on GPU)", *REGISTRY])
UPDATE_WORDS = listed(f"{name} ({rule.summary})" for name, rule in UPDATE_RULES.items())
NORM_WORDS = listed(f"{name} ({rule.summary})" for name, rule in NORM_RULES.items())

#: fit_amortized's beta=None: the weight of the inverse penalty β Σ 1/‖w_e‖².
AMORTIZED_BETA = 1e-3


def deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and will be removed in the next release; write {new}",
                  DeprecationWarning, stacklevel=4)


@dataclass
class FitConfig(Config):
    """Every setting of :func:`sparsolve.fit`, the dictionary learning of
    min_D mean_x min_z ½‖x − zD‖² + α‖z‖₁ under a norm rule on the rows of D."""

    n_atoms: int
    """number of atoms m ≥ 1, the rows of the dictionary D"""
    alpha: float
    """the L1 weight α > 0 of ½‖x − zD‖² + α‖z‖₁"""
    solver: str = "auto"
    """inference solver of sparsolve.encode: {SOLVER_WORDS}"""
    update: str = "online"
    """dictionary update (sparsolve.rules): {UPDATE_WORDS}"""
    norm: str = "unit"
    """norm rule on the atoms (sparsolve.rules): {NORM_WORDS}"""
    batch_size: int | None = None
    """rows per step"""
    n_epochs: int | None = None
    """passes over the data"""
    max_steps: int | None = None
    """stop after this many steps in all"""
    positive: bool = False
    """nonnegative codes z ≥ 0"""
    tol: float = 1e-3
    """the inner loop's relative duality gap per sample: learning needs good codes, not certified optima"""
    max_iter: int | None = None
    """the inner loop's iteration cap"""
    beta: float | None = None
    """weight β of norm=penalty's weight decay β Σ‖d‖²"""
    lr: float = 1e-3
    """Adam's step size for update=sgd: each entry of D moves by about lr per step"""
    forget: float = 5.0
    """forgetting exponent of update=online's running statistics, ρ_t = (1 − 1/t)^forget"""
    shuffle: bool = True
    """visit an array's rows in a seeded random order each epoch"""
    resample_dead: bool = True
    """replace atoms no code used for dead_after samples by badly explained inputs"""
    dead_after: int | None = None
    """samples an atom may stay unused before it counts as dead"""
    checkpoint_every: int = 100
    """steps between checkpoints (a checkpoint is also written at the end and on Ctrl-C)"""
    device: str | None = None
    """where the steps run: none keeps the data where it is, cpu, or cuda (torch)"""
    storage: str | None = None
    """bfloat16: batches and dictionary stored in bfloat16 (torch tensors only; half the memory and transfer of float32), every product, the codes and the statistics in float32; its rounding, 2⁻⁸ ≈ 3.9e-3 relative per element, lets tol certify no gap below 2⁻⁷ ≈ 7.8e-3 (pass tol=0.01); none: the data's own float32 or float64"""
    sync_every: int | None = None
    """steps between reads of the device (finite checks, history, dead atoms, progress bar): the steps whose number is a multiple of it read; a NaN or Inf in a batch still raises its error, at the next read at the latest; the history is exact for every value, and the dictionary the same except that dead atoms are resampled at read steps only, up to sync_every − 1 steps after they die; a callback reads every step"""
    center: bool = False
    """learn with a decoder bias: x ≈ zD + b, b the data's mean offset (an SAE's b_dec), subtracted before every step, so the dictionary and the lasso's certified codes are those of the centred data x − b; the model keeps b (model.offset) and its encode, decode and score apply it.  b is the mean of an array's rows (a seeded sample of center_samples rows when it has more); of an iterable, a running mean of the batches as they arrive, frozen after center_samples rows (the batches before are centred by the mean so far)"""
    center_samples: int = 65536
    """rows that estimate center's offset b (see center): enough for its error, σ/√center_samples per feature, to be far below the codes' scale"""
    seed: int | None = None
    """seeds the first dictionary, the batch order and the dead-atom resampling"""
    solver_options: dict = field(default_factory=dict)
    """options for the inference solver (e.g. gamma for lca)"""

    def __post_init__(self):
        self.n_atoms = positive_int(self.n_atoms, "n_atoms", "the number of atoms, e.g. n_atoms=256")
        if isinstance(self.alpha, (int, float)) and not isinstance(self.alpha, bool) and self.alpha == 0:
            raise ValueError("alpha must be a finite number > 0, got 0; with alpha=0 the codes are not sparse")
        self.alpha = positive_float(self.alpha, "alpha")
        if self.device == "auto":
            deprecated("fit(device='auto') (it keeps the data where it is)", "device=None")
            self.device = None
        for name, choices in self.CHOICES.items():
            choice(getattr(self, name), name, choices)
        self.sync_every = optional(self.sync_every, positive_int, "sync_every")
        self.batch_size = optional(self.batch_size, positive_int, "batch_size")
        self.n_epochs = optional(self.n_epochs, positive_int, "n_epochs")
        self.max_steps = optional(self.max_steps, positive_int, "max_steps")
        self.max_iter = optional(self.max_iter, positive_int, "max_iter")
        self.dead_after = optional(self.dead_after, positive_int, "dead_after")
        self.checkpoint_every = positive_int(self.checkpoint_every, "checkpoint_every", "steps between checkpoints")
        self.tol = positive_float(self.tol, "tol")
        if self.storage is not None and self.tol < STORAGE_TOL[self.storage]:
            floor = STORAGE_TOL[self.storage]
            raise ValueError(f"tol={self.tol:g} is below what storage={self.storage!r} can certify ({floor:.2g}: its "
                             f"rounding of X and D, 3.9e-3 per element, is in every gap); pass tol >= {floor:.2g} "
                             "(e.g. tol=0.01), or storage=None for float32")
        self.beta = optional(self.beta, nonnegative_float, "beta")
        self.lr = optional(self.lr, positive_float, "lr")
        self.forget = nonnegative_float(self.forget, "forget")
        self.check_booleans()
        self.center_samples = positive_int(self.center_samples, "center_samples", "rows that estimate the offset")
        self.seed = seed(self.seed)
        self.solver_options = dict(self.solver_options or {})
        try:
            check_solver_options(self.solver, self.solver_options, self.positive)
        except ValueError as e:
            if self.solver != "auto":
                raise
            # fit routes every keyword that is not a field into solver_options: a misspelt setting lands here
            fields = [f.name for f in dataclasses.fields(self)]
            raise ValueError(f"{e}; if they are meant as settings of fit, those are {fields}") from None

    # The seed is compared separately (checkpoint.check_resume): an unseeded resume takes
    # the checkpoint's.
    RUN_FIELDS = ("n_epochs", "max_steps", "checkpoint_every", "device", "seed", "sync_every")
    #: The fields that name one of a few choices, and those choices (the registries' names).
    CHOICES = {"solver": SOLVER_CHOICES, "update": tuple(UPDATE_RULES), "norm": tuple(NORM_RULES),
               "device": FIT_DEVICES, "storage": (None, *STORAGE_TOL)}

    def resolved(self, n_rows=None):
        """This config with the data-dependent defaults filled in (``n_rows``: the rows of
        an array, None for an iterable).  The default batch size is min(BATCH_SIZE, n_rows), or
        every row for an update rule meant for full batches; a given one larger than the data is
        refused."""
        rule = UPDATE_RULES[self.update]
        batch_size = self.batch_size
        if batch_size is None:
            batch_size = n_rows if (n_rows is not None and (rule.full_batch or n_rows < BATCH_SIZE)) else BATCH_SIZE
        if n_rows is not None and batch_size > n_rows:
            raise ValueError(f"batch_size={batch_size} is larger than the data ({n_rows} rows); "
                             f"use batch_size <= {n_rows}")
        n_epochs = self.n_epochs
        if n_epochs is None and self.max_steps is None:
            n_epochs = rule.default_epochs or N_EPOCHS
        dead_after = self.dead_after or max(DEAD_AFTER_PER_ATOM * self.n_atoms, DEAD_AFTER_PER_BATCH * batch_size)
        beta = self.alpha if self.beta is None else self.beta
        return dataclasses.replace(self, batch_size=batch_size, n_epochs=n_epochs, dead_after=dead_after, beta=beta)

    def max_iter_for(self, solver) -> int | None:
        """The inner loop's cap for ``solver`` in a learning step: max_iter, else
        :data:`LEARNING_MAX_ITER`'s, else (None) encode's own."""
        return self.max_iter if self.max_iter is not None else LEARNING_MAX_ITER.get(solver)

    @staticmethod
    def default_words():
        full = [name for name, rule in UPDATE_RULES.items() if rule.full_batch]
        own = "".join(f"; {rule.default_epochs} for update={name}" for name, rule in UPDATE_RULES.items()
                      if rule.default_epochs)
        caps = ", ".join(f"{n} for {s}" for s, n in LEARNING_MAX_ITER.items())
        return {
            "batch_size": f"{BATCH_SIZE}, or all rows when there are fewer" + "".join(f"; all rows for update={name}" for name in full),
            "n_epochs": f"{N_EPOCHS}{own}; none when only max_steps is given",
            "max_steps": "no cap",
            "max_iter": f"{caps}; encode's own for " + " and ".join(s for s in REGISTRY if s not in LEARNING_MAX_ITER),
            "beta": "α",
            "dead_after": f"max({DEAD_AFTER_PER_ATOM}·n_atoms, {DEAD_AFTER_PER_BATCH}·batch_size)",
            "sync_every": f"1 on the host, {GPU_SYNC_EVERY} on a GPU",
            "seed": "none: a fresh seed",
        }


AMORTIZED_MODES = ("amortize", "autoencoder")
AMORTIZED_TARGETS = ("lasso", "codes")
AMORTIZED_NORMS = ("unit", "inverse_penalty", "none")
AMORTIZED_SCHEMES = ("lca", "ista")
LR_SCHEDULES = ("cosine", "constant")
#: fit_amortized's default Adam step by start (scheme) or mode, and its default schedule: AMORTIZED_EPOCHS
#: passes, more or fewer to stay within AMORTIZED_STEPS = (fewest, most) steps (AmortizedConfig's lr, n_epochs)
AMORTIZED_LR = {"lca": 1e-2, "ista": 3e-3, "autoencoder": 1e-3}
AMORTIZED_EPOCHS = 12
AMORTIZED_STEPS = (1000, 5000)
AUTOENCODER_EPOCHS = 10


@dataclass
class AmortizedConfig(Config):
    """Every setting of :func:`sparsolve.fit_amortized`, the backprop training of the
    learned-G encoder (see sparsolve.amortized.train)."""

    t_star: int
    """inner-loop steps t* ≥ 0 of the encoder"""
    alpha: float
    """the L1 weight α ≥ 0 (λ in the seed)"""
    mode: str = "amortize"
    """amortize (a fixed dictionary decodes) or autoencoder (everything learns)"""
    target: str = "lasso"
    """amortize's loss: lasso (the lasso objective of its codes) or codes (distance to the exact codes)"""
    norm: str | None = None
    """autoencoder's rule: unit (decoder atoms ‖w‖ = 1, the default), inverse_penalty (β Σ 1/‖w_e‖² on the encoder rows) or none"""
    beta: float | None = None
    """weight β of norm=inverse_penalty (default {AMORTIZED_BETA})"""
    n_atoms: int | None = None
    """number of units, for an autoencoder without a dictionary"""
    scheme: str = "ista"
    """with a dictionary, the solver the encoder starts as: ista (LISTA's, the default) or lca (the seed's
    dynamics); both give the seed's network.  ISTA's start trained to a lower held-out gap at t* = 1 and 2
    (benchmarks/amortized.py, amortized_defaults.py); LCA's step γ = 1/L starts the loop almost still"""
    gamma: float | None = None
    """the inner-loop step γ > 0 (default 1/‖D‖₂² for scheme=lca, else 1)"""
    learn_gamma: bool = True
    """γ learns with the other parameters"""
    tied: bool = True
    """one G and γ shared by every step (the seed's encoder); False: per-step G_t, b_t and γ_t
    (LISTA's untied variant, outside the seed's spec)"""
    accelerate: bool = False
    """run the (tied) loop with Nesterov's momentum on μ and adaptive restart, LCA's accelerated
    dynamics (LearnedG's docstring), outside the seed's spec; False: the seed's loop"""
    positive: bool = True
    """nonnegative codes (ReLU, the seed's); False gives signed soft-threshold codes"""
    lr: float | None = None
    """Adam's step; default by the start, the step that trained best in benchmarks/amortized.py and that
    benchmarks/amortized_defaults.py checks on other data: {AMORTIZED_LR[lca]} from LCA's (scheme=lca),
    {AMORTIZED_LR[ista]} from ISTA's, whose weights are 1/L smaller (a larger step diverged there);
    {AMORTIZED_LR[autoencoder]} for mode=autoencoder"""
    lr_schedule: str = "cosine"
    """cosine (lr·½(1 + cos(π s/S)) over the planned steps) or constant"""
    batch_size: int = 256
    """rows per step"""
    n_epochs: int | None = None
    """passes over the data; default (without max_steps) {AUTOENCODER_EPOCHS} for mode=autoencoder, and for
    mode=amortize from the data size n, with k = ⌈n/batch_size⌉ steps an epoch: {AMORTIZED_EPOCHS} epochs, but
    at least {AMORTIZED_STEPS[0]:,} steps and at most about {AMORTIZED_STEPS[1]:,},
    min(max({AMORTIZED_EPOCHS}, ⌈{AMORTIZED_STEPS[0]:,}/k⌉), ⌈{AMORTIZED_STEPS[1]:,}/k⌉).  Why: on 8×8 patches the
    held-out gap
    falls with the steps up to about 5,000 and then stops, at every depth t* tried (1, 2, 5;
    benchmarks/RESULTS.md, amortized); on 2,000 patches (the problem of tests/test_amortized.py's
    schedule check) 96 steps ended at twice the gap of 1,000 (5.7 % against 2.8 %), and 4,000 gained nothing"""
    max_steps: int | None = None
    """stop after this many steps in all"""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda, ..."""
    dtype: str = "float32"
    """float32 or float64"""
    seed: int | None = None
    """seeds the initialisation and the batch order"""
    checkpoint_every: int = 200
    """steps between checkpoints (also at the end and on Ctrl-C)"""

    RUN_FIELDS = ("max_steps", "checkpoint_every", "device", "dtype", "gamma")

    def __post_init__(self):
        self.t_star = positive_int(self.t_star, "t_star", "inner-loop steps", minimum=0)
        self.alpha = nonnegative_float(self.alpha, "alpha")
        choice(self.mode, "mode", AMORTIZED_MODES)
        choice(self.target, "target", AMORTIZED_TARGETS)
        choice(self.scheme, "scheme", AMORTIZED_SCHEMES)
        if self.norm == "penalty":
            deprecated("fit_amortized(norm='penalty') (the seed's inverse penalty)", "norm='inverse_penalty'")
            self.norm = "inverse_penalty"
        if self.mode == "autoencoder":
            self.norm = "unit" if self.norm is None else choice(self.norm, "norm", AMORTIZED_NORMS)
            if self.target != "lasso":
                raise ValueError("target='codes' needs exact codes of a fixed dictionary: use mode='amortize'")
        elif self.norm is not None:
            raise ValueError(f"norm={self.norm!r} applies to mode='autoencoder' only; "
                             "the decoder is frozen in mode='amortize'")
        self.beta = AMORTIZED_BETA if self.beta is None else nonnegative_float(self.beta, "beta")
        self.n_atoms = optional(self.n_atoms, positive_int, "n_atoms")
        self.lr = optional(self.lr, positive_float, "lr")
        choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        self.batch_size = positive_int(self.batch_size, "batch_size")
        self.n_epochs = optional(self.n_epochs, positive_int, "n_epochs")
        if self.max_steps is not None:
            self.max_steps = positive_int(self.max_steps, "max_steps", minimum=0)
        choice(self.dtype, "dtype", ("float32", "float64"))
        self.seed = seed(self.seed)
        self.checkpoint_every = positive_int(self.checkpoint_every, "checkpoint_every", "steps between checkpoints")
        self.check_booleans()
        if self.accelerate and not self.tied:
            raise ValueError("accelerate=True needs tied=True (the momentum runs one G and γ); "
                             "pass tied=True or accelerate=False")
        self.gamma = optional(self.gamma, positive_float, "gamma")

    def resolved(self, n_samples: int):
        """This config with the defaults that depend on the start and the data filled in
        (``lr`` and ``n_epochs``, see their docstrings), for ``n_samples`` training rows.  The
        resolved config is what a checkpoint stores, so a resume runs the same schedule."""
        lr = self.lr
        if lr is None:
            lr = AMORTIZED_LR["autoencoder"] if self.mode == "autoencoder" else AMORTIZED_LR[self.scheme]
        n_epochs = self.n_epochs
        if n_epochs is None and self.max_steps is None and self.mode == "autoencoder":
            n_epochs = AUTOENCODER_EPOCHS
        elif n_epochs is None and self.max_steps is None:
            k = -(-n_samples // self.batch_size)  # steps an epoch
            least, most = (-(-steps // k) for steps in AMORTIZED_STEPS)
            n_epochs = min(max(AMORTIZED_EPOCHS, least), most)
        return dataclasses.replace(self, lr=lr, n_epochs=n_epochs)


# field_docs and default_help (fields.py) and check_solver_options (the solvers' registry) are read
# from here by the command line and the estimator.
__all__ = ["FitConfig", "AmortizedConfig", "field_docs", "default_help", "check_solver_options"]
