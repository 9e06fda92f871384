"""sparsolve.DictionaryLearning: scikit-learn's estimator checks, Pipeline use, partial_fit."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import sparsolve  # noqa: E402
from sparsolve.estimator import EXPECTED_FAILED_CHECKS  # noqa: E402


@parametrize_with_checks([sparsolve.DictionaryLearning(n_epochs=2)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_fit_transform_inverse_transform(patches):
    est = sparsolve.DictionaryLearning(n_components=16, alpha=0.01, n_epochs=2, random_state=0).fit(patches)
    assert est.components_.shape == (16, 64)
    np.testing.assert_allclose(np.linalg.norm(est.components_, axis=1), 1.0, atol=1e-6)
    Z = est.transform(patches[:40])
    assert Z.shape == (40, 16) and 0 < np.count_nonzero(Z) < Z.size
    np.testing.assert_allclose(est.inverse_transform(Z), Z @ est.components_)
    assert est.history_["step"][-1] == 2 * -(-len(patches) // 256)  # 2 epochs in batches of 256
    # transform codes to the tight transform_tol: a certified lasso solution
    gap = sparsolve.duality_gap(patches[:40], est.components_, Z, 0.01)
    F = sparsolve.objective(patches[:40], est.components_, Z, 0.01)
    assert np.all(gap <= 1e-6 * F + 1e-15)


def test_params_round_trip():
    est = sparsolve.DictionaryLearning(n_components=8, alpha=0.3, norm="ball")
    assert est.get_params()["norm"] == "ball"
    est.set_params(alpha=0.5, update="sgd")
    other = clone(est)
    assert other.get_params()["alpha"] == 0.5 and other.get_params()["update"] == "sgd"


def test_partial_fit_steps_and_keeps_learning(patches):
    est = sparsolve.DictionaryLearning(n_components=16, alpha=0.01, random_state=0)
    for start in range(0, 600, 200):
        est.partial_fit(patches[start:start + 200])
    assert est.history_["step"] == [1, 2, 3]
    assert est.history_["samples_seen"][-1] == 600
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(patches[:10, :32])


def test_in_a_pipeline(patches):
    y = (patches[:, :32].sum(axis=1) > patches[:, 32:].sum(axis=1)).astype(int)  # top half brighter
    pipe = make_pipeline(sparsolve.DictionaryLearning(n_components=32, alpha=0.005, n_epochs=2, random_state=0),
                         LogisticRegression(max_iter=2000))
    pipe.fit(patches, y)
    assert pipe.named_steps["dictionarylearning"].transform(patches[:5]).shape == (5, 32)
    assert pipe.score(patches, y) > 0.7  # chance is about 0.5


def test_bad_settings_reach_the_user(patches):
    with pytest.raises(ValueError, match="norm='sphere' is not known"):
        sparsolve.DictionaryLearning(norm="sphere").fit(patches)


def test_n_components_is_scikit_learns_name(patches):
    est = sparsolve.DictionaryLearning(n_components=12, alpha=0.05, n_epochs=1, random_state=0).fit(patches)
    assert est.components_.shape == (12, 64) and est.n_components_ == 12
    assert "n_components" in est.get_params() and "n_atoms" not in est.get_params()
    with pytest.raises(TypeError, match="n_atoms"):
        sparsolve.DictionaryLearning(n_atoms=12)


def test_feature_names_out_and_pandas_output(patches):
    est = sparsolve.DictionaryLearning(n_components=5, alpha=0.05, n_epochs=1, random_state=0).fit(patches)
    np.testing.assert_array_equal(est.get_feature_names_out(),
                                  [f"dictionarylearning{i}" for i in range(5)])
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(patches, columns=[f"px{i}" for i in range(64)])
    pipe = make_pipeline(sparsolve.DictionaryLearning(n_components=5, alpha=0.05, n_epochs=1, random_state=0))
    pipe.set_output(transform="pandas")
    codes = pipe.fit_transform(frame)
    assert isinstance(codes, pd.DataFrame) and list(codes.columns) == [f"dictionarylearning{i}" for i in range(5)]
    np.testing.assert_array_equal(codes.index, frame.index)
