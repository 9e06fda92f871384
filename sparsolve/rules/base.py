"""The two kinds of rule a dictionary learns under, as objects (optax's transformations, skglm's penalties).

With the batch X (b, p), its codes Z (b, m), the residual R = X − ZD and the dictionary D (m, p),
one learning step (sparsolve.learning.learner) is

    stats     = update.statistics(X, Z, R, D)     per-row means, summed over the ranks by the reducer
    D, state  = update.apply(D, stats, state, t)  the update rule's M-step, from its own state
    D         = norm.project(D, previous)         the norm rule

An :class:`UpdateRule` holds its settings; its state (running statistics, optimiser moments) is a
plain dict that the learner keeps, passes in and gets back, so a step that fails leaves it as it
was.  A :class:`NormRule` holds nothing.  Each rule is one module of this package and one line of
its registry (``sparsolve.rules``), which the config, the command line, the memory plan and the
checkpoints read.
"""
from __future__ import annotations

import numpy as np

from .. import backend

#: Atoms shorter than this are treated as zero: projecting them would amplify rounding.
TINY = 1e-12
#: A_jj at or below this is an unused atom: no code of the data used it.
UNUSED = 1e-12


def rescaled(D, floor, previous=None):
    """Every row d_j of D divided by max(‖d_j‖, floor) (``floor`` None: not divided).  A row that
    is (near) zero -- an atom whose update had no data behind it -- takes its row from ``previous``
    first, because a zero atom cannot be normalised or used by the encoder."""
    xp = backend.namespace(D)
    norms = xp.sqrt((D * D).sum(axis=1))
    if previous is not None:
        # unconditionally: asking whether any row is zero would be a read of the device each step
        zero = norms <= TINY
        D = xp.where(zero[:, None], previous, D)
        norms = xp.where(zero, xp.sqrt((previous * previous).sum(axis=1)), norms)
    return D if floor is None else D / xp.clip(norms, floor, None)[:, None]


class NormRule:
    """How the L1 cheat is priced or prevented.

    Scaling an atom by c and its code by 1/c leaves zD unchanged while α‖z‖₁ falls by c, so
    without a rule exact inference lets the atoms grow and the codes shrink toward zero.  A rule
    is the projection Π applied to every atom after every update, the curvature ``decay`` it adds
    to the dictionary loss, the part of a gradient an optimiser should follow (``tangent``), and
    the norm a resampled atom gets.
    """

    name = ""
    #: What the command line's help says the rule does.
    summary = ""
    #: The flag the online pass's kernels read (numba on the host, Triton on CUDA): where Π is
    #: u ↦ u / max(‖u‖, floor), this floor, and the kernels project in closed form; None where Π
    #: is of another form (the pass then calls :meth:`project` atom by atom).
    floor: float | None = None
    #: False where Π is the identity: the online pass is then linear, one triangular solve.
    projects = True

    def project(self, D, previous=None):
        """Π applied to every row of D; rows that came out zero take their row from ``previous``
        (the dictionary before the update), which already satisfies the rule."""
        raise NotImplementedError

    def decay(self, beta) -> float:
        """The curvature this rule adds to the dictionary loss (``beta``: FitConfig.beta)."""
        return 0.0

    def tangent(self, grad, D):
        """The part of the gradient (m, p) that a projected step should take (default: all of it)."""
        return grad

    def start(self, D):
        """A first dictionary under the rule, from unit-norm rows (of the first batch, or Gaussian).
        Unit rows already satisfy every rule that leaves their directions free."""
        return D

    def resample_scale(self, D, atoms) -> float:
        """The norm of an atom resampled in place of ``atoms`` (host indices) of D."""
        return 1.0

    def new_atoms(self, inputs, D, atoms):
        """The atoms that replace ``atoms`` of D, made from the rows ``inputs`` (learning/dead.py):
        each input scaled to :meth:`resample_scale`."""
        xp = backend.namespace(inputs)
        return inputs * (self.resample_scale(D, atoms) / xp.sqrt((inputs * inputs).sum(axis=1)))[:, None]


def live_mean_norm(D, atoms) -> float:
    """The mean norm of D's rows other than ``atoms`` (1 if there are none): where a rule leaves
    the norms free, a new atom starts at the norm its peers have settled at.  One read of the device."""
    norms = backend.to_numpy(backend.namespace(D).sqrt((D * D).sum(axis=1)))
    live = np.ones(D.shape[0], bool)
    live[atoms] = False
    return float(norms[live].mean()) if live.any() else 1.0


class UpdateRule:
    """The M-step: a new dictionary from the batch's codes (see the module docstring).

    Subclasses set ``name``, ``summary`` and implement :meth:`statistics` and :meth:`apply`; a rule
    with state also overrides :meth:`init`, :meth:`reset_atoms`, :meth:`state_dict` and
    :meth:`load_state_dict`, and sizes it in :meth:`nbytes`.  ``norm`` is the run's :class:`NormRule` and
    ``decay`` its curvature, which every update includes.
    """

    name = ""
    summary = ""
    #: Meant for the whole data as one batch: batch_size defaults to every row.
    full_batch = False
    #: Passes over the data when n_epochs is not given (None: FitConfig's default).
    default_epochs: int | None = None
    #: What the memory plan's error names as the state (formatted with m).
    state_text = "the update's state"

    def __init__(self, config, norm: NormRule):
        self.norm = norm
        self.decay = norm.decay(config.beta)

    # ---- the step -------------------------------------------------------------------------------

    def init(self, D) -> dict:
        """The state before the first step (D: the first dictionary)."""
        return {}

    def statistics(self, X, Z, R, D) -> tuple:
        """This batch's statistics as per-row means over its b rows: a tuple of arrays that a
        data-parallel run sums over the ranks, row-weighted, into the global batch's."""
        raise NotImplementedError

    def apply(self, D, stats, state, step):
        """(new D before the norm rule, new state) from the global batch's ``stats``; ``step`` counts
        from 1.  It returns new arrays and never writes ``state``'s: a failed step keeps them."""
        raise NotImplementedError

    def reset_atoms(self, state, atoms) -> dict:
        """The state with ``atoms`` (host indices) started afresh, as a new atom's would be; in place
        on the arrays :meth:`apply` returned."""
        return state

    # ---- memory and checkpoints ------------------------------------------------------------------

    @classmethod
    def nbytes(cls, m, p, batch, itemsize) -> int:
        """The bytes the rule holds during a step beyond D and the batch (state and temporaries),
        for m atoms of p features, ``batch`` rows, ``itemsize`` bytes an entry (sparsolve.memory)."""
        return 0

    def state_dict(self, state) -> tuple[dict, dict]:
        """(host arrays, JSON-able values) of ``state`` for a checkpoint, under names of the rule's own."""
        return {}, {}

    def load_state_dict(self, arrays, values, m, p, dtype) -> dict:
        """The state that :meth:`state_dict` wrote, from a checkpoint's ``arrays`` and ``values``, each
        array checked (:func:`checked_arrays`) for m atoms of p features in the dictionary's ``dtype``."""
        return self.init(None)

    def to(self, state, like) -> dict:
        """The state's arrays in the library, device and dtype of ``like`` (the step's batch)."""
        return {k: backend.match(v, like) if backend.is_array(v) else v for k, v in state.items()}


def checked_arrays(arrays, shapes, dtype) -> dict:
    """{name: array} for each name of ``shapes`` present in ``arrays`` (a checkpoint's), each of the
    shape given and of ``dtype``: else a ValueError naming the array, what was expected and what was found."""
    out = {}
    for name, shape in shapes.items():
        if name not in arrays:
            continue
        a = arrays[name]
        if tuple(a.shape) != tuple(shape) or str(a.dtype) != dtype:
            raise ValueError(f"checkpoint array {name!r} has shape {tuple(a.shape)} and dtype {a.dtype}, expected "
                             f"shape {tuple(shape)} and dtype {dtype} (the dictionary's)")
        out[name] = a
    return out
