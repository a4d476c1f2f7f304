"""Hyperparameter search with Optuna over the run store: each trial is a normal run through the launcher.

Public face::

    from engine.search import launch_search, list_searches, search_trials, cancel_search

    path = launch_search("configs/search-demo.yaml", trials=6)   # detached process; returns at once
    list_searches()[0]["state"]                                   # queued / running / done / failed / cancelled
    search_trials(path)                                           # number, state, value, run_id, params...
    cancel_search(path)                                           # cancels its running trial too

A search is an Optuna study in ``<workspace>/optuna.db`` (SQLite, ``optuna.storages.RDBStorage``;
``optuna-dashboard sqlite:///workspace/optuna.db`` opens it) plus a record in
``<workspace>/searches/<search_id>/``. See :mod:`engine.search.config` (the ``search:`` section),
:mod:`engine.search.space` (suggestions -> run configs), :mod:`engine.search.runner` (the search
process, pruning) and :mod:`engine.search.launch` (create / start / cancel / resume / results).
"""

from engine.search.config import SearchConfig, parse_search_section, split_search_config
from engine.search.launch import (
    best_trial,
    cancel_search,
    create_search,
    launch_search,
    prepare_search,
    resume_search,
    search_trials,
    start_search,
)
from engine.search.record import SearchRecord, effective_search_status, list_searches, read_search
from engine.search.runner import objective_value, run_search
from engine.search.space import augment_at_strength, trial_config
from engine.search.storage import load_study, storage_path, storage_url

__all__ = [
    "SearchConfig", "SearchRecord", "augment_at_strength", "best_trial", "cancel_search", "create_search",
    "effective_search_status", "launch_search", "list_searches", "load_study", "objective_value",
    "parse_search_section", "prepare_search", "read_search", "resume_search", "run_search", "search_trials",
    "split_search_config", "start_search", "storage_path", "storage_url", "trial_config",
]
