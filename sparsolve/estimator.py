"""``DictionaryLearning``: the scikit-learn face of :func:`sparsolve.fit`.

A thin adapter: ``fit`` runs :func:`sparsolve.fit` and keeps its
:class:`~sparsolve.SparseCodingModel`; ``partial_fit`` advances the same
:class:`~sparsolve.learning.fit.Learner` by one step per call; ``transform`` is
the model's ``encode`` and ``inverse_transform`` is Z D.  ``components_`` is the
dictionary D (n_atoms, n_features), as in scikit-learn's DictionaryLearning.

Unlike :func:`sparsolve.fit` (default "lca", the seed's inner loop), the estimator
defaults to ``solver="cd"``, the fastest exact solver on CPU, and codes
``transform`` to ``transform_tol`` = 1e-6: scikit-learn pipelines expect
deterministic, near-exact features.  ``alpha`` is sparsolve's α: scikit-learn's
own DictionaryLearning uses the same per-sample objective ½‖x − zD‖² + α‖z‖₁,
while its ``sparse_encode`` lasso variants use α / n_features (see
:func:`sparsolve.encode`).

Exemptions from ``sklearn.utils.estimator_checks`` are listed in
:data:`EXPECTED_FAILED_CHECKS`, each with its reason.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .learning.fit import new_learner
from .learning.fit import fit as learn

# check name -> why it does not apply, for ``check_estimator(..., expected_failed_checks=...)``.
# Empty: every check of scikit-learn 1.9 that applies passes (check_array_api_input skips
# itself unless SCIPY_ARRAY_API is set; array-API input is not supported by this adapter,
# sparsolve.fit itself takes torch and cupy arrays).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


class DictionaryLearning(TransformerMixin, BaseEstimator):
    """Learn a dictionary D with sparse codes: X ≈ Z D, min ½‖x − zD‖² + α‖z‖₁ per row.

    Parameters
    ----------
    n_atoms : int or None (default: n_features).
    alpha : the L1 weight α > 0.
    solver, update, norm, batch_size, n_epochs, max_steps, tol, positive, resample_dead :
        as in :func:`sparsolve.fit` (``batch_size`` is capped at the number of rows).
    transform_tol : the relative duality gap of ``transform``.
    random_state : int or None, the seed.
    solver_options : dict of options for the inference solver.
    """

    def __init__(self, n_atoms=None, alpha=0.1, *, solver="cd", update="online", norm="unit", batch_size=256,
                 n_epochs=10, max_steps=None, tol=1e-3, transform_tol=1e-6, positive=False, resample_dead=True,
                 random_state=None, solver_options=None):
        self.n_atoms = n_atoms
        self.alpha = alpha
        self.solver = solver
        self.update = update
        self.norm = norm
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.max_steps = max_steps
        self.tol = tol
        self.transform_tol = transform_tol
        self.positive = positive
        self.resample_dead = resample_dead
        self.random_state = random_state
        self.solver_options = solver_options

    def _fit_kwargs(self, n_samples):
        return dict(solver=self.solver, update=self.update, norm=self.norm,
                    batch_size=min(self.batch_size, n_samples), n_epochs=self.n_epochs,
                    max_steps=self.max_steps, tol=self.tol, positive=self.positive,
                    resample_dead=self.resample_dead, seed=self.random_state, progress=False,
                    **(self.solver_options or {}))

    def fit(self, X, y=None):
        """Learn the dictionary from X (n_samples, n_features)."""
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        n_atoms = X.shape[1] if self.n_atoms is None else self.n_atoms
        self.model_ = learn(X, n_atoms, self.alpha, **self._fit_kwargs(X.shape[0]))
        self._learner = None
        self._set_fitted()
        return self

    def partial_fit(self, X, y=None):
        """One dictionary-learning step on the batch X (the whole of it)."""
        first = not hasattr(self, "_learner") or self._learner is None
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        if first:
            n_atoms = X.shape[1] if self.n_atoms is None else self.n_atoms
            kw = self._fit_kwargs(X.shape[0])
            D0 = self.model_.dictionary if hasattr(self, "model_") else None
            self._learner = new_learner(X, n_atoms, self.alpha, dict_init=D0, **kw)
        self._learner.step(X, index=self._learner.t)
        self.model_ = self._learner.model()
        self._set_fitted()
        return self

    def _set_fitted(self):
        self.components_ = self.model_.dictionary
        self.n_components_ = self.components_.shape[0]
        self.history_ = self.model_.history

    def transform(self, X):
        """Sparse codes Z (n_samples, n_atoms)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.model_.encode(X, tol=self.transform_tol)

    def inverse_transform(self, X):
        """Z D: the data a code stands for."""
        check_is_fitted(self, "model_")
        Z = np.asarray(X, dtype=self.components_.dtype)
        if Z.ndim != 2 or Z.shape[1] != self.n_components_:
            raise ValueError(f"inverse_transform expects codes of shape (n_samples, {self.n_components_}), "
                             f"got {Z.shape}")
        return Z @ self.components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


__all__ = ["DictionaryLearning", "EXPECTED_FAILED_CHECKS"]
