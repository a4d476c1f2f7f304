"""Train page, Search mode, in AppTest: bad input is refused by name with nothing written; a finished search
(real trials) shows its status, trials, Optuna's figures; "Use best" fills the Train form; a restarted studio
shows it all again from the workspace (SQLite). Ensemble page: the augmentation study's comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.analysis.compare import compare_augmentation
from engine.search import best_trial, search_trials
from engine.training.config import read_run_config

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")
LAUNCH = "FormSubmitter:search_form-Launch search"


def open_search_mode() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("../pages/train.py").run()
    at.segmented_control(key="train_mode").set_value("search").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def search_env(finished_search, mini_spec_path, monkeypatch):
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(finished_search.workspace))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(mini_spec_path))
    return finished_search


def test_bad_search_input_is_refused_by_name_and_nothing_is_written(workspace, mini_spec_path, monkeypatch):
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(mini_spec_path))
    at = open_search_mode()
    assert any("No searches yet" in i.value for i in at.info)
    at.number_input(key="train_search_lr_low").set_value(0.1)
    at.number_input(key="train_search_lr_high").set_value(0.01)
    at.button(key=LAUNCH).click().run()
    assert not at.exception
    assert any("search range of 'train.lr' is empty" in e.value for e in at.error), [e.value for e in at.error]
    at.checkbox(key="train_search_use_lr").uncheck()
    at.button(key=LAUNCH).click().run()
    assert any("Nothing to search" in e.value for e in at.error), [e.value for e in at.error]
    assert not (workspace / "optuna.db").exists() and not (workspace / "searches").exists()


def test_a_finished_search_shows_trials_figures_and_fills_the_train_form(search_env):
    at = open_search_mode()
    path = search_env.path
    status_line = next(m.value for m in at.markdown if "trials ·" in m.value)
    assert "**done** · 2/2 trials · maximize oof accuracy" in status_line
    best = best_trial(path)
    assert f"best {best['value']:.4f} (trial {best['number']})" in status_line
    table = next(d.value for d in at.dataframe if "run_id" in d.value.columns and "number" in d.value.columns)
    expected = search_trials(path)
    assert list(table["run_id"]) == list(expected["run_id"]) and list(table["state"]) == ["COMPLETE", "COMPLETE"]
    np.testing.assert_allclose(table["value"].to_numpy(dtype=float), expected["value"].to_numpy(dtype=float))
    assert len(at.get("plotly_chart")) >= 4  # history, parallel coordinates, slice, intermediate (+ importances)

    at.button(key="train_search_use_best").click().run()
    assert not at.exception
    assert at.session_state["train_mode"] == "train"
    config = read_run_config(search_env.workspace / "runs" / best["run_id"])
    assert at.number_input(key="train_lr").value == pytest.approx(config.train.lr)
    assert at.number_input(key="train_wd").value == pytest.approx(config.train.weight_decay)
    assert at.selectbox(key="train_aug").value == f"preset: {best['params']['augment']}"
    assert (at.number_input(key="train_k").value, at.number_input(key="train_epochs").value) == (2, 1)

    # a restarted studio (a fresh session) finds the search again in the workspace and the SQLite database
    again = open_search_mode()
    assert any("**done** · 2/2 trials" in m.value for m in again.markdown)
    assert len(again.get("plotly_chart")) >= 4


def test_ensemble_page_compares_the_augmentation_study(augment_study, mini_spec_path, monkeypatch):
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(augment_study.workspace))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(mini_spec_path))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("../pages/ensemble.py").run()
    assert not at.exception, at.exception
    tab = next(t for t in at.tabs if t.label == "Augmentation")
    expected = compare_augmentation(list(augment_study.run_dirs))
    metrics = next(d.value for d in tab.dataframe if "subset" in d.value.columns)
    np.testing.assert_allclose(metrics["macro_f1"].to_numpy(dtype=float),
                               expected.metrics["macro_f1"].to_numpy(dtype=float), rtol=1e-4)
    runs = next(d.value for d in tab.dataframe if "transforms" in d.value.columns)
    assert list(runs["augment"]) == ["none", "medium"]
    captions = " ".join(c.value for c in tab.caption)
    assert "accuracy:" in captions and "macro-F1:" in captions
    assert len(tab.get("plotly_chart")) == 2  # CV differences, per-class gains
    # the two pipelines previewed side by side: each shows the same 2 originals, then 2 draws of its own
    captions = [i.proto.imgs[0].caption for i in tab.get("image")]
    assert len([c for c in captions if c.startswith("original")]) == 4
    assert len([c for c in captions if c.startswith("draw ")]) == 8
