"""Label issues (confident learning) on synthetic probabilities where the answer is known, and on real runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.analysis.label_issues import (
    METHODS,
    calibrated_joint,
    confident_joint,
    duplicate_partners,
    find_label_issues,
    label_issues,
    noise_matrix,
    per_class_thresholds,
    quality_scores,
    ranking_auroc,
)
from engine.analysis.load import load_predictions, open_runs
from engine.errors import AnalysisError


def flipped_problem(n: int = 600, k: int = 4, rate: float = 0.15, seed: int = 0, confident: float = 0.9):
    """Probabilities of a model that knows every true class (``confident`` on it), and given labels with a share
    ``rate`` flipped to another class: (true, given, proba, flipped mask)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    proba = np.full((n, k), (1 - confident) / (k - 1))
    proba[np.arange(n), true] = confident
    flipped = rng.random(n) < rate
    given = true.copy()
    given[flipped] = (true[flipped] + rng.integers(1, k, flipped.sum())) % k
    return true, given, proba, flipped


def test_thresholds_are_the_mean_self_confidence_per_class():
    labels = np.array([0, 0, 1, 1, 1])
    proba = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    np.testing.assert_allclose(per_class_thresholds(labels, proba), [0.7, 0.5])
    # a class nobody is labelled with has no threshold: no sample is ever confidently in it
    t = per_class_thresholds(np.array([0, 0]), np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]))
    assert t[0] == pytest.approx(0.4) and np.isinf(t[2])


def test_confident_joint_counts_the_most_probable_class_above_its_threshold():
    labels = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.2],    # above t0=0.5 only -> (0, 0)
                      [0.2, 0.8],    # above t1=0.6 -> (0, 1): a confident label error
                      [0.3, 0.7],    # (1, 1)
                      [0.55, 0.45]])  # above t0 only (0.55 >= 0.5; 0.45 < 0.6) -> (1, 0)
    joint, confident = confident_joint(labels, proba)
    np.testing.assert_array_equal(joint, [[1, 1], [1, 1]])
    np.testing.assert_array_equal(confident, [0, 1, 1, 0])
    # a sample above no threshold is not counted
    joint, confident = confident_joint(np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0.9, 0.9]))
    assert joint.sum() == 0 and list(confident) == [-1, -1]


def test_calibration_rescales_rows_to_class_counts_and_noise_matrix_columns_sum_to_one():
    labels = np.array([0] * 6 + [1] * 4)
    joint = np.array([[2, 1], [0, 0]])  # class 1 has no confident sample: its count stays on the diagonal
    q = calibrated_joint(joint, labels, 2)
    np.testing.assert_allclose(q, [[0.4, 0.2], [0.0, 0.4]])
    np.testing.assert_allclose(q.sum(axis=1), [0.6, 0.4])  # the given-label shares
    nm = noise_matrix(q)
    np.testing.assert_allclose(nm.sum(axis=0), [1.0, 1.0])
    np.testing.assert_allclose(nm, [[1.0, 1 / 3], [0.0, 2 / 3]])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_exactly_the_flips_of_a_model_that_knows_the_truth(method):
    true, given, proba, flipped = flipped_problem()
    found = find_label_issues(given, proba, method=method)
    np.testing.assert_array_equal(found.flagged, flipped)
    np.testing.assert_array_equal(found.suggested[flipped], true[flipped])
    # the confident joint is the true joint of given and true labels, so the estimated noise is exact
    expected = np.zeros((4, 4))
    np.add.at(expected, (given, true), 1)
    np.testing.assert_array_equal(found.confident_joint, expected)
    assert 1 - np.trace(found.joint) == pytest.approx(flipped.mean())


def test_noise_matrix_recovers_asymmetric_flip_rates():
    rng = np.random.default_rng(1)
    n = 20_000
    true = rng.integers(0, 3, n)
    given = true.copy()
    to_two = (true == 0) & (rng.random(n) < 0.3)  # 30% of class 0 labelled 2
    given[to_two] = 2
    logits = 3.0 * np.eye(3)[true] + rng.normal(size=(n, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    found = find_label_issues(given, proba)
    # P(given 2 | true 0) is 0.3; the mean-confidence threshold misses the flipped images below it, so the
    # estimate runs a little low (0.26 here), while every other entry stays near 0 or 1
    assert 0.22 < found.noise_matrix[2, 0] <= 0.3
    off = found.noise_matrix - np.diag(np.diag(found.noise_matrix))
    off[2, 0] = 0.0
    assert off.max() < 0.01 and found.noise_matrix[1, 1] > 0.99
    tp = (found.flagged & to_two).sum()
    assert tp / found.flagged.sum() > 0.95 and tp / to_two.sum() > 0.75


def test_flags_never_name_a_sample_whose_prediction_is_its_label():
    _, given, proba, _ = flipped_problem(seed=3)
    proba = 0.7 * proba + 0.3 * np.random.default_rng(3).dirichlet(np.ones(4), len(given))
    for method in METHODS:
        found = find_label_issues(given, proba, method=method)
        assert not np.any(found.flagged & (found.suggested == given)), method


def test_quality_scores_and_auroc():
    labels = np.array([0, 1, 2])
    proba = np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(quality_scores(labels, proba, "self_confidence"), [0.6, 0.2, 0.8])
    np.testing.assert_allclose(quality_scores(labels, proba, "normalized_margin"), [0.3, -0.3, 0.7])
    assert ranking_auroc(np.array([False, True, False]), np.array([0.6, 0.2, 0.8])) == 1.0
    assert ranking_auroc(np.array([True, False, False]), np.array([0.6, 0.2, 0.8])) == 0.5
    assert np.isnan(ranking_auroc(np.array([False, False]), np.array([0.1, 0.2])))


def test_bad_input_is_refused_with_the_parameter_named():
    _, given, proba, _ = flipped_problem(n=20)
    with pytest.raises(AnalysisError, match=r"The 'method' parameter must be a str among .*Got 'magic'"):
        find_label_issues(given, proba, method="magic")
    with pytest.raises(AnalysisError, match="'rank_by'"):
        find_label_issues(given, proba, rank_by="entropy")
    with pytest.raises(AnalysisError, match=r"Labels must be class indices in \[0, 4\)"):
        find_label_issues(np.full(20, -1), proba)
    with pytest.raises(AnalysisError, match=r"Expected labels \(n,\) and probabilities \(n, classes\)"):
        find_label_issues(given[:5], proba)


def test_duplicate_partners_name_the_other_label():
    scan = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d", "t"], "split": ["train"] * 4 + ["test"],
        "label": ["cat", "dog", "cat", "cat", None], "path": ["/a", "/b", "/c", "/d", "/t"],
        "sha1": ["x", "x", "y", "z", "x"],
        "phash": ["0000000000000000", "0000000000000000", "ffffffffffffffff", "fffffffffffffff0", "0000000000000000"],
    })
    found = duplicate_partners(scan, ["a", "c"], pd.Series({"d": "dog"}))
    by_pair = found.set_index(["sample_id", "partner_id"])
    assert set(by_pair.index) == {("a", "b"), ("c", "d")}  # the test image is never a partner
    assert by_pair.loc[("a", "b"), "kind"] == "exact" and not by_pair.loc[("a", "b"), "same_label"]
    assert by_pair.loc[("c", "d"), "kind"] == "near" and by_pair.loc[("c", "d"), "partner_label"] == "dog"


# ---------------------------------------------------------------- real runs (the tiny study)


def test_label_issues_of_a_study_average_the_runs_and_say_who_agrees(tiny_study):
    runs = tiny_study.run_dirs
    found = label_issues(runs)
    issues = found.issues
    assert found.subsets == ["oof", "holdout"]
    assert issues["sample_id"].is_unique and list(issues["rank"]) == list(range(1, len(issues) + 1))
    assert issues["flagged"].iloc[: found.n_flagged].all()  # flagged first
    oof, holdout = issues[issues["subset"] == "oof"], issues[issues["subset"] == "holdout"]
    assert (oof["n_members"] == 2).all() and (holdout["n_members"] == 4).all()  # 2 runs; 2 runs x 2 folds
    assert oof["fold"].notna().all() and holdout["fold"].isna().all()
    names = {r.name for r in open_runs(runs)}
    agreed = oof[oof["n_agree"] > 0]
    assert all(part.split("/fold")[0] in names for text in agreed["agree"] for part in text.split(", "))
    assert (issues["n_agree"] == issues["agree"].map(lambda t: len(t.split(", ")) if t else 0)).all()
    # the averaged probabilities are the runs' own, merged and averaged
    oof_preds = load_predictions(runs, "oof").merge_tta("mean")
    mean = pd.DataFrame(oof_preds.proba().mean(axis=0), index=oof_preds.sample_ids)
    rows = issues.index[issues["subset"] == "oof"]
    np.testing.assert_allclose(found.proba[rows], mean.loc[issues.loc[rows, "sample_id"]].to_numpy(), rtol=1e-6)
    json.dumps(found.to_dict())
    assert "Estimated noise matrix" in found.to_text()


def test_label_issues_cli(tiny_study, capsys):
    from engine.cli import main

    assert main(["label-issues", str(tiny_study.run_dirs[0]), "--json", "--subsets", "oof"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["subsets"] == ["oof"] and len(data["noise_matrix"]) == 10
    assert data["n_flagged"] == len(data["issues"])
    assert main(["label-issues", str(tiny_study.run_dirs[0]), "--method", "argmax", "--top", "3"]) == 0
    assert "Label issues of" in capsys.readouterr().out
    assert main(["label-issues", "no-such-run", "--workspace", str(tiny_study.workspace)]) == 2
    assert "There is no run 'no-such-run'" in capsys.readouterr().err
