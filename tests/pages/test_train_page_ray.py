"""Train page with the Ray backend (AppTest): offered only when a cluster answers, a study launched on it
trains and shows in the monitor (also after a restart) and on the Folds page, and Cancel stops a Ray run."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_train_page import APP, LAUNCH, fill_small_run, open_train_page, wait_for

import engine.runs as store
from engine.analysis.compare import compare_folds
from engine.jobs.launch_settings import write_settings
from studio import state

pytestmark = pytest.mark.slow



@pytest.fixture(autouse=True)
def _small_data(train_workspace, monkeypatch, mini_spec_path):  # after train_workspace clears it
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(mini_spec_path))  # 200 images: quick folds
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what each 1-CPU fold task gets on Ray


def fill_tiny_run(at: AppTest, *, epochs: int) -> None:
    fill_small_run(at, epochs=epochs)
    at.number_input(key="train_size").set_value(32)


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"../pages/{page}").run()
    assert not at.exception, at.exception
    return at


def test_ray_is_not_offered_when_no_cluster_answers_and_the_page_says_why(train_workspace):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"  # closed once the socket is
    write_settings(train_workspace, launcher="ray", ray_address=address)
    at = open_train_page()
    assert at.radio(key=state.TRAIN_LAUNCHER).options == ["This machine"]
    why = [c.value for c in at.caption if "not available" in c.value]
    assert why and f"No Ray cluster answers at '{address}'" in why[0] and "ray start --head" in why[0]


def test_a_study_launched_on_ray_trains_shows_everywhere_and_cancels(train_workspace, ray_cluster):
    write_settings(train_workspace, launcher="ray", ray_address=ray_cluster)
    at = open_train_page()
    choice = at.radio(key=state.TRAIN_LAUNCHER)
    assert choice.options == ["This machine", "Ray cluster"] and choice.value == "Ray cluster"
    assert any("1 node(s), 2 CPU(s), 0 GPU(s)" in c.value for c in at.caption)

    fill_tiny_run(at, epochs=1)
    at.text_input(key="train_ls").set_value("0.0, 0.1")
    at.button(key=LAUNCH).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Launched 2 run(s)" in s.value for s in at.success)
    run_dirs = [Path(p) for p in store.list_runs(train_workspace)["path"]]
    assert [store.read_status(r)["launcher"] for r in run_dirs] == ["ray", "ray"]
    for run_dir in run_dirs:
        assert wait_for(run_dir, {"done", "failed", "cancelled"})["state"] == "done"

    at = open_train_page()  # a studio restart: the monitor is rebuilt from the run directories
    assert all(s.endswith("done") for s in at.dataframe[0].value["state"])
    at = open_page("folds.py")  # the comparison pages read Ray runs like any other
    at.selectbox(key="folds_run").set_value(run_dirs[0].name).run()
    assert not at.exception
    np.testing.assert_allclose(at.dataframe[0].value["accuracy"].to_numpy(),
                               compare_folds(run_dirs[0]).oof["accuracy"].round(4).to_numpy())

    at = open_train_page()
    fill_tiny_run(at, epochs=300)
    at.button(key=LAUNCH).click().run()
    long_run = Path(store.list_runs(train_workspace).at[0, "path"])
    wait_for(long_run, {"running"})
    at = open_train_page()
    at.button(key=f"cancel_{long_run.name}").click().run()  # goes to Ray: the run's status names it
    assert not at.exception and not at.error, [e.value for e in at.error]
    status = wait_for(long_run, {"cancelled", "failed"}, timeout=60)
    assert status["state"] == "cancelled" and status["launcher"] == "ray", status


def test_a_search_launched_in_search_mode_with_ray_chosen_trains_its_trials_on_ray(train_workspace, ray_cluster):
    """Search mode shows the same *Where to train*; with the Ray cluster chosen, the search records it and
    its trial's run is trained by Ray's fold tasks (the search process itself runs in the background)."""
    from engine.search import effective_search_status, list_searches, read_search, search_trials

    write_settings(train_workspace, launcher="ray", ray_address=ray_cluster)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("../pages/train.py").run()
    at.segmented_control(key="train_mode").set_value("search").run()
    assert not at.exception, at.exception
    assert at.radio(key=state.TRAIN_LAUNCHER).value == "Ray cluster"
    at.number_input(key="train_search_size").set_value(32)
    at.number_input(key="train_search_epochs").set_value(1)
    at.number_input(key="train_search_trials").set_value(1)
    at.selectbox(key="train_search_on").set_value("fold0")
    at.number_input(key="train_search_workers").set_value(2)  # each fold would ask for 3 CPUs: no node has them
    at.button(key="FormSubmitter:search_form-Launch search").click().run()
    assert not at.exception
    assert any("Lower train.num_workers to at most 1" in e.value for e in at.error), [e.value for e in at.error]
    assert list_searches(train_workspace) == []  # refused before anything was written
    at.number_input(key="train_search_workers").set_value(0)
    at.button(key="FormSubmitter:search_form-Launch search").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (row,) = list_searches(train_workspace)
    record = read_search(row["path"])
    assert (record.base["launcher"], record.base["ray_address"]) == ("ray", ray_cluster)
    deadline = time.monotonic() + 240
    while effective_search_status(record.path)["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
    status = effective_search_status(record.path)
    trials = search_trials(record)
    assert status["state"] == "done", (status, trials.to_string())
    run_dir = train_workspace / "runs" / trials.at[0, "run_id"]
    assert store.read_status(run_dir)["launcher"] == "ray" and store.read_status(run_dir)["state"] == "done"
