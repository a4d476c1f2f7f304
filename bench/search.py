"""Optuna search on the demo dataset, on CPU: wall time, overhead of the search machinery, best trial vs the default.

    python bench/search.py [--trials 6] [--epochs 3] [--k 3] [--model test_efficientnet] [--threads 1] [--write]

In a temporary workspace (the demo dataset written there):

1. **default** - the base config (configs/demo.yaml's settings: lr 0.003, weight decay 0.01, no label
   smoothing, the light preset) trained once through the launcher, as the Train page would;
2. **search** - the same base with a ``search:`` section (learning rate log-uniform, weight decay,
   label smoothing, augmentation preset; OOF macro-F1; median pruner) run for ``--trials`` trials by
   ``engine.search.run_search`` - each trial a run started by the local launcher (a job process).

Reported: the search's wall time; the trials' own time (each run's ``started_at`` -> ``finished_at``:
building the fold data, training, predicting; for a pruned trial, until it stopped); the overhead
per trial = (wall time - trials' own time) / trials, split with Optuna's trial timestamps and the
runs' status into: *prepare* (``study.ask`` -> the run submitted: sampling, validating the config,
creating the run directory and its split), *job start* (submitted -> ``started_at``: a fresh Python
importing torch and timm, then the device lock), *finish* (``finished_at`` -> ``study.tell``: the
job's exit, the poll interval, scoring the OOF predictions; for a pruned trial, the cancel) and
*between* (tell -> the next ask, and the search's own start and end); and the best trial's OOF
macro-F1 against the default run's, with the paired-bootstrap interval of the difference (both runs
share the split, so every image is compared with itself).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from docs_section import header, write_section  # noqa: E402
from scan import machine  # noqa: E402  (one description of the machine for every benchmark)

MARKER = "<!-- search -->"


def base_config(spec: Path, args) -> dict:
    return {"name": "bench", "dataset": str(spec), "model": {"name": args.model}, "image_size": 32, "device": "cpu",
            "split": {"k": args.k, "seed": 42, "holdout_fraction": 0.1}, "tta_views": ["identity", "hflip"],
            "augment": "light",
            "train": {"epochs": args.epochs, "batch_size": 64, "lr": 0.003, "weight_decay": 0.01, "warmup_epochs": 1,
                      "num_workers": 0}}


def search_section(args) -> dict:
    return {"name": "bench search", "trials": args.trials, "metric": "macro_f1", "evaluate_on": "oof", "seed": 0,
            "params": {"train.lr": {"low": 3e-4, "high": 3e-2, "log": True},
                       "train.weight_decay": {"low": 0.0, "high": 0.1},
                       "train.label_smoothing": {"low": 0.0, "high": 0.2},
                       "augment": ["none", "light", "medium"]}}


def seconds(start: str | None, end: str | None) -> float:
    from engine.runs.liveness import parse_time

    a, b = parse_time(start), parse_time(end)
    return (b - a).total_seconds() if a and b else float("nan")


def run_default(spec: Path, workspace: Path, args) -> tuple[Path, float]:
    from engine.jobs import effective_status, launch_training

    start = time.perf_counter()
    (run_dir,) = launch_training(base_config(spec, args), workspace=workspace)
    while effective_status(run_dir)["state"] in ("queued", "running"):
        time.sleep(0.5)
    state = effective_status(run_dir)["state"]
    if state != "done":
        raise SystemExit(f"the default run ended {state}: {effective_status(run_dir).get('error')}")
    return run_dir, time.perf_counter() - start


def run_the_search(spec: Path, workspace: Path, args) -> tuple[Path, float]:
    from engine.search import create_search, run_search

    path = create_search({**base_config(spec, args), "search": search_section(args)}, workspace=workspace)
    start = time.perf_counter()
    state = run_search(path)
    wall = time.perf_counter() - start
    if state != "done":
        raise SystemExit(f"the search ended {state}")
    return path, wall


def trial_times(search_dir: Path, workspace: Path) -> list[dict]:
    """Per trial: state, value, and seconds of prepare / start / own / finish (see the module docstring)."""
    import json

    from engine.search import load_study, read_search

    study = load_study(read_search(search_dir).search_id, workspace=workspace)
    rows = []
    for t in study.get_trials():
        status = json.loads((workspace / "runs" / t.user_attrs["run_id"] / "status.json").read_text())
        asked, told = t.datetime_start.astimezone().isoformat(), t.datetime_complete.astimezone().isoformat()
        submitted = t.user_attrs["submitted_at"]
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "asked": asked, "told": told,
                     "prepare": seconds(asked, submitted), "start": seconds(submitted, status.get("started_at")),
                     "own": seconds(status.get("started_at"), status.get("finished_at")),
                     "finish": seconds(status.get("finished_at"), told)})
    return rows


def compare_best(default_dir: Path, best_dir: Path):
    from engine.analysis.bootstrap import paired_bootstrap
    from engine.analysis.load import load_predictions
    from engine.analysis.metrics import softmax

    preds = load_predictions([default_dir, best_dir], "oof", views=["identity"])
    proba = softmax(preds.logits)
    return paired_bootstrap(preds.labels, proba[1], proba[0], metric="macro_f1", n_classes=preds.n_classes,
                            n_resamples=2000, seed=0)


def report(args, where: str, default_wall: float, default_dir: Path, search_wall: float, trials: list[dict],
           best: dict, diff) -> str:
    from engine.search import objective_value

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    n = len(trials)
    own = sum(t["own"] for t in trials)
    parts = {k: sum(t[k] for t in trials) / n for k in ("prepare", "start", "finish")}
    overhead = (search_wall - own) / n
    parts["between"] = overhead - sum(parts.values())
    default_f1 = objective_value(default_dir, "macro_f1")
    states = ", ".join(f"{sum(t['state'] == s for t in trials)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL")
                       if any(t["state"] == s for t in trials))
    lines = [
        header(where, f"`python bench/search.py --trials {args.trials} --epochs {args.epochs} --k {args.k} "
                      f"--model {args.model} --threads {args.threads} --write`",
               "the default config trained once through the launcher, in the same run: its wall time against the "
               "search's, its OOF macro-F1 against the best trial's."), "",
        f"The demo dataset (1,438 training images, 32 px), {args.model} from scratch, k={args.k}, {args.epochs} epochs, "
        "CPU, one torch thread per job process. The search varies the learning rate (log-uniform 3e-4..3e-2), "
        "weight decay (0..0.1), label smoothing (0..0.2) and the augmentation preset (none / light / medium), "
        f"scored on OOF macro-F1, median pruner; {n} trials ({states}), one after another.", "",
        "| measure | value |", "|---|---:|",
        f"| default config, one run through the launcher (baseline) | {default_wall:.0f} s |",
        f"| search, wall time ({n} trials) | {search_wall:.0f} s ({search_wall / default_wall:.1f}x the baseline run) |",
        f"| trials' own time (started -> finished, summed) | {own:.0f} s |",
        f"| overhead per trial: wall time minus own time, / {n} | {overhead:.1f} s |",
        f"| - prepare: ask, sample, validate, create the run (split) and submit it | {parts['prepare']:.1f} s |",
        f"| - job start: a fresh Python importing torch + timm, the device lock | {parts['start']:.1f} s |",
        f"| - finish: job exit, poll, scoring the OOF predictions (pruned: the cancel), tell | "
        f"{parts['finish']:.1f} s |",
        f"| - between trials (and the search's own start / end) | {parts['between']:.1f} s |",
        f"| default config, OOF macro-F1 | {default_f1:.4f} |",
        f"| best trial (#{best['number']}), OOF macro-F1 | {best['value']:.4f} |",
        f"| best minus default (95% paired-bootstrap interval, same split) | {diff.diff:+.4f} "
        f"[{diff.diff_range[0]:+.4f}, {diff.diff_range[1]:+.4f}] |", "",
        "Best trial's parameters: " + ", ".join(f"`{k}` = {v:.4g}" if isinstance(v, float) else f"`{k}` = {v}"
                                                for k, v in best["params"].items()) + ".", "",
        *([f"The machine was shared and busy (load average {load:.1f} on {os.cpu_count()} cores at the start): "
           "every time here is inflated by other work; the split of the overhead holds better than its total.", ""]
          if load > (os.cpu_count() or 1) else []),
        "Per trial (seconds): " + "; ".join(
            f"#{t['number']} {t['state'].lower()} own {t['own']:.0f}, prepare {t['prepare']:.1f}, start "
            f"{t['start']:.1f}, finish {t['finish']:.1f}" for t in trials) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--model", default="test_efficientnet")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the job processes")
    parser.add_argument("--write", action="store_true", help="refresh the search section of docs/BENCHMARKS.md")
    parser.add_argument("--machine", default=None, help="machine description (default: detected)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every job process
    where = args.machine or machine()

    from engine.data.demo import make_demo_dataset
    from engine.search import best_trial

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        workspace = Path(tmp) / "workspace"
        spec = make_demo_dataset(Path(tmp) / "digits-demo")
        default_dir, default_wall = run_default(spec, workspace, args)
        print(f"default run: {default_wall:.0f} s", file=sys.stderr)
        search_dir, search_wall = run_the_search(spec, workspace, args)
        trials = trial_times(search_dir, workspace)
        best = best_trial(search_dir)
        diff = compare_best(default_dir, workspace / "runs" / best["run_id"])
        text = report(args, where, default_wall, default_dir, search_wall, trials, best, diff)
    print(text)
    if args.write:
        write_section(MARKER, text, heading="Hyperparameter search (`bench/search.py`)")


if __name__ == "__main__":
    main()
