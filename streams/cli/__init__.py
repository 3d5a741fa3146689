"""The ``tierflow`` command: one entry point, a subcommand per concern, ``--help`` on each.

``--config`` and ``-v`` are global: accepted before the command and after it (and after
an action, ``tierflow topics describe -v``); ``-v`` counts add up across positions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tierflow import __version__
from tierflow.errors import TierflowError
from tierflow.settings import load_settings
from tierflow.streams.cli import (
    cluster,
    config,
    experiments,
    grafana,
    pipeline,
    plan,
    sources,
    tiers,
)
from tierflow.streams.cli.common import (
    EPILOG,
    GLOBAL_OPTIONS,
    Handler,
    HelpFormatter,
    resolve_globals,
)

OWN_PACKAGES = ("tierflow",)
INFO_COMMANDS = frozenset({"worker", "node"})
"""Long-running services: they log tierflow's INFO (start, assignment, restarts) without -v,
since their log is what an operator reads when one misbehaves."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tierflow",
        description="Deep-learning video analytics across edge, fog and cloud on Apache Kafka.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
        parents=[GLOBAL_OPTIONS],
    )
    parser.add_argument("--version", action="version", version=f"tierflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pipeline.register(sub)
    plan.register(sub)
    cluster.register(sub)
    config.register(sub)
    experiments.register(sub)
    tiers.register(sub)
    sources.register(sub)
    grafana.register(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; ``config`` (a path or None) and ``verbose`` (a count) are always set."""
    return resolve_globals(build_parser().parse_args(argv))


def configure_logging(verbose: int, command: str) -> None:
    """Log levels for ``-v`` given ``verbose`` times to ``command``.

    Without -v only warnings, except for the services of ``INFO_COMMANDS``, which log
    tierflow's own INFO; -v: tierflow's own INFO (decisions, discovery); -vv: DEBUG of
    everything (faust and librdkafka too).
    """
    root = logging.DEBUG if verbose >= 2 else logging.WARNING
    logging.basicConfig(level=root, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose == 1 or (verbose == 0 and command in INFO_COMMANDS):
        for package in OWN_PACKAGES:
            logging.getLogger(package).setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tierflow`` command; returns the exit status."""
    args = parse_args(argv)
    configure_logging(args.verbose, args.command)
    try:
        settings = load_settings(args.config)
        handler: Handler = args.handler
        return handler(args, settings)
    except TierflowError as exc:
        print(f"tierflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
