"""Folds, Ensemble and Submit pages in AppTest on the real tiny study (two label-smoothing runs, 2 folds,
a holdout, two TTA views): they render, show the analysis engine's numbers, and their interactions work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from engine.analysis.compare import compare_folds, compare_voting, merged
from engine.analysis.load import load_predictions
from studio.widgets.submit import submission_args

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"../pages/{page}").run()
    assert not at.exception, at.exception
    return at


def run_id_of(run_dir: Path) -> str:
    return Path(run_dir).name


@pytest.mark.parametrize("page", ["folds.py", "ensemble.py", "submit.py"])
def test_pages_without_runs_say_what_to_do(page, workspace, demo_spec_path, monkeypatch):
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    at = open_page(page)
    assert any("No runs yet" in i.value for i in at.info)


def test_folds_page_shows_the_engine_numbers(study_env):
    at = open_page("folds.py")
    run_dir = study_env.run_dirs[0]
    at.selectbox(key="folds_run").set_value(run_id_of(run_dir)).run()
    assert not at.exception
    expected = compare_folds(run_dir)
    shown = at.dataframe[0].value
    np.testing.assert_allclose(shown["accuracy"].to_numpy(), expected.oof["accuracy"].round(4).to_numpy())
    holdout = at.dataframe[1].value
    assert list(holdout["fold"]) == ["fold0", "fold1", "soft vote", "hard vote"]
    np.testing.assert_allclose(holdout["accuracy"].to_numpy(), expected.holdout["accuracy"].round(4).to_numpy())
    assert len(at.get("plotly_chart")) >= 4  # metric bars, 2 confusion matrices, agreement
    # Switching the TTA merge mode recomputes without error.
    at.selectbox(key="folds_tta_mode").set_value("max").run()
    assert not at.exception


def test_ensemble_page_voting_matches_engine_and_switches(study_env):
    at = open_page("ensemble.py")
    run_dir = study_env.run_dirs[0]
    at.multiselect(key="ensemble_runs").set_value([run_id_of(run_dir)]).run()
    assert not at.exception
    expected = compare_voting(merged(load_predictions(run_dir, "holdout"), None, "mean"))
    metrics = at.dataframe[0].value.set_index("voting")
    assert metrics.loc["soft", "accuracy"] == pytest.approx(expected.metric("soft", "accuracy"))
    assert metrics.loc["hard", "accuracy"] == pytest.approx(expected.metric("hard", "accuracy"))
    # Both runs: voting over runs on OOF becomes available, and the label-smoothing study is found.
    at.multiselect(key="ensemble_runs").set_value([run_id_of(d) for d in study_env.run_dirs]).run()
    at.radio(key="ens_vote_subset").set_value("oof (one member per run)").run()
    assert not at.exception
    assert not any("No runs differ only in label smoothing" in i.value for i in at.info)
    texts = " ".join(c.value for c in at.caption)
    assert "Temperature T is fitted per run" in texts
    assert "search over 4 fold models" in texts  # 2 runs x 2 folds, views merged


def test_ensemble_and_submit_open_with_the_latest_studys_runs(study_env):
    study = {run_id_of(d) for d in study_env.run_dirs}
    at = open_page("ensemble.py")
    assert set(at.multiselect(key="ensemble_runs").value) == study
    at.switch_page("../pages/submit.py").run()
    assert not at.exception
    assert set(at.multiselect(key="submit_runs").value) == study
    # A choice of the user's own is kept across reruns.
    at.multiselect(key="submit_runs").set_value([run_id_of(study_env.run_dirs[1])]).run()
    at.run()
    assert at.multiselect(key="submit_runs").value == [run_id_of(study_env.run_dirs[1])]


def test_latest_study_runs_picks_the_newest_run_and_its_study():
    from studio.widgets.runs import latest_study_runs

    runs = pd.DataFrame({"run_id": ["r3", "r2", "r1", "r0"], "study_id": ["s2", None, "s2", "s1"]})
    assert latest_study_runs(runs) == ["r3", "r1"]
    assert latest_study_runs(runs.iloc[1:]) == ["r2"]
    assert latest_study_runs(runs.iloc[:0]) == []


def test_ensemble_combination_goes_to_submit(study_env, demo_spec_path):
    at = open_page("ensemble.py")
    at.multiselect(key="ensemble_runs").set_value([run_id_of(d) for d in study_env.run_dirs]).run()
    at.button(key="ens_use").click().run()
    assert not at.exception
    choice = at.session_state["submit_choice"]
    assert choice["voting"] in ("soft", "hard") and choice["members"]
    at.switch_page("../pages/submit.py").run()
    assert not at.exception
    at.button(key="submit_write").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    written = Path(at.session_state["submit_last"])
    submission = pd.read_csv(written)
    template = pd.read_csv(demo_spec_path.parent / "sample_submission.csv")
    assert list(submission["id"]) == list(template["id"])
    assert set(submission["label"].astype(str)) <= {str(i) for i in range(10)}
    assert written.with_suffix(".json").is_file()
    assert at.get("download_button")
    # The submission is listed with its expected score.
    at = open_page("submit.py")
    earlier = next(d.value for d in at.dataframe if "expected_on" in d.value.columns)
    assert written.stem in set(earlier["id"])


def test_submission_args_weights_left_out_members_zero():
    choice = {"runs": ["a", "b"], "members": [["a", 0], ["b", 1], ["b", 1]], "weights": [1, 1, 1],
              "voting": "soft", "tta": "mean", "views": None}
    args = submission_args(choice, {"a": "/runs/a", "b": "/runs/b"})
    assert args["runs"] == ["/runs/a", "/runs/b"] and args["folds"] == [0, 1]
    assert args["weights"] == [1.0, 0.0, 0.0, 2.0]
