"""The ``tierflow`` command: one entry point, a subcommand per concern, ``--help`` on each."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tierflow import __version__
from tierflow.errors import TierflowError
from tierflow.settings import Settings, load_settings

console = Console(stderr=True, soft_wrap=True)


def _stdout() -> Console:
    """Tables go to stdout; piped output gets a width that does not truncate topic names."""
    return Console(width=None if sys.stdout.isatty() else 160)


Handler = Callable[[argparse.Namespace, Settings], int]

EPILOG = """\
Settings come from TIERFLOW_* environment variables (TIERFLOW_TOPICS__PREFIX=exp1), a TOML
file (--config or TIERFLOW_CONFIG) and defaults; KAFKA_BOOTSTRAP_SERVERS points every
command at an existing cluster, in which case no local broker is started.
"""


def _local_broker(settings: Settings):  # type: ignore[no-untyped-def]  # lazy import keeps --help fast
    from infra.kafka import LocalBroker

    return LocalBroker(settings)


def _ensure_cluster(settings: Settings) -> None:
    """Start the local broker unless an external cluster is configured; wait for it."""
    from topics.admin import wait_for_cluster

    if settings.uses_local_broker:
        broker = _local_broker(settings)
        with console.status(f"starting the local Kafka broker on {broker.bootstrap}"):
            pid = broker.start()
        console.print(f"Kafka {broker.install.version} broker (pid {pid}) at {broker.bootstrap}")
    else:
        wait_for_cluster(settings, timeout_s=30.0)
        console.print(f"using the Kafka cluster at {settings.bootstrap}")


def cmd_kafka_install(args: argparse.Namespace, settings: Settings) -> int:
    """Resolve the broker's jars from Maven Central into the cache."""
    from infra.kafka import BrokerInstall

    install = BrokerInstall.from_settings(settings.broker)
    with console.status(f"resolving Kafka {install.version} with Maven"):
        libs = install.ensure()
    print(libs)
    return 0


def cmd_kafka_up(args: argparse.Namespace, settings: Settings) -> int:
    """Start the local broker (or check the external cluster answers)."""
    _ensure_cluster(settings)
    return 0


def cmd_kafka_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the local broker."""
    if not settings.uses_local_broker:
        console.print(f"KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap}: not ours to stop")
        return 0
    broker = _local_broker(settings)
    stopped = broker.stop()
    console.print("broker stopped" if stopped else f"no broker was running on {broker.bootstrap}")
    return 0


def cmd_kafka_status(args: argparse.Namespace, settings: Settings) -> int:
    """Report whether the broker runs and answers; exit 1 when it does not."""
    if not settings.uses_local_broker:
        from topics.admin import wait_for_cluster
        from topics.errors import BrokerUnreachableError

        try:
            wait_for_cluster(settings, timeout_s=5.0)
        except BrokerUnreachableError as exc:
            print(
                json.dumps({"external": True, "bootstrap": settings.bootstrap, "answering": False})
            )
            console.print(str(exc))
            return 1
        print(json.dumps({"external": True, "bootstrap": settings.bootstrap, "answering": True}))
        return 0
    status = _local_broker(settings).status()
    print(
        json.dumps(
            {
                "external": False,
                "running": status.running,
                "answering": status.answering,
                "pid": status.pid,
                "bootstrap": status.bootstrap,
                "version": status.version,
                "state_dir": str(status.state_dir),
            }
        )
    )
    return 0 if status.answering else 1


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create or reconcile every topic of the catalogue; exit 1 on conflicts."""
    from topics.admin import Action, create_catalogue

    changes = create_catalogue(settings)
    table = Table("topic", "action", "detail", title=f"topics at {settings.bootstrap}")
    for change in changes:
        table.add_row(change.name, change.action.value, change.detail)
    _stdout().print(table)
    return 1 if any(c.action is Action.CONFLICT for c in changes) else 0


def cmd_topics_describe(args: argparse.Namespace, settings: Settings) -> int:
    """Show each catalogue topic as the cluster has it; exit 1 when any differs."""
    from topics.admin import describe_topics, wait_for_cluster
    from topics.catalogue import Catalogue

    admin = wait_for_cluster(settings, timeout_s=30.0)
    states = describe_topics(admin, Catalogue.from_settings(settings))
    if args.json:
        rows = [
            {
                "name": s.spec.name,
                "kind": s.spec.kind.value,
                "exists": s.exists,
                "partitions": s.partitions,
                "replication_factor": s.replication_factor,
                "config": s.config,
                "differences": s.differences,
                "purpose": s.spec.purpose,
            }
            for s in states
        ]
        print(json.dumps({"bootstrap": settings.bootstrap, "topics": rows}, indent=2))
    else:
        table = Table(
            "topic",
            "partitions",
            "replicas",
            "cleanup",
            "retention",
            "max message",
            "state",
            title=f"topic catalogue at {settings.bootstrap}",
        )
        for s in states:
            cfg = s.config
            retention = cfg.get("retention.ms", "")
            table.add_row(
                s.spec.name,
                str(s.partitions),
                str(s.replication_factor),
                cfg.get("cleanup.policy", ""),
                f"{int(retention) / 1000:.0f} s" if retention.isdigit() else retention,
                cfg.get("max.message.bytes", "default"),
                "ok" if not s.differences else "; ".join(s.differences),
            )
        _stdout().print(table)
    return 0 if all(not s.differences for s in states) else 1


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The main job: broker, topics, and a sample frame through a faust agent."""
    from streams.smoke import round_trip
    from topics.admin import create_catalogue

    _ensure_cluster(settings)
    with console.status("creating topics"):
        changes = create_catalogue(settings)
    created = sum(c.action.value == "created" for c in changes)
    console.print(f"{len(changes)} topics in the catalogue ({created} created)")
    with console.status("round-tripping a sample frame through a faust agent"):
        report = asyncio.run(round_trip(settings, quality=args.quality, timeout_s=args.timeout))
    summary = {
        "bootstrap": settings.bootstrap,
        "topics": len(changes),
        "round_trip": {
            "source": report.source,
            "from": report.topic_in,
            "to": report.topic_out,
            "frame_bytes": report.frame_bytes,
            "latency_s": round(report.latency_s, 4),
            "agent_s": round(report.agent_s, 4),
        },
    }
    print(json.dumps(summary, indent=2))
    return 0


def _add(
    parent: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_: str,
    handler: Handler | None = None,
) -> argparse.ArgumentParser:
    parser = parent.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


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

    up = _add(
        sub,
        "up",
        "Run the main job: start the local broker if no cluster is given, create the topic "
        "catalogue, send a sample frame camera -> faust agent -> consumer, print a JSON summary.",
        cmd_up,
    )
    up.add_argument("--quality", type=int, default=512, help="quality topic to use (default 512)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the frame")

    kafka = _add(sub, "kafka", "Manage the local Apache Kafka broker (KRaft, no Docker).")
    actions = kafka.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add(actions, "install", "Resolve the broker's jars from Maven Central.", cmd_kafka_install)
    _add(actions, "up", "Start the local broker; wait until it answers.", cmd_kafka_up)
    _add(actions, "down", "Stop the local broker (SIGTERM, then SIGKILL).", cmd_kafka_down)
    _add(actions, "status", "Print the state as JSON; exit 1 unless it answers.", cmd_kafka_status)

    topics = _add(sub, "topics", "Create and inspect the topic catalogue.")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add(
        actions,
        "create",
        "Create missing topics, add partitions and set configs (idempotent); exit 1 on conflicts.",
        cmd_topics_create,
    )
    describe = _add(
        actions,
        "describe",
        "Show every catalogue topic as the cluster has it; exit 1 when one differs.",
        cmd_topics_describe,
    )
    describe.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tierflow`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        handler: Handler = args.handler
        return handler(args, settings)
    except TierflowError as exc:
        print(f"tierflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
