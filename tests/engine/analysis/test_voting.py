import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import VotingClassifier

from engine.analysis import voting as V
from engine.analysis.metrics import softmax
from engine.errors import AnalysisError


class TableClassifier(ClassifierMixin, BaseEstimator):
    """A 'model' whose predict_proba for sample i is row i of a fixed table (X holds the sample index)."""

    def __init__(self, table=None):
        self.table = table

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return self.table[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return np.argmax(self.predict_proba(X), axis=1)


def _sklearn_vote(proba, voting, weights=None):
    m, n, c = proba.shape
    X = np.arange(n)[:, None]
    y = np.arange(n) % c  # every class present, so the encoded labels are the class indices
    clf = VotingClassifier([(f"m{i}", TableClassifier(proba[i])) for i in range(m)], voting=voting, weights=weights)
    clf.fit(X, y)
    return clf.predict(X), (clf.predict_proba(X) if voting == "soft" else None)


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 1.0, 3.0]])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_soft_vote_matches_sklearn_voting_classifier(weights, n_classes):
    rng = np.random.default_rng(0)
    proba = softmax(rng.normal(scale=2, size=(5, 200, n_classes)))
    expected_labels, expected_proba = _sklearn_vote(proba, "soft", weights)
    np.testing.assert_allclose(V.soft_vote(proba, weights), expected_proba, rtol=1e-12)
    labels, p = V.combine(np.log(proba), "soft", weights)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(p, expected_proba, rtol=1e-9)


@pytest.mark.parametrize("weights", [None, [1, 1, 2, 1], [0.3, 0.3, 0.6, 0.1]])
def test_hard_vote_matches_sklearn_voting_classifier_with_many_ties(weights):
    rng = np.random.default_rng(1)
    # Four models, three classes, few distinct rows: lots of tied votes.
    proba = softmax(rng.integers(0, 3, size=(4, 500, 3)).astype(float) * 2 + rng.normal(scale=0.01, size=(4, 500, 3)))
    expected, _ = _sklearn_vote(proba, "hard", weights)
    labels = np.argmax(proba, axis=2)
    np.testing.assert_array_equal(V.hard_vote(labels, 3, weights), expected)
    np.testing.assert_array_equal(V.combine(np.log(proba), "hard", weights)[0], expected)


def test_hard_vote_ties_go_to_the_lowest_class_index():
    labels = np.array([[2, 0, 1], [0, 2, 1]])  # two models: each sample a 1-1 tie
    np.testing.assert_array_equal(V.hard_vote(labels, 3), [0, 0, 1])
    np.testing.assert_array_equal(V.hard_vote(labels, 3, weights=[1, 2]), [0, 2, 1])
    votes = np.array([[0], [2], [1], [0], [2]])  # 2 votes for 0, 2 for 2, 1 for 1
    assert V.hard_vote(votes, 3).tolist() == [0]


def test_soft_vote_near_ties_go_to_the_lowest_class_index():
    proba = np.array([[[0.5, 0.5]], [[0.5 + 1e-15, 0.5 - 1e-15]]])[:, :, ::-1]
    labels, _ = V.combine(np.log(proba), "soft")
    assert labels.tolist() == [0]


def test_single_model_votes_are_its_own_prediction():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(1, 50, 3))
    for voting in V.VOTING_KINDS:
        labels, proba = V.combine(logits, voting)
        np.testing.assert_array_equal(labels, np.argmax(logits[0], axis=1))
        if proba is not None:
            np.testing.assert_allclose(proba, softmax(logits[0]), rtol=1e-12)


def test_geometric_mean_equals_logit_mean_for_softmax_outputs():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3, size=(4, 100, 5))
    w = [1.0, 0.5, 2.0, 1.0]
    np.testing.assert_allclose(V.geometric_mean(softmax(logits), w), V.logit_mean(logits, w), rtol=1e-10)
    np.testing.assert_allclose(V.combine(logits, "geometric", w)[1], V.combine(logits, "logit_mean", w)[1], rtol=1e-10)


def test_geometric_mean_hand_worked():
    proba = np.array([[[0.9, 0.1]], [[0.4, 0.6]]])
    g = np.sqrt(proba[0] * proba[1])
    np.testing.assert_allclose(V.geometric_mean(proba), g / g.sum(axis=1, keepdims=True))


def test_bad_voting_and_weights_are_refused():
    with pytest.raises(AnalysisError, match="'voting' parameter must be a str among"):
        V.combine(np.zeros((1, 2, 2)), "avg")
    with pytest.raises(AnalysisError, match="one weight per model"):
        V.soft_vote(np.ones((2, 3, 2)) / 2, weights=[1.0])
    with pytest.raises(AnalysisError, match="non-negative"):
        V.soft_vote(np.ones((2, 3, 2)) / 2, weights=[1.0, -1.0])
