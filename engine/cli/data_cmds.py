"""Dataset commands: ``demo`` (write the demo dataset) and ``scan`` (scan a dataset, print its summary)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="write the built-in demo dataset (handwritten digits)",
                       description="Write the demo dataset (scikit-learn's digits as a competition-shaped folder).")
    p.add_argument("--out", default=None, help="folder to write (default: <workspace>/datasets/digits-demo)")
    p.add_argument("--workspace", default=None, help="workspace folder (default: $FOLD_STUDIO_WORKSPACE or ./workspace)")
    p.add_argument("--overwrite", action="store_true", help="rewrite it even when it exists")
    p.set_defaults(func=_demo)
    try:
        from engine.cli.scan_cmd import register_scan
    except ModuleNotFoundError as e:
        if e.name != "engine.cli.scan_cmd":
            raise
    else:
        register_scan(sub)


def _demo(args) -> int:
    from engine.data.demo import default_demo_dir, make_demo_dataset

    out = args.out or default_demo_dir(args.workspace)
    spec = make_demo_dataset(out, overwrite=args.overwrite)
    print(spec)
    return 0
