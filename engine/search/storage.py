"""The Optuna database of a workspace: ``<workspace>/optuna.db``, SQLite through ``optuna.storages.RDBStorage``.

One Optuna study per search (study name = search id). Any Optuna tool opens the same file::

    optuna studies --storage sqlite:///workspace/optuna.db
    optuna-dashboard sqlite:///workspace/optuna.db        # pip install optuna-dashboard
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.workspace import resolve_workspace

OPTUNA_DB = "optuna.db"
_STORAGES: dict[str, object] = {}
_LOCK = threading.Lock()


def storage_path(workspace: str | Path | None = None) -> Path:
    return resolve_workspace(workspace) / OPTUNA_DB


def storage_url(workspace: str | Path | None = None) -> str:
    return f"sqlite:///{storage_path(workspace)}"


def open_storage(workspace: str | Path | None = None):
    """The workspace's ``RDBStorage`` (created with its tables on first use; one per process and file)."""
    import optuna

    url = storage_url(workspace)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the engine's own log says what happens
    with _LOCK:
        if url not in _STORAGES:
            # A reader (the studio) and the search process share the file: wait for a lock, never fail at once.
            _STORAGES[url] = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        return _STORAGES[url]


def make_sampler(search):
    import optuna

    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.seed)
    return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=min(5, search.trials))


def make_pruner(search):
    """Median pruner on the per-epoch validation metric (``pruner_startup_trials``, ``pruner_warmup_epochs``)."""
    import optuna

    if search.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=search.pruner_startup_trials,
                                       n_warmup_steps=search.pruner_warmup_epochs)


def load_study(search_id: str, search=None, workspace: str | Path | None = None):
    """The Optuna study of search ``search_id`` (with its sampler and pruner when ``search`` is given)."""
    import optuna

    from engine.errors import RunError

    kwargs = {"sampler": make_sampler(search), "pruner": make_pruner(search)} if search is not None else {}
    try:
        return optuna.load_study(study_name=search_id, storage=open_storage(workspace), **kwargs)
    except KeyError:
        raise RunError(f"The Optuna database {str(storage_path(workspace))!r} has no study {search_id!r}.") from None
