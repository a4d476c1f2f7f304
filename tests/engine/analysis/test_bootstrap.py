import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, log_loss

from engine.analysis import bootstrap as B
from engine.analysis.metrics import softmax
from engine.errors import AnalysisError


def _pair(n=2000, c=5, acc_a=0.8, acc_b=0.75, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    u = rng.random(n)  # shared difficulty: A and B fail on overlapping samples (paired)
    a = np.where(u < acc_a, y, (y + 1 + rng.integers(0, c - 1, n)) % c)
    b = np.where(u < acc_b, y, (y + 1 + rng.integers(0, c - 1, n)) % c)
    return y, a, b


@pytest.mark.parametrize("metric,reference", [
    ("accuracy", lambda y, p: np.mean(y == p)),
    ("macro_f1", lambda y, p: f1_score(y, p, average="macro")),
    ("balanced_accuracy", balanced_accuracy_score),
])
def test_point_values_are_the_full_data_metrics(metric, reference):
    y, a, b = _pair()
    r = B.paired_bootstrap(y, a, b, metric=metric, n_resamples=200, seed=1)
    assert r.value_a == pytest.approx(reference(y, a), abs=1e-12)
    assert r.value_b == pytest.approx(reference(y, b), abs=1e-12)
    assert r.diff == pytest.approx(r.value_a - r.value_b)
    assert r.diff_range[0] <= r.diff <= r.diff_range[1]


def test_seeded_and_identical_predictions_give_a_zero_interval():
    y, a, b = _pair()
    r1 = B.paired_bootstrap(y, a, b, metric="macro_f1", seed=7, n_resamples=300)
    r2 = B.paired_bootstrap(y, a, b, metric="macro_f1", seed=7, n_resamples=300)
    assert r1 == r2
    same = B.paired_bootstrap(y, a, a, metric="macro_f1", seed=7, n_resamples=300)
    assert same.diff == 0 and same.diff_range == (0.0, 0.0) and not same.excludes_zero


def test_outcome_counts_and_index_matrix_give_the_same_distribution(monkeypatch):
    y, a, b = _pair(n=1000)
    fast = B.paired_bootstrap(y, a, b, metric="macro_f1", n_resamples=4000, seed=3)
    monkeypatch.setattr(B, "_MULTINOMIAL_MAX_OUTCOMES", 0)  # force the index-matrix path
    slow = B.paired_bootstrap(y, a, b, metric="macro_f1", n_resamples=4000, seed=3)
    assert fast.diff == pytest.approx(slow.diff)
    assert fast.diff_range[0] == pytest.approx(slow.diff_range[0], abs=0.006)
    assert fast.diff_range[1] == pytest.approx(slow.diff_range[1], abs=0.006)


def test_index_matrix_counts_match_a_naive_resample():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 7, 50)
    # The index path draws the same indices as rng.integers would: check it against bincount of them.
    monkey = np.random.default_rng(9)
    idx = monkey.integers(0, 50, size=(5, 50))
    expected = np.stack([np.bincount(codes[i], minlength=7) for i in idx])
    old = B._MULTINOMIAL_MAX_OUTCOMES
    try:
        B._MULTINOMIAL_MAX_OUTCOMES = 0
        counts = B.resample_counts(codes, 7, 5, np.random.default_rng(9))
    finally:
        B._MULTINOMIAL_MAX_OUTCOMES = old
    np.testing.assert_array_equal(counts, expected)


def test_log_loss_difference_matches_sklearn():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 400)
    pa = softmax(rng.normal(size=(400, 3)) + 2 * np.eye(3)[y])
    pb = softmax(rng.normal(size=(400, 3)) + 1 * np.eye(3)[y])
    r = B.paired_bootstrap(y, pa, pb, metric="log_loss", n_resamples=500, seed=0)
    assert r.diff == pytest.approx(log_loss(y, pa) - log_loss(y, pb), rel=1e-9)
    assert r.diff_range[1] < 0 and r.a_is_better


def test_interval_covers_the_true_difference_at_about_the_nominal_rate():
    # Population: per sample, A right w.p. 0.80, B right w.p. 0.75, positively correlated.
    # True accuracy difference 0.05; 300 trials of n=400, 400 resamples each.
    rng = np.random.default_rng(123)
    covered = 0
    trials = 300
    for t in range(trials):
        n = 400
        u = rng.random(n)
        y = np.zeros(n, dtype=np.int64)
        a = np.where(u < 0.80, 0, 1)
        b = np.where(u < 0.75, 0, 1)
        flip = rng.random(n) < 0.3  # decorrelate a little
        b = np.where(flip, np.where(rng.random(n) < 0.75, 0, 1), b)
        r = B.paired_bootstrap(y, a, b, metric="accuracy", n_classes=2, n_resamples=400, seed=t)
        covered += r.diff_range[0] <= 0.05 <= r.diff_range[1]
    assert 0.90 <= covered / trials <= 0.985


def test_bad_inputs_are_refused():
    y = np.array([0, 1, 1])
    with pytest.raises(AnalysisError, match="'metric' parameter must be a str among"):
        B.paired_bootstrap(y, y, y, metric="auc")
    with pytest.raises(AnalysisError, match="labelled samples"):
        B.paired_bootstrap(np.array([-1, 0]), np.array([0, 0]), np.array([0, 0]))
    with pytest.raises(AnalysisError, match="probabilities for log_loss"):
        B.paired_bootstrap(y, y, y, metric="log_loss")


def test_bootstrap_interval_is_the_percentile_interval_of_one_prediction():
    from engine.analysis.bootstrap import bootstrap_interval

    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 400)
    pred = np.where(rng.random(400) < 0.75, y, (y + 1) % 3)
    value, low, high = bootstrap_interval(y, pred, n_resamples=2000, seed=1)
    assert value == pytest.approx(np.mean(pred == y)) and low < value < high
    se = np.sqrt(value * (1 - value) / 400)  # the normal approximation of a proportion's interval
    assert low == pytest.approx(value - 1.96 * se, abs=0.012) and high == pytest.approx(value + 1.96 * se, abs=0.012)
    assert bootstrap_interval(y, pred, n_resamples=2000, seed=1) == (value, low, high)  # seeded
    # the same draws as paired_bootstrap's A side
    proba = np.full((400, 3), 0.1)
    proba[np.arange(400), pred] = 0.8
    ll = bootstrap_interval(y, proba, metric="log_loss", seed=2)
    assert ll[0] == pytest.approx(B.paired_bootstrap(y, proba, proba, metric="log_loss").value_a)
    assert ll[1] < ll[0] < ll[2]
    with pytest.raises(AnalysisError, match="bootstrap_interval needs labelled samples"):
        bootstrap_interval(np.array([-1, 0]), np.array([0, 0]))
