"""Visit every page of the studio's navigation in Chromium: no exception shown, a screenshot of each.

Screenshots land in artifacts/screenshots/ (git-ignored; FOLD_STUDIO_SCREENSHOTS overrides): look at them.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest

PlaywrightTimeoutError = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").TimeoutError

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser

DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
RUNNING = '[data-testid="stApp"][data-test-script-state="running"]'
NAV_LINKS = '[data-testid="stSidebarNav"] a[data-testid="stSidebarNavLink"]'
MAX_SHOT_HEIGHT = 6000


def listed_pages() -> list[tuple[str, str]]:
    """(title, file) of every page in studio/app.py's PAGES whose file exists, read without running the app."""
    tree = ast.parse((REPO_ROOT / "studio" / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            pages = ast.literal_eval(node.value)
            return [(title, file) for _, file, title, _ in pages if (REPO_ROOT / "pages" / file).is_file()]
    raise AssertionError("studio/app.py has no PAGES list")


# Everything in view drawn: no skeleton or stale element left, images decoded, tables and charts painted
# (elements in a closed expander or tab are not drawn until opened, so only visible ones count).
SETTLED = """() => {
  const shown = sel => [...document.querySelectorAll(sel)].filter(e => e.checkVisibility());
  return shown('[data-testid="stSkeleton"], [data-stale="true"]').length === 0
    && shown('img').every(i => i.complete)
    && shown('[data-testid="stDataFrame"]').every(d => d.querySelector('canvas'))
    && shown('[data-testid="stPlotlyChart"]').every(c => c.querySelector('.main-svg'));
}"""


def wait_for_run(page) -> None:
    """Wait until the script run started by the last action (a visit, a click) has finished and is drawn."""
    page.wait_for_selector('[data-testid="stSidebarUserContent"]', state="attached")
    try:  # the run may not have started yet when the action returns
        page.wait_for_selector(RUNNING, state="attached", timeout=2_000)
    except PlaywrightTimeoutError:
        pass
    page.wait_for_selector(DONE, state="attached")
    page.wait_for_function(SETTLED, polling=200)


def assert_no_exception(page, where: str) -> None:
    errors = page.locator('[data-testid="stException"]')
    if errors.count():
        raise AssertionError(f"{where} shows an exception:\n{errors.first.inner_text()[:2000]}")


def screenshot(page, path: Path) -> None:
    """Full-page screenshot: Streamlit scrolls inside its main area, so grow the viewport to the content first."""
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stAppViewContainer"], section.main\')].map(e => e.scrollHeight), 900)'
    )
    page.set_viewport_size({"width": 1440, "height": min(int(height) + 40, MAX_SHOT_HEIGHT)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def test_every_page_renders_without_exception(studio_url, page, screenshot_dir):
    page.goto(studio_url)
    wait_for_run(page)
    links = page.locator(NAV_LINKS)
    # A link's text is its icon's name, then its title.
    nav = [
        (links.nth(i).inner_text().strip().splitlines()[-1].strip(), links.nth(i).get_attribute("href"))
        for i in range(links.count())
    ]
    expected = [title for title, _ in listed_pages()]
    if len(expected) == 1:  # Streamlit hides the navigation menu while there is a single page
        nav = [(expected[0], studio_url)]
    assert [title for title, _ in nav] == expected, f"navigation shows {nav}, studio/app.py lists {expected}"
    for title, href in nav:
        page.goto(href if href.startswith("http") else studio_url.rstrip("/") + "/" + href.lstrip("/"))
        started = time.monotonic()
        wait_for_run(page)
        print(f"{title}: {time.monotonic() - started:.1f} s")
        assert_no_exception(page, f"page {title!r} ({href})")
        assert page.get_by_text("Page not found").count() == 0, f"{href} is not a page"
        screenshot(page, screenshot_dir / f"{slug(title)}.png")


def test_data_page_tabs(studio_url, page, screenshot_dir):
    """Each tab of the Data page (computed only when opened) renders; the gallery pages on."""
    page.goto(studio_url)
    wait_for_run(page)
    for tab in ("Classes", "Metadata", "Image properties", "Problems", "Gallery"):
        page.get_by_role("tab", name=tab).click()
        wait_for_run(page)
        assert_no_exception(page, f"Data page, tab {tab!r}")
        screenshot(page, screenshot_dir / f"data-{slug(tab)}.png")
    page.get_by_role("button", name="Next").click()
    wait_for_run(page)
    assert page.get_by_text("Page 2 of").count() == 1
    assert_no_exception(page, "Data page gallery, page 2")


def test_broken_dataset_path_shows_a_message(studio_url, page, screenshot_dir, tmp_path):
    (tmp_path / "not-a-dataset" / "stuff").mkdir(parents=True)
    (tmp_path / "not-a-dataset" / "notes.txt").write_text("hello")
    page.goto(studio_url)
    wait_for_run(page)
    page.get_by_placeholder("/path/to/folder or dataset.yaml").fill(str(tmp_path / "not-a-dataset"))
    page.get_by_role("button", name="Open", exact=True).click()
    wait_for_run(page)
    assert_no_exception(page, "Data page after opening a broken dataset")
    sidebar_error = page.locator('[data-testid="stSidebar"] [data-testid="stAlertContentError"]')
    assert "Cannot open this dataset." in sidebar_error.inner_text()
    assert page.get_by_text("Open a dataset to start.").count() == 1
    screenshot(page, screenshot_dir / "broken-dataset.png")


STUDY_PAGES = ["train", "folds", "ensemble", "gradcam", "review", "submit"]


def test_study_pages_render_real_runs(study_studio_url, page, screenshot_dir):
    """Train, Folds, Ensemble (every tab), Grad-CAM, Review and Submit on a real trained study: no exception,
    screenshots."""
    for name in STUDY_PAGES:
        page.goto(f"{study_studio_url.rstrip('/')}/{name}")
        wait_for_run(page)
        assert_no_exception(page, f"page {name!r} on the tiny study")
        assert page.get_by_text("No runs yet").count() == 0, f"{name}: the study's runs are not found"
        screenshot(page, screenshot_dir / f"study-{name}.png")
        if name == "ensemble":
            for tab in ("TTA gains", "Label smoothing", "Augmentation", "Combinations", "Label overrides"):
                page.get_by_role("tab", name=tab).click()
                wait_for_run(page)
                assert_no_exception(page, f"Ensemble page, tab {tab!r}")
                screenshot(page, screenshot_dir / f"study-ensemble-{slug(tab)}.png")
