"""Faults around *Launch training*, in Chromium against a real studio server: the server SIGKILLed while the job it
started trains (the job goes on, a restarted studio shows it and follows it to the end), and two browser sessions
pressing *Launch* on the same form at once (two intact runs, one device queue: one trains, the other waits).
Screenshots: launch-after-studio-killed.png, launch-two-sessions.png."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time

import pytest

from engine.jobs import resolve_devices
from engine.runs import job_is_alive, list_runs, parse_time, read_run, read_split, read_status, run_dirs
from engine.runs.store import read_config, read_metrics
from tests.browser.conftest import _require_browser, serve_studio, start_studio, stop_studio
from tests.browser.test_pages import assert_no_exception, screenshot, wait_for_run
from tests.engine.jobs.job_helpers import kill_jobs

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOB_TIMEOUT_S = 300  # each job process imports torch + timm: slow on a busy 2-core runner


def fill_train_form(page, url: str, *, epochs: int) -> None:
    """Open the Train page and set the form for a tiny run (32 px, k=2, no data workers); Launch is not pressed."""
    page.goto(f"{url}/train")
    wait_for_run(page)
    assert_no_exception(page, "Train page")
    for label, value in (("Image size", 32), ("Folds (k)", 2), ("Epochs", epochs), ("Data workers", 0)):
        box = page.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Tab")


def wait_until(predicate, what: str, timeout: float = JOB_TIMEOUT_S, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def raw_state(run_dir) -> str:
    return read_status(run_dir)["state"]


def assert_opens(run_dir) -> None:
    """Everything a page reads of a run can be read: its record is not damaged, its config and split load."""
    record = read_run(run_dir)
    assert not record.damaged, record.damage
    assert read_config(run_dir)["name"] and not read_split(run_dir).empty


@pytest.fixture
def tiny_jobs(tmp_path, monkeypatch, hub_cache):
    """Jobs with one thread each, and an empty hub cache: the form's model trains from scratch whatever this
    machine has cached. No job outlives the test."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield tmp_path / "workspace"
    kill_jobs(tmp_path / "workspace")


def test_a_job_goes_on_when_the_studio_is_killed_and_the_restarted_studio_follows_it(
        tmp_path, mini_spec_path, tiny_jobs, page, screenshot_dir):
    _require_browser()
    workspace = tiny_jobs
    studio, url = start_studio(tmp_path, workspace, str(mini_spec_path))
    try:
        fill_train_form(page, url, epochs=4)
        page.get_by_role("button", name="Launch training").click()
        page.get_by_text("Launched 1 run(s)").wait_for()
        (run_dir,) = run_dirs(workspace)
        wait_until(lambda: raw_state(run_dir) == "running", "the job to start training")
        os.kill(studio.pid, signal.SIGKILL)  # no shutdown handler runs: what a crash or `kill -9` does
        studio.wait(timeout=30)
    finally:
        if studio.poll() is None:
            stop_studio(studio)
    epochs = len(read_metrics(run_dir))
    wait_until(lambda: len(read_metrics(run_dir)) > epochs, "an epoch trained after the studio died")
    status = read_status(run_dir)
    assert status["state"] == "running" and job_is_alive(status), status  # the job goes on without the studio
    assert_opens(run_dir)

    # Hold the job still while the studio starts again (SIGSTOP, then SIGCONT): the restarted studio then finds
    # it in the middle of training, however fast this machine trains.
    os.killpg(status["pgid"], signal.SIGSTOP)

    def resume_job() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(status["pgid"], signal.SIGCONT)

    def state_metric(text: str):  # the monitor's "State" (the runs table above has the same words, hidden)
        return page.locator('[data-testid="stMetric"]').filter(has_text=text)

    try:
        with serve_studio(tmp_path, workspace, str(mini_spec_path)) as url:
            page.goto(f"{url}/train")
            expect(page.get_by_label("Run", exact=True)).to_have_value(re.compile(f"· {run_dir.name}$"),
                                                                     timeout=90_000)
            state_metric("▶ running").wait_for()
            assert_no_exception(page, "Train page after the restart")
            resume_job()
            # the monitor polls the run directory: it follows the job to its end without a reload
            state_metric("✓ done").wait_for(timeout=JOB_TIMEOUT_S * 1000)
            wait_for_run(page)
            assert_no_exception(page, "Train page, the job done")
            screenshot(page, screenshot_dir / "launch-after-studio-killed.png")
    finally:
        resume_job()
    status = read_status(run_dir)
    assert status["state"] == "done" and all(f["state"] == "done" for f in status["folds"].values()), status
    assert_opens(run_dir)


def test_two_sessions_pressing_launch_at_once_get_two_intact_runs_and_share_the_device_queue(
        tmp_path, mini_spec_path, tiny_jobs, browser, page, screenshot_dir):
    _require_browser()
    workspace = tiny_jobs
    device = resolve_devices("auto")[0]  # what the form's "auto" trains on here
    other = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1).new_page()
    other.set_default_timeout(90_000)
    pages = [page, other]
    try:
        with serve_studio(tmp_path, workspace, str(mini_spec_path)) as url:
            for p in pages:
                fill_train_form(p, url, epochs=1)
            buttons = [p.get_by_role("button", name="Launch training") for p in pages]
            for button in buttons:  # back to back: both sessions' scripts create their run at the same time
                button.click()
            for p in pages:
                p.get_by_text("Launched 1 run(s)").wait_for()
                assert_no_exception(p, "after Launch in two sessions")

            runs = list_runs(workspace)
            assert len(runs) == 2 and runs["run_id"].is_unique, runs
            assert not runs["state"].eq("damaged").any(), runs[["run_id", "state", "error"]]
            dirs = run_dirs(workspace)
            for run_dir in dirs:
                assert_opens(run_dir)
            assert not list((workspace / "runs").glob(".creating-*"))

            # The queue: never two runs training at once; the second waits for the device, and its page says so.
            # The first to train is held still (SIGSTOP) until then, so the wait shows however fast it trains.
            most_running = 0

            def statuses() -> list[dict]:
                nonlocal most_running
                found = [read_status(d) for d in dirs]
                most_running = max(most_running, sum(s["state"] == "running" for s in found))
                return found

            def waits(s: dict) -> bool:
                return s["state"] == "queued" and str(s.get("message")).startswith(f"waiting for {device}")

            wait_until(lambda: any(s["state"] == "running" for s in statuses()), "a run to train", poll=0.02)
            (training,) = [s for s in statuses() if s["state"] == "running"]
            os.killpg(training["pgid"], signal.SIGSTOP)
            try:
                wait_until(lambda: any(waits(s) for s in statuses()), "the other run to wait for the device")
                wait_until(lambda: any(p.get_by_text(f"waiting for {device}").count() for p in pages),
                           "a page to say that its run waits", timeout=60)
                (says,) = [p for p in pages if p.get_by_text(f"waiting for {device}").count()]
                screenshot(says, screenshot_dir / "launch-two-sessions.png")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(training["pgid"], signal.SIGCONT)
            wait_until(lambda: all(s["state"] in ("done", "failed", "cancelled") for s in statuses()),
                       "both runs to finish")
            assert most_running == 1
            first, second = sorted((read_status(d) for d in dirs), key=lambda s: parse_time(s["started_at"]))
            assert first["state"] == second["state"] == "done", (first, second)
            assert parse_time(first["finished_at"]) <= parse_time(second["started_at"])  # one after the other
            for run_dir in dirs:
                assert_opens(run_dir)
    finally:
        other.context.close()
