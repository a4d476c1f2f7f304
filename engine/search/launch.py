"""Create, start, cancel and resume searches; read their trials.

``launch_search(config)`` validates everything first (the base run config, the search section, every
end of every range), and only then writes the search's record and its Optuna study — a refused
config leaves the workspace and the database as they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import ConfigError, RunError
from engine.runs.liveness import ACTIVE_STATES, job_process_fields, now_iso
from engine.search.config import SearchConfig, absolute_paths, split_search_config
from engine.search.record import (
    LOG_FILE,
    SearchRecord,
    effective_search_status,
    read_search,
    search_dir_of,
    searches_dir,
    update_search_status,
    write_search,
)

CANCEL_TIMEOUT_S = 60.0


def _read_config(config: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None]:
    if isinstance(config, Mapping):
        return dict(config), None
    from engine.training.config import _read_yaml

    path = Path(config)
    return _read_yaml(path), path.resolve().parent


def _open_dataset(path: str):
    from engine.data import open_dataset
    from engine.errors import DatasetError

    try:
        return open_dataset(path, write_detected_spec=False)
    except DatasetError as e:
        raise ConfigError(f"The 'dataset' parameter: {e}") from None


def _default_name(base: dict[str, Any], search: SearchConfig) -> str:
    stem = base.get("name") or (base.get("model") or {}).get("name") or "run"
    return search.name or f"{stem} search"


def prepare_search(config: str | os.PathLike | Mapping[str, Any], *, trials: int | None = None,
                   timeout: float | None = None, overrides: Sequence[str] = ()) -> tuple[dict[str, Any], SearchConfig]:
    """Validate a search config (path or mapping) -> (base run config mapping with absolute paths, search section).

    ``trials`` / ``timeout`` override the section's; ``overrides`` (``dotted.key=value``) apply to the base.
    Raises :class:`ConfigError` naming the field; writes nothing.
    """
    from engine.search.space import check_space
    from engine.training.config import _set_dotted, load_run_configs, parse_override, validate_against_dataset

    data, base_dir = _read_config(config)
    if isinstance(data.get("search"), Mapping):  # --trials / --timeout win over the section's
        data["search"] = {**data["search"], **({"trials": trials} if trials is not None else {}),
                          **({"timeout": timeout} if timeout is not None else {})}
    base, search = split_search_config(data)
    for key, value in (parse_override(o) for o in overrides):
        _set_dotted(base, key, value)
    base = absolute_paths(base, base_dir)
    if "augment" in search.params:  # pipeline files among the choices: absolute too
        choices = [absolute_paths({"augment": c}, base_dir)["augment"] if isinstance(c, str) else c
                   for c in search.params["augment"].choices]
        search.params["augment"] = search.params["augment"].model_copy(update={"choices": choices})
    (cfg,) = load_run_configs(base)
    dataset = _open_dataset(cfg.dataset)
    validate_against_dataset(cfg, dataset)
    check_space(base, search, dataset)
    return base, search


def create_search(config: str | os.PathLike | Mapping[str, Any], *, trials: int | None = None,
                  timeout: float | None = None, overrides: Sequence[str] = (),
                  workspace: str | os.PathLike | None = None, launcher=None) -> Path:
    """Validate, then write the search's record (queued) and create its Optuna study; returns the search directory.

    ``launcher`` trains the trials (default: :func:`~engine.jobs.choose_launcher` from the base config's
    ``launcher`` / ``ray_address``, $FOLD_STUDIO_LAUNCHER, the workspace's settings). It is checked now (no
    Ray cluster at the address: refused before anything is written) and recorded in the base config, so
    every trial run, started later by the search's own process, goes to the same backend.
    """
    import optuna

    from engine.jobs import choose_launcher
    from engine.runs.layout import new_id
    from engine.search.storage import open_storage
    from engine.training.config import load_run_configs

    base, search = prepare_search(config, trials=trials, timeout=timeout, overrides=overrides)
    launcher = launcher or choose_launcher(workspace, name=base.get("launcher"), address=base.get("ray_address"))
    launcher.check(load_run_configs(base))  # no cluster, or no node that could take a trial's fold
    base = {**base, **launcher.config_fields()}
    name = _default_name(base, search)
    search_id = new_id("search-")
    path = searches_dir(workspace) / search_id
    path.mkdir(parents=True, exist_ok=False)
    created = now_iso()
    write_search(path, search_id=search_id, name=name, created_at=created, base=base, search=search)
    update_search_status(path, search_id=search_id, name=name, state="queued", pid=None, created_at=created,
                         started_at=None, finished_at=None, trials=search.trials, trials_done=0, error=None,
                         message="starting")
    study = optuna.create_study(storage=open_storage(workspace), study_name=search_id, direction=search.direction)
    study.set_user_attr("search_dir", str(path))
    study.set_user_attr("name", name)
    study.set_user_attr("objective", f"{search.evaluate_on} {search.metric}")
    return path


def start_search(search: str | os.PathLike, *, workspace: str | os.PathLike | None = None) -> dict[str, Any]:
    """Start the search process detached (``python -m engine search-job DIR``, its own session); return its status."""
    from engine.jobs.runner import job_environment

    _reap()
    path = search_dir_of(search, workspace)
    status = effective_search_status(path)
    if status.get("alive"):
        raise RunError(f"Search {path.name!r} is already running (pid {status.get('pid')}).")
    # A job's environment (this very engine on PYTHONPATH, the network policy, unbuffered output), in the workspace.
    env = {**job_environment(None), "FOLD_STUDIO_WORKSPACE": str(path.parent.parent)}
    update_search_status(path, state="queued", error=None, finished_at=None, message="starting",
                         updated_at=now_iso())
    with open(path / LOG_FILE, "ab") as log_file:
        log_file.write(f"\n=== search started {now_iso()} ===\n".encode())
        log_file.flush()
        proc = subprocess.Popen([sys.executable, "-m", "engine", "search-job", str(path)], env=env,
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _CHILDREN.append(proc)
    update_search_status(path, **job_process_fields(proc.pid, proc.pid), updated_at=now_iso())
    return effective_search_status(path)


_CHILDREN: list[subprocess.Popen] = []  # search processes started by this process, until reaped


def _reap() -> None:
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]


def launch_search(config: str | os.PathLike | Mapping[str, Any], *, trials: int | None = None,
                  timeout: float | None = None, overrides: Sequence[str] = (),
                  workspace: str | os.PathLike | None = None, launcher=None) -> Path:
    """Create a search and start it in the background; returns its directory (``<workspace>/searches/<id>``).
    ``launcher``: the backend its trials train on (see :func:`create_search`)."""
    path = create_search(config, trials=trials, timeout=timeout, overrides=overrides, workspace=workspace,
                         launcher=launcher)
    start_search(path, workspace=workspace)
    return path


def cancel_search(search: str | os.PathLike, *, workspace: str | os.PathLike | None = None,
                  timeout: float = CANCEL_TIMEOUT_S) -> dict[str, Any]:
    """Stop a search: SIGTERM its process (which cancels its running trial's run), then mark it cancelled."""
    from engine.jobs.launcher import stop_process_tree
    from engine.runs.liveness import check_job_process, pid_alive

    path = search_dir_of(search, workspace)
    status = effective_search_status(path)
    if status.get("raw_state") not in ACTIVE_STATES:
        raise RunError(f"Search {path.name!r} is not running (state: {status['state']}); nothing to cancel.")
    if pid_alive(status.get("pid")):
        check_job_process(status, path)  # the pid may belong to another program by now
        stop_process_tree(int(status["pid"]), status.get("pgid"), timeout=timeout, on_wait=_reap)
    if effective_search_status(path).get("raw_state") in ACTIVE_STATES:  # killed before it could say so
        _cancel_current_run(path)
        update_search_status(path, state="cancelled", finished_at=now_iso(), current_trial=None, current_run_id=None)
    return effective_search_status(path)


def _cancel_current_run(path: Path) -> None:
    from engine.jobs import effective_status, launcher_for_run
    from engine.runs.layout import status_path
    from engine.workspace import runs_dir

    run_id = effective_search_status(path).get("current_run_id")
    run_dir = runs_dir(path.parent.parent) / str(run_id)
    if run_id and status_path(run_dir).is_file() and effective_status(run_dir)["state"] in ACTIVE_STATES:
        launcher_for_run(run_dir, workspace=path.parent.parent).cancel(run_dir)


def check_resumable(search: str | os.PathLike, *, workspace: str | os.PathLike | None = None) -> Path:
    """The search's directory when it may be resumed (not running, trials missing); :class:`RunError` if not."""
    path = search_dir_of(search, workspace)
    record = read_search(path)
    status = effective_search_status(path)
    if status.get("alive"):
        raise RunError(f"Search {path.name!r} is running (pid {status.get('pid')}); nothing to resume.")
    if int(status.get("trials_done") or 0) >= record.search.trials:
        raise RunError(f"Search {path.name!r} has all its {record.search.trials} trials; launch a new search "
                       "for more.")
    return path


def resume_search(search: str | os.PathLike, *, workspace: str | os.PathLike | None = None) -> dict[str, Any]:
    """Start a stopped search again in the background: it runs the trials it still lacks (a trial left
    running by a dead search process is told FAIL and its run cancelled)."""
    return start_search(check_resumable(search, workspace=workspace), workspace=workspace)


# ---------------------------------------------------------------- results


def search_trials(search: str | os.PathLike | SearchRecord, *, workspace: str | os.PathLike | None = None
                  ) -> pd.DataFrame:
    """One row per trial: ``number``, ``state`` (COMPLETE / PRUNED / FAIL / RUNNING), ``value``, ``run_id``,
    ``run_state`` (the run's effective state; ``damaged`` when its status or config cannot be read, ``deleted``
    when it is gone), ``duration_s``, ``error`` (the trial's, else what is wrong with its run), then one column
    per parameter."""
    from engine.runs import read_run
    from engine.runs.layout import status_path
    from engine.search.storage import load_study
    from engine.workspace import runs_dir

    record = search if isinstance(search, SearchRecord) else read_search(search, workspace)
    study = load_study(record.search_id, workspace=record.workspace)
    rows = []
    for t in study.get_trials(deepcopy=False):
        run_id = t.user_attrs.get("run_id")
        run_dir = runs_dir(record.workspace) / str(run_id)
        run = read_run(run_dir) if run_id and status_path(run_dir).is_file() else None
        run_state = run.state if run is not None else ("deleted" if run_id else None)
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "run_id": run_id,
                     "run_state": run_state, "duration_s": duration,
                     "error": t.user_attrs.get("error") or (run.error if run is not None and run.damaged else None),
                     **{k: t.params.get(k) for k in record.search.params}})
    columns = ["number", "state", "value", "run_id", "run_state", "duration_s", "error", *record.search.params]
    return pd.DataFrame(rows, columns=columns)


def best_trial(search: str | os.PathLike | SearchRecord, *, workspace: str | os.PathLike | None = None
               ) -> dict[str, Any] | None:
    """``{number, value, params, run_id}`` of the best complete trial, or None before the first one."""
    from engine.search.storage import load_study

    record = search if isinstance(search, SearchRecord) else read_search(search, workspace)
    try:
        best = load_study(record.search_id, workspace=record.workspace).best_trial
    except ValueError:
        return None
    return {"number": best.number, "value": best.value, "params": dict(best.params),
            "run_id": best.user_attrs.get("run_id")}

