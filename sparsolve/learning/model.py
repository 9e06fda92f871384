"""``SparseCodingModel``: a learned dictionary with the settings that encode with it.

The model is what :func:`sparsolve.fit` returns and what :func:`load` reads back.
Its file is a sparsolve npz (:mod:`sparsolve.io`, never a pickle) of kind
``"sparse_coding_model"`` holding the dictionary, the offset and decoder scale where the model
has them, the settings and the history.
"""
from __future__ import annotations

import numpy as np

from .. import backend, io
from ..gap import objective
from ..inference import alpha_for_l0, encode, solver_for
from .history import history_arrays, history_from_arrays

KIND = "sparse_coding_model"


class SparseCodingModel:
    """A dictionary D (n_atoms, n_features), one atom per row, an optional offset b, and how to
    code with them: x ≈ zD + b, the codes z minimising ½‖(x − b) − zD‖² + α‖z‖₁.

    Attributes
    ----------
    dictionary : numpy array (n_atoms, n_features).
    offset : numpy array (n_features,), the decoder bias b (``fit(center=True)``; an SAE's
        ``b_dec`` for :func:`sparsolve.from_sae`), or None for b = 0.  :meth:`encode` codes x − b,
        so the lasso and its duality gap are those of the centred data; :meth:`decode` adds b back.
    alpha, positive : what :meth:`encode` uses by default.  ``alpha`` is None for a model read
        from an SAE (which has no α): :meth:`encode` then needs ``alpha=`` or ``l0=``.
    decoder_scale : numpy array (n_atoms,) or None.  For a model read from an SAE
        (:func:`sparsolve.from_sae`), the SAE decodes latent j as a_j · decoder_scale_j · d_j
        (the norms of its decoder rows, or 1 where it rescales by them), so its activations are
        a = z / decoder_scale for codes z of the unit-norm atoms here (:meth:`to_sae_codes`).
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
                 settings=None, history=None, offset=None, decoder_scale=None):
        self.dictionary = np.asarray(backend.to_numpy(dictionary))
        self.alpha = None if alpha is None else float(alpha)
        self.solver = solver
        self.positive = bool(positive)
        self.solver_options = dict(solver_options or {})
        self.settings = dict(settings or {})
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.offset = None if offset is None else self._vector(offset, self.n_features, "offset")
        self.decoder_scale = None if decoder_scale is None else self._vector(decoder_scale, self.n_atoms,
                                                                             "decoder_scale")

    @staticmethod
    def _vector(v, size, name):
        v = np.asarray(backend.to_numpy(v), dtype=np.float64).reshape(-1)
        if v.size != size or not np.isfinite(v).all():
            raise ValueError(f"{name} must be a finite vector of length {size}, got shape {v.shape}")
        return v

    @property
    def n_atoms(self):
        return self.dictionary.shape[0]

    @property
    def n_features(self):
        return self.dictionary.shape[1]

    def _D_for(self, X):
        """The dictionary in the kind, device and dtype of X."""
        return backend.match(self.dictionary, X)

    def centered(self, X):
        """X − b, the data the codes explain (X itself when the model has no offset)."""
        if self.offset is None:
            return X
        if not backend.is_array(X) or X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must be an array of shape (n_samples, {self.n_features}) (the model's features), "
                             f"got {getattr(X, 'shape', type(X).__name__)}")
        return X - backend.match(self.offset, X)

    def encode(self, X, *, l0=None, **options):
        """Codes Z of X: ``sparsolve.encode(X − b, D, alpha, solver=..., positive=..., **options)``
        with the model's α and offset b.  The solver is the fastest certified one for X's device --
        cd on the CPU, fista on a GPU -- unless ``options`` name one (e.g. ``solver="lca"``); the
        training solver's options apply when that solver is named.

        ``l0``: code at the α that gives this mean number of non-zeros per row, found on X by
        :func:`sparsolve.alpha_for_l0` (instead of the model's α)."""
        solver = solver_for(options.pop("solver", "auto"), X)
        trained = self.solver_options if solver == self.solver else {}
        kwargs = {"positive": self.positive, **trained, **options}
        alpha = kwargs.pop("alpha", self.alpha)
        Xc = self.centered(X)
        if l0 is not None:
            if "alpha" in options:
                raise ValueError("pass alpha or l0, not both: l0 chooses the α that reaches it")
            alpha = alpha_for_l0(Xc, self._D_for(X), l0, solver=solver, positive=kwargs["positive"])
        if alpha is None and solver == "omp":
            alpha = 0.0  # OMP fixes the number of atoms and ignores α
        if alpha is None:
            raise ValueError("this model has no α of its own (it was read from an SAE): pass alpha=..., or l0=... "
                             "for the α that gives that mean L0 (sparsolve.alpha_for_l0)")
        return encode(Xc, self._D_for(X), alpha, solver=solver, **kwargs)

    def decode(self, Z):
        """Z D + b, the data the codes Z (n_samples, n_atoms) stand for."""
        if not backend.is_array(Z) or Z.ndim != 2 or Z.shape[1] != self.n_atoms:
            raise ValueError(f"Z must be codes of shape (n_samples, {self.n_atoms}) (one column per atom), "
                             f"got {getattr(Z, 'shape', type(Z).__name__)}")
        X = Z @ self._D_for(Z)
        return X if self.offset is None else X + backend.match(self.offset, X)

    def reconstruct(self, X, **options):
        """decode(encode(X)): Z D + b, the reconstruction of X through its codes."""
        return self.decode(self.encode(X, **options))

    def score(self, X, **options):
        """The mean objective ½‖(x − b) − zD‖² + α‖z‖₁ over the rows of X (lower is better)."""
        Z = self.encode(X, **options)
        alpha = options.get("alpha", self.alpha)
        return float(backend.to_numpy(objective(self.centered(X), self._D_for(X), Z, alpha)).mean())

    def to_sae_codes(self, Z):
        """The source SAE's activations for codes Z of this model: Z / decoder_scale (Z itself for a
        model not read from an SAE)."""
        return Z if self.decoder_scale is None else Z / backend.match(self.decoder_scale, Z)

    def save(self, path):
        """Write the model to ``path`` (an ``.npz``, atomically); returns the path written."""
        arrays = {"dictionary": self.dictionary, **history_arrays(self.history)}
        for name in ("offset", "decoder_scale"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        meta = {"alpha": self.alpha, "solver": self.solver, "positive": self.positive,
                "solver_options": self.solver_options, "settings": self.settings}
        return io.save_npz(path, KIND, arrays, meta)

    def save_sae(self, path, X, **options):
        """Write a directory that SAELens loads (``SAE.load_from_disk(path)``): the decoder, b_dec
        and an approximate JumpReLU encoder fitted on the rows X; see
        :func:`sparsolve.sae.save_sae`, whose options these are."""
        from ..saefile import save_sae

        return save_sae(self, path, X, **options)

    @classmethod
    def from_arrays(cls, arrays, meta, path):
        """The model held by a file's ``arrays`` and ``meta``; :class:`sparsolve.io.ModelFileError`
        names the piece that is missing or of the wrong type.  Files written before offsets
        existed load with none."""
        dictionary = io.require_matrix(arrays, "dictionary", path)
        io.require(meta, path, alpha=(int, float, type(None)), solver=str, positive=bool)
        io.require({"solver_options": {}, "settings": {}, **meta}, path, solver_options=dict, settings=dict)
        history = history_from_arrays(arrays)
        vectors = {}
        for name, size in (("offset", dictionary.shape[1]), ("decoder_scale", dictionary.shape[0])):
            if name in arrays:
                v = arrays[name]
                if v.shape != (size,) or not np.issubdtype(v.dtype, np.floating) or not np.isfinite(v).all():
                    raise io.ModelFileError(f"{path}: {name!r} should be {size} finite floats, got shape {v.shape} "
                                            f"of {v.dtype}")
                vectors[name] = v
        return cls(dictionary, meta["alpha"], solver=meta["solver"], positive=meta["positive"],
                   solver_options=meta.get("solver_options"), settings=meta.get("settings"), history=history,
                   **vectors)

    def __repr__(self):
        steps = len(self.history.get("step", []))
        alpha = "None" if self.alpha is None else f"{self.alpha:g}"
        offset = "" if self.offset is None else ", offset=True"
        return (f"SparseCodingModel(n_atoms={self.n_atoms}, n_features={self.n_features}, alpha={alpha}, "
                f"solver={self.solver!r}, steps={steps}{offset})")


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
