"""Analysis commands: ``analyze`` (every comparison of one or more runs) and ``submit`` (write a submission)."""

from __future__ import annotations

import argparse
import json

from engine.analysis.tta import TTA_MODES
from engine.analysis.voting import VOTING_KINDS

_WORKSPACE_HELP = "workspace folder (default: $FOLD_STUDIO_WORKSPACE or ./workspace)"
_RUN_HELP = "run id (under <workspace>/runs/; a unique prefix is enough) or run directory"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="compare folds, hard vs soft voting, TTA views, label smoothing, ensembles of runs",
        description="Print every comparison the runs allow: per-fold metrics and agreement, hard vs soft voting "
                    "(holdout across folds, OOF across runs), the TTA gain of each view and merged set, label "
                    "smoothing before / after temperature scaling, and the best ensembles — each difference with a "
                    "95%% paired-bootstrap interval.")
    p.add_argument("runs", nargs="+", metavar="RUN", help=_RUN_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--workspace", default=None, help=_WORKSPACE_HELP)
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
                   help="CSV to write (default: <workspace>/submissions/submission-<time>.csv); the sidecar is FILE.json")
    p.add_argument("--folds", nargs="+", type=int, default=None, metavar="K", help="folds to use (default: all)")
    p.add_argument("--views", nargs="+", default=None, metavar="VIEW", help="TTA views to merge (default: all)")
    p.add_argument("--weights", nargs="+", type=float, default=None, metavar="W",
                   help="one weight per (run, fold), run by run (default: equal)")
    p.add_argument("--workspace", default=None, help=_WORKSPACE_HELP)
    p.set_defaults(func=_submit)


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
        print(f"expected on {expected['subset']} (n={expected['n']}): accuracy {expected['accuracy']:.4f}, "
              f"macro-F1 {expected['macro_f1']:.4f}")
    print(f"record: {result.sidecar_path}")
    return 0
