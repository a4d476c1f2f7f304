"""Search commands: ``search``, ``searches``, ``search-cancel``, ``search-resume`` (and the internal ``search-job``).

``search CONFIG`` reads a run config with a ``search:`` section (docs/formats.md), validates it,
records the search in the workspace and its Optuna study in ``<workspace>/optuna.db``, then runs the
trials — each a normal run — in the foreground (Ctrl-C cancels), or in a background process with
``--detach``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engine.cli.train_cmds import WORKSPACE_HELP, add_launcher_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="Optuna hyperparameter search: each trial is a run (config with a search: section)",
                       description="Validate CONFIG (a run config with a 'search:' section), create the search and its "
                                   "Optuna study (<workspace>/optuna.db) and run its trials one after another, each a "
                                   "normal run. Prints the search id. Without --detach it runs here (Ctrl-C cancels "
                                   "the search and its running trial); with --detach in a background process.")
    p.add_argument("config", help="run config YAML with a search: section (see docs/formats.md)")
    p.add_argument("--trials", type=int, default=None, metavar="N", help="number of trials (default: search.trials)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds after which no new trial starts (default: search.timeout, none)")
    p.add_argument("--detach", action="store_true", help="run the search in a background process and return at once")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the base config, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    add_launcher_options(p)  # where the trials train (each trial's run)
    p.set_defaults(func=_search)

    p = sub.add_parser("searches", help="list searches, or show one search's trials",
                       description="Without SEARCH: every search of the workspace, newest first. With SEARCH: its "
                                   "status and one line per trial (state, value, run id, parameters).")
    p.add_argument("search", nargs="?", metavar="SEARCH", help="search id (or unique prefix) or directory")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_searches)

    p = sub.add_parser("search-cancel", help="stop a search (and its running trial)",
                       description="SIGTERM the search process: it cancels its running trial's run through the "
                                   "launcher, records the trial as failed ('search cancelled') and stops.")
    p.add_argument("search", metavar="SEARCH", help="search id (or unique prefix) or directory")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.set_defaults(func=_cancel)

    p = sub.add_parser("search-resume", help="start a stopped search again for its missing trials",
                       description="Run the trials a cancelled or interrupted search still lacks (in the background "
                                   "with --detach).")
    p.add_argument("search", metavar="SEARCH", help="search id (or unique prefix) or directory")
    p.add_argument("--detach", action="store_true", help="run in a background process and return at once")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.set_defaults(func=_resume)

    p = sub.add_parser("search-job", help="(internal) the background search process",
                       description="Internal: run SEARCH_DIR's remaining trials in this process.")
    p.add_argument("search_dir", metavar="SEARCH_DIR")
    p.set_defaults(func=_search_job)


def _foreground(path: Path) -> int:
    from engine.jobs.runner import StopFlag
    from engine.search import effective_search_status, run_search

    stop = StopFlag()
    stop.install(sigint=True)
    try:
        state = run_search(path, stop=stop, on_event=lambda text: print(text, file=sys.stderr, flush=True))
    finally:
        stop.restore()
    status = effective_search_status(path)
    if status.get("best_value") is not None:
        print(f"best: trial {status['best_trial']} = {status['best_value']:.4f} (run {status['best_run_id']})",
              file=sys.stderr)
    if state == "failed":
        print(f"error: {status.get('error')}", file=sys.stderr)
        return 1
    return 130 if state == "cancelled" else 0


def _start(path: Path, *, detach: bool, start) -> int:
    """Print the search id, then run its trials here, or start its background process (``detach``)."""
    print(path.name, flush=True)
    if detach:
        start(path)
        return 0
    return _foreground(path)


def _search(args) -> int:
    from engine.search import create_search, start_search

    # The flags win over the config's fields; the search records the backend it resolves to.
    overrides = [*args.overrides, *([f"launcher={args.launcher}"] if args.launcher else []),
                 *([f"ray_address={args.ray_address}"] if args.ray_address else [])]
    path = create_search(args.config, trials=args.trials, timeout=args.timeout, overrides=overrides,
                         workspace=args.workspace)
    return _start(path, detach=args.detach, start=start_search)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_table(header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for line in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


def _searches(args) -> int:
    from engine.search import effective_search_status, list_searches, read_search, search_trials

    if args.search is None:
        rows = list_searches(args.workspace)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        elif not rows:
            print("no searches yet (python -m engine search CONFIG)")
        else:
            _print_table(["search_id", "state", "trials", "objective", "best", "name"],
                         [[r["search_id"], r["state"], f"{r.get('trials_done', 0)}/{r.get('trials', '')}",
                           f"{r.get('evaluate_on', '')} {r.get('metric', '')}", _fmt(r.get("best_value")),
                           r.get("name", "")] for r in rows])
        return 0
    record = read_search(args.search, args.workspace)
    status = effective_search_status(record.path)
    trials = search_trials(record)
    if args.json:
        print(json.dumps({"status": status, "trials": trials.to_dict(orient="records")}, indent=2, default=str))
        return 0
    print(f"search {record.search_id} ({record.name}): {status['state']}, {status.get('trials_done', 0)}/"
          f"{record.search.trials} trials, {record.search.direction} {record.search.evaluate_on} {record.search.metric}")
    for key in ("message", "error"):
        if status.get(key):
            print(f"  {key}: {status[key]}")
    params = list(record.search.params)
    _print_table(["trial", "state", "value", "run_id", *params],
                 [[r["number"], r["state"], _fmt(r["value"]), r["run_id"] or "", *(_fmt(r[p]) for p in params)]
                  for r in trials.to_dict(orient="records")])
    return 0


def _cancel(args) -> int:
    from engine.search import cancel_search

    status = cancel_search(args.search, workspace=args.workspace)
    print(f"{args.search}: {status['state']}")
    return 0


def _resume(args) -> int:
    from engine.search.launch import check_resumable, start_search

    return _start(check_resumable(args.search, workspace=args.workspace), detach=args.detach, start=start_search)


def _search_job(args) -> int:
    from engine.search import run_search

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = run_search(args.search_dir)
    return {"done": 0, "cancelled": 3}.get(state, 1)
