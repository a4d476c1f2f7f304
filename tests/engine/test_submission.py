import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.analysis.load import load_predictions
from engine.analysis.voting import combine
from engine.errors import AnalysisError
from engine.submission import make_submission, target_format

_spec = importlib.util.spec_from_file_location("synthetic_runs", Path(__file__).parent / "analysis" / "synthetic_runs.py")
_synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synthetic)
write_run = _synthetic.write_run  # the analysis tests' synthetic run directories


@pytest.fixture
def demo_runs(tmp_path, demo_spec_path):
    """Two synthetic runs of the demo dataset (10 classes '0'..'9') with test predictions for every template id."""
    template = pd.read_csv(demo_spec_path.parent / "sample_submission.csv", dtype=str)
    root = tmp_path / "workspace" / "runs"
    root.mkdir(parents=True)
    common = dict(k=3, n_classes=10, classes=[str(i) for i in range(10)], dataset=str(demo_spec_path),
                  test_ids=template["id"].tolist()[::-1])  # another order than the template's
    return root, template, [write_run(root, "a", **common), write_run(root, "b", seed=1, **common)]


def test_submission_follows_the_template_and_records_the_combination(tmp_path, demo_runs):
    root, template, runs = demo_runs
    out = tmp_path / "sub.csv"
    result = make_submission(["a", "b"], out=out, voting="hard", tta="max", workspace=root.parent)
    written = pd.read_csv(out, dtype=str)
    assert list(written.columns) == list(template.columns)
    assert written["id"].tolist() == template["id"].tolist()
    # the predictions are the hard vote of runs x folds after a max-merge of each fold model's views
    test = load_predictions(runs, "test").merge_tta("max")
    labels = combine(test.logits, "hard")[0]
    expected = pd.Series(labels, index=test.sample_ids).loc[template["id"]].astype(str).tolist()
    assert written["label"].tolist() == expected
    record = json.loads((tmp_path / "sub.json").read_text())
    assert result.sidecar_path == tmp_path / "sub.json"
    assert [r["run_id"] for r in record["runs"]] == ["a", "b"]
    assert record["folds"] == [0, 1, 2] and record["views"] == ["identity", "hflip"]
    assert record["voting"] == "hard" and record["tta"] == "max" and record["created_at"]
    assert record["expected"]["subset"] == "holdout" and 0 <= record["expected"]["accuracy"] <= 1
    assert record["target_format"] == "name" and record["n_rows"] == len(template)


def test_submission_with_chosen_folds_views_and_default_path(demo_runs):
    root, template, _ = demo_runs
    result = make_submission("a", voting="soft", tta="mean", folds=[1], views=["hflip"], workspace=root.parent)
    assert result.path.parent == root.parent / "submissions" and result.path.suffix == ".csv"
    assert result.record["folds"] == [1] and result.record["views"] == ["hflip"]
    assert len(pd.read_csv(result.path)) == len(template)


def test_missing_test_predictions_or_ids_are_refused(tmp_path, demo_runs):
    root, template, runs = demo_runs
    (runs[1] / "predictions" / "fold2_test.parquet").unlink()
    with pytest.raises(AnalysisError, match=r"Run 'b' has no test predictions for fold\(s\) \[2\]"):
        make_submission(["a", "b"], out=tmp_path / "x.csv", workspace=root.parent)
    assert not (tmp_path / "x.csv").exists()
    for f in range(3):
        path = runs[0] / "predictions" / f"fold{f}_test.parquet"
        frame = pd.read_parquet(path)
        frame[frame["sample_id"] != template["id"].iloc[3]].to_parquet(path)
    with pytest.raises(AnalysisError, match=r"1 of the template's .* ids have no test prediction"):
        make_submission(["a"], out=tmp_path / "y.csv", workspace=root.parent)


def test_target_format_names_or_indices():
    assert target_format(pd.Series(["cat", "dog"]), ["cat", "dog"]) == "name"
    assert target_format(pd.Series(["0", "1"]), ["cat", "dog"]) == "index"
    assert target_format(pd.Series(["0", "0"]), ["0", "1"]) == "name"  # both: names
    assert target_format(pd.Series([], dtype=str), ["cat"]) == "name"



def test_a_template_without_its_target_column_is_refused_alike_by_the_dataset_and_the_submission(tmp_path):
    """One reader checks the template's columns (engine.data.manifest.read_sample_submission)."""
    from engine.data import open_dataset
    from engine.errors import DatasetError

    root = tmp_path / "pets"
    for c, name in enumerate(("cat", "dog")):
        for i in range(3):
            (root / "train" / name).mkdir(parents=True, exist_ok=True)
            (root / "train" / name / f"{i}.png").write_bytes(_png(c * 10 + i))
    (root / "test").mkdir()
    (root / "test" / "t0.png").write_bytes(_png(99))
    (root / "sample_submission.csv").write_text("id,label\nt0,cat\n")
    open_dataset(root)  # writes dataset.yaml naming the template's id and target columns
    (root / "sample_submission.csv").write_text("id,prediction\nt0,cat\n")  # the target column renamed
    message = r"Sample submission 'sample_submission.csv' \(in '.*'\) has no target_column 'label'; its columns are"
    with pytest.raises(DatasetError, match=message):
        open_dataset(root)
    runs_root = tmp_path / "workspace" / "runs"
    runs_root.mkdir(parents=True)
    write_run(runs_root, "a", k=2, n_classes=2, classes=["cat", "dog"], dataset=str(root / "dataset.yaml"),
              test_ids=["t0"])
    with pytest.raises(DatasetError, match=message):
        make_submission(["a"], out=tmp_path / "sub.csv", workspace=runs_root.parent)


def _png(seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- CV scores, intervals and the public leaderboard


def test_sidecar_holds_holdout_and_oof_scores_with_intervals(tmp_path, demo_runs):
    from engine.analysis.bootstrap import bootstrap_interval

    root, _, runs = demo_runs
    result = make_submission(["a", "b"], out=tmp_path / "s.csv", voting="soft", workspace=root.parent)
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["format_version"] == 2 and record["leaderboard"] is None
    holdout, oof = record["cv"]["holdout"], record["cv"]["oof"]
    assert record["expected"] == holdout and "fallback" not in holdout and record["cv"]["notes"] == []
    for scored in (holdout, oof):
        for metric in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss"):
            low, high = scored["intervals"][metric]
            assert low <= scored[metric] <= high
        assert scored["intervals"]["log_loss"][0] < scored["intervals"]["log_loss"][1]
    # the interval is the bootstrap of the combination as submitted (soft vote of runs x folds on the holdout)
    preds = load_predictions(runs, "holdout").merge_tta("mean")
    labels = combine(preds.logits, "soft")[0]
    assert holdout["intervals"]["accuracy"] == list(bootstrap_interval(preds.labels, labels, n_classes=10)[1:])
    assert result.record["expected"]["n"] == preds.n_samples


def test_without_a_holdout_the_oof_fallback_is_named(tmp_path, demo_spec_path):
    template = pd.read_csv(demo_spec_path.parent / "sample_submission.csv", dtype=str)
    root = tmp_path / "workspace" / "runs"
    root.mkdir(parents=True)
    write_run(root, "noh", k=3, n_classes=10, classes=[str(i) for i in range(10)], dataset=str(demo_spec_path),
              test_ids=template["id"].tolist(), n_holdout=0)
    record = make_submission("noh", out=tmp_path / "n.csv", workspace=root.parent).record
    assert record["cv"]["holdout"] is None and record["expected"]["subset"] == "oof"
    assert "OOF instead of the holdout" in record["expected"]["fallback"]
    assert "no holdout predictions" in record["expected"]["fallback"]


def _submission(tmp_path, demo_runs, name):
    root, _, _ = demo_runs
    return make_submission(["a"], out=root.parent / "submissions" / f"{name}.csv", workspace=root.parent)


def test_leaderboard_scores_are_stored_in_the_sidecar_and_checked_against_cv(tmp_path, demo_runs):
    from engine.submission import leaderboard_check, list_submissions, set_leaderboard_score

    root, _, _ = demo_runs
    ws = root.parent
    first = _submission(tmp_path, demo_runs, "sub-1")
    low, high = first.record["expected"]["intervals"]["accuracy"]
    set_leaderboard_score("sub-1", (low + high) / 2, workspace=ws)
    record = json.loads(first.sidecar_path.read_text())
    assert record["leaderboard"]["score"] == pytest.approx((low + high) / 2)
    assert record["leaderboard"]["metric"] == "accuracy" and record["leaderboard"]["entered_at"]
    assert leaderboard_check(record)["flag"] == "inside"
    set_leaderboard_score("sub-1", max(low - 0.2, 0.0), workspace=ws)  # far below what CV can explain
    check = leaderboard_check(json.loads(first.sidecar_path.read_text()))
    assert check["flag"] == "outside" and "leakage" in check["message"]
    set_leaderboard_score(first.sidecar_path, None, workspace=ws)
    assert leaderboard_check(json.loads(first.sidecar_path.read_text()))["flag"] == "no lb"
    # an older (format 1) sidecar has no interval: said so, not guessed
    old = json.loads(first.sidecar_path.read_text())
    old.pop("cv")
    old["expected"].pop("intervals")
    old["format_version"] = 1
    (ws / "submissions" / "old.json").write_text(json.dumps(old))
    set_leaderboard_score("old", 0.5, workspace=ws)
    listed = list_submissions(ws).set_index("id")
    assert listed.at["old", "flag"] == "no interval" and "format_version 1" in listed.at["old", "message"]
    assert listed.at["old", "holdout_accuracy"] == pytest.approx(old["expected"]["accuracy"])
    assert listed.at["sub-1", "flag"] == "no lb" and listed.at["sub-1", "cv_holdout_low"] == pytest.approx(low)


def test_leaderboard_input_is_validated(tmp_path, demo_runs):
    from engine.submission import set_leaderboard_score

    root, _, _ = demo_runs
    _submission(tmp_path, demo_runs, "sub-a")
    _submission(tmp_path, demo_runs, "sub-b")
    ws = root.parent
    with pytest.raises(AnalysisError, match=r"Submission id 'sub-' is ambiguous \(2 submissions start with it\)"):
        set_leaderboard_score("sub-", 0.5, workspace=ws)
    with pytest.raises(AnalysisError, match="Submission id 'zzz' matches no submission"):
        set_leaderboard_score("zzz", 0.5, workspace=ws)
    with pytest.raises(AnalysisError, match=r"for accuracy must be between 0 and 1. Got 1.5"):
        set_leaderboard_score("sub-a", 1.5, workspace=ws)
    with pytest.raises(AnalysisError, match=r"The 'metric' parameter must be a str among"):
        set_leaderboard_score("sub-a", 0.5, metric="kappa", workspace=ws)


def test_cv_lb_correlation_needs_three_points(tmp_path, demo_runs):
    from engine.submission import cv_lb_correlation, list_submissions, set_leaderboard_score

    root, _, _ = demo_runs
    ws = root.parent
    for i, name in enumerate(["s1", "s2", "s3"]):
        sub = _submission(tmp_path, demo_runs, name)
        record = json.loads(sub.sidecar_path.read_text())
        record["cv"]["holdout"]["accuracy"] = 0.8 + 0.05 * i  # three different CV scores
        sub.sidecar_path.write_text(json.dumps(record))
        if i < 2:
            set_leaderboard_score(name, 0.7 + 0.04 * i, workspace=ws)
    assert cv_lb_correlation(list_submissions(ws))["holdout"] == {"r": None, "n": 2, "metric": "accuracy"}
    set_leaderboard_score("s3", 0.79, workspace=ws)
    r = cv_lb_correlation(list_submissions(ws))["holdout"]
    assert r["n"] == 3 and r["r"] == pytest.approx(np.corrcoef([0.8, 0.85, 0.9], [0.7, 0.74, 0.79])[0, 1])


def test_submissions_cli(tmp_path, demo_runs, capsys):
    from engine.cli import main

    root, _, _ = demo_runs
    _submission(tmp_path, demo_runs, "sub-x")
    assert main(["submissions", "--set-lb", "sub-x", "0.01", "--workspace", str(root.parent)]) == 0
    out = capsys.readouterr().out
    assert "sub-x" in out and "outside" in out and "lies outside" in out and "needs 3 submissions" in out
    assert main(["submissions", "--json", "--workspace", str(root.parent)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["submissions"][0]["lb"] == 0.01 and data["submissions"][0]["flag"] == "outside"
    assert main(["submissions", "--set-lb", "sub-x", "abc", "--workspace", str(root.parent)]) == 2
    assert "must be a number" in capsys.readouterr().err
