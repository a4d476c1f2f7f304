"""The run store: one directory per run (config, split, status, metrics, predictions, weights) — storage only.

It imports nothing of the engine but :mod:`engine.errors`, :mod:`engine.io` and :mod:`engine.workspace`:
creating runs is the training layer's (:func:`engine.training.create_runs`), launching them the job
layer's (:mod:`engine.jobs`). Modules, each named for what it holds:

- :mod:`~engine.runs.layout` — the file names and paths of a run directory (the only module that spells them);
- :mod:`~engine.runs.timestamps` — one rule for times: written in UTC with an offset, naive ones read as UTC;
- :mod:`~engine.runs.status` — status.json: validated reads, locked atomic updates, progress, the final state;
- :mod:`~engine.runs.liveness` — the status a person should see (a dead job is failed), the job's process;
- :mod:`~engine.runs.store` — config (as a mapping), split, metrics, predictions, weights, log, studies;
- :mod:`~engine.runs.record` — :class:`RunRecord` and the one listing, :func:`list_runs`.
"""

from engine.runs.layout import (
    SUBSETS,
    config_path,
    log_path,
    metrics_path,
    predictions_dir,
    predictions_path,
    run_dir_of,
    run_dirs,
    split_path,
    status_path,
    weights_path,
    workspace_of,
)
from engine.runs.liveness import effective_status, job_is_alive, pid_alive
from engine.runs.record import RunRecord, list_run_records, list_runs, read_run, runs_frame
from engine.runs.status import (
    ACTIVE_STATES,
    DAMAGED,
    FINAL_STATES,
    STATES,
    expected_subsets,
    fold_is_complete,
    fold_share,
    mark_finished,
    mark_running,
    read_status,
    run_progress,
    update_fold_status,
    update_status,
)
from engine.runs.store import (
    append_metrics,
    best_metrics,
    drop_fold_metrics,
    list_studies,
    predictions_mtime,
    read_config,
    read_log_tail,
    read_metrics,
    read_predictions,
    read_split,
    read_study,
    write_config,
    write_predictions,
    write_weights,
)
from engine.runs.timestamps import now_iso, parse_time, seconds_between, seconds_since

__all__ = [
    "ACTIVE_STATES", "DAMAGED", "FINAL_STATES", "STATES", "SUBSETS", "RunRecord", "append_metrics", "best_metrics",
    "config_path", "drop_fold_metrics", "effective_status", "expected_subsets", "fold_is_complete", "fold_share", "job_is_alive",
    "list_run_records", "list_runs", "list_studies", "log_path", "mark_finished", "mark_running", "metrics_path",
    "now_iso", "parse_time", "pid_alive", "predictions_dir", "predictions_mtime", "predictions_path", "read_config",
    "read_log_tail", "read_metrics", "read_predictions", "read_run", "read_split", "read_status", "read_study",
    "run_dir_of", "run_dirs", "run_progress", "runs_frame", "seconds_between", "seconds_since", "split_path", "status_path",
    "update_fold_status", "update_status", "weights_path", "workspace_of", "write_config", "write_predictions",
    "write_weights",
]
