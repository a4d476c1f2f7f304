"""Label commands: ``label-issues`` (rank suspect labels), ``overrides`` (review decisions) and ``label-noise``
(a copy of a dataset with flipped labels)."""

from __future__ import annotations

import argparse
import json

from engine.analysis.tta import TTA_MODES
from engine.cli.train_cmds import WORKSPACE_HELP  # one wording of the shared option


def register(sub: argparse._SubParsersAction) -> None:
    from engine.analysis.label_issues import METHODS, RANK_BY, SUBSETS

    p = sub.add_parser(
        "label-issues", help="rank the training images whose label is probably wrong (confident learning)",
        description="Confident learning on the runs' out-of-sample predictions (OOF, and the holdout when the runs "
                    "have one; several runs of a study are averaged): per-class thresholds, the confident joint "
                    "calibrated to the class counts, the estimated noise matrix, and the ranked samples whose given "
                    "label is probably wrong, with the suggested label and the run / fold models that agree.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run id (under <workspace>/runs/; a unique prefix is enough) or run directory")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--method", default=METHODS[0], choices=METHODS, help=f"pruning rule (default: {METHODS[0]})")
    p.add_argument("--rank-by", default=RANK_BY[0], choices=RANK_BY, help=f"ranking score (default: {RANK_BY[0]})")
    p.add_argument("--subsets", nargs="+", default=list(SUBSETS), choices=SUBSETS,
                   help="labelled predictions to use (default: oof holdout)")
    p.add_argument("--views", nargs="+", default=None, metavar="VIEW", help="TTA views to merge (default: all)")
    p.add_argument("--tta", default="mean", choices=TTA_MODES, help="merge mode of each model's views (default: mean)")
    p.add_argument("--top", type=int, default=30, help="flagged rows printed (default 30; --json: all)")
    p.add_argument("--all", action="store_true", help="list every sample, flagged or not (ranked)")
    p.add_argument("--workspace", default=None, help=WORKSPACE_HELP)
    p.set_defaults(func=_label_issues)

    p = sub.add_parser(
        "overrides", help="show or change a dataset's label overrides (keep / exclude / relabel)",
        description="Label overrides live next to the dataset spec (dataset.overrides.yaml) and never touch the "
                    "images or the CSV; the manifest applies them and every new run records the ones it trained with.")
    p.add_argument("dataset", metavar="DATASET", help="dataset spec YAML or dataset folder")
    p.add_argument("--exclude", nargs="+", default=[], metavar="ID", help="leave these samples out of training")
    p.add_argument("--relabel", nargs=2, action="append", default=[], metavar=("ID", "LABEL"),
                   help="give a sample another label (repeatable)")
    p.add_argument("--keep", nargs="+", default=[], metavar="ID", help="mark these samples reviewed, label right")
    p.add_argument("--remove", nargs="+", default=[], metavar="ID", help="forget these samples' decisions")
    p.add_argument("--note", default=None, help="a note stored with the decisions made by this command")
    p.add_argument("--json", action="store_true", help="print the decisions as JSON")
    p.set_defaults(func=_overrides)

    p = sub.add_parser(
        "label-noise", help="copy a CSV-layout dataset with a share of its labels flipped (to test label review)",
        description="Copy the dataset's folder to OUT and flip --fraction of its training labels to another class "
                    "(seeded); the flipped rows are written to OUT/label_noise.csv.")
    p.add_argument("dataset", metavar="DATASET", help="dataset spec YAML (CSV layout), e.g. the demo's")
    p.add_argument("out", metavar="OUT", help="folder to write the noisy copy to")
    p.add_argument("--fraction", type=float, default=0.1, help="share of training labels flipped (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")
    p.set_defaults(func=_label_noise)


def _label_issues(args) -> int:
    from engine.analysis.label_issues import label_issues

    found = label_issues(args.runs, subsets=args.subsets, method=args.method, rank_by=args.rank_by, views=args.views,
                         tta=args.tta, workspace=args.workspace)
    if args.json:
        data = found.to_dict(max_rows=None)
        if args.all:
            rows = found.issues.drop(columns=["given_index", "suggested_index"]).astype(object)
            data["issues"] = rows.where(rows.notna(), None).to_dict(orient="records")
        print(json.dumps(data, indent=2, default=str))
    elif args.all:
        print(found.issues.drop(columns=["given_index", "suggested_index"]).to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))
    else:
        print(found.to_text(max_rows=args.top), end="")
    return 0


def _overrides(args) -> int:
    from engine.data import open_dataset
    from engine.data.overrides import read_overrides, remove_override, set_override
    from engine.errors import DatasetError

    dataset = open_dataset(args.dataset, overrides=None)
    if dataset.spec_path is None:
        raise DatasetError(f"{args.dataset!r} has no dataset.yaml (is the folder read-only?); overrides are kept "
                           "beside it.")
    given = dict(zip(dataset.manifest["sample_id"].astype(str), dataset.manifest["label"].astype(str), strict=True))
    changes = ([(sid, "exclude", None) for sid in args.exclude] + [(sid, "relabel", lbl) for sid, lbl in args.relabel]
               + [(sid, "keep", None) for sid in args.keep])
    unknown = [sid for sid, _, _ in changes if sid not in given]
    if unknown:
        raise DatasetError(f"Sample id(s) {unknown[:5]} are not training samples of {str(dataset.spec_path)!r} "
                           f"(e.g. {list(given)[:3]}).")
    for sid, action, label in changes:
        set_override(dataset.spec_path, sid, action, label=label, given_label=given[sid], note=args.note,
                     classes=dataset.classes)
    for sid in args.remove:
        remove_override(dataset.spec_path, sid)
    overrides = read_overrides(dataset.spec_path)
    frame = overrides.frame()
    if args.json:
        print(json.dumps({"file": str(overrides.path), "counts": overrides.counts(),
                          "overrides": [o.to_dict() for o in overrides.entries.values()]}, indent=2))
        return 0
    counts = overrides.counts()
    print(f"{overrides.path}: {counts['exclude']} excluded, {counts['relabel']} relabelled, {counts['keep']} kept")
    if not frame.empty:
        print(frame.drop(columns=["updated_at"]).fillna("").to_string(index=False))
    return 0


def _label_noise(args) -> int:
    from engine.data.noise import NOISE_FILE, inject_label_noise

    copy = inject_label_noise(args.dataset, args.out, fraction=args.fraction, seed=args.seed, overwrite=args.overwrite)
    print(copy.spec_path)
    print(f"{len(copy.flipped)} label(s) flipped; the truth is in {copy.spec_path.parent / NOISE_FILE}")
    return 0
