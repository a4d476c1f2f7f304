"""Real-browser fixtures: the studio served on a free port with its own workspace, and Debian's Chromium.

Skips (with the reason) only when /usr/bin/chromium or playwright is missing; `make test` installs both.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIR = Path(os.environ.get("FOLD_STUDIO_SCREENSHOTS", REPO_ROOT / "artifacts" / "screenshots"))
STARTUP_TIMEOUT_S = 90
CHROMIUM_ARGS = [
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-sandbox",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the studio exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(
        f"the studio did not answer /_stcore/health within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    )


def _require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; `make test` does it)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-test.txt)")


def start_studio(root: Path, workspace: Path, dataset: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run studio/app.py`` on a free port with ``workspace`` (and ``dataset`` open) and wait until it
    answers; return (its process, its URL). Stop it with :func:`stop_studio` (or kill it: a test may)."""
    port = _free_port()
    env = {
        **os.environ,
        "FOLD_STUDIO_WORKSPACE": str(workspace),
        "HF_HUB_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }
    env.pop("FOLD_STUDIO_DATASET", None)
    if dataset is not None:
        env["FOLD_STUDIO_DATASET"] = dataset
    log = root / f"streamlit-{port}.log"
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "studio" / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
    except BaseException:
        stop_studio(proc)
        raise
    return proc, url


def stop_studio(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def serve_studio(root: Path, workspace: Path, dataset: str | None = None):
    """Run ``streamlit run studio/app.py`` on a free port with ``workspace`` (and ``dataset`` open); yield its URL."""
    proc, url = start_studio(root, workspace, dataset)
    try:
        yield url
    finally:
        stop_studio(proc)


@pytest.fixture(scope="session")
def studio_url(tmp_path_factory) -> str:
    """The studio with a private, empty workspace (it writes the demo dataset there itself)."""
    _require_browser()
    root = tmp_path_factory.mktemp("studio")
    with serve_studio(root, root / "workspace") as url:
        yield url


@pytest.fixture(scope="session")
def study_studio_url(tmp_path_factory, tiny_study, demo_spec_path) -> str:
    """The studio on the tiny study's workspace: every comparison page has real runs to show."""
    _require_browser()
    with serve_studio(tmp_path_factory.mktemp("study-studio"), tiny_study.workspace, str(demo_spec_path)) as url:
        yield url


@pytest.fixture(scope="session")
def review_studio_url(tmp_path_factory, review_study) -> str:
    """The studio on the label-review study's workspace (the demo dataset with 10% of its labels flipped)."""
    _require_browser()
    with serve_studio(tmp_path_factory.mktemp("review-studio"), review_study.workspace,
                      str(review_study.spec_path)) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; `make test` does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(90_000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
