"""``DictionaryLearning``: the scikit-learn face of :func:`sparsolve.fit`.

A thin adapter: ``fit`` runs :func:`sparsolve.fit` and keeps its
:class:`~sparsolve.SparseCodingModel`; ``partial_fit`` advances the same
:class:`~sparsolve.learning.learner.Learner` by one step per call; ``transform`` is
the model's ``encode`` and ``inverse_transform`` its ``decode``, Z D (+ b with center=True).  ``components_`` is the
dictionary D (n_atoms, n_features), as in scikit-learn's DictionaryLearning.

The parameters are generated from the fields of :class:`sparsolve.config.FitConfig`
(same names, same meanings, same default solver), except where scikit-learn has its
own convention: ``n_components`` is the number of atoms (None means n_features),
``random_state`` is the seed,
``n_epochs`` defaults to 10 and ``batch_size`` to 256 (capped at the rows), dict
options default to None, and ``device`` and ``checkpoint_every`` do not apply.  The codes'
columns are named ``dictionarylearning0``, ``dictionarylearning1``, ...
(``get_feature_names_out``, scikit-learn's ClassNamePrefixFeaturesOutMixin), so
``set_output(transform="pandas")`` gives data frames.  One
parameter is the estimator's own: ``transform_tol`` = 1e-6, the relative duality gap
of ``transform``, because scikit-learn pipelines expect deterministic, near-exact
features.  ``alpha`` is sparsolve's α: scikit-learn's own DictionaryLearning uses the
same per-sample objective ½‖x − zD‖² + α‖z‖₁, while its ``sparse_encode`` lasso
variants use α / n_features (see :func:`sparsolve.encode`).

Exemptions from ``sklearn.utils.estimator_checks`` are listed in
:data:`EXPECTED_FAILED_CHECKS`, each with its reason.
"""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .config import FitConfig, default_help, field_docs
from .learning.fit import fit as learn
from .learning.fit import new_learner

# check name -> why it does not apply, for ``check_estimator(..., expected_failed_checks=...)``.
# Empty: every check of scikit-learn 1.9 that applies passes (check_array_api_input skips
# itself unless SCIPY_ARRAY_API is set; array-API input is not supported by this adapter,
# sparsolve.fit itself takes torch and cupy arrays).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}

_LEFT_OUT = ("device", "checkpoint_every")
_RENAMED = {"seed": "random_state", "n_atoms": "n_components"}
_DEFAULTS = {"n_atoms": None, "alpha": 0.1, "n_epochs": 10, "batch_size": 256, "solver_options": None}
_OWN = {"transform_tol": (1e-6, "the relative duality gap of transform")}


def _parameters():
    """[(parameter name, config field or None, default, doc)], in FitConfig's order."""
    docs = field_docs(FitConfig)
    params = []
    for f in dataclasses.fields(FitConfig):
        if f.name in _LEFT_OUT:
            continue
        default = _DEFAULTS.get(f.name, f.default)
        params.append((_RENAMED.get(f.name, f.name), f.name, default, docs.get(f.name, "")))
    params += [(name, None, default, doc) for name, (default, doc) in _OWN.items()]
    return params


PARAMETERS = _parameters()


class DictionaryLearning(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    def __init__(self, **params):
        unknown = sorted(set(params) - {p[0] for p in PARAMETERS})
        if unknown:
            raise TypeError(f"unknown parameter(s) {unknown}; DictionaryLearning takes {[p[0] for p in PARAMETERS]}")
        for name, _, default, _ in PARAMETERS:
            setattr(self, name, params.get(name, default))

    def _config(self, n_samples, n_features):
        kw = {field: getattr(self, name) for name, field, _, _ in PARAMETERS if field is not None}
        kw["n_atoms"] = n_features if kw["n_atoms"] is None else kw["n_atoms"]
        kw["batch_size"] = None if kw["batch_size"] is None else min(kw["batch_size"], n_samples)
        return FitConfig(**kw)

    def fit(self, X, y=None):
        """Learn the dictionary from X (n_samples, n_features)."""
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self.model_ = learn(X, None, None, config=self._config(*X.shape), progress=False)
        self._learner = None
        self._set_fitted()
        return self

    def partial_fit(self, X, y=None):
        """One dictionary-learning step on the batch X (the whole of it)."""
        first = not hasattr(self, "_learner") or self._learner is None
        if self.center:
            raise ValueError("partial_fit cannot estimate center's offset from one batch at a time; use fit, or "
                             "center the data first (a Pipeline with StandardScaler(with_std=False)) and pass "
                             "center=False")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        if first:
            D0 = self.model_.dictionary if hasattr(self, "model_") else None
            self._learner = new_learner(X, self._config(*X.shape), dict_init=D0)
        self._learner.step(X, index=self._learner.t)
        self.model_ = self._learner.model()
        self._set_fitted()
        return self

    def _set_fitted(self):
        self.components_ = self.model_.dictionary
        self.n_components_ = self.components_.shape[0]
        self.history_ = self.model_.history
        # The training steps taken (scikit-learn expects n_iter_ where max_iter is a parameter;
        # here max_iter caps the inner solver, and the step count is the honest iteration count).
        self.n_iter_ = self.n_steps_ = len(self.history_["step"])

    @property
    def _n_features_out(self):
        """The codes' width, which names the output features (ClassNamePrefixFeaturesOutMixin)."""
        return self.n_components_

    def transform(self, X):
        """Sparse codes Z (n_samples, n_atoms)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.model_.encode(X, tol=self.transform_tol)

    def inverse_transform(self, X):
        """Z D + b: the data a code stands for (b the offset of center=True, else 0)."""
        check_is_fitted(self, "model_")
        Z = np.asarray(X, dtype=self.components_.dtype)
        if Z.ndim != 2 or Z.shape[1] != self.n_components_:
            raise ValueError(f"inverse_transform expects codes of shape (n_samples, {self.n_components_}), "
                             f"got {Z.shape}")
        return self.model_.decode(Z)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# scikit-learn reads the parameters from __init__'s signature; this one is generated.
DictionaryLearning.__init__.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default) for name, _, default, _ in PARAMETERS])


def _shown(field, default):
    """The default as the docstring says it: FitConfig's words where the estimator keeps its default."""
    words = default_help(FitConfig)
    same = field in words and default == {f.name: f.default for f in dataclasses.fields(FitConfig)}[field]
    return words[field] if same else repr(default)


DictionaryLearning.__doc__ = (
    "Learn a dictionary D with sparse codes: X ≈ Z D, min ½‖x − zD‖² + α‖z‖₁ per row.\n\n"
    "    Parameters (generated from sparsolve.config.FitConfig)\n    ----------\n"
    + "".join(f"    {name} : {doc} (default {_shown(field, default)}).\n" for name, field, default, doc in PARAMETERS))

__all__ = ["DictionaryLearning", "EXPECTED_FAILED_CHECKS", "PARAMETERS"]
