"""The studio shell in AppTest: the demo dataset by default, opening datasets (good and broken), the jobs strip."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")


@pytest.fixture(scope="module")
def shell_workspace(tmp_path_factory, demo_spec_path):
    """A workspace for this module whose demo dataset is the session's (linked, so it is not written again)."""
    ws = tmp_path_factory.mktemp("shell-ws")
    (ws / "datasets").mkdir()
    (ws / "datasets" / "digits-demo").symlink_to(demo_spec_path.parent, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
        mp.delenv("FOLD_STUDIO_DATASET", raising=False)
        yield ws


@pytest.fixture
def workspace(shell_workspace):
    """Each test starts without a recently-opened list or runs."""
    yield shell_workspace
    (shell_workspace / "studio" / "recent_datasets.json").unlink(missing_ok=True)
    shutil.rmtree(shell_workspace / "runs", ignore_errors=True)


def run_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60).run()


def sidebar_text(at: AppTest) -> str:
    return "\n".join(str(getattr(e, "value", "")) for e in [*at.sidebar.markdown, *at.sidebar.caption])


def open_path(at: AppTest, path: str | Path) -> AppTest:
    at.sidebar.text_input(key="sidebar_dataset_input").input(str(path))
    at.sidebar.button[0].click()  # the form's "Open"
    return at.run()


@pytest.fixture
def garbage_folder(tmp_path) -> Path:
    """A folder a user might point at by mistake: no spec, no CSV, no class folder of images."""
    folder = tmp_path / "not-a-dataset"
    (folder / "stuff").mkdir(parents=True)
    (folder / "notes.txt").write_text("hello")
    (folder / "stuff" / "blob.bin").write_bytes(b"\x00garbage" * 10)
    return folder


def test_shell_opens_the_demo_dataset_by_default(workspace):
    at = run_app()
    assert not at.exception
    assert (workspace / "datasets" / "digits-demo" / "dataset.yaml").is_file()
    text = sidebar_text(at)
    assert "digits-demo" in text and "1,438 training images" in text and "10 classes" in text
    assert str(workspace) in text  # the workspace is named
    assert "No training job running." in text
    assert at.title[0].value == "Data"


def test_broken_dataset_shows_the_engine_message_and_no_traceback(workspace, garbage_folder):
    from engine.data import open_dataset
    from engine.errors import DatasetError

    with pytest.raises(DatasetError) as engine_error:
        open_dataset(garbage_folder, write_detected_spec=False)
    at = open_path(run_app(), garbage_folder)
    assert not at.exception
    assert len(at.sidebar.error) == 1
    assert str(engine_error.value) in at.sidebar.error[0].value
    assert any("Open a dataset" in i.value for i in at.info)  # the page says what to do
    assert not at.title  # and draws nothing of the old dataset

    demo = next(b for b in at.sidebar.button if b.label == "Demo dataset")
    demo.click()
    at.run()
    assert not at.exception and not at.sidebar.error
    assert "digits-demo" in sidebar_text(at)


def listed_pages() -> list[str]:
    """Page files of studio/app.py's PAGES that exist, as AppTest.switch_page wants them."""
    import ast

    tree = ast.parse(Path(APP).read_text())
    pages = next(ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in n.targets))
    return [f"../pages/{file}" for _, file, _, _ in pages if (REPO_ROOT / "pages" / file).is_file()]


@pytest.mark.parametrize("page", listed_pages())
def test_every_page_survives_a_broken_dataset(workspace, garbage_folder, page):
    at = open_path(run_app(), garbage_folder)
    at.switch_page(page).run()
    assert not at.exception, f"{page}: {at.exception}"
    assert at.sidebar.error  # the sidebar still says why


def test_missing_path_shows_a_message(workspace, tmp_path):
    at = open_path(run_app(), tmp_path / "nowhere")
    assert not at.exception
    assert "does not exist" in at.sidebar.error[0].value


def test_open_a_dataset_by_path_and_find_it_in_recent(workspace, demo_spec_path):
    at = open_path(run_app(), demo_spec_path)
    assert not at.exception and not at.sidebar.error
    assert at.session_state["dataset_path"] == str(demo_spec_path)
    recent = at.session_state["recent_datasets"]
    assert recent[0] == str(demo_spec_path) and len(recent) == 2  # the default demo came first
    # A new session (a browser refresh, a studio restart) continues with the last dataset; the list is kept
    # in the workspace.
    again = run_app()
    assert again.session_state["dataset_path"] == str(demo_spec_path)
    assert again.session_state["recent_datasets"] == recent
    back = next(b for b in again.sidebar.button if b.key == "sidebar_recent_0")
    assert back.help == recent[1]
    back.click()
    again.run()
    assert again.session_state["dataset_path"] == recent[1]
    assert again.session_state["recent_datasets"] == recent[::-1]


def test_running_jobs_strip_lists_live_jobs_only(workspace):
    from engine.jobs.liveness import now_iso
    from studio.loaders import active_jobs

    alive = {"pid": os.getpid(), "updated_at": now_iso()}  # this test's process stands in for a job
    for run_id, state, extra in (("run-a", "running", alive), ("run-b", "done", alive), ("run-c", "queued", alive),
                                 ("run-dead", "running", {"pid": 2**22 + 17, "updated_at": now_iso()})):
        run = workspace / "runs" / run_id
        run.mkdir(parents=True)
        status = {"run_id": run_id, "state": state, "progress": 0.5, **extra,
                  "folds": {"0": {"state": "done"}, "1": {"state": "running"}}}
        (run / "status.json").write_text(json.dumps(status))
    (workspace / "runs" / "broken").mkdir()
    (workspace / "runs" / "broken" / "status.json").write_text("{not json")

    jobs = active_jobs(workspace)
    assert {j["run_id"] for j in jobs} == {"run-a", "run-c"}  # done, dead and unreadable runs are left out
    assert next(j for j in jobs if j["run_id"] == "run-a")["folds"] == "1/2 folds"
    at = run_app()
    assert not at.exception
    assert "2 job(s) running or queued" in sidebar_text(at)
