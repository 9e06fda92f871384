"""SynthSAEBench's metrics in sparsolve.metrics: MCC, uniqueness, per-atom classification.

Each is checked on cases whose answer is known by construction, and against SAELens's own
functions on the same decoder and codes (skipped without sae_lens)."""
import itertools

import numpy as np
import pytest

from sparsolve import metrics


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _problem(seed=0, m=24, n=32, p=16, samples=500):
    """A decoder, true features, true activations and codes that fire partly with them."""
    rng = np.random.default_rng(seed)
    F = _unit(rng.standard_normal((n, p)))
    D = _unit(F[rng.permutation(n)[:m]] + 0.3 * rng.standard_normal((m, p)))
    A = rng.random((samples, n)) * (rng.random((samples, n)) < 0.1)
    Z = rng.random((samples, m)) * (rng.random((samples, m)) < 0.15)
    return D, F, A, Z


def test_mcc_is_one_for_a_signed_permutation_and_equals_the_best_matching():
    rng = np.random.default_rng(1)
    F = _unit(rng.standard_normal((5, 8)))
    D = -3.0 * F[[2, 0, 4, 1, 3]]  # a permutation, with a sign and a scale, of the truth
    assert metrics.mcc(D, F) == pytest.approx(1.0)
    # On a small problem the Hungarian matching equals the best of all one-to-one matchings.
    D = rng.standard_normal((4, 8))
    C = np.abs(_unit(D) @ _unit(F).T)
    best = max(np.mean([C[j, perm[j]] for j in range(4)]) for perm in itertools.permutations(range(5), 4))
    assert metrics.mcc(D, F) == pytest.approx(best)
    assert metrics.mcc(D, F) < 1.0


def test_uniqueness_counts_distinct_best_matches():
    rng = np.random.default_rng(2)
    F = _unit(rng.standard_normal((6, 10)))
    assert metrics.uniqueness(F[:4], F) == 1.0
    assert metrics.uniqueness(np.vstack([F[:2], F[:2] * 0.5]), F) == 0.5  # two atoms per feature


def test_classification_on_counts_made_by_hand():
    F = np.eye(3)
    D = np.array([[1.0, 0.1, 0.0], [0.0, 0.0, -1.0]])  # atom 0 tracks feature 0, atom 1 feature 2
    A = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=float)
    Z = np.array([[2, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    result = metrics.classification(Z, A, D, F)
    np.testing.assert_array_equal(result.matched_feature, [0, 2])
    # atom 0: fires on rows 0, 2; feature 0 on rows 0, 1 -> TP 1, FP 1, FN 1, TN 1
    # atom 1: fires on rows 1, 2; feature 2 on rows 1, 2 -> perfect
    assert result.precision == pytest.approx((0.5 + 1.0) / 2)
    assert result.recall == pytest.approx((0.5 + 1.0) / 2)
    np.testing.assert_allclose(result.f1_per_atom, [0.5, 1.0])
    assert result.f1 == pytest.approx(0.75)
    assert result.accuracy == pytest.approx((0.5 + 1.0) / 2)
    # chunking does not change the counts
    np.testing.assert_array_equal(metrics.classification(Z, A, D, F, chunk=1).f1_per_atom, result.f1_per_atom)


def test_bad_shapes_name_the_argument():
    D, F, A, Z = _problem()
    with pytest.raises(ValueError, match="features per atom"):
        metrics.mcc(D, F[:, :5])
    with pytest.raises(ValueError, match="codes must have shape"):
        metrics.classification(Z[:, :3], A, D, F)
    with pytest.raises(ValueError, match="feature_acts must have shape"):
        metrics.classification(Z, A[:10], D, F)
    with pytest.raises(ValueError, match="NaN"):
        metrics.uniqueness(D * np.nan, F)


def test_equal_to_saelens_on_the_same_decoder_and_codes():
    synthetic = pytest.importorskip("sae_lens.synthetic")
    torch = pytest.importorskip("torch")
    D, F, A, Z = _problem(seed=3, m=40, n=64, p=24, samples=2000)
    D[5] = 0.0  # a dead atom: both treat it as matching nothing in particular
    t = {name: torch.tensor(v, dtype=torch.float32) for name, v in dict(D=D, F=F, A=A, Z=Z).items()}
    assert metrics.mcc(D, F) == pytest.approx(synthetic.mean_correlation_coefficient(t["D"], t["F"]), abs=1e-6)
    assert metrics.uniqueness(D, F) == pytest.approx(synthetic.feature_uniqueness(t["D"], t["F"]))
    theirs = synthetic.compute_classification_metrics(t["Z"], t["A"], t["D"], t["F"])
    ours = metrics.classification(Z, A, D, F)
    for name, their_name in [("precision", "precision"), ("recall", "recall"), ("f1", "f1_score"),
                             ("accuracy", "accuracy")]:
        assert getattr(ours, name) == pytest.approx(getattr(theirs, their_name), abs=1e-6), name
