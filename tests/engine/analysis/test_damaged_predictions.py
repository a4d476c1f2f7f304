"""Missing or unreadable prediction files: every analysis entry point names the file of that run and
refuses, instead of scoring the folds that are left (or ending in a pyarrow traceback)."""

from __future__ import annotations

import shutil

import pytest

from engine.analysis import compare_folds, compare_tta, fold_confidences, fold_confusions, load_predictions
from engine.cli import main
from engine.errors import RunDamagedError

pytestmark = pytest.mark.slow  # reads the tiny study trained once per test run


@pytest.fixture
def study_copy(tiny_study, tmp_path):
    """A private copy of the tiny study's workspace (two runs, 2 folds each, holdout and test predictions)."""
    ws = tmp_path / "ws"
    for run_dir in tiny_study.run_dirs:
        shutil.copytree(run_dir, ws / "runs" / run_dir.name)
    return ws, [ws / "runs" / d.name for d in tiny_study.run_dirs]


def analyze(run_dir, ws) -> int:
    return main(["analyze", run_dir.name, "--workspace", str(ws), "--no-search", "--resamples", "50"])


def test_a_deleted_oof_file_of_a_finished_fold_is_named_and_refused(study_copy, capsys):
    ws, (a, b) = study_copy
    (a / "predictions" / "fold1_oof.parquet").unlink()
    calls = {"load_predictions": lambda: load_predictions(a, "oof"), "compare_folds": lambda: compare_folds(a),
             "fold_confusions": lambda: fold_confusions(a), "fold_confidences": lambda: fold_confidences(a, "holdout"),
             "compare_tta": lambda: compare_tta([a, b]), "holdout of both": lambda: load_predictions([a, b], "holdout")}
    for name, call in calls.items():
        with pytest.raises(RunDamagedError, match=r"fold\(s\) \[1\] are done") as err:
            call()
        message = str(err.value)
        assert a.name in message and str(a / "predictions" / "fold1_oof.parquet") in message, name
        assert f"python -m engine predict {a.name} --tta identity,hflip --folds 1" in message
    assert analyze(a, ws) == 2  # refused: never the TTA gains of fold 0 alone
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "fold1_oof.parquet" in err
    assert analyze(b, ws) == 0  # the intact run of the study still analyses


def label_issues(run_dir, ws) -> int:
    return main(["label-issues", run_dir.name, "--workspace", str(ws), "--json"])


def test_a_truncated_holdout_file_is_named_not_a_traceback(study_copy, capsys, tmp_path):
    ws, (a, b) = study_copy
    path = a / "predictions" / "fold0_holdout.parquet"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RunDamagedError, match="fold0_holdout.parquet' cannot be read") as err:
        load_predictions(a, "holdout")
    assert "--folds 0" in str(err.value)
    assert analyze(a, ws) == 2
    err = capsys.readouterr().err
    assert "fold0_holdout.parquet" in err and "Traceback" not in err
    assert main(["submit", a.name, "--workspace", str(ws), "--out", str(tmp_path / "sub.csv")]) == 2
    assert "fold0_holdout.parquet" in capsys.readouterr().err and not (tmp_path / "sub.csv").exists()
    assert label_issues(a, ws) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: Run {a.name!r} is damaged") and "fold0_holdout.parquet" in err
    assert label_issues(b, ws) == 0  # the other run of the study still reviews


def test_a_deleted_weights_file_leaves_every_analysis_of_the_predictions_working(study_copy, capsys, tmp_path):
    """Weights are only needed to predict again (predict, Grad-CAM): analyze, submit and label-issues read
    predictions."""
    ws, (a, _) = study_copy
    (a / "weights" / "fold1.safetensors").unlink()
    assert analyze(a, ws) == 0
    assert main(["submit", a.name, "--workspace", str(ws), "--out", str(tmp_path / "sub.csv")]) == 0
    assert (tmp_path / "sub.csv").is_file()
    capsys.readouterr()
    assert label_issues(a, ws) == 0
