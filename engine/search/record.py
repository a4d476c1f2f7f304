"""A search's record in the workspace: ``<workspace>/searches/<search_id>/``.

- ``search.yaml``: search id, name, created_at, ``base`` (the run config every trial starts from,
  paths absolute) and ``search`` (the validated ``search:`` section);
- ``status.json``: state (queued / running / done / failed / cancelled), pid, heartbeat
  (``updated_at``), trials done / wanted, the current trial and its run, the best value so far,
  error and message — written under the run store's lock, like a run's;
- ``search.log``: the search process's log.

The trials themselves live in the Optuna database (:mod:`engine.search.storage`), each with the id
of the run that trained it (user attribute ``run_id``); the runs live in ``runs/`` like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import RunError
from engine.search.config import SearchConfig, parse_search_section
from engine.workspace import resolve_workspace

SEARCH_FILE = "search.yaml"
STATUS_FILE = "status.json"
LOG_FILE = "search.log"
GONE_MESSAGE = "the search process is gone; resume it (python -m engine search-resume {id})"


def searches_dir(workspace: str | Path | None = None) -> Path:
    return resolve_workspace(workspace) / "searches"


@dataclass(frozen=True)
class SearchRecord:
    """A search as written in ``search.yaml``."""

    search_id: str
    path: Path
    name: str
    created_at: str
    base: dict[str, Any]
    search: SearchConfig

    @property
    def workspace(self) -> Path:
        return self.path.parent.parent

    @property
    def direction(self) -> str:
        return self.search.direction


def search_dir_of(search: str | Path, workspace: str | Path | None = None) -> Path:
    """The directory of a search id (or unique id prefix) or path; :class:`RunError` when there is none."""
    as_path = Path(search)
    if (as_path / SEARCH_FILE).is_file():
        return as_path.absolute()
    root = searches_dir(workspace)
    matches = sorted(p for p in root.glob(f"{search}*") if (p / SEARCH_FILE).is_file()) if root.is_dir() else []
    exact = [p for p in matches if p.name == str(search)]
    if exact or len(matches) == 1:
        return (exact or matches)[0]
    if matches:
        raise RunError(f"Search id {str(search)!r} is ambiguous: it starts {len(matches)} searches; give more of it.")
    raise RunError(f"There is no search {str(search)!r} in {str(root)!r} (python -m engine searches lists them).")


def read_search(search: str | Path, workspace: str | Path | None = None) -> SearchRecord:
    path = search_dir_of(search, workspace)
    data = yaml.safe_load((path / SEARCH_FILE).read_text(encoding="utf-8")) or {}
    return SearchRecord(search_id=data["search_id"], path=path, name=data.get("name") or data["search_id"],
                        created_at=data.get("created_at", ""), base=data["base"],
                        search=parse_search_section(data["search"]))


def write_search(path: Path, *, search_id: str, name: str, created_at: str, base: dict, search: SearchConfig) -> None:
    from engine.io import atomic_write_text

    data = {"format_version": 1, "search_id": search_id, "name": name, "created_at": created_at,
            "base": base, "search": search.model_dump(mode="json", exclude_none=True)}
    atomic_write_text(path / SEARCH_FILE, yaml.safe_dump(data, sort_keys=False))


# ---------------------------------------------------------------- status


def read_search_status(path: str | Path) -> dict[str, Any]:
    from engine.runs.store import read_status

    try:
        return read_status(path)
    except RunError:
        raise RunError(f"Search directory {str(path)!r} has no {STATUS_FILE}.") from None


def update_search_status(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the search's status.json (the run store's locked, atomic update)."""
    from engine.runs.store import update_status

    return update_status(path, **fields)


def effective_search_status(path: str | Path) -> dict[str, Any]:
    """The status a person should see: a queued / running search whose process is gone shows as ``failed``."""
    from engine.runs.liveness import ACTIVE_STATES, job_is_alive

    status = dict(read_search_status(path))
    status["raw_state"] = status.get("state")
    alive = status.get("state") in ACTIVE_STATES and job_is_alive(status)
    status["alive"] = alive
    if status.get("state") in ACTIVE_STATES and not alive:
        status["state"] = "failed"
        status["error"] = status.get("error") or GONE_MESSAGE.format(id=Path(path).name)
    return status


def list_searches(workspace: str | Path | None = None) -> list[dict[str, Any]]:
    """One dict per search, newest first: search_id, name, created_at, metric, direction, trials, path and the
    effective status fields (state, trials_done, best_value, best_run_id, error, message)."""
    root = searches_dir(workspace)
    rows = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not (path / SEARCH_FILE).is_file() or not (path / STATUS_FILE).is_file():
            continue
        try:
            record, status = read_search(path), effective_search_status(path)
        except Exception as e:  # noqa: BLE001 - one broken search must not hide the others
            rows.append({"search_id": path.name, "name": path.name, "state": "unreadable", "error": str(e),
                         "path": str(path), "created_at": ""})
            continue
        rows.append({"search_id": record.search_id, "name": record.name, "created_at": record.created_at,
                     "metric": record.search.metric, "evaluate_on": record.search.evaluate_on,
                     "direction": record.direction, "trials": record.search.trials,
                     "trials_done": status.get("trials_done", 0), "state": status.get("state"),
                     "best_value": status.get("best_value"), "best_trial": status.get("best_trial"),
                     "best_run_id": status.get("best_run_id"), "current_run_id": status.get("current_run_id"),
                     "error": status.get("error"), "message": status.get("message"), "path": str(path)})
    return sorted(rows, key=lambda r: (r.get("created_at") or "", r["search_id"]), reverse=True)
