"""The ``tierflow`` command: one entry point, a subcommand per concern, ``--help`` on each."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tierflow import __version__
from tierflow.errors import TierflowError
from tierflow.settings import load_settings
from tierflow.streams.cli import cluster, experiments, pipeline, plan, sources, tiers
from tierflow.streams.cli.common import EPILOG, Handler

OWN_PACKAGES = ("tierflow",)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tierflow",
        description="Deep-learning video analytics across edge, fog and cloud on Apache Kafka.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tierflow {__version__}")
    parser.add_argument("--config", type=Path, help="TOML settings file (beats TIERFLOW_CONFIG)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pipeline.register(sub)
    plan.register(sub)
    cluster.register(sub)
    experiments.register(sub)
    tiers.register(sub)
    sources.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tierflow`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    # -v: tierflow's own INFO (decisions, discovery); -vv: DEBUG of everything (faust too).
    root = logging.DEBUG if args.verbose >= 2 else logging.WARNING
    logging.basicConfig(level=root, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose == 1:
        for package in OWN_PACKAGES:
            logging.getLogger(package).setLevel(logging.INFO)
    try:
        settings = load_settings(args.config)
        handler: Handler = args.handler
        return handler(args, settings)
    except TierflowError as exc:
        print(f"tierflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
