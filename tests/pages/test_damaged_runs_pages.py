"""A workspace whose runs were damaged after the fact — a garbage status.json, a deleted OOF file, a deleted weights
file of a finished fold, a truncated holdout Parquet — next to an intact run of the same study: every page keeps
working, names the damaged run and what is wrong, and still works for the intact run."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")
PAGES = ["data.py", "augment.py", "train.py", "folds.py", "ensemble.py", "gradcam.py", "review.py", "submit.py"]


@pytest.fixture
def damaged_env(tiny_study, tmp_path, demo_spec_path, monkeypatch):
    """Copies of the tiny study's runs: ``no_oof`` lacks ``fold1_oof.parquet``, ``intact`` is untouched; more copies
    of the intact one: ``run-no-weights`` lacks ``weights/fold1.safetensors``, ``run-truncated`` has a truncated
    ``fold0_holdout.parquet``, ``run-garbage`` a status.json of random bytes."""
    ws = tmp_path / "ws"
    no_oof, intact = (Path(shutil.copytree(d, ws / "runs" / d.name)) for d in tiny_study.run_dirs)
    (no_oof / "predictions" / "fold1_oof.parquet").unlink()
    copies = {name: Path(shutil.copytree(intact, ws / "runs" / name))
              for name in ("run-no-weights", "run-truncated", "run-garbage")}
    (copies["run-no-weights"] / "weights" / "fold1.safetensors").unlink()
    holdout = copies["run-truncated"] / "predictions" / "fold0_holdout.parquet"
    holdout.write_bytes(holdout.read_bytes()[:200])
    (copies["run-garbage"] / "status.json").write_bytes(b"\x89\xff\xfe\x00garbage")
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    return SimpleNamespace(workspace=ws, no_oof=no_oof, intact=intact, no_weights=copies["run-no-weights"],
                           truncated=copies["run-truncated"], holdout=holdout)


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"../pages/{page}").run()
    return at


def messages(at: AppTest, kind: str = "error") -> str:
    return "\n".join(e.value for e in getattr(at, kind))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_works_and_the_sidebar_names_the_damaged_run(damaged_env, page):
    at = open_page(page)
    assert not at.exception, f"{page}: {at.exception}"
    assert any("run-garbage" in w.value and "damaged" in w.value for w in at.sidebar.warning)


def test_train_page_lists_the_damaged_run_with_what_is_wrong(damaged_env):
    at = open_page("train.py")
    overview = at.dataframe[0].value.set_index("run_id")
    assert overview.at["run-garbage", "state"].endswith("damaged")
    assert "status.json" in overview.at["run-garbage", "note"] and "not text" in overview.at["run-garbage", "note"]
    at.selectbox(key="train_selected_run").set_value("run-garbage").run()
    assert not at.exception
    assert any("Run 'run-garbage' is damaged" in e.value for e in at.error)


def test_train_page_names_a_finished_folds_missing_files_and_offers_resume(damaged_env):
    at = open_page("train.py")
    overview = at.dataframe[0].value.set_index("run_id")
    assert overview.at["run-no-weights", "state"].endswith("done")
    assert "fold1.safetensors" in overview.at["run-no-weights", "note"]
    assert "fold1_oof.parquet" in overview.at[damaged_env.no_oof.name, "note"]
    assert pd.isna(overview.at[damaged_env.intact.name, "note"])
    at.selectbox(key="train_selected_run").set_value("run-no-weights").run()
    assert not at.exception
    assert "fold1.safetensors" in messages(at, "warning") and "Resume the run" in messages(at, "warning")
    assert not at.button(key="resume_run-no-weights").disabled  # Resume trains fold 1 again (done runs included)
    at.selectbox(key="train_selected_run").set_value(damaged_env.intact.name).run()
    assert at.button(key=f"resume_{damaged_env.intact.name}").disabled  # nothing to resume in an intact done run


def test_folds_page_names_the_damaged_run_and_the_missing_file(damaged_env):
    at = open_page("folds.py")
    assert any("run-garbage" in w.value and "left out" in w.value for w in at.warning)
    at.selectbox(key="folds_run").set_value(damaged_env.no_oof.name).run()
    assert not at.exception
    assert any("fold1_oof.parquet" in e.value and "are done" in e.value for e in at.error)
    at.selectbox(key="folds_run").set_value(damaged_env.intact.name).run()  # the intact run still compares
    assert not at.exception and not at.error and at.dataframe


def test_review_page_names_the_truncated_holdout_and_reviews_the_other_runs(damaged_env):
    at = open_page("review.py")
    at.multiselect(key="review_runs").set_value(["run-truncated", damaged_env.intact.name]).run()
    assert not at.exception
    assert "run-truncated" in messages(at) and str(damaged_env.holdout) in messages(at)
    # without it the review works; a run whose weights are gone reviews too (it reads predictions only)
    at.multiselect(key="review_runs").set_value(["run-no-weights", damaged_env.intact.name]).run()
    assert not at.exception and not at.error
    assert {m.label for m in at.metric} >= {"Samples reviewed", "Flagged"}


def test_submit_page_names_the_truncated_holdout_and_submits_the_other_runs(damaged_env):
    submissions = damaged_env.workspace / "submissions"
    at = open_page("submit.py")
    at.multiselect(key="submit_runs").set_value(["run-truncated", damaged_env.intact.name]).run()
    at.button(key="submit_write").click().run()
    assert not at.exception
    assert "run-truncated" in messages(at) and str(damaged_env.holdout) in messages(at)
    assert not list(submissions.glob("*.csv"))  # nothing half made
    at.multiselect(key="submit_runs").set_value(["run-no-weights", damaged_env.intact.name]).run()
    at.button(key="submit_write").click().run()
    assert not at.exception and not at.error
    assert len(list(submissions.glob("*.csv"))) == 1 and any("Written:" in s.value for s in at.success)


def test_gradcam_page_names_the_missing_weights_and_explains_the_other_models(damaged_env):
    at = open_page("gradcam.py")
    assert not at.exception
    assert "fold1.safetensors" in messages(at) and "is missing" in messages(at)
    assert at.multiselect(key="cam_models").value  # the models whose weights are there are offered


def test_search_results_name_a_damaged_trial_run_and_use_best_says_what_is_wrong(finished_search, mini_spec_path,
                                                                                 tmp_path, monkeypatch):
    from engine.search import best_trial, search_trials

    ws = Path(shutil.copytree(finished_search.workspace, tmp_path / "ws"))
    search = ws / "searches" / finished_search.path.name
    best = best_trial(search)["run_id"]
    other = next(r for r in search_trials(search)["run_id"] if r != best)
    (ws / "runs" / other / "status.json").write_bytes(b"\x00\xff garbage")
    (ws / "runs" / best / "config.yaml").write_text("model: [unclosed\n")
    trials = search_trials(search).set_index("run_id")
    assert trials.at[other, "run_state"] == "damaged" and "status.json" in trials.at[other, "error"]
    assert trials.at[best, "run_state"] == "damaged" and "config.yaml" in trials.at[best, "error"]

    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(mini_spec_path))
    at = open_page("train.py")
    at.segmented_control(key="train_mode").set_value("search").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "run_state" in d.value.columns).set_index("run_id")
    assert list(table["run_state"]) == ["damaged", "damaged"] and table["state"].eq("COMPLETE").all()
    at.button(key="train_search_use_best").click().run()
    assert not at.exception
    assert at.session_state["train_mode"] == "search"  # the form was not filled from a config that cannot be read
    assert any(f"Run {best!r} is damaged" in e.value and "config.yaml" in e.value for e in at.error)
