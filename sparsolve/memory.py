"""The memory plan: what a fit or an encode at a given size needs on its device, decided before
any work, from the free memory (backend.free_bytes) and the sizes alone.

With m atoms, p features, b rows per batch and s bytes per entry, the arrays are

* the dictionary D: m·p·s;
* in a fit, what the learner holds while its step's encode runs: D's update and the previous D
  the norm rule falls back on, 2·m·p·s; the update rule's state and temporaries, its ``nbytes``
  (sparsolve.rules: ``"online"``, the running Ā and the batch's A (m×m each), two m×m
  temporaries, B̄ and B, (4·m² + 2·m·p)·s; ``"sgd"``, Adam's two moments, the gradient and two
  temporaries, 5·m·p·s; ``"mod"``, A, the solve's copy and its factor, with B, (3·m² + 2·m·p)·s);
  and the batch: its rows x, codes z and residual, b·(2·p + m)·s (``update=None``, inference
  alone as in ``encode``: none of these);
* per row of an inference chunk: the solver's working arrays, about eight (rows, m) and two
  (rows, p): (8·m + 2·p)·s; a run needs room for ``min_rows`` rows (by default
  min(b, MIN_CHUNK));
* the Gram form of inference adds G = DDᵀ, m²·s, once.

So a fit's plan is encode's plan in what the learner's own arrays leave free: the fit's encode
follows it (its form and rows per chunk), and picks a thinner chunk, or the factored form, when
the statistics take most of the memory.  The plan keeps everything within ``fraction`` (default
0.8) of the free memory.  The Gram form is taken where the flop count prefers it
(:func:`choose_form`) and G fits beside at least ``MIN_CHUNK`` rows; otherwise the
factored form, which never forms an m×m array.  Where even the factored form does not fit,
:class:`MemoryPlanError` says how much memory the run needs, how much is free, and the way out
(``update="sgd"`` or a smaller m, or fewer rows).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import backend
from .checks import choice, positive_int
from .rules import UPDATE_RULES

ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
FORMS = ("auto", "gram", "factored")

# The fewest rows per chunk the Gram form must leave room for: below this, G's one-off cost no
# longer buys anything (each chunk's products would be too thin to run at speed).
MIN_CHUNK = 1024
# The share of the free memory a plan may take: allocators fragment, and libraries hold
# workspaces (cuBLAS, the caching allocator) beyond the arrays counted here.
FRACTION = 0.8

_GIB = float(1 << 30)


class MemoryPlanError(ValueError):
    """A run that cannot fit its device, refused before any work."""


@dataclass(frozen=True)
class MemoryPlan:
    """What :func:`plan` decided, and the figures it decided from (all sizes in bytes)."""

    form: str
    """Inference's form: ``"gram"`` (G = DDᵀ formed once) or ``"factored"`` (no m×m array)."""
    chunk_rows: int
    """Rows per inference chunk, at most the batch size."""
    fixed_bytes: int
    """The dictionary, what a fit's learner holds (its copies of D, the update's state, the
    batch), and G under the Gram form."""
    statistics_bytes: int
    """The update's state alone (the online statistics Ā, B̄ and their temporaries; Adam's moments)."""
    per_row_bytes: int
    """The working memory of one row of a chunk."""
    budget_bytes: int
    """The share of the free memory the plan may use (``fraction`` × free)."""

    def needed_bytes(self, rows: int) -> int:
        """The memory a chunk of ``rows`` rows takes together with the fixed arrays."""
        return self.fixed_bytes + rows * self.per_row_bytes


def choose_form(n_samples: int, n_atoms: int, n_features: int, expected_evals: int = 50) -> str:
    """'gram' or 'factored', whichever costs fewer flops over ``expected_evals`` evaluations: the Gram
    form m²·p once and n·m² per evaluation, the factored form 2·n·m·p per evaluation
    (sparsolve.inference.problem)."""
    gram = n_atoms * n_atoms * n_features + expected_evals * n_samples * n_atoms * n_atoms
    factored = expected_evals * 2 * n_samples * n_atoms * n_features
    return "gram" if gram < factored else "factored"


def _sizes(n_features, n_atoms, update, s, batch_size):
    """(fixed, statistics, per row, G) in bytes: see the module docstring."""
    m, p, b = n_atoms, n_features, batch_size
    per_row, gram = (8 * m + 2 * p) * s, m * m * s
    if update is None:
        return m * p * s, 0, per_row, gram
    statistics = UPDATE_RULES[update].nbytes(m, p, b, s)
    held = (2 * m * p + b * (2 * p + m)) * s + statistics
    return m * p * s + held, statistics, per_row, gram


def plan(free_bytes: int, n_features: int, n_atoms: int, batch_size: int, dtype: str = "float32", *,
         update: str = "online", form: str = "auto", fraction: float = FRACTION, device: str = "the device",
         min_rows: int | None = None) -> MemoryPlan:
    """The plan for steps of ``batch_size`` rows with ``n_atoms`` atoms of ``n_features`` features in
    ``dtype`` (module docstring), given ``free_bytes`` free on ``device`` (named in errors only).
    ``min_rows``: the thinnest chunk the run accepts (default min(batch_size, MIN_CHUNK); encode
    takes 1, splitting as finely as memory asks).  Raises :class:`MemoryPlanError` where the run
    cannot fit, with the way out."""
    p = positive_int(n_features, "n_features")
    m = positive_int(n_atoms, "n_atoms")
    b = positive_int(batch_size, "batch_size")
    choice(dtype, "dtype", tuple(ITEMSIZE))
    choice(update, "update", (*UPDATE_RULES, None))  # None: inference alone (encode)
    choice(form, "form", FORMS)
    s = ITEMSIZE[dtype]
    budget = int(free_bytes * fraction)
    fixed, statistics, per_row, gram = _sizes(p, m, update, s, b)
    want_rows = min(b, MIN_CHUNK)  # G pays only beside chunks this thick
    least = want_rows if min_rows is None else min(b, positive_int(min_rows, "min_rows"))
    if fixed + per_row * least > budget:
        raise MemoryPlanError(_does_not_fit(p, m, b, dtype, update, fixed + per_row * least, statistics,
                                            budget, free_bytes, fraction, device, least))
    if form == "auto":
        form = choose_form(b, m, p)
        if form == "gram" and fixed + gram + per_row * want_rows > budget:
            form = "factored"
    elif form == "gram" and fixed + gram + per_row * want_rows > budget:
        raise MemoryPlanError(
            f"form='gram' needs G = DDᵀ ({m}×{m}, {gram / _GIB:.2f} GiB in {dtype}) beside "
            f"{fixed / _GIB:.2f} GiB of dictionary and statistics, but {budget / _GIB:.2f} GiB "
            f"({fraction:.0%} of the {free_bytes / _GIB:.2f} GiB free on {device}) are usable; "
            f"use form='factored' or 'auto' (solvers ista, fista and lca; cd and omp always need G)")
    if form == "gram":
        fixed += gram
    rows = max(1, min(b, (budget - fixed) // per_row))
    return MemoryPlan(form=form, chunk_rows=int(rows), fixed_bytes=int(fixed), statistics_bytes=int(statistics),
                      per_row_bytes=int(per_row), budget_bytes=budget)


def plan_for(like, n_features: int, n_atoms: int, batch_size: int, **options) -> MemoryPlan:
    """:func:`plan` for arrays like ``like``: its device's free memory and its dtype."""
    options.setdefault("dtype", backend.dtype_name(like))
    return plan(backend.free_bytes(like), n_features, n_atoms, batch_size, device=backend.device_of(like), **options)


def largest_n_atoms(budget_bytes: int, n_features: int, batch_size: int, dtype: str, update: str,
                    rows: int | None = None) -> int:
    """The most atoms whose fixed arrays and a chunk of ``rows`` rows (default min(batch_size, MIN_CHUNK))
    fit in ``budget_bytes`` (0 if not even one does)."""
    s, rows = ITEMSIZE[dtype], min(batch_size, MIN_CHUNK) if rows is None else rows

    def fits(m):
        fixed, _, per_row, _ = _sizes(n_features, m, update, s, batch_size)
        return fixed + rows * per_row <= budget_bytes

    lo, hi = 0, 1
    while fits(hi):
        lo, hi = hi, 2 * hi
    return _bisect(fits, lo, hi)


def _bisect(fits, lo, hi):
    """The largest n in [lo, hi) with fits(n), given fits(lo) (or lo = 0) and not fits(hi)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _does_not_fit(p, m, b, dtype, update, needed, statistics, budget, free, fraction, device, rows):
    s = ITEMSIZE[dtype]
    usable = f"{budget / _GIB:.2f} GiB ({fraction:.0%} of the {free / _GIB:.2f} GiB free on {device})"
    if update is None:
        what = f"the dictionary takes {m * p * s / _GIB:.2f} GiB"
    else:
        what = (f"{UPDATE_RULES[update].state_text.format(m=m)} take {statistics / _GIB:.2f} GiB, the batch of "
                f"{b:,} rows with its codes and residual {b * (2 * p + m) * s / _GIB:.2f} GiB")
    ways = []
    for name, rule in UPDATE_RULES.items():  # the rules that need less, where they fit (not a full-batch one)
        if update is None or rule.full_batch or rule.nbytes(m, p, b, s) >= statistics:
            continue
        fixed, _, per_row, _ = _sizes(p, m, name, s, b)
        if fixed + per_row * rows <= budget:
            ways.append(f"update={name!r} ({rule.summary}; {(fixed + per_row * rows) / _GIB:.2f} GiB)")
    largest = largest_n_atoms(budget, p, b, dtype, update, rows)
    if largest:
        ways.append(f"n_atoms ≤ {largest:,}")
    if update is not None:
        batch = _largest_batch(budget, p, m, s, update, b)
        if batch:
            ways.append(f"batch_size ≤ {batch:,}")
    ways.append("a device with more free memory")
    return (f"n_atoms={m:,} with n_features={p:,}, update={update!r} in {dtype} needs {needed / _GIB:.2f} GiB "
            f"({what}), but {usable} are usable; use " + ", or ".join(ways))


def _largest_batch(budget, p, m, s, update, b):
    """The largest batch below ``b`` whose fit fits in ``budget`` (chunks of min(batch, MIN_CHUNK)
    rows), 0 if none does."""
    def fits(batch):
        fixed, _, per_row, _ = _sizes(p, m, update, s, batch)
        return fixed + per_row * min(batch, MIN_CHUNK) <= budget

    return _bisect(fits, 0, b)
