"""Training commands: ``train``, ``runs``, ``status``, ``cancel``, ``resume``, ``predict`` (and the internal ``run-job``).

RUN is a run id (a folder of ``<workspace>/runs``) or the path of a run directory. ``train`` and
``resume`` run in the foreground with a progress bar unless ``--detach`` is given (both through a
launcher of :mod:`engine.jobs`); either way the run directory records everything (status, metrics,
predictions, weights, the job's log). ``runs`` prints the run store's listing (:func:`engine.runs.list_runs`).
With ``--launcher ray`` the folds train as tasks on a Ray cluster and the bar follows the run directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

WORKSPACE_HELP = "workspace folder (default: $FOLD_STUDIO_WORKSPACE or ./workspace)"
LAUNCHER_HELP = ("where jobs train: local (processes on this machine) or ray (each fold a task on a Ray cluster); "
                 "default: the config's 'launcher', $FOLD_STUDIO_LAUNCHER, the workspace's settings.yaml, else local")
RAY_ADDRESS_HELP = "Ray cluster for --launcher ray: auto (the one `ray start --head` started here) or HEAD_IP:PORT"


def add_launcher_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", choices=["local", "ray"], default=None, help=LAUNCHER_HELP)
    p.add_argument("--ray-address", default=None, metavar="ADDR", help=RAY_ADDRESS_HELP)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a config over its K folds (one run, or a study when it varies fields)",
                       description="Validate CONFIG, create its run(s) and train them. Prints one run id per line. "
                                   "Without --detach it trains in the foreground with a progress bar (Ctrl-C "
                                   "cancels at the next batch); with --detach it starts background jobs and returns.")
    p.add_argument("config", help="run config YAML (see configs/demo.yaml)")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--detach", action="store_true", help="start background job(s) and return at once")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.epochs=3 --set device=cpu (repeatable)")
    p.add_argument("--allow-download", action="store_true",
                   help="let the job download hub weights missing from the Hugging Face cache (model.pretrained: "
                        "hub); same as --set model.allow_download=true. HF_HUB_OFFLINE=1 in your environment wins")
    add_launcher_options(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("runs", help="list runs with their state and best metrics",
                       description="List the workspace's runs, newest first: state, progress, model, mean best metric.")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_runs)

    p = sub.add_parser("status", help="show a run's state and per-fold progress",
                       description="Show a run's state (a dead job shows as failed), error, and per-fold progress.")
    p.add_argument("run", metavar="RUN", help="run id or run directory")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_status)

    p = sub.add_parser("cancel", help="stop a run at the next batch boundary",
                       description="Send SIGTERM to the run's job (its whole process group); the job stops at the "
                                   "next batch boundary and marks the run cancelled. After --timeout seconds it is "
                                   "killed, and marked cancelled all the same. Finished folds are kept.")
    p.add_argument("run", metavar="RUN", help="run id or run directory")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait before SIGKILL (default 30)")
    p.set_defaults(func=_cancel)

    p = sub.add_parser("resume", help="train a failed or cancelled run from its first unfinished fold",
                       description="Train the run's unfinished folds; finished folds stay untouched. Refused while "
                                   "the run's job is alive.")
    p.add_argument("run", metavar="RUN", help="run id or run directory")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--detach", action="store_true", help="start a background job and return at once")
    add_launcher_options(p)
    p.set_defaults(func=_resume)

    p = sub.add_parser("predict", help="re-predict a trained run with other TTA views (no retraining)",
                       description="Predict OOF / holdout / test logits of a run's fold models for the given TTA "
                                   "views and store them in the run's predictions.")
    p.add_argument("run", metavar="RUN", help="run id or run directory")
    p.add_argument("--tta", required=True, metavar="VIEWS",
                   help="comma-separated views: identity,hflip,vflip,transpose,rot90,rot180,rot270")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--folds", default=None, help="comma-separated folds (default: every trained fold)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda:N (default: the run's device)")
    p.add_argument("--batch-size", type=int, default=None, help="prediction batch size (default: the run's)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("run-job", help="(internal) the background job process that train --detach starts",
                       description="Internal: train RUN_DIR in this process, recording status, heartbeat and errors "
                                   "in the run directory. Started detached by `train --detach` and `resume`.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--folds", default=None, help="comma-separated folds (default: every unfinished fold)")
    p.add_argument("--devices", default=None, help="comma-separated devices to spread folds over, one process each")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--device-name", default=None, help=argparse.SUPPRESS)
    p.add_argument("--lock-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--fetch-weights-only", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_run_job)


# ---------------------------------------------------------------- helpers


def _int_list(text: str | None, what: str) -> list[int] | None:
    from engine.errors import ConfigError

    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"The {what!r} option must be comma-separated integers, e.g. 0,2. Got {text!r}.") from None


def _run_dir(run: str, workspace: str | None) -> Path:
    from engine.runs import run_dir_of

    return Path(run_dir_of(run, workspace=workspace)).absolute()


class ProgressBar:
    """A tqdm bar for one run: overall progress from its status (what the studio reads), the
    current fold / epoch / batch from the training loop's progress events."""

    def __init__(self, run_dir: Path, *, every_s: float = 0.25) -> None:
        from tqdm import tqdm

        self.run_dir = run_dir
        self.every_s = every_s
        self._last = 0.0
        self._event: dict | None = None
        self.bar = tqdm(total=1000, desc=run_dir.name, file=sys.stderr, dynamic_ncols=True,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def __call__(self, event: dict | None = None) -> None:
        if event and "fold" in event:
            self._event = event
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.refresh()

    def refresh(self) -> None:
        from engine.errors import RunError
        from engine.runs import read_status, run_progress

        try:
            status = read_status(self.run_dir)
        except RunError:  # gone or damaged under us: the job reports that itself
            return
        progress = status.get("progress")
        progress = run_progress(status) if progress is None else float(progress)
        # never backwards: a fold's share may dip while it predicts after its last epoch
        self.bar.n = max(self.bar.n, int(round(1000 * max(0.0, min(1.0, progress)))))
        self.bar.set_postfix_str(_event_summary(self._event) if self._event else _fold_summary(status), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self._event = None
        self.refresh()
        self.bar.close()


def _event_summary(event: dict) -> str:
    text = f"fold {event['fold']} epoch {event.get('epoch', '?')}/{event.get('epochs', '?')}"
    if event.get("batches"):
        text += f" {event.get('phase', '')} {event.get('batch', 0)}/{event['batches']}"
    return text


def _fold_summary(status: dict) -> str:
    folds = status.get("folds") or {}
    running = [(k, f) for k, f in folds.items() if f.get("state") == "running"]
    if status.get("message"):
        return str(status["message"])
    if not running:
        done = sum(1 for f in folds.values() if f.get("state") == "done")
        return f"{done}/{len(folds)} folds done" if folds else ""
    parts = []
    for k, f in running:
        text = f"fold {k} epoch {f.get('epoch', '?')}/{f.get('epochs', '?')}"
        if f.get("batches"):
            text += f" batch {f.get('batch', 0)}/{f['batches']}"
        parts.append(text)
    return ", ".join(parts)


def _foreground_launcher(workspace: str | None):
    """Train in this process with a progress bar per run; each run id is printed once the run is claimed."""
    from engine.jobs import ForegroundLauncher

    return ForegroundLauncher(workspace, progress=ProgressBar, announce=lambda run_dir: print(run_dir.name, flush=True))


def _foreground_exit(run_dirs: list[Path]) -> int:
    """Print each run's final state (and a failure's error); 1 if one failed, 130 if one was cancelled, else 0."""
    from engine.runs import effective_status

    states = set()
    for run_dir in run_dirs:
        status = effective_status(run_dir)
        states.add(status["state"])
        print(f"{run_dir.name}: {status['state']}", file=sys.stderr)
        if status["state"] == "failed":
            print(f"error: run {run_dir.name} failed: {status.get('error')}", file=sys.stderr)
    return 1 if "failed" in states else (130 if "cancelled" in states else 0)


# ---------------------------------------------------------------- commands


def _follow(run_dirs: list[Path], launcher) -> int:
    """Runs submitted to another backend (Ray): a bar per run, read from its directory, until it ends;
    Ctrl-C cancels the runs still going. Exit status as :func:`_foreground_exit`."""
    from engine.runs import ACTIVE_STATES, effective_status

    try:
        for run_dir in run_dirs:
            bar = ProgressBar(run_dir)
            try:
                while effective_status(run_dir)["state"] in ACTIVE_STATES:
                    bar()
                    time.sleep(0.5)
            finally:
                bar.close()
    except KeyboardInterrupt:
        print("\ncancelling (finished folds are kept)", file=sys.stderr)
        for run_dir in run_dirs:
            if effective_status(run_dir)["state"] in ACTIVE_STATES:
                launcher.cancel(run_dir)
    return _foreground_exit(run_dirs)


def _chosen_launcher(args, config):
    from engine.jobs import choose_launcher

    return choose_launcher(args.workspace, name=args.launcher, address=args.ray_address, config=config)


def _train(args) -> int:
    from engine.jobs import LocalLauncher, launch_training
    from engine.training.config import load_run_configs

    overrides = [*args.overrides, *(["model.allow_download=true"] if args.allow_download else [])]
    chosen = _chosen_launcher(args, load_run_configs(args.config, overrides)[0])  # a bad config is refused here
    local = isinstance(chosen, LocalLauncher)
    launcher = _foreground_launcher(args.workspace) if local and not args.detach else chosen
    run_dirs = launch_training(args.config, overrides=overrides, workspace=args.workspace, launcher=launcher)
    if args.detach or not local:
        for run_dir in run_dirs:
            print(run_dir.name, flush=True)
    if args.detach:
        return 0
    return _foreground_exit(run_dirs) if local else _follow(run_dirs, launcher)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _runs(args) -> int:
    from engine.runs import list_runs

    frame = list_runs(args.workspace)
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no runs yet (python -m engine train CONFIG)")
        return 0
    header = ["run_id", "state", "progress", "model", "folds", "val_loss", "val_accuracy", "val_macro_f1"]
    table = [[r["run_id"], r["state"], f"{100 * float(r.get('progress') or 0):.0f}%", r.get("model") or "",
              f"{r.get('folds_done', 0)}/{r.get('folds', '')}",
              *("" if r.get(m) is None else f"{r[m]:.4f}" for m in ("val_loss", "val_accuracy", "val_macro_f1"))]
             for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=False)]
    for line in [header, *table]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    for r in rows:  # what is wrong with a run, under the table: damaged, failed, or a finished fold's files missing
        if r.get("error"):
            print(f"{r['state']}: {r['run_id']}: {r['error']}", file=sys.stderr)
    return 0


def _status(args) -> int:
    from engine.runs import effective_status, read_run

    run_dir = _run_dir(args.run, args.workspace)
    status = effective_status(run_dir)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    missing = read_run(run_dir).missing_files()
    head = f"run {run_dir.name}: {status['state']}  {100 * float(status.get('progress') or 0):.0f}%"
    extras = [f"{k} {status[k]}" for k in ("device", "pid") if status.get(k) is not None]
    print(head + (f"  ({', '.join(extras)})" if extras else ""))
    for key in ("message", "error", "started_at", "finished_at"):
        if status.get(key):
            print(f"  {key}: {status[key]}")
    if missing:
        print(f"  missing: {missing}")
    for fold, f in sorted((status.get("folds") or {}).items(), key=lambda kv: int(kv[0])):
        parts = [f"  fold {fold}: {f.get('state', '?'):<9}"]
        if f.get("epochs"):
            parts.append(f"epoch {f.get('epoch', 0)}/{f['epochs']}")
        if f.get("batches") and f.get("state") == "running":
            parts.append(f"batch {f.get('batch', 0)}/{f['batches']}")
        if _finite(f.get("best_metric")):
            parts.append(f"best {f.get('monitor') or 'metric'} {f['best_metric']:.4f}")
        if f.get("device"):
            parts.append(f"on {f['device']}")
        print("  ".join(parts))
    return 0


def _cancel(args) -> int:
    from engine.jobs import launcher_for_run

    run_dir = _run_dir(args.run, args.workspace)
    status = launcher_for_run(run_dir, workspace=args.workspace).cancel(run_dir, timeout=args.timeout)
    print(f"{run_dir.name}: {status['state']}")
    return 0


def _resume(args) -> int:
    from engine.jobs import LocalLauncher
    from engine.training.config import read_run_config

    run_dir = _run_dir(args.run, args.workspace)
    chosen = _chosen_launcher(args, read_run_config(run_dir))
    local = isinstance(chosen, LocalLauncher)
    if args.detach or not local:
        chosen.resume(run_dir)
        print(run_dir.name, flush=True)
        return 0 if args.detach else _follow([run_dir], chosen)
    _foreground_launcher(args.workspace).resume(run_dir)
    return _foreground_exit([run_dir])


def _predict(args) -> int:
    from engine.augment.tta import validate_tta_views
    from engine.errors import RunError
    from engine.runs import effective_status

    views = validate_tta_views([v.strip() for v in args.tta.split(",") if v.strip()], field="--tta")
    run_dir = _run_dir(args.run, args.workspace)
    status = effective_status(run_dir)
    if status["state"] in ("queued", "running"):
        raise RunError(f"Run {run_dir.name!r} is {status['state']}; predict once it is done (or cancel it).")
    from engine.training.predict import predict_run

    predict_run(run_dir, views, folds=_int_list(args.folds, "--folds"), device=args.device,
                batch_size=args.batch_size)
    print(run_dir.name)
    return 0


def _run_job(args) -> int:
    from engine.jobs.runner import EXIT_CANCELLED, EXIT_DONE, EXIT_FAILED, run_job, run_worker

    # the run's log gets timestamps (stdout / stderr of the job go there)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.fetch_weights_only:  # a foreground train's download, in a process whose environment allows it
        from engine.training.config import read_run_config
        from engine.training.pretrained import fetch_pending_weights

        fetch_pending_weights(args.run_dir, read_run_config(args.run_dir))
        return 0
    if args.worker:
        return run_worker(args.run_dir, device=args.device, device_name=args.device_name, lock_file=args.lock_file)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    state = run_job(args.run_dir, folds=_int_list(args.folds, "--folds"), devices=devices)
    return {"done": EXIT_DONE, "cancelled": EXIT_CANCELLED}.get(state, EXIT_FAILED)
