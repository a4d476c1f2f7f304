"""A workspace with damaged runs (a garbage status.json, a deleted prediction file): every page keeps
working and names the damaged run and what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")
PAGES = ["data.py", "augment.py", "train.py", "folds.py", "ensemble.py", "gradcam.py", "submit.py"]


@pytest.fixture
def damaged_env(tiny_study, tmp_path, demo_spec_path, monkeypatch):
    """Copies of the tiny study's runs, the first missing ``fold1_oof.parquet``, plus ``run-garbage``: a copy
    whose status.json holds random bytes."""
    ws = tmp_path / "ws"
    copies = [Path(shutil.copytree(d, ws / "runs" / d.name)) for d in tiny_study.run_dirs]
    (copies[0] / "predictions" / "fold1_oof.parquet").unlink()
    garbage = Path(shutil.copytree(tiny_study.run_dirs[1], ws / "runs" / "run-garbage"))
    (garbage / "status.json").write_bytes(b"\x89\xff\xfe\x00garbage")
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    return copies


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"../pages/{page}").run()
    return at


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


def test_folds_page_names_the_damaged_run_and_the_missing_file(damaged_env):
    at = open_page("folds.py")
    assert any("run-garbage" in w.value and "left out" in w.value for w in at.warning)
    at.selectbox(key="folds_run").set_value(damaged_env[0].name).run()
    assert not at.exception
    assert any("fold1_oof.parquet" in e.value and "are done" in e.value for e in at.error)
    at.selectbox(key="folds_run").set_value(damaged_env[1].name).run()  # the intact run still compares
    assert not at.exception and not at.error and at.dataframe
