"""Damaged run directories, one time rule, one progress formula: what the store's readers and listing do.

Each case here was handled differently (or with a traceback) by two copies of the same logic before
the store became the one reader of a run directory.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from engine.errors import RunDamagedError, RunError
from engine.jobs.liveness import folds_progress, liveness_problem
from engine.runs import (
    DAMAGED,
    list_run_records,
    list_runs,
    read_run,
    read_status,
    run_dirs,
    run_progress,
    update_fold_status,
    update_status,
    workspace_of,
)
from engine.runs.timestamps import now_iso, parse_time, seconds_between, seconds_since
from tests.engine.runs.damaged_runs import DAMAGED_STATUS, WHAT_IS_WRONG, make_run, queued_status


@pytest.mark.parametrize("kind", list(DAMAGED_STATUS))
def test_a_damaged_status_is_named_and_listed_as_damaged_next_to_intact_runs(tmp_path, kind):
    intact = make_run(tmp_path, "run-intact", created_at="2024-01-02T00:00:00+00:00")
    broken = make_run(tmp_path, "run-broken", status=DAMAGED_STATUS[kind])
    with pytest.raises(RunDamagedError, match=WHAT_IS_WRONG[kind]) as err:
        read_status(broken)
    assert str(broken / "status.json") in str(err.value) and "run-broken" in str(err.value)
    assert isinstance(err.value, RunError)  # the CLI and pages catch EngineError / RunError

    runs = list_runs(tmp_path).set_index("run_id")
    assert set(runs.index) == {"run-intact", "run-broken"}
    assert runs.at["run-intact", "state"] == "queued" and pd.isna(runs.at["run-intact", "error"])
    assert runs.at["run-broken", "state"] == DAMAGED and WHAT_IS_WRONG[kind] in runs.at["run-broken", "error"]
    assert [r.run_id for r in list_run_records(tmp_path, states=[DAMAGED])] == ["run-broken"]
    assert read_run(intact).state == "queued"


def test_wrong_types_inside_a_fold_are_named_with_the_field(tmp_path):
    status = queued_status("r")
    status["folds"]["1"]["epoch"] = "two"
    run_dir = make_run(tmp_path, "r", status=json.dumps(status).encode())
    with pytest.raises(RunDamagedError, match=r"'folds\.1'\.epoch must be an integer or null, got str 'two'"):
        read_status(run_dir)


def test_a_damaged_config_makes_the_run_damaged_without_hiding_others(tmp_path):
    make_run(tmp_path, "ok")
    bad = make_run(tmp_path, "bad-config")
    (bad / "config.yaml").write_text("model: [unclosed\n")
    record = read_run(bad)
    assert record.state == DAMAGED and "config.yaml" in record.error and record.status["state"] == "queued"
    assert set(list_runs(tmp_path)["state"]) == {"queued", DAMAGED}


def test_a_half_created_run_is_never_listed(tmp_path):
    make_run(tmp_path, "done-creating")
    staging = tmp_path / "runs" / ".creating-20240101-000000-abcdef-x"
    staging.mkdir()
    (staging / "status.json").write_text(json.dumps(queued_status("x")))
    assert [p.name for p in run_dirs(tmp_path)] == ["done-creating"]


# ---------------------------------------------------------------- timestamps: one rule


def test_timestamps_are_written_in_utc_and_naive_ones_read_as_utc(monkeypatch):
    assert now_iso().endswith("+00:00") and parse_time(now_iso()).utcoffset() == timedelta(0)
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # far from UTC: a local-time reading would be 9 hours off
    time.tzset()
    try:
        naive_now = datetime.now(UTC).replace(tzinfo=None).isoformat()
        assert abs(seconds_since(naive_now)) < 60
        # a job beating in naive UTC is alive, whatever the reader's time zone
        import os

        assert liveness_problem({"state": "running", "pid": os.getpid(), "updated_at": naive_now}) is None
        assert seconds_between("2024-01-01T00:00:00", "2024-01-01T00:00:30+00:00") == 30.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_update_status_keeps_an_updated_at_the_caller_gives(tmp_path):
    run_dir = make_run(tmp_path, "r")
    assert update_status(run_dir, updated_at="2020-01-01T00:00:00+00:00")["updated_at"] == "2020-01-01T00:00:00+00:00"
    assert seconds_since(update_status(run_dir, message="x")["updated_at"]) < 60  # stamped when not given


# ---------------------------------------------------------------- progress: one formula


def test_progress_is_one_formula_for_the_store_the_liveness_check_and_the_studio(tmp_path):
    run_dir = make_run(tmp_path, "r")
    # fold 1 finished 2 of its 4 epochs, its batch count not known yet: half of that fold
    status = update_fold_status(run_dir, 1, state="running", epoch=3, epochs=4, batch=0, batches=0)
    assert status["progress"] == run_progress(status) == folds_progress(status) == 0.25


def test_workspace_of_a_run_directory(tmp_path):
    assert workspace_of(tmp_path / "ws" / "runs" / "r1") == tmp_path / "ws"
    assert workspace_of(tmp_path / "elsewhere" / "r1") is None
