"""Fixtures of the page tests: the studio pointed at the real tiny study, or at an empty workspace to train in."""

from __future__ import annotations

import pytest

from engine.jobs import effective_status, launcher_for_run


@pytest.fixture
def study_env(tiny_study, demo_spec_path, monkeypatch):
    """$FOLD_STUDIO_WORKSPACE at the tiny study's workspace and the demo dataset open; returns the study."""
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(tiny_study.workspace))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    return tiny_study


@pytest.fixture
def train_workspace(tmp_path, monkeypatch, demo_spec_path):
    """An empty workspace (the demo dataset linked in) for the Train page tests; jobs left alive are cancelled."""
    ws = tmp_path / "ws"
    (ws / "datasets").mkdir(parents=True)
    (ws / "datasets" / "digits-demo").symlink_to(demo_spec_path.parent, target_is_directory=True)
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    monkeypatch.delenv("FOLD_STUDIO_DATASET", raising=False)
    yield ws
    for run_dir in (ws / "runs").glob("*") if (ws / "runs").is_dir() else []:
        if effective_status(run_dir).get("alive"):
            launcher_for_run(run_dir, workspace=ws).cancel(run_dir)
