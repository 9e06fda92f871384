"""``SparseCodingModel``: a learned dictionary with the settings that encode with it.

The model is what :func:`sparsolve.fit` returns and what :func:`load` reads back.
Its file is a sparsolve npz (:mod:`sparsolve.io`, never a pickle) of kind
``"sparse_coding_model"`` holding the dictionary, the settings and the history.
"""
from __future__ import annotations

import numpy as np

from .. import backend, io
from ..gap import objective
from ..inference import encode, solver_for
from .history import history_arrays, history_from_arrays

KIND = "sparse_coding_model"


class SparseCodingModel:
    """A dictionary D (n_atoms, n_features), one atom per row, and how to code with it.

    Attributes
    ----------
    dictionary : numpy array (n_atoms, n_features).
    alpha, positive : what :meth:`encode` uses by default.
    solver, solver_options : the training's inference solver and its options; :meth:`encode`
        uses them only when asked for that solver.
    settings : every setting of the fit that produced the model (a JSON-able dict).
    history : dict of equal-length lists, one entry per training step --
        ``objective`` (mean ½‖x − zD‖² + α‖z‖₁ of the step's batch, before its update),
        ``mse`` (mean of (x − zD)² over the entries), ``l1`` (mean ‖z‖₁), ``nnz_frac``
        (mean fraction of nonzero codes), ``dead_frac`` (fraction of dead atoms, see
        dead.py), ``norm_min``/``norm_mean``/``norm_max`` (atom norms after the update),
        ``samples_seen``, ``seconds`` (cumulative wall time), ``resampled`` (atoms
        resampled in the step) and ``converged_frac`` (samples whose inner loop
        reached the learning tol).
    """

    def __init__(self, dictionary, alpha, *, solver="cd", positive=False, solver_options=None,
                 settings=None, history=None):
        self.dictionary = np.asarray(backend.to_numpy(dictionary))
        self.alpha = float(alpha)
        self.solver = solver
        self.positive = bool(positive)
        self.solver_options = dict(solver_options or {})
        self.settings = dict(settings or {})
        self.history = {k: list(v) for k, v in (history or {}).items()}

    @property
    def n_atoms(self):
        return self.dictionary.shape[0]

    @property
    def n_features(self):
        return self.dictionary.shape[1]

    def _D_for(self, X):
        """The dictionary in the kind, device and dtype of X."""
        return backend.match(self.dictionary, X)

    def encode(self, X, **options):
        """Codes Z of X: ``sparsolve.encode(X, D, alpha, solver=..., positive=..., **options)``
        with the model's α.  The solver is the fastest certified one for X's device -- cd on
        the CPU, fista on a GPU -- unless ``options`` name one (e.g. ``solver="lca"``); the
        training solver's options apply when that solver is named."""
        solver = solver_for(options.pop("solver", "auto"), X)
        trained = self.solver_options if solver == self.solver else {}
        kwargs = {"positive": self.positive, **trained, **options}
        alpha = kwargs.pop("alpha", self.alpha)
        return encode(X, self._D_for(X), alpha, solver=solver, **kwargs)

    def reconstruct(self, X, **options):
        """Z D, the reconstruction of X through its codes."""
        return self.encode(X, **options) @ self._D_for(X)

    def score(self, X, **options):
        """The mean objective ½‖x − zD‖² + α‖z‖₁ over the rows of X (lower is better)."""
        Z = self.encode(X, **options)
        alpha = options.get("alpha", self.alpha)
        return float(backend.to_numpy(objective(X, self._D_for(X), Z, alpha)).mean())

    def save(self, path):
        """Write the model to ``path`` (an ``.npz``, atomically); returns the path written."""
        arrays = {"dictionary": self.dictionary, **history_arrays(self.history)}
        meta = {"alpha": self.alpha, "solver": self.solver, "positive": self.positive,
                "solver_options": self.solver_options, "settings": self.settings}
        return io.save_npz(path, KIND, arrays, meta)

    @classmethod
    def from_arrays(cls, arrays, meta, path):
        """The model held by a file's ``arrays`` and ``meta``; :class:`sparsolve.io.ModelFileError`
        names the piece that is missing or of the wrong type."""
        dictionary = io.require_matrix(arrays, "dictionary", path)
        io.require(meta, path, alpha=(int, float), solver=str, positive=bool)
        io.require({"solver_options": {}, "settings": {}, **meta}, path, solver_options=dict, settings=dict)
        history = history_from_arrays(arrays)
        return cls(dictionary, meta["alpha"], solver=meta["solver"], positive=meta["positive"],
                   solver_options=meta.get("solver_options"), settings=meta.get("settings"), history=history)

    def __repr__(self):
        steps = len(self.history.get("step", []))
        return (f"SparseCodingModel(n_atoms={self.n_atoms}, n_features={self.n_features}, alpha={self.alpha:g}, "
                f"solver={self.solver!r}, steps={steps})")


def _load_model(path):
    arrays, meta = io.load_npz(path, KIND)
    return SparseCodingModel.from_arrays(arrays, meta, path)


io.register(KIND, _load_model)


def load(path):
    """Read a sparsolve file: a :class:`SparseCodingModel`, a fit checkpoint (as the
    model it holds so far), a learned-G encoder (``sparsolve.amortized.LearnedG``), or
    any kind registered with :func:`sparsolve.io.register`.  Anything else raises
    :class:`sparsolve.io.ModelFileError`."""
    return io.load(path)
