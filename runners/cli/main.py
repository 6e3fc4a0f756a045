"""The `selab` command line: one sub-command per module in runners/cli/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from search_space.errors import ConfigError

# Each module exposes register(subparsers); handlers import heavy libraries lazily so that
# `selab --help` and `selab cost` start fast.
COMMAND_MODULES = (
    "runners.cli.commands.cost",
    "runners.cli.commands.sweep",
    "runners.cli.commands.report",
    "runners.cli.commands.ui",
    "runners.cli.commands.export",
    "runners.cli.commands.analyze",
    "runners.cli.commands.sync",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selab",
        description="Ablations and architecture search for Squeeze-and-Excitation networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # MLflow announces each new SQLite database at INFO: not news to whoever asked for it.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"selab {args.command}: invalid input\n{err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"selab {args.command}: interrupted", file=sys.stderr)
        return 130
