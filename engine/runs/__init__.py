"""The run store: one directory per run (config, split, status, metrics, predictions, weights)."""

from engine.runs.store import (
    create_runs,
    fold_is_complete,
    list_runs,
    list_studies,
    predictions_path,
    read_config,
    read_metrics,
    read_predictions,
    read_split,
    read_status,
    read_study,
    run_dir_of,
    update_fold_status,
    update_status,
    weights_path,
)

__all__ = [
    "create_runs", "fold_is_complete", "list_runs", "list_studies", "predictions_path", "read_config", "read_metrics",
    "read_predictions", "read_split", "read_status", "read_study", "run_dir_of", "update_fold_status", "update_status",
    "weights_path",
]
