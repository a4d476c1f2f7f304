"""Fixtures of the analysis tests: synthetic run directories (see synthetic_runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import write_run


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "workspace" / "runs"
    root.mkdir(parents=True)
    return root


@pytest.fixture
def make_run(runs_root):
    """``make_run(run_id, **options)``: :func:`write_run` under this test's ``workspace/runs``."""
    return lambda run_id, **options: write_run(runs_root, run_id, **options)
