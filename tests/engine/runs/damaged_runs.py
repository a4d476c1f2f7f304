"""Run directories for the damage tests: small intact runs, and status.json as users found it broken."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from engine.runs.status import initial_status

# status.json after a crash, a bad copy, or an editor: each must list as damaged, never raise a traceback
DAMAGED_STATUS = {
    "random bytes": b"\x89\xff\xfe\x00\x13garbage\x80\x81",
    "nothing": b"",
    "a JSON list": b"[1, 2, 3]",
    "wrong types": json.dumps({"state": "running", "folds": 3, "progress": "x"}).encode(),
}
WHAT_IS_WRONG = {"random bytes": "not text", "nothing": "is empty", "a JSON list": "JSON list",
                 "wrong types": "'folds' must be an object"}


def queued_status(run_id: str) -> dict:
    return initial_status(run_id, name=run_id, study_id=None, subsets=["oof"], folds=2, epochs=1)


def make_run(workspace: Path, run_id: str, *, status: bytes | None = None, created_at: str | None = None) -> Path:
    """A small run directory (config, split, status) under ``workspace/runs``; ``status`` replaces status.json."""
    run_dir = Path(workspace) / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": run_id, "dataset": "/nowhere/dataset.yaml",
                                                         "model": {"name": "test_resnet"}, "split": {"k": 2}}))
    pd.DataFrame({"sample_id": list("abcd"), "fold": [0, 1, 0, 1], "is_holdout": [False] * 4}).to_parquet(
        run_dir / "split.parquet")
    if status is None:
        data = queued_status(run_id)
        if created_at:
            data["created_at"] = created_at
        status = json.dumps(data).encode()
    (run_dir / "status.json").write_bytes(status)
    return run_dir
