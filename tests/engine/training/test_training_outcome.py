"""Who writes a run's state: train_folds writes per-fold entries only; train_run (a script's own session)
records the run-level outcome once, with the same error text a background job records."""

from __future__ import annotations

import pytest

from engine.runs import read_status
from engine.training import fit
from engine.training.config import load_run_configs
from engine.training.create import create_runs


@pytest.fixture
def run_dir(tmp_path, tiny_config, monkeypatch):
    (run_dir,) = create_runs(load_run_configs(tiny_config(**{"split.k": 2})), workspace=tmp_path)
    monkeypatch.setattr(fit, "open_run_images", lambda ctx: None)  # no image decoding: the fold is faked below
    return run_dir


def _fold_that_fails(ctx, fold, progress, should_stop):
    fit.store.update_fold_status(ctx.run_dir, fold, state="running")
    fit.store.update_fold_status(ctx.run_dir, fold, state="failed")
    raise ValueError("the batch went sideways")


def test_train_folds_leaves_the_run_level_state_to_its_caller(run_dir, monkeypatch):
    monkeypatch.setattr(fit, "train_fold", _fold_that_fails)
    with pytest.raises(ValueError):
        fit.train_folds(run_dir, folds=[0], device="cpu")
    status = read_status(run_dir)
    assert status["folds"]["0"]["state"] == "failed"
    assert status["state"] == "queued" and status["error"] is None and status["started_at"] is None


def test_train_run_records_the_outcome_once_with_the_jobs_error_text(run_dir, monkeypatch):
    from engine.jobs import runner

    monkeypatch.setattr(fit, "train_fold", _fold_that_fails)
    with pytest.raises(ValueError):
        fit.train_run(run_dir, folds=[0], device="cpu")
    status = read_status(run_dir)
    assert status["state"] == "failed" and status["started_at"] and status["finished_at"]
    assert status["error"] == runner.error_text(ValueError("the batch went sideways"), run_dir)
