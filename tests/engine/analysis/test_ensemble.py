import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from engine.analysis.ensemble import VoteTable, exhaustive_search, greedy_selection, search_ensembles
from engine.analysis.load import Member, PredictionSet
from engine.analysis.metrics import softmax
from engine.analysis.voting import combine
from engine.errors import AnalysisError


def _preds(logits, y, subset="holdout"):
    m, n, c = logits.shape
    return PredictionSet(subset, logits, [Member("r", i, "identity") for i in range(m)],
                         np.array([f"s{i}" for i in range(n)], dtype=object), y, [f"c{i}" for i in range(c)])


def _random_case(seed, m=5, n=300, c=4, integer=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    if integer:  # logits in {-1, 0, 1}: many exact ties in probabilities and votes
        logits = rng.integers(-1, 2, size=(m, n, c)).astype(np.float32)
    else:
        logits = (rng.normal(size=(m, n, c)) + 1.2 * np.eye(c)[y][None]).astype(np.float32)
    return _preds(logits, y)


@pytest.mark.parametrize("seed,integer", [(0, False), (1, False), (2, True), (3, True), (4, True)])
def test_exhaustive_search_equals_brute_force(seed, integer):
    preds = _random_case(seed, m=5 if not integer else 4, c=3 if integer else 4, integer=integer)
    table = exhaustive_search(preds)
    assert len(table) == 2 * (2 ** preds.n_members - 1)
    brute = {}
    for kind in ("soft", "hard"):
        for k in range(1, preds.n_members + 1):
            for subset in itertools.combinations(range(preds.n_members), k):
                pred = combine(preds.logits[list(subset)], kind)[0]
                brute[kind, subset] = (accuracy_score(preds.labels, pred), f1_score(preds.labels, pred, average="macro"))
    for row in table.itertuples():
        acc, f1 = brute[row.voting, row.member_index]
        assert row.accuracy == pytest.approx(acc, abs=1e-12), (row.voting, row.member_index)
        assert row.macro_f1 == pytest.approx(f1, abs=1e-12), (row.voting, row.member_index)


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_vote_table_scores_any_weighting_like_combine(voting):
    preds = _random_case(5, m=6, c=5)
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 4, size=(20, 6)).astype(float)
    weights[weights.sum(axis=1) == 0, 0] = 1
    s = VoteTable(preds.logits, preds.labels, voting).scores(weights)
    for w, acc, f1 in zip(weights, s["accuracy"], s["macro_f1"], strict=True):
        pred = combine(preds.logits, voting, w)[0]
        assert acc == pytest.approx(accuracy_score(preds.labels, pred), abs=1e-12)
        assert f1 == pytest.approx(f1_score(preds.labels, pred, average="macro"), abs=1e-12)


def test_vote_table_with_many_classes_uses_the_bound_and_the_bincount_path(monkeypatch):
    import engine.analysis.ensemble as E

    monkeypatch.setattr(E, "_GAIN_MAX_ELEMENTS", 0)
    preds = _random_case(6, m=4, n=200, c=40)
    s = VoteTable(preds.logits, preds.labels, "soft").scores(np.eye(4) + 1)
    for w, acc in zip(np.eye(4) + 1, s["accuracy"], strict=True):
        assert acc == pytest.approx(accuracy_score(preds.labels, combine(preds.logits, "soft", w)[0]))


@pytest.mark.parametrize("voting,metric", [("soft", "accuracy"), ("hard", "macro_f1"), ("soft", "log_loss")])
def test_greedy_selection_never_scores_below_the_best_single(voting, metric):
    preds = _random_case(7, m=15, n=400, c=5)
    g = greedy_selection(preds, voting=voting, metric=metric, n_steps=20)
    proba = softmax(preds.logits)
    if metric == "log_loss":
        singles = [log_loss(preds.labels, p, labels=range(5)) for p in proba]
        assert g.score <= min(singles) + 1e-12
        mix = np.tensordot(g.weights / g.weights.sum(), proba, axes=(0, 0))
        assert g.score == pytest.approx(log_loss(preds.labels, mix), rel=1e-9)
    else:
        fn = accuracy_score if metric == "accuracy" else (lambda y, p: f1_score(y, p, average="macro"))
        singles = [fn(preds.labels, p.argmax(1)) for p in proba]
        assert g.score >= max(singles)
        assert g.score == pytest.approx(fn(preds.labels, combine(preds.logits, voting, g.weights)[0]))
    assert g.history["step"].tolist() == list(range(21))
    assert sum(g.chosen().values()) == g.weights.sum()


def test_greedy_on_a_known_case_picks_the_complementary_models():
    # Three classes, 3 samples; models 0 and 1 are each right on 2, model 2 right on 1 only;
    # models 0 + 1 + 2 together (soft) are right on all 3.
    y = np.array([0, 1, 2])
    p = np.array([
        [[0.6, 0.4, 0.0], [0.0, 0.6, 0.4], [0.5, 0.0, 0.5 - 1e-3]],
        [[0.6, 0.0, 0.4], [0.5, 0.5 - 1e-3, 0.0], [0.0, 0.4, 0.6]],
        [[0.3, 0.4, 0.3], [0.3, 0.4, 0.3], [0.0, 0.2, 0.8]],
    ])
    preds = _preds(np.log(np.clip(p, 1e-12, None)), y)
    g = greedy_selection(preds, voting="soft", metric="accuracy", n_steps=5)
    assert g.score == 1.0
    assert combine(preds.logits, "soft", g.weights)[0].tolist() == [0, 1, 2]


def test_search_ranks_with_bootstrap_gains_against_the_best_single():
    preds = _random_case(8, m=4, n=500, c=3)
    res = search_ensembles(preds, n_resamples=200)
    assert res.method == "exhaustive"
    r = res.ranking
    assert r["accuracy"].is_monotonic_decreasing
    assert (r["voting"] == "single").sum() == 4  # singles listed once, not once per voting kind
    top = r.iloc[0]
    assert top["gain_low"] <= top["gain"] <= top["gain_high"]
    assert top["accuracy"] - res.best_single["accuracy"] == pytest.approx(top["gain"])
    assert res.to_dict()["top"][0]["members"] == list(top["members"])


def test_search_switches_to_greedy_beyond_the_exhaustive_cap():
    preds = _random_case(9, m=6, n=300, c=3)
    res = search_ensembles(preds, max_exhaustive=4, n_steps=10, n_resamples=100)
    assert res.method == "greedy" and set(res.greedy) == {"soft", "hard"}
    best_single = res.ranking[res.ranking["voting"] == "single"]["accuracy"].max()
    assert res.ranking.iloc[0]["accuracy"] >= best_single


def test_refusals():
    preds = _random_case(10, m=3)
    with pytest.raises(AnalysisError, match="capped at 2 members"):
        exhaustive_search(preds, max_members=2)
    with pytest.raises(AnalysisError, match="needs soft voting"):
        greedy_selection(preds, voting="hard", metric="log_loss")
    test = _preds(preds.logits, -np.ones(preds.n_samples, dtype=np.int64), subset="test")
    with pytest.raises(AnalysisError, match="labelled predictions"):
        search_ensembles(test)


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_step_scores_equal_scoring_each_added_member(voting):
    preds = _random_case(11, m=7, n=400, c=4)
    table = VoteTable(preds.logits, preds.labels, voting)
    base = np.array([3, 0, 1, 0, 2, 0, 0], dtype=float)
    step = table.step_scores(base)
    full = table.scores(base[None, :] + np.eye(7))
    np.testing.assert_allclose(step["accuracy"], full["accuracy"], atol=1e-12)
    np.testing.assert_allclose(step["macro_f1"], full["macro_f1"], atol=1e-12)


@pytest.mark.parametrize("voting,metric,dtype", [("soft", "accuracy", np.float32), ("soft", "macro_f1", np.float64),
                                                 ("hard", "accuracy", np.float32)])
def test_greedy_history_equals_a_naive_greedy_step_by_step(voting, metric, dtype):
    """Every step's pick and score equal a plain loop that votes with combine and scores with scikit-learn
    (the step scores reuse the last step's sums and counts; the soft-vote pruning runs in float32)."""
    preds = _random_case(12, m=9, n=1500, c=6)
    preds = _preds(preds.logits.astype(dtype), preds.labels)
    g = greedy_selection(preds, voting=voting, metric=metric, n_steps=12)
    fn = accuracy_score if metric == "accuracy" else (lambda y, p: f1_score(y, p, average="macro"))

    def scored(w):
        return fn(preds.labels, combine(preds.logits, voting, w)[0])

    eye = np.eye(preds.n_members)
    weights = eye[int(np.argmax([scored(e) for e in eye]))].copy()
    expected = [scored(weights)]
    for _ in range(12):
        trial = [scored(weights + e) for e in eye]
        pick = int(np.argmax(trial))
        weights[pick] += 1
        expected.append(trial[pick])
        assert g.history["added"].iloc[len(expected) - 1] == preds.members[pick].label
    np.testing.assert_allclose(g.history["score"], expected, atol=1e-12)
