"""The solver protocol: what :func:`sparsolve.encode` asks of a solver.

A solver is a class, registered by name in :data:`sparsolve.inference.REGISTRY`, with

* ``name``; ``runs_on_host`` (True: it runs as numba kernels on host copies of the
  arrays, always in Gram form, so encode keeps host BLAS on one thread around it);
  ``default_max_iter``; ``OPTIONS``, its options with their defaults; and ``OPTION_TYPES``,
  how each reads from text (``sparsolve fit --solver-option KEY=VALUE``, :meth:`Solver.parse_option`);
* ``check(options, positive=..., X=..., D=...)``, a classmethod that refuses unknown or bad
  options -- naming this solver's options -- before any work, and returns all of them.
  Without X and D (``fit`` checks its options before it reads the data) it checks what it can;
  the checks that need the data run again in encode;
* a constructor taking those options (and ``positive``);
* ``criterion``: which per-sample number it reports, one of :data:`CRITERIA`;
* ``form_request()``: the form it asks encode's memory plan for (:mod:`sparsolve.memory`):
  "gram", "factored", or "auto" (the plan picks by flops and by whether G fits);
* ``prepare(D, form)``: what every chunk of rows shares (G = DDᵀ, L = ‖D‖₂²);
* ``solve(X, D, alpha, init=, tol=, max_iter=, shared=, row_offset=)`` -> ``loop.Result``.

:class:`Iterative` is the base of the solvers written once over :mod:`sparsolve.backend`
(ISTA, FISTA, LCA): they add ``init``, ``step`` and ``current`` over a state dict of
per-sample rows, and :func:`sparsolve.inference.loop.iterate` runs them.  Adding a
solver is one file with one class, and one line in the registry.
"""
from __future__ import annotations

from ..checks import choice, positive_float, positive_int
from .loop import iterate
from .problem import FORMS, LassoProblem, lipschitz

# The words a boolean option reads as, from text.
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")

# What EncodeInfo reports per sample, by the solver's ``criterion``:
CRITERIA = {
    "rel_gap": "relative duality gap gap/F(z) of the lasso",
    "residual_energy": "relative residual energy ‖x − zD‖²/‖x‖² (OMP)",
    "fixed_point_residual": "fixed-point residual max|Δμ|/max|μ| (LCA, hard threshold)",
}


class Solver:
    name = ""
    runs_on_host = False
    default_max_iter: int | None = None
    criterion = "rel_gap"
    OPTIONS: dict = {}
    #: How each option reads from text: int, float, bool, or the tuple of the values it may take;
    #: None for one that no text can give (a callable).  One entry per key of OPTIONS.
    OPTION_TYPES: dict = {}

    def __init__(self, positive: bool = False, **options):
        self.positive = bool(positive)
        for key, value in {**self.OPTIONS, **options}.items():
            setattr(self, key, value)

    @classmethod
    def check(cls, options: dict, *, positive: bool = False, X=None, D=None) -> dict:
        """All options, the defaults filled in; an error for an unknown or bad one."""
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise TypeError(
                f"unknown option(s) {unknown} for solver={cls.name!r}; it accepts "
                f"{sorted(cls.OPTIONS) if cls.OPTIONS else 'no options'}"
            )
        opts = {**cls.OPTIONS, **options}
        cls._check(opts, positive, X, D)
        return opts

    @classmethod
    def _check(cls, opts: dict, positive: bool, X, D) -> None:
        """Per-solver value checks: solvers with options override this."""

    @classmethod
    def parse_option(cls, key: str, text: str):
        """The value of the option ``key`` written as ``text``, read as ``OPTION_TYPES`` declares
        (``"0.5"`` is 0.5 for a float, ``"false"`` is False for a bool); an unknown key is :meth:`check`'s
        TypeError, a text that does not read a ValueError naming the key.  A value outside the
        choices is returned as written, for :meth:`check` to refuse with the choices."""
        if key not in cls.OPTIONS:
            cls.check({key: text})
        kind = cls.OPTION_TYPES[key]
        word = text.strip().lower()
        if kind is None:
            raise ValueError(f"{key} cannot be written as text (it takes a Python object): pass it to "
                             f"sparsolve.fit or sparsolve.encode as {key}=...")
        if kind is bool or (isinstance(kind, tuple) and any(isinstance(c, bool) for c in kind)):
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            if kind is bool:
                raise ValueError(f"{key}={text!r} is not a boolean; write {key}=true or {key}=false")
        if isinstance(kind, tuple):
            return text
        try:
            return kind(word)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not {'an integer' if kind is int else 'a number'}") from None

    @classmethod
    def option_usage(cls) -> str:
        """The options that text can set, as ``KEY=TYPE``: ``gamma=FLOAT, accelerate=true|false, ...``."""
        def spelled(kind):
            if isinstance(kind, tuple):
                return "|".join(str(c).lower() if isinstance(c, bool) else str(c) for c in kind)
            return "true|false" if kind is bool else kind.__name__.upper()

        return ", ".join(f"{key}={spelled(kind)}" for key, kind in cls.OPTION_TYPES.items() if kind is not None)

    def form_request(self) -> str:
        """The form for the memory plan: the Gram form only, for solvers without a ``form`` option."""
        return "gram"

    def prepare(self, D, form: str) -> dict:
        """What every chunk shares: G = DDᵀ in Gram form."""
        return {"G": D @ D.T} if form == "gram" else {}

    def solve(self, X, D, alpha, *, init, tol, max_iter, form, shared, row_offset=0):
        raise NotImplementedError


class Iterative(Solver):
    """A solver written over the backend as ``init``/``step``/``current``, run by ``iterate``.

    Options: ``form`` ("auto", "gram", "factored"), ``check_every`` (steps between
    certificates), ``L`` (a known ‖D‖₂², else computed), ``trace`` (called at every
    certificate as ``trace(step, rows, Z, F)`` with the rows still running, their codes
    and objectives; a True return stops the run).

    The update rules see the problem only through ``prob.correlation(z)``, ``prob.L``,
    ``prob.alpha`` and ``prob.positive`` (and the loop through ``terms``, ``xsq``, ``take``),
    so :meth:`run` takes any problem object with those: :mod:`sparsolve.conv` runs these same
    classes on its convolutional problem, whose ``form`` is how the convolutions are computed
    (its subclasses set ``FORMS``)."""

    #: The values of the ``form`` option: how the problem computes its products.
    FORMS = FORMS
    OPTIONS = {"check_every": 10, "form": "auto", "L": None, "trace": None}
    OPTION_TYPES = {"check_every": int, "form": FORMS, "L": float, "trace": None}

    @classmethod
    def _check(cls, opts, positive, X, D):
        choice(opts["form"], "form", cls.FORMS)
        positive_int(opts["check_every"], "check_every", "steps between certificates")
        if opts["L"] is not None:
            positive_float(opts["L"], "L")
        if opts["trace"] is not None and not callable(opts["trace"]):
            raise TypeError(f"trace must be a callable trace(step, rows, Z, F), got {type(opts['trace']).__name__}")

    def form_request(self):
        return self.form

    def prepare(self, D, form):
        return {**super().prepare(D, form), "L": lipschitz(D) if self.L is None else float(self.L)}

    def solve(self, X, D, alpha, *, init, tol, max_iter, form, shared, row_offset=0):
        prob = LassoProblem.build(X, D, float(alpha), self.positive, form, L=shared["L"], G=shared.get("G"))
        return self.run(prob, init, tol=tol, max_iter=max_iter, row_offset=row_offset)

    def run(self, prob, init, *, tol, max_iter, row_offset=0):
        """:func:`~.loop.iterate` on the problem ``prob`` from the codes ``init``; ``row_offset``: the
        first row's index in the caller's batch (what ``trace`` is told)."""
        trace = self.trace
        if trace is not None and row_offset:
            trace = lambda step, rows, Z, F: self.trace(step, rows + row_offset, Z, F)  # noqa: E731
        return iterate(self, prob, init, tol=tol, max_iter=max_iter, check_every=int(self.check_every), trace=trace)

    def divergence_hint(self, prob):
        return f"The step 1/L uses L={prob.L:.4g}; pass a larger L."
