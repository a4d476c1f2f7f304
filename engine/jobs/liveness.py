"""Is a job really alive? Moved to :mod:`engine.runs.liveness` (the run listing needs it below the job
layer); the names stay importable from here."""

from engine.runs.liveness import (
    ACTIVE_STATES,
    FINAL_STATES,
    GONE_MESSAGE,
    HEARTBEAT_S,
    HEARTBEAT_STALE_S,
    check_job_process,
    effective_status,
    job_is_alive,
    job_process_fields,
    liveness_problem,
    now_iso,
    parse_time,
    pid_alive,
    seconds_since,
    with_liveness,
)
from engine.runs.status import run_progress as folds_progress

__all__ = [
    "ACTIVE_STATES", "FINAL_STATES", "GONE_MESSAGE", "HEARTBEAT_S", "HEARTBEAT_STALE_S", "check_job_process",
    "effective_status", "folds_progress", "job_is_alive", "job_process_fields", "liveness_problem", "now_iso",
    "parse_time", "pid_alive", "seconds_since", "with_liveness",
]
