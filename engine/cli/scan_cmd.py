"""``python -m engine scan DATASET``: scan a dataset's images and print its summary (text or JSON)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

from engine.errors import ConfigError

MAX_LISTED_PER_KIND = 20  # text output: problems listed per kind (the JSON lists every one)


def register_scan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan", help="scan a dataset's images and print its summary (classes, sizes, problems)",
        description="Open a dataset (a spec YAML, or a folder: its dataset.yaml, else the layout is detected and "
                    "the spec written), scan every training and test image (cached in the workspace), and print "
                    "the class counts, image sizes and every problem found.",
    )
    p.add_argument("dataset", metavar="DATASET", help="a dataset spec (dataset.yaml) or a dataset folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text summary")
    p.add_argument("--folds", type=int, default=None, metavar="K",
                   help="also report the classes with fewer than K images (too small for K-fold training)")
    p.add_argument("--workspace", default=None, help="workspace folder for the scan cache "
                   "(default: $FOLD_STUDIO_WORKSPACE or ./workspace)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that read images (default: every core; 1 scans in this process)")
    p.set_defaults(func=_scan)


def _progress_bar():
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="img", desc="Scanning", file=sys.stderr, disable=None, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _scan(args) -> int:
    from engine.data import open_dataset
    from engine.data.scan import scan_dataset

    if args.folds is not None and args.folds < 2:
        raise ConfigError(f"--folds must be at least 2 (K-fold training needs two folds); got {args.folds}.")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1; got {args.workers}.")
    started = time.perf_counter()
    dataset = open_dataset(args.dataset)
    result = scan_dataset(dataset, workspace=args.workspace, workers=args.workers, progress=_progress_bar())
    if args.folds is not None:
        result.problems.extend(p for p in dataset.check_folds(args.folds) if p not in result.problems)
    summary = summarize(dataset, result, seconds=time.perf_counter() - started)
    sys.stdout.reconfigure(errors="backslashreplace")
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        print(format_summary(summary))
    return 0


def _display_path(path: str, root: Path) -> str:
    """Problem paths relative to the dataset folder when they lie inside it (shorter to read)."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            return path
    return path


def _range(series) -> dict | None:
    values = series.dropna().astype(float)
    if values.empty:
        return None
    return {"min": float(values.min()), "median": float(values.median()), "max": float(values.max())}


def summarize(dataset, result, *, seconds: float) -> dict:
    """The scan's summary as plain JSON-able data (what ``--json`` prints)."""
    from engine.data.eda import class_distribution, imbalance_ratio, normalization_stats
    from engine.errors import DatasetError

    table = result.table
    dist = class_distribution(dataset.manifest, dataset.classes)
    ratio = imbalance_ratio(dist)
    ok = table[table["error"].isna()]
    try:
        mean, std = normalization_stats(table)
        normalization = {"mean": [round(v, 4) for v in mean], "std": [round(v, 4) for v in std]}
    except DatasetError:
        normalization = None
    problems = [
        {"kind": p.kind, "path": _display_path(p.path, dataset.root), "message": p.message} for p in result.problems
    ]
    return {
        "name": dataset.name,
        "root": str(dataset.root),
        "spec": str(dataset.spec_path) if dataset.spec_path else None,
        "layout": dataset.spec.layout,
        "label": dataset.label_source(),
        "num_images": int(len(dataset.manifest)),
        "num_test_images": int(len(dataset.test_manifest)),
        "num_classes": int(dataset.num_classes),
        "classes": [str(c) for c in dataset.classes],
        "class_counts": {str(r.label): int(r.count) for r in dist.itertuples()},
        "imbalance_ratio": round(ratio, 4) if math.isfinite(ratio) else None,
        "image_sizes": {"width": _range(ok["width"]), "height": _range(ok["height"]),
                        "aspect": _range(ok["aspect"]), "file_size": _range(ok["file_size"])},
        "modes": {str(k): int(v) for k, v in table["mode"].value_counts().items()},
        "formats": {str(k): int(v) for k, v in table["format"].value_counts().items()},
        "normalization": normalization,
        "problem_counts": dict(Counter(p["kind"] for p in problems)),
        "problems": problems,
        "scan": {"rescanned": int(result.rescanned), "cached": int(result.cached), "seconds": round(seconds, 2)},
    }


def _fmt_range(r: dict | None, unit: str = "") -> str:
    if r is None:
        return "unknown"
    if r["min"] == r["max"]:
        return f"{r['min']:g}{unit}"
    return f"{r['min']:g}-{r['max']:g}{unit} (median {r['median']:g})"


def format_summary(s: dict) -> str:
    """The text report of :func:`summarize`'s data."""
    from engine.data.manifest import label_source_text

    counts = s["class_counts"]
    shown = list(counts.items())[:30]
    ratio = "infinite (a class has no image)" if s["imbalance_ratio"] is None else f"{s['imbalance_ratio']:.2f}"
    lines = [
        f"Dataset {s['name']!r} ({s['layout']} layout) in {s['root']}",
        f"Images: {s['num_images']:,} training in {s['num_classes']} classes, {s['num_test_images']:,} test",
        label_source_text(s["label"]),
        "Class counts: " + ", ".join(f"{k}: {v:,}" for k, v in shown)
        + (f", ... ({len(counts) - len(shown)} more)" if len(counts) > len(shown) else ""),
        f"Imbalance ratio (largest / smallest class): {ratio}",
        f"Image width: {_fmt_range(s['image_sizes']['width'], ' px')}; height: "
        f"{_fmt_range(s['image_sizes']['height'], ' px')}",
        "Modes: " + ", ".join(f"{k} {v:,}" for k, v in s["modes"].items())
        + "; formats: " + ", ".join(f"{k} {v:,}" for k, v in s["formats"].items()),
    ]
    if s["normalization"]:
        lines.append(f"Normalization (training images, 0-1): mean {tuple(s['normalization']['mean'])}, "
                     f"std {tuple(s['normalization']['std'])}")
    problems = s["problems"]
    if not problems:
        lines.append("Problems: none")
    else:
        lines.append(f"Problems: {len(problems):,} ("
                     + ", ".join(f"{k} {v:,}" for k, v in s["problem_counts"].items()) + ")")
        by_kind: dict[str, list[dict]] = {}
        for p in problems:
            by_kind.setdefault(p["kind"], []).append(p)
        for kind, items in by_kind.items():
            lines.append(f"  {kind} ({len(items):,}):")
            for p in items[:MAX_LISTED_PER_KIND]:
                lines.append(f"    {p['path']}: {p['message']}")
            if len(items) > MAX_LISTED_PER_KIND:
                lines.append(f"    ... and {len(items) - MAX_LISTED_PER_KIND:,} more (--json lists them all)")
    scan = s["scan"]
    lines.append(f"Scan: {scan['rescanned']:,} image(s) read, {scan['cached']:,} from the cache, "
                 f"{scan['seconds']:.1f} s")
    return "\n".join(lines)

