"""Review page, the overrides on the Data page, the Ensemble page's "Label overrides" tab and the Submit page's
leaderboard in AppTest, on the demo dataset with 10% of its labels flipped (tests/conftest.py: review_study)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from engine.analysis.common_samples import compare_on_common_samples
from engine.analysis.label_issues import label_issues
from engine.data.overrides import read_overrides

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")


@pytest.fixture
def review_env(review_study, monkeypatch):
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(review_study.workspace))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(review_study.spec_path))
    return review_study


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(f"../pages/{page}").run()
    assert not at.exception, at.exception
    return at


def review_of(run_dir: Path) -> AppTest:
    at = open_page("review.py")
    at.multiselect(key="review_runs").set_value([Path(run_dir).name]).run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_review_page_shows_the_engine_ranking(review_env):
    at = review_of(review_env.plain)
    found = label_issues(review_env.plain)
    assert metric(at, "Flagged") == f"{found.n_flagged:,}"
    assert metric(at, "Samples reviewed") == f"{len(found.issues):,}"
    assert metric(at, "Decisions") == str(len(review_env.decisions))
    captions = [c.value for c in at.caption]
    first = found.flagged().iloc[0]
    assert f"#1 · `{first.sample_id}`" in captions
    assert any(c.startswith("Grad-CAM for") for c in captions)  # the suggested class's CAM was computed
    assert f"given **{first.given}** → suggested **{first.suggested}**" in [m.value for m in at.markdown]
    # every sample ranked, flagged or not
    at.segmented_control(key="review_show").set_value("all").run()
    assert not at.exception
    assert any(c.value.startswith(f"Page 1 of {-(-len(found.issues) // 8)}") for c in at.caption)


def test_keep_exclude_relabel_and_undo_write_the_overrides_file(review_env, restore_overrides):
    at = review_of(review_env.plain)
    rows = label_issues(review_env.plain).flagged()
    undecided = [r for r in rows.head(8).itertuples() if r.sample_id not in review_env.decisions]
    a, b = undecided[0], undecided[1]
    at.button(key=f"review_exclude_{a.sample_id}").click().run()
    assert not at.exception
    at.selectbox(key=f"review_relabel_to_{b.sample_id}").set_value(b.suggested).run()
    at.button(key=f"review_do_relabel_{b.sample_id}").click().run()
    assert not at.exception and not at.error
    entries = read_overrides(review_env.spec_path).entries
    assert entries[a.sample_id].action == "exclude" and entries[a.sample_id].given_label == a.given
    assert entries[b.sample_id].action == "relabel" and entries[b.sample_id].label == b.suggested
    assert "self-confidence" in entries[a.sample_id].note
    assert metric(at, "Decisions") == str(len(review_env.decisions) + 2)
    assert any("excluded from training" in m.value for m in at.markdown)
    at.button(key=f"review_undo_{a.sample_id}").click().run()
    assert a.sample_id not in read_overrides(review_env.spec_path).entries
    # the Data page says what the overrides changed
    at.switch_page("../pages/data.py").run()
    assert not at.exception
    excluded = sum(1 for action, _ in review_env.decisions.values() if action == "exclude")
    assert any(f"Label overrides applied: {excluded} excluded, 2 relabelled" in c.value for c in at.caption)


def test_relaunch_trains_the_same_config_with_the_overrides(review_env, restore_overrides):
    from engine.jobs import create_launcher

    at = review_of(review_env.plain)
    runs_dir = review_env.workspace / "runs"
    before = set(runs_dir.iterdir())
    at.button(key="review_relaunch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (new,) = set(runs_dir.iterdir()) - before
    try:
        config = yaml.safe_load((new / "config.yaml").read_text())
        record = config["label_overrides"]
        assert config["name"] == "noisy +overrides"
        assert set(record["excluded"]) | set(record["relabelled"]) == set(review_env.decisions)
        plain = yaml.safe_load((Path(review_env.plain) / "config.yaml").read_text())
        assert {k: v for k, v in config.items() if k not in ("name", "label_overrides")} == \
               {k: v for k, v in plain.items() if k not in ("name", "label_overrides")}
        assert any("Launched" in s.value for s in at.success)
    finally:  # the job was submitted with its pid written: stop it (and its process group) before removing it
        launcher = create_launcher(workspace=review_env.workspace)
        if launcher.status(new)["state"] in ("queued", "running"):
            launcher.cancel(new)
        shutil.rmtree(new, ignore_errors=True)


def test_ensemble_tab_compares_the_runs_with_and_without_overrides(review_env):
    at = open_page("ensemble.py")
    assert not at.exception
    result = compare_on_common_samples(review_env.with_overrides, review_env.plain)
    caption = f"{result.counts['common']:,} images compared"
    assert any(c.value.startswith(caption) for c in at.caption), [c.value for c in at.caption]
    shown = next(d.value for d in at.dataframe if "run" in d.value.columns and "log_loss" in d.value.columns)
    assert shown.set_index("run").loc["a", "accuracy"] == pytest.approx(result.metrics.set_index("run").loc["a",
                                                                                                           "accuracy"])
    assert any("Excluding images changes the out-of-fold set" in i.value for i in at.info)


def test_submit_page_takes_lb_scores_and_flags_them(review_env):
    from engine.submission import make_submission, set_leaderboard_score

    ws = review_env.workspace
    subs = ws / "submissions"
    shutil.rmtree(subs, ignore_errors=True)
    written = [make_submission(review_env.plain, out=subs / f"lb-{i}.csv", voting=v, workspace=ws)
               for i, v in enumerate(("soft", "hard", "logit_mean"))]
    set_leaderboard_score("lb-0", written[0].record["expected"]["accuracy"], workspace=ws)
    set_leaderboard_score("lb-1", written[1].record["expected"]["accuracy"] - 0.01, workspace=ws)
    try:
        at = open_page("submit.py")
        at.selectbox(key="submit_lb_submission").set_value("lb-2")
        at.number_input(key="submit_lb_score").set_value(0.01)
        at.button(key="FormSubmitter:submit_lb_form-Save LB score").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        record = json.loads((subs / "lb-2.json").read_text())
        assert record["leaderboard"]["score"] == 0.01 and record["leaderboard"]["metric"] == "accuracy"
        assert any("lb-2" in w.value and "lies outside" in w.value for w in at.warning)
        assert len(at.get("plotly_chart")) >= 1
        table = next(d.value for d in at.dataframe if "expected_on" in d.value.columns)
        assert set(table["id"]) == {"lb-0", "lb-1", "lb-2"}
    finally:
        shutil.rmtree(subs, ignore_errors=True)
