"""In Chromium: launch an Optuna search from the Train page (on the demo dataset's 200-image subset, to keep the
suite short), watch its trials run in the background until Optuna's figures and the trials' runs show, restart
the studio and find it all again; the Ensemble page's augmentation tab on a real augmentation study.
Screenshots in artifacts/screenshots/."""

from __future__ import annotations

import pytest

from engine.search import list_searches, search_trials
from tests.browser.conftest import _require_browser, serve_studio
from tests.browser.test_pages import assert_no_exception, screenshot, wait_for_run

pytestmark = pytest.mark.browser

SEARCH_TIMEOUT_MS = 600_000  # two trials, each a job process importing torch, on a busy 2-core runner


def _open_search_mode(page, url: str) -> None:
    page.goto(f"{url.rstrip('/')}/train")
    wait_for_run(page)
    page.get_by_role("radio", name="Search hyperparameters (Optuna)").click()
    wait_for_run(page)
    assert_no_exception(page, "Train page, Search mode")


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def test_search_launched_from_the_browser_runs_in_the_background_and_survives_a_restart(
        tmp_path, mini_spec_path, page, screenshot_dir, monkeypatch):
    _require_browser()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the trials' job processes: one thread each on a busy runner
    workspace = tmp_path / "workspace"
    with serve_studio(tmp_path, workspace, str(mini_spec_path)) as url:
        _open_search_mode(page, url)
        for label, value in (("Image size", 32), ("Folds (k)", 2), ("Epochs", 1), ("Data workers", 0), ("Trials", 2)):
            _set_number(page, label, value)
        page.get_by_role("button", name="Launch search").click()
        wait_for_run(page)
        assert_no_exception(page, "after Launch search")
        assert page.get_by_text("started: its trials run one after another").count() == 1
        # the trials run in the background: the page polls until the search is done
        page.get_by_text("done · 2/2 trials").wait_for(timeout=SEARCH_TIMEOUT_MS)
        wait_for_run(page)
        assert_no_exception(page, "a finished search")
        (search,) = list_searches(workspace)
        trials = search_trials(search["path"])
        assert list(trials["state"]) == ["COMPLETE", "COMPLETE"], trials.to_string()
        assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
        screenshot(page, screenshot_dir / "search-train-page.png")
        page.get_by_role("tab", name="Parallel coordinates").click()
        page.wait_for_timeout(500)
        screenshot(page, screenshot_dir / "search-parallel-coordinates.png")
    # a new studio process on the same workspace: the search is read back from searches/ and optuna.db
    with serve_studio(tmp_path, workspace, str(mini_spec_path)) as url:
        _open_search_mode(page, url)
        assert page.get_by_text("done · 2/2 trials").count() == 1
        assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
        page.get_by_role("button", name="Use best (trial").click()
        wait_for_run(page)
        assert_no_exception(page, "after Use best")
        assert page.get_by_role("button", name="Launch training").count() == 1  # back in the Train form
        screenshot(page, screenshot_dir / "search-use-best.png")


def test_ensemble_augmentation_tab_on_a_real_study(tmp_path, augment_study, mini_spec_path, page, screenshot_dir):
    _require_browser()
    with serve_studio(tmp_path, augment_study.workspace, str(mini_spec_path)) as url:
        page.goto(f"{url.rstrip('/')}/ensemble")
        wait_for_run(page)
        page.get_by_role("tab", name="Augmentation").click()
        wait_for_run(page)
        assert_no_exception(page, "Ensemble page, Augmentation tab")
        assert page.get_by_text("Recall gain per class").count() >= 1 or page.locator(
            '[data-testid="stPlotlyChart"]').count() >= 2
        screenshot(page, screenshot_dir / "ensemble-augmentation.png")
