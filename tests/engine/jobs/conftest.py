"""Fixtures of the job tests."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from engine.jobs.liveness import now_iso


@pytest.fixture
def fake_run(tmp_path):
    """A minimal run directory (config, split with 3 folds + holdout, queued status) in <tmp>/runs/."""
    run_dir = tmp_path / "runs" / "fake-run"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"dataset": "/nowhere/dataset.yaml", "device": "cpu"}))
    pd.DataFrame(
        {"sample_id": list("abcdefg"), "fold": [0, 1, 2, 0, 1, 2, -1], "is_holdout": [False] * 6 + [True]}
    ).to_parquet(run_dir / "split.parquet")
    status = {
        "run_id": run_dir.name,
        "state": "queued",
        "pid": None,
        "created_at": now_iso(),
        "updated_at": now_iso(),
        "folds": {str(k): {"state": "queued"} for k in range(3)},
    }
    (run_dir / "status.json").write_text(json.dumps(status))
    return run_dir
