"""Analysis commands: ``analyze`` (every comparison of one or more runs), ``submit`` (write a submission) and
``submissions`` (list them; enter public-leaderboard scores)."""

from __future__ import annotations

import argparse
import json

from engine.analysis.tta import TTA_MODES
from engine.analysis.voting import VOTING_KINDS
from engine.cli.train_cmds import WORKSPACE_HELP  # one wording of the shared option
from engine.submission import INTERVAL_METRICS

_RUN_HELP = "run id (under <workspace>/runs/; a unique prefix is enough) or run directory"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="compare folds, hard vs soft voting, TTA views, label smoothing, ensembles of runs",
        description="Print every comparison the runs allow: per-fold metrics and agreement, hard vs soft voting "
                    "(holdout across folds, OOF across runs), the TTA gain of each view and merged set, label "
                    "smoothing before / after temperature scaling, and the best ensembles — each difference with a "
                    "95% paired-bootstrap interval.")
    p.add_argument("runs", nargs="+", metavar="RUN", help=_RUN_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.add_argument("--views", nargs="+", default=None, metavar="VIEW", help="TTA views to merge (default: all)")
    p.add_argument("--tta", default="mean", choices=TTA_MODES, help="merge mode of each model's views (default: mean)")
    p.add_argument("--metric", default="accuracy", choices=("accuracy", "macro_f1"),
                   help="metric that ranks ensembles (default: accuracy)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--no-search", action="store_true", help="skip the ensemble search")
    p.set_defaults(func=_analyze)

    p = sub.add_parser(
        "submit", help="write a submission CSV (+ sidecar JSON) from runs' test predictions",
        description="Merge each chosen fold model's TTA views, vote across the chosen runs x folds, and write the "
                    "predictions in the sample-submission template's format, with a sidecar JSON recording the "
                    "combination and its expected score (holdout, else OOF).")
    p.add_argument("runs", nargs="+", metavar="RUN", help=_RUN_HELP)
    p.add_argument("--voting", default="soft", choices=VOTING_KINDS, help="how fold models / runs vote (default: soft)")
    p.add_argument("--tta", default="mean", choices=TTA_MODES, help="merge mode of each model's views (default: mean)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="CSV to write (default: <workspace>/submissions/submission-<time>.csv); its sidecar JSON is "
                        "written next to it, .csv replaced by .json")
    p.add_argument("--folds", nargs="+", type=int, default=None, metavar="K", help="folds to use (default: all)")
    p.add_argument("--views", nargs="+", default=None, metavar="VIEW", help="TTA views to merge (default: all)")
    p.add_argument("--weights", nargs="+", type=float, default=None, metavar="W",
                   help="one weight per (run, fold), run by run (default: equal)")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.set_defaults(func=_submit)

    p = sub.add_parser(
        "submissions", help="list submissions with their CV and public-leaderboard scores; enter an LB score",
        description="List the submissions in <workspace>/submissions (newest first) with their CV scores (holdout "
                    "and OOF) and the public-leaderboard score entered for each, the correlation of CV with LB, and "
                    "a flag where the LB lies outside the CV score's 95% bootstrap interval (leakage between folds, "
                    "or a test set unlike the training data).")
    p.add_argument("--set-lb", nargs=2, default=None, metavar=("ID", "SCORE"),
                   help="store the public-LB SCORE of submission ID (the CSV's stem; a unique prefix is enough)")
    p.add_argument("--metric", default=None, choices=INTERVAL_METRICS,
                   help="what the leaderboard measures (default: the one set before, else accuracy)")
    p.add_argument("--clear-lb", default=None, metavar="ID", help="forget the LB score of submission ID")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.set_defaults(func=_submissions)


def _analyze(args) -> int:
    from engine.analysis.report import analyze_runs

    report = analyze_runs(args.runs, views=args.views, tta=args.tta, metric=args.metric, n_resamples=args.resamples,
                          seed=args.seed, search=not args.no_search, workspace=args.workspace)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text(), end="\n" if args.json else "")
    return 0


def _submit(args) -> int:
    from engine.submission import make_submission

    result = make_submission(args.runs, out=args.out, voting=args.voting, tta=args.tta, folds=args.folds,
                             views=args.views, weights=args.weights, workspace=args.workspace)
    expected = result.record.get("expected")
    print(result.path)
    if expected:
        low, high = expected["intervals"]["accuracy"]
        print(f"expected on {expected['subset']} (n={expected['n']}): accuracy {expected['accuracy']:.4f} "
              f"[{low:.4f}, {high:.4f}], macro-F1 {expected['macro_f1']:.4f}")
        if expected.get("fallback"):
            print(f"note: {expected['fallback']}")
    else:
        print("no expected score: " + "; ".join(result.record["cv"]["notes"]))
    print(f"record: {result.sidecar_path}")
    return 0


def _submissions(args) -> int:
    from engine.submission import cv_lb_correlation, list_submissions, set_leaderboard_score

    if args.set_lb:
        sub_id, value = args.set_lb
        try:
            score_value = float(value)
        except ValueError:
            from engine.errors import AnalysisError

            raise AnalysisError(f"The LB score must be a number. Got {value!r} instead.") from None
        set_leaderboard_score(sub_id, score_value, metric=args.metric, workspace=args.workspace)
    if args.clear_lb:
        set_leaderboard_score(args.clear_lb, None, workspace=args.workspace)
    frame = list_submissions(args.workspace)
    correlation = cv_lb_correlation(frame)
    if args.json:
        rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        print(json.dumps({"submissions": rows, "correlation": correlation}, indent=2, default=str))
        return 0
    if frame.empty:
        print("No submissions yet (python -m engine submit RUN writes one).")
        return 0
    shown = frame[["id", "created_at", "expected_on", "holdout_accuracy", "oof_accuracy", "lb_metric", "lb", "cv",
                   "flag"]]
    print(shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"))
    for row in frame[frame["flag"].isin(["outside", "no interval"])].itertuples():
        print(f"{row.id}: {row.message}")
    for subset, c in correlation.items():
        r = "needs 3 submissions with an LB score" if c["r"] is None else f"r = {c['r']:+.3f}"
        print(f"CV ({subset}) vs LB {c['metric']}: {r} (n={c['n']})")
    return 0
