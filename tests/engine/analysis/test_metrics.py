import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, precision_recall_fscore_support

from engine.analysis import metrics as M


def _random(n=200, c=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3, size=(n, c))
    return logits, rng.integers(0, c, n)


def test_softmax_is_stable_for_huge_logits():
    p = M.softmax(np.array([[1000.0, 0.0, -1000.0], [-5000.0, -5000.0, -5000.0]]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    np.testing.assert_allclose(np.exp(M.log_softmax(np.array([[1000.0, 0.0]]))), M.softmax(np.array([[1000.0, 0.0]])))


def test_log_loss_matches_torch_cross_entropy_on_logits():
    logits, y = _random()
    expected = F.cross_entropy(torch.tensor(logits), torch.tensor(y)).item()
    assert M.log_loss(y, M.softmax(logits)) == pytest.approx(expected, rel=1e-9)
    assert M.nll_per_sample(y, M.log_softmax(logits)).mean() == pytest.approx(expected, rel=1e-12)


def test_brier_hand_worked():
    y = np.array([0, 1])
    p = np.array([[0.8, 0.2], [0.4, 0.6]])
    # (0.2^2 + 0.2^2 + 0.4^2 + 0.4^2) / 2 = 0.2, the multiclass sum over classes
    assert M.brier(y, p) == pytest.approx(0.2)


def test_ece_hand_worked_15_bins():
    # Confidences 0.9 (bin 13) x2, one right, one wrong; 0.5 (bin 7) x2, both right.
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5], [0.5, 0.5]])
    y = np.array([0, 1, 0, 0])
    # bin 13: |0.5 - 0.9| * 2/4 = 0.2; bin 7: |1.0 - 0.5| * 2/4 = 0.25
    assert M.expected_calibration_error(y, p) == pytest.approx(0.45)
    table = M.reliability(y, p)
    assert list(table.loc[table["count"] > 0, "bin"]) == [7, 13]
    assert table["upper"].iloc[13] == pytest.approx(14 / 15)


def test_ece_bin_edges_are_right_closed():
    # A confidence of exactly 1/15 * 8 belongs to bin 7, (7/15, 8/15].
    assert M._confidence_bin(np.array([8 / 15, 1.0, 1e-9]), 15).tolist() == [7, 14, 0]


def test_macro_f1_and_batch_versions_match_sklearn_with_a_class_never_predicted():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 300)
    preds = rng.integers(0, 4, size=(6, 300))  # class 4 is never predicted
    preds[0] = y
    expected_f1 = [f1_score(y, p, average="macro", zero_division=0) for p in preds]
    np.testing.assert_allclose(M.batch_macro_f1(y, preds, 5), expected_f1, rtol=1e-12)
    np.testing.assert_allclose(M.batch_accuracy(y, preds), (preds == y).mean(axis=1))
    assert M.macro_f1(y, preds[1]) == pytest.approx(expected_f1[1])
    table = M.per_class(y, preds[1], ["a", "b", "c", "d", "e"])
    p, r, f, s = precision_recall_fscore_support(y, preds[1], labels=range(5), zero_division=0)
    np.testing.assert_allclose(table["f1"], f)
    assert table.loc[4, "predicted"] == 0 and table.loc[4, "precision"] == 0


def test_macro_f1_two_classes_hand_worked():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    # class 0: P=1, R=0.5, F1=2/3; class 1: P=2/3, R=1, F1=0.8
    assert M.macro_f1(y, pred) == pytest.approx((2 / 3 + 0.8) / 2)
    assert M.batch_macro_f1(y, pred[None], 2)[0] == pytest.approx((2 / 3 + 0.8) / 2)


def test_score_without_probabilities_leaves_calibration_metrics_nan():
    y = np.array([0, 1, 2])
    out = M.score(y, y_pred=np.array([0, 1, 1]))
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert np.isnan(out["log_loss"]) and np.isnan(out["ece"])


def test_entropy_bounds():
    p = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(M.entropy(p), [0.0, np.log(3)])


@pytest.mark.parametrize("n_classes", [2, 5])
def test_score_equals_the_scikit_learn_backed_metrics(n_classes):
    logits, y = _random(n=300, c=n_classes, seed=n_classes)
    logits[:5] = [1000.0] + [0.0] * (n_classes - 1)  # saturated probabilities: log loss clips like sklearn
    p = M.softmax(logits)
    out = M.score(y, proba=p)
    assert out["accuracy"] == pytest.approx(M.accuracy(y, p.argmax(1)), abs=1e-12)
    assert out["balanced_accuracy"] == pytest.approx(M.balanced_accuracy(y, p.argmax(1)), abs=1e-12)
    assert out["macro_f1"] == pytest.approx(M.macro_f1(y, p.argmax(1)), abs=1e-12)
    assert out["log_loss"] == pytest.approx(M.log_loss(y, p), rel=1e-10)
    assert out["brier"] == pytest.approx(M.brier(y, p), rel=1e-10)
    assert out["ece"] == pytest.approx(M.expected_calibration_error(y, p))
