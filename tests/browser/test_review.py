"""Label review in Chromium on the demo dataset with 10% of its labels flipped: the Review page (and a decision
taken there), the Data page's overrides note, the Ensemble page's "Label overrides" tab, and the Submit page's
CV-vs-leaderboard chart. Screenshots in artifacts/screenshots/ (look at them)."""

from __future__ import annotations

import shutil

import pytest
from test_pages import assert_no_exception, screenshot, wait_for_run

pytestmark = pytest.mark.browser


def test_review_decide_and_compare_in_the_browser(review_studio_url, review_study, restore_overrides, page,
                                                  screenshot_dir):
    from engine.analysis.label_issues import label_issues
    from engine.data.overrides import read_overrides

    url = review_studio_url.rstrip("/")
    page.goto(f"{url}/review")
    wait_for_run(page)
    assert_no_exception(page, "Review page")
    assert page.get_by_text("Estimated wrong labels").count() == 1
    assert page.get_by_text("Grad-CAM for").count() >= 1
    screenshot(page, screenshot_dir / "review.png")

    # the page reviews the newest run; its first card without a decision gets one
    decided = read_overrides(review_study.spec_path).entries
    shown = label_issues(review_study.with_overrides).flagged().head(8)
    first = next(i for i, sid in enumerate(shown["sample_id"]) if sid not in decided)
    page.get_by_role("button", name="Exclude").nth(first).click()
    wait_for_run(page)
    assert_no_exception(page, "Review page after a decision")
    assert len(read_overrides(review_study.spec_path)) == len(decided) + 1
    assert page.get_by_text("excluded from training").count() >= 1
    page.mouse.move(0, 0)  # no tooltip over the card
    screenshot(page, screenshot_dir / "review-decided.png")

    page.goto(url)  # the Data page is the default page
    wait_for_run(page)
    assert_no_exception(page, "Data page with overrides")
    assert page.get_by_text("Label overrides applied").count() == 1
    screenshot(page, screenshot_dir / "data-overrides.png")

    page.goto(f"{url}/ensemble")
    wait_for_run(page)
    page.get_by_role("tab", name="Label overrides").click()
    wait_for_run(page)
    assert_no_exception(page, "Ensemble page, tab 'Label overrides'")
    assert page.get_by_text("images compared").count() == 1
    screenshot(page, screenshot_dir / "ensemble-label-overrides.png")


def test_submit_page_leaderboard_in_the_browser(review_studio_url, review_study, page, screenshot_dir):
    from engine.submission import make_submission, set_leaderboard_score

    ws = review_study.workspace
    subs = ws / "submissions"
    shutil.rmtree(subs, ignore_errors=True)
    try:
        for i, (voting, shift) in enumerate((("soft", 0.0), ("hard", -0.01), ("logit_mean", -0.3))):
            sub = make_submission(review_study.plain, out=subs / f"sub-{i}.csv", voting=voting, workspace=ws)
            set_leaderboard_score(f"sub-{i}", max(sub.record["expected"]["accuracy"] + shift, 0.0), workspace=ws)
        page.goto(f"{review_studio_url.rstrip('/')}/submit")
        wait_for_run(page)
        assert_no_exception(page, "Submit page")
        assert page.get_by_text("CV vs public leaderboard").count() >= 1
        assert page.get_by_text("lies outside").count() >= 1
        screenshot(page, screenshot_dir / "submit-leaderboard.png")
    finally:
        shutil.rmtree(subs, ignore_errors=True)
