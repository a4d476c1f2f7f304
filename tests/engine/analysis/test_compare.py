import numpy as np
import pytest

from engine.analysis.compare import (
    compare_folds,
    compare_label_smoothing,
    compare_tta,
    compare_voting,
    default_view_sets,
    find_label_smoothing_groups,
)
from engine.analysis.load import load_predictions, open_run
from engine.analysis.metrics import softmax
from engine.analysis.report import analyze_runs
from engine.analysis.voting import combine
from engine.errors import AnalysisError


def test_compare_folds_tables(make_run):
    run = make_run("a", k=3, views=("identity", "hflip"))
    fc = compare_folds(run)
    assert fc.oof["fold"].tolist() == [0, 1, 2] and fc.oof["n"].sum() == 60
    assert fc.holdout["fold"].tolist() == ["fold0", "fold1", "fold2", "soft vote", "hard vote"]
    assert set(fc.agreement) == {"holdout", "test"}
    agreement = fc.agreement["holdout"]
    assert agreement.shape == (3, 3) and np.allclose(np.diag(agreement), 1.0)
    dis = fc.disagreements["holdout"]
    assert {"sample_id", "label", "fold0", "fold1", "fold2", "n_classes_predicted"} <= set(dis.columns)
    assert (dis["n_classes_predicted"] > 1).all()
    # a sample no fold disagrees on is not listed; one they do is
    preds = load_predictions(run, "holdout").merge_tta("mean")
    labels = preds.proba().argmax(axis=2)
    n_disagree = int((labels.min(axis=0) != labels.max(axis=0)).sum())
    assert len(dis) == n_disagree
    assert 1.0 - agreement.loc["fold0", "fold1"] == pytest.approx(np.mean(labels[0] != labels[1]))
    assert fc.to_dict()["n_disagreements"]["holdout"] == n_disagree


def test_compare_voting_soft_vs_hard(make_run):
    run = make_run("a", k=4, n_holdout=200, skill=1.0)
    preds = load_predictions(run, "holdout").merge_tta("mean")
    vc = compare_voting(preds, n_resamples=200)
    soft, _ = combine(preds.logits, "soft")
    hard, _ = combine(preds.logits, "hard")
    assert vc.metric("soft", "accuracy") == pytest.approx(np.mean(soft == preds.labels))
    assert vc.metric("hard", "accuracy") == pytest.approx(np.mean(hard == preds.labels))
    diff = vc.differences.set_index("metric").loc["accuracy"]
    assert diff["diff"] == pytest.approx(np.mean(soft == preds.labels) - np.mean(hard == preds.labels))
    assert diff["diff_low"] <= diff["diff"] <= diff["diff_high"]
    assert len(vc.disagreements) == int(np.sum(soft != hard))
    d = vc.to_dict()
    assert set(d["soft"]) >= {"accuracy", "macro_f1"} and "accuracy" in d["soft_minus_hard"]


def test_compare_tta_gains_over_identity(make_run):
    run = make_run("a", k=2, views=("identity", "hflip", "vflip"))
    tc = compare_tta(run, n_resamples=100, modes=("mean", "max"))
    assert tc.baseline_view == "identity"
    per_view = tc.gain_per_view()
    assert set(per_view) == {"identity", "hflip", "vflip"}
    assert per_view["identity"]["accuracy_gain"] == 0
    oof = load_predictions(run, "oof")
    acc = lambda i: np.mean(softmax(oof.logits[i]).argmax(1) == oof.labels)  # noqa: E731
    assert per_view["hflip"]["accuracy_gain"] == pytest.approx(acc(1) - acc(0))
    merged = tc.gains[tc.gains["n_views"] > 1]
    assert len(merged) == 4 * 2  # 3 pairs + all three, x 2 modes
    assert default_view_sets(["identity", "a", "b", "c", "d"], "identity")[-1] == ("identity", "a", "b", "c", "d")


def test_label_smoothing_groups_and_comparison(make_run):
    a = make_run("ls0", label_smoothing=0.0, seed=0)
    b = make_run("ls1", label_smoothing=0.1, seed=1, skill=1.5)
    other = make_run("other", label_smoothing=0.1, seed=2, model="resnet18")
    groups = find_label_smoothing_groups([open_run(p) for p in (a, b, other)])
    assert [[r.run_id for r in g] for g in groups] == [["ls0", "ls1"]]
    ls = compare_label_smoothing([b, a], n_resamples=100)
    assert ls.runs["run_id"].tolist() == ["ls0", "ls1"]
    m = ls.metrics.set_index(["run_id", "subset", "calibration"])
    # temperature scaling moves log loss (never up on OOF, where it was fitted) and leaves accuracy alone
    for rid in ("ls0", "ls1"):
        assert m.loc[(rid, "oof", "temperature"), "accuracy"] == m.loc[(rid, "oof", "raw"), "accuracy"]
        assert m.loc[(rid, "oof", "temperature"), "log_loss"] <= m.loc[(rid, "oof", "raw"), "log_loss"] + 1e-12
        assert (rid, "holdout", "temperature") in m.index
    assert set(ls.differences["metric"]) == {"accuracy", "macro_f1", "log_loss"}
    assert ls.reliability.groupby(["run_id", "calibration"])["count"].sum().eq(60).all()
    with pytest.raises(AnalysisError, match="do not differ only in train.label_smoothing"):
        compare_label_smoothing([a, other])


def test_analyze_runs_report(make_run):
    a = make_run("ls0", label_smoothing=0.0, k=2)
    b = make_run("ls1", label_smoothing=0.1, k=2, seed=1)
    report = analyze_runs([a, b], n_resamples=100)
    d = report.to_dict()
    assert d["voting"]["holdout"]["soft"]["accuracy"] is not None
    assert d["voting"]["holdout"]["hard"]["macro_f1"] is not None
    assert d["voting"]["oof"]["members"] == ["ls0/oof/mean(identity+hflip)", "ls1/oof/mean(identity+hflip)"]
    assert "hflip" in d["tta"]["gain_per_view"]
    assert len(d["label_smoothing"]) == 1
    assert d["ensembles"]["method"] == "exhaustive"  # 2 runs x 2 folds x 2 views = 8 members
    text = report.to_text()
    assert "Soft vs hard voting" in text and "TTA gain over identity" in text and "Best ensembles" in text
