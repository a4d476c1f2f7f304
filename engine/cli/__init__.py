"""``python -m engine``: the engine's command line.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its
sub-commands (each sets ``func(args) -> int``). Heavy imports (torch, timm) happen inside the
command functions so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from engine.errors import EngineError

# Modules contributing commands, in the order they appear in --help.
COMMAND_MODULES = ("engine.cli.data_cmds", "engine.cli.train_cmds", "engine.cli.search_cmd", "engine.cli.analysis_cmds",
                   "engine.cli.label_cmds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Fold Studio engine: datasets, K-fold training, fold ensembles — without the studio.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that command group is not part of this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
