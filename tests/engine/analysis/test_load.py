import numpy as np
import pandas as pd
import pytest

from engine.analysis.load import load_predictions, open_run, share_split
from engine.analysis.metrics import softmax
from engine.errors import AnalysisError, RunError


def test_holdout_members_are_runs_x_folds_x_views(runs_root, make_run):
    make_run("a", k=3, views=("identity", "hflip"))
    make_run("b", k=3, views=("identity", "hflip"), seed=1)
    preds = load_predictions(["a", "b"], "holdout", workspace=runs_root.parent)
    assert preds.logits.shape == (12, 20, 3)
    assert [m.label for m in preds.members[:3]] == ["a/fold0/identity", "a/fold0/hflip", "a/fold1/identity"]
    assert preds.has_labels and preds.classes == ["c0", "c1", "c2"]
    # aligned with the parquet rows
    frame = pd.read_parquet(runs_root / "b" / "predictions" / "fold2_holdout.parquet")
    row = frame[(frame["view"] == "hflip")].iloc[5]
    i = list(preds.sample_ids).index(row["sample_id"])
    np.testing.assert_allclose(preds.logits[11, i], row[["logit_0", "logit_1", "logit_2"]].to_numpy(float), rtol=1e-6)


def test_oof_has_one_member_per_run_and_view_and_knows_each_samples_fold(runs_root, make_run):
    make_run("a", k=3)
    preds = load_predictions(runs_root / "a", "oof")
    assert preds.logits.shape == (2, 60, 3)
    assert [m.fold for m in preds.members] == [None, None]
    split = pd.read_parquet(runs_root / "a" / "split.parquet").set_index("sample_id")
    np.testing.assert_array_equal(preds.fold_of, split.loc[preds.sample_ids, "fold"].to_numpy())


def test_selecting_folds_and_views(runs_root, make_run):
    make_run("a", k=3, views=("identity", "hflip", "vflip"))
    preds = load_predictions(runs_root / "a", "test", folds=[0, 2], views=["vflip"])
    assert [m.label for m in preds.members] == ["a/fold0/vflip", "a/fold2/vflip"]
    assert not preds.has_labels
    with pytest.raises(AnalysisError, match=r"no view\(s\) \['rot90'\]"):
        load_predictions(runs_root / "a", "test", views=["rot90"])
    with pytest.raises(AnalysisError, match=r"no test predictions for fold\(s\) \[5\]"):
        load_predictions(runs_root / "a", "test", folds=[5])


def test_merge_tta_collapses_views_per_fold_model(runs_root, make_run):
    make_run("a", k=2)
    preds = load_predictions(runs_root / "a", "holdout")
    merged = preds.merge_tta("mean")
    assert [m.label for m in merged.members] == ["a/fold0/mean(identity+hflip)", "a/fold1/mean(identity+hflip)"]
    np.testing.assert_allclose(merged.proba()[1], (softmax(preds.logits[2]) + softmax(preds.logits[3])) / 2)
    single = preds.merge_tta("max", ["hflip"])
    np.testing.assert_array_equal(single.logits, preds.logits[[1, 3]])


def test_runs_with_different_samples_or_classes_are_refused(runs_root, make_run):
    make_run("a", n_train=60)
    make_run("b", n_train=50)
    make_run("c", classes=["x", "y", "z"])
    make_run("d", split_seed=1)
    with pytest.raises(AnalysisError, match="do not share their holdout samples"):
        load_predictions([runs_root / "a", runs_root / "b"], "holdout")
    with pytest.raises(AnalysisError, match="different classes"):
        load_predictions([runs_root / "a", runs_root / "c"], "holdout")
    with pytest.raises(AnalysisError, match="disagree on the labels|do not share a split"):
        load_predictions([runs_root / "a", runs_root / "d"], "oof")
    assert not share_split([open_run(runs_root / "a"), open_run(runs_root / "d")])
    assert share_split([open_run(runs_root / "a"), open_run(runs_root / "c")])


def test_missing_run_and_incomplete_predictions_are_refused(runs_root, make_run):
    with pytest.raises(RunError):
        open_run(runs_root / "nope")
    run = make_run("a")
    frame = pd.read_parquet(run / "predictions" / "fold1_holdout.parquet")
    frame.iloc[:-1].to_parquet(run / "predictions" / "fold1_holdout.parquet")
    with pytest.raises(AnalysisError, match="has no row for fold 1 view"):
        load_predictions(run, "holdout")
