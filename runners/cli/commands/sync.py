"""`selab sync NAME`: bring MLflow up to date from the sweep's journal, at any time.

For a sweep whose driver ended while the tracking server was away (the driver waits a bounded
time for it, then leaves the rest in the journal), or whose driver was killed. Sending is
idempotent: epochs MLflow already has are not logged again. A sweep whose driver is gone is
closed as FAILED in MLflow (`selab resume` reopens it).
"""

from __future__ import annotations

import argparse

from runners.spec.defaults import DEFAULT_STORAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    sync = subparsers.add_parser(
        "sync", help="send to MLflow what a sweep's driver could not (tracking server away)"
    )
    sync.add_argument("name", help="the sweep's name (the spec's `name`)")
    sync.add_argument("--storage", help=f"Ray storage folder (default: {DEFAULT_STORAGE})")
    sync.set_defaults(func=sync_command)


def sync_command(args: argparse.Namespace) -> int:
    from runners.tracking.sync import sync_sweep

    report = sync_sweep(args.name, storage=args.storage)
    print(report.message)
    return 0 if report.unsent == 0 else 1
