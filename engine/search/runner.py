"""The search process: ask Optuna for a trial, train it as a normal run through the launcher, tell the result.

What ``python -m engine search-job SEARCH_DIR`` (and ``search`` in the foreground) runs. One trial at
a time (trials queue on the device anyway):

1. ``study.ask()``; each parameter is suggested (:func:`engine.search.space.suggest`);
2. the trial's run is created (``create_runs``: same split config -> the same split as every other
   trial) and submitted to the launcher, so it shows in the monitor and can be cancelled there;
3. while it trains, its metrics.csv is read every :data:`POLL_S` seconds; each new epoch's
   validation metric is reported (step = ``fold * epochs + epoch``) and, when the median pruner says
   so, the run is cancelled through the launcher (run ``cancelled`` with a message, trial ``PRUNED``);
4. a finished run is scored (OOF or fold-0 predictions, identity view) and told as ``COMPLETE``;
   a failed run is told as ``FAIL`` with its error. A run the user cancelled is ``FAIL`` too, but
   does not count towards ``max_failures`` consecutive failures (after which the search gives up).

SIGTERM (``search-cancel``) stops the search: its running trial's run is cancelled, the trial is
told ``FAIL`` ("search cancelled"), the search is marked ``cancelled``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.runs.liveness import ACTIVE_STATES, job_process_fields, now_iso, pid_alive
from engine.search.record import SearchRecord, read_search, update_search_status
from engine.search.space import suggest, trial_config
from engine.search.storage import load_study
from engine.workspace import runs_dir

log = logging.getLogger(__name__)
POLL_S = 0.5
EXIT_WAIT_S = 30.0  # how long a run's final state may wait for its job process to exit


@dataclass
class TrialOutcome:
    number: int
    state: str  # complete | pruned | failed | cancelled (by the user) | interrupted (search cancelled)
    value: float | None = None
    run_id: str | None = None
    error: str | None = None


def objective_value(run_dir: str | Path, metric: str, *, evaluate_on: str = "oof") -> float:
    """The trial's score: ``metric`` (accuracy, macro_f1, log_loss) of the run's OOF predictions (identity
    view) over every fold, or of fold 0's validation predictions only (``evaluate_on="fold0"``)."""
    from engine.analysis.load import load_predictions
    from engine.analysis.metrics import score, softmax

    preds = load_predictions(run_dir, "oof", views=["identity"])
    mask = slice(None) if evaluate_on == "oof" else preds.fold_of == 0
    labels, logits = preds.labels[mask], preds.logits[0][mask]
    if len(labels) == 0:
        raise EngineError(f"Run {Path(run_dir).name!r} has no out-of-fold predictions to score.")
    return float(score(labels, proba=softmax(logits))[metric])


def trial_name(record: SearchRecord, number: int) -> str:
    return f"{record.name} #{number}"


class SearchLoop:
    """Runs the trials of one search; ``run()`` returns the final state."""

    def __init__(self, search_dir: str | Path, *, stop: Callable[[], bool], launcher=None,
                 on_event: Callable[[str], None] | None = None, poll_s: float = POLL_S) -> None:
        from engine.jobs import choose_launcher

        self.record = read_search(search_dir)
        self.path = self.record.path
        self.cfg = self.record.search
        self.stop = stop
        self.poll_s = poll_s
        # The backend recorded when the search was created (local, or Ray at its address); an older search
        # without one gets the workspace's default.
        base = self.record.base
        self.launcher = launcher or choose_launcher(self.record.workspace, name=base.get("launcher"),
                                                    address=base.get("ray_address"))
        self.say = on_event or (lambda text: log.info("%s", text))
        self.study = load_study(self.record.search_id, self.cfg, self.record.workspace)

    # ------------------------------------------------------------ the loop

    def finished_trials(self) -> list:
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))

    def run(self) -> str:
        deadline = time.monotonic() + self.cfg.timeout if self.cfg.timeout else None
        failures, first_error = 0, None
        self._fail_stale_trials()
        while len(self.finished_trials()) < self.cfg.trials:
            if self.stop():
                return self._end("cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                return self._end(message=f"timeout: no new trial after {self.cfg.timeout:g} s")
            outcome = self.run_trial()
            if outcome.state == "interrupted":
                return self._end("cancelled")
            if outcome.state == "failed":
                failures += 1
                first_error = first_error or f"trial {outcome.number}: {str(outcome.error).split(' — ')[0]}"
                if failures >= self.cfg.max_failures:
                    return self._end("failed", error=f"The search stopped after {failures} failed trials in a row; "
                                                     f"the first error: {first_error}. Fix the config, then run "
                                                     "a new search.")
            elif outcome.state != "cancelled":
                failures, first_error = 0, None
        return self._end()

    def _end(self, state: str | None = None, *, error: str | None = None, message: str | None = None) -> str:
        from optuna.trial import TrialState

        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if state is None:
            state = "done" if complete else "failed"
            if not complete:
                error = (f"Every trial of the search failed or was pruned ({len(self.finished_trials())} trials); "
                         "no trial finished with a score. See each trial's run for its error.")
        self._write_progress(state=state, finished_at=now_iso(), error=error, message=message, current_trial=None,
                             current_run_id=None)
        self.say(f"search {self.record.search_id}: {state}" + (f" ({error or message})" if error or message else ""))
        return state

    def _fail_stale_trials(self) -> None:
        """Trials left RUNNING by a search process that died (a resumed search) are told FAIL."""
        from optuna.trial import TrialState

        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            run_id = trial.user_attrs.get("run_id")
            if run_id:
                self._cancel_run(runs_dir(self.record.workspace) / run_id, "the search was resumed")
            self.study.tell(trial.number, state=TrialState.FAIL)

    def _write_progress(self, **fields: Any) -> None:
        best = self._best()
        update_search_status(self.path, trials_done=len(self.finished_trials()), updated_at=now_iso(),
                             **(best or {}), **fields)

    def _best(self) -> dict[str, Any] | None:
        try:
            best = self.study.best_trial
        except ValueError:  # no complete trial yet
            return None
        return {"best_value": best.value, "best_trial": best.number, "best_run_id": best.user_attrs.get("run_id")}

    # ------------------------------------------------------------ one trial

    def run_trial(self) -> TrialOutcome:
        from optuna.trial import TrialState

        from engine.training.config import load_run_configs
        from engine.training.create import create_runs

        trial = self.study.ask()
        number = trial.number
        try:
            values = suggest(trial, self.cfg.params)
            configs = load_run_configs(trial_config(self.record.base, values, name=trial_name(self.record, number)))
            run_dir = Path(create_runs(configs, workspace=self.record.workspace)[0])
        except EngineError as e:
            trial.set_user_attr("error", str(e))
            self.study.tell(trial, state=TrialState.FAIL)
            self.say(f"trial {number}: failed before training: {e}")
            return TrialOutcome(number, "failed", error=str(e))
        trial.set_user_attr("run_id", run_dir.name)
        self._join_study(run_dir, number, values)
        self._write_progress(current_trial=number, current_run_id=run_dir.name,
                             message=f"trial {number}: training run {run_dir.name}")
        self.say(f"trial {number}: run {run_dir.name} {values}")
        try:
            self.launcher.submit(run_dir, folds=[0] if self.cfg.evaluate_on == "fold0" else None)
            trial.set_user_attr("submitted_at", now_iso())  # with the run's started_at: the job's start-up time
        except EngineError as e:
            trial.set_user_attr("error", str(e))
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialOutcome(number, "failed", run_id=run_dir.name, error=str(e))
        outcome = self.watch(trial, run_dir)
        self._write_progress(current_trial=None, current_run_id=None, message=None)
        self.say(f"trial {number}: {outcome.state}" + (f" {outcome.value:.4f}" if outcome.value is not None else "")
                 + (f" ({outcome.error})" if outcome.error else ""))
        return outcome

    def _join_study(self, run_dir: Path, number: int, values: dict[str, Any]) -> None:
        """The trial's run belongs to the search as to a study: status ``study_id`` (the runs table, TensorBoard's
        hparams) and ``studies/<search_id>.yaml`` (its runs, and each searched value per run under ``varied``)."""
        import yaml

        from engine.io import atomic_write_text
        from engine.runs import update_status
        from engine.runs.store import studies_dir

        search_id = self.record.search_id
        update_status(run_dir, study_id=search_id, search={"search_id": search_id, "trial": number})
        path = studies_dir(self.record.workspace) / f"{search_id}.yaml"
        study = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None) or {
            "study_id": search_id, "created_at": now_iso(), "search_id": search_id, "runs": [], "varied": {}}
        study["runs"].append(run_dir.name)
        for key in self.cfg.params:
            study["varied"].setdefault(key, []).append(values.get(key))
        atomic_write_text(path, yaml.safe_dump(study, sort_keys=False))

    def watch(self, trial, run_dir: Path) -> TrialOutcome:
        """Report each new epoch's validation metric until the run ends; prune it when the pruner says so."""
        from optuna.trial import TrialState

        from engine.jobs import effective_status
        from engine.runs.store import read_metrics
        from engine.training.config import read_run_config

        epochs = read_run_config(run_dir).train.epochs
        reported: set[int] = set()
        exit_deadline = None
        while True:
            status = effective_status(run_dir)  # status first: metrics read after a final state are complete
            try:
                metrics = read_metrics(run_dir)
            except (OSError, ValueError):  # replaced while read: the next poll sees it
                time.sleep(self.poll_s)
                continue
            for row in metrics.sort_values(["fold", "epoch"]).itertuples(index=False):
                step = int(row.fold) * epochs + int(row.epoch)
                value = float(getattr(row, self.cfg.epoch_column))
                if step in reported or not math.isfinite(value):
                    continue
                reported.add(step)
                trial.report(value, step)
                if status["state"] in ACTIVE_STATES and trial.should_prune():
                    return self._prune(trial, run_dir, int(row.fold), int(row.epoch), value)
            if status["state"] in ("failed", "cancelled") and pid_alive(status.get("pid")):
                # The job writes its last words (the error text) just before it exits: wait for them. A done
                # run's files are complete already; the next trial's job may start while this one exits.
                exit_deadline = exit_deadline or time.monotonic() + EXIT_WAIT_S
                if time.monotonic() < exit_deadline:
                    time.sleep(self.poll_s)
                    continue
            if status["state"] == "done":
                return self._complete(trial, run_dir)
            if status["state"] in ("failed", "cancelled"):
                error = status.get("error") or ("cancelled by the user" if status["state"] == "cancelled" else None)
                trial.set_user_attr("error", error or status["state"])
                self.study.tell(trial, state=TrialState.FAIL)
                return TrialOutcome(trial.number, status["state"], run_id=run_dir.name, error=error)
            if self.stop():
                self._cancel_run(run_dir, f"search {self.record.search_id} was cancelled")
                trial.set_user_attr("error", "search cancelled")
                self.study.tell(trial, state=TrialState.FAIL)
                return TrialOutcome(trial.number, "interrupted", run_id=run_dir.name, error="search cancelled")
            time.sleep(self.poll_s)

    def _prune(self, trial, run_dir: Path, fold: int, epoch: int, value: float) -> TrialOutcome:
        from optuna.trial import TrialState

        column = self.cfg.epoch_column
        why = (f"pruned by search {self.record.search_id} (trial {trial.number}): {column} {value:.4f} at fold {fold} "
               f"epoch {epoch} is worse than the median of earlier trials")
        if self._cancel_run(run_dir, why) == "done":  # it finished before the cancel reached it: score it
            return self._complete(trial, run_dir)
        trial.set_user_attr("pruned_at", {"fold": fold, "epoch": epoch, column: value})
        self.study.tell(trial, state=TrialState.PRUNED)
        return TrialOutcome(trial.number, "pruned", value=value, run_id=run_dir.name)

    def _complete(self, trial, run_dir: Path) -> TrialOutcome:
        from optuna.trial import TrialState

        try:
            value = objective_value(run_dir, self.cfg.metric, evaluate_on=self.cfg.evaluate_on)
        except EngineError as e:
            trial.set_user_attr("error", str(e))
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialOutcome(trial.number, "failed", run_id=run_dir.name, error=str(e))
        if not math.isfinite(value):
            trial.set_user_attr("error", f"the objective is {value}")
            self.study.tell(trial, state=TrialState.FAIL)
            return TrialOutcome(trial.number, "failed", run_id=run_dir.name, error=f"the objective is {value}")
        self.study.tell(trial, value)
        return TrialOutcome(trial.number, "complete", value=value, run_id=run_dir.name)

    def _cancel_run(self, run_dir: Path, message: str) -> str | None:
        """Cancel the run through the launcher (if still active), say why in its status; return its final state."""
        from engine.jobs import effective_status
        from engine.runs.layout import status_path
        from engine.runs.store import update_status

        if not status_path(run_dir).is_file():
            return None
        if effective_status(run_dir)["state"] in ACTIVE_STATES:
            try:
                self.launcher.cancel(run_dir)
            except EngineError as e:  # it ended meanwhile
                log.debug("cancel %s: %s", run_dir.name, e)
        state = effective_status(run_dir)["state"]
        if state == "cancelled":
            update_status(run_dir, message=message)
        return state


# ---------------------------------------------------------------- the process


def run_search(search_dir: str | Path, *, stop=None, launcher=None, on_event: Callable[[str], None] | None = None,
               poll_s: float = POLL_S) -> str:
    """Run a search's remaining trials in this process, with a heartbeat; returns the final state.

    ``stop`` (a :class:`~engine.jobs.runner.StopFlag`, default: a new one routed from SIGTERM) stops it.
    """
    from engine.jobs.runner import Heartbeat, StopFlag

    path = Path(search_dir).absolute()
    stop = stop or StopFlag()
    if isinstance(stop, StopFlag):
        stop.install()
    update_search_status(path, state="running", **job_process_fields(os.getpid(), os.getpgrp()),
                         started_at=now_iso(), finished_at=None, error=None, message="starting")
    try:
        with Heartbeat([path]):
            try:
                return SearchLoop(path, stop=stop, launcher=launcher, on_event=on_event, poll_s=poll_s).run()
            except BaseException as e:
                cancelled = not isinstance(e, Exception)
                if not cancelled:
                    log.exception("search %s failed", path.name)
                update_search_status(path, state="cancelled" if cancelled else "failed", finished_at=now_iso(),
                                     error=None if cancelled else f"{type(e).__name__}: {e}", current_trial=None,
                                     current_run_id=None)
                if cancelled:
                    raise
                return "failed"
    finally:
        if isinstance(stop, StopFlag):
            stop.restore()
