"""``tierflow kafka`` and ``tierflow topics``: the local broker (or cluster) and the catalogue.

``--brokers N`` on ``kafka up|down|status`` overrides ``broker.brokers`` for that command;
set ``TIERFLOW_BROKER__BROKERS`` so every other command (topic replication) agrees.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from rich.table import Table

from tierflow.settings import Settings
from tierflow.streams.cli.common import (
    Subparsers,
    add,
    console,
    ensure_cluster,
    positive,
    stdout,
    with_section,
)
from tierflow.topics.acls import ROLES
from tierflow.topics.contract import Contract

if TYPE_CHECKING:
    from tierflow.infra.kafka import LocalBroker


def _local_broker(settings: Settings) -> LocalBroker:
    from tierflow.infra.kafka import LocalBroker

    return LocalBroker(settings)


def _with_brokers(args: argparse.Namespace, settings: Settings) -> Settings:
    """``settings`` with ``--brokers`` (when given) as ``broker.brokers``."""
    positive(brokers=args.brokers)
    return with_section(settings, "broker", brokers=args.brokers)


def cmd_kafka_install(args: argparse.Namespace, settings: Settings) -> int:
    """Resolve the broker's jars from Maven Central into the cache."""
    from tierflow.infra.kafka import BrokerInstall

    install = BrokerInstall.from_settings(settings.broker)
    with console.status(f"resolving Kafka {install.version} with Maven"):
        libs = install.ensure()
    print(libs)
    return 0


def cmd_kafka_up(args: argparse.Namespace, settings: Settings) -> int:
    """Start the local broker or cluster (or check the external cluster answers)."""
    ensure_cluster(_with_brokers(args, settings))
    return 0


def cmd_kafka_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the local broker or cluster."""
    settings = _with_brokers(args, settings)
    if not settings.uses_local_broker:
        console.print(f"KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap}: not ours to stop")
        return 0
    broker = _local_broker(settings)
    stopped = broker.cluster.stop()
    if not stopped:
        console.print(f"no broker was running on {broker.bootstrap}")
    else:
        console.print("broker stopped" if stopped == 1 else f"{stopped} brokers stopped")
    return 0


def cmd_kafka_status(args: argparse.Namespace, settings: Settings) -> int:
    """Report whether the broker runs and answers; exit 1 when it does not.

    With several local brokers the JSON also lists each node under ``nodes``; the
    top-level fields are node 1's, and ``answering`` is true only when every node is.
    """
    settings = _with_brokers(args, settings)
    if not settings.uses_local_broker:
        from tierflow.topics.admin import wait_for_cluster
        from tierflow.topics.errors import BrokerUnreachableError

        try:
            wait_for_cluster(Contract.of(settings), timeout_s=5.0)
        except BrokerUnreachableError as exc:
            print(
                json.dumps({"external": True, "bootstrap": settings.bootstrap, "answering": False})
            )
            console.print(str(exc))
            return 1
        print(json.dumps({"external": True, "bootstrap": settings.bootstrap, "answering": True}))
        return 0
    nodes = _local_broker(settings).cluster.status()
    rows = [
        {
            "running": n.running,
            "answering": n.answering,
            "pid": n.pid,
            "bootstrap": n.bootstrap,
            "version": n.version,
            "state_dir": str(n.state_dir),
        }
        for n in nodes
    ]
    answering = all(n.answering for n in nodes)
    state: dict[str, object] = {"external": False, **rows[0], "answering": answering}
    if len(rows) > 1:
        state["nodes"] = rows
    print(json.dumps(state))
    return 0 if answering else 1


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create or reconcile every topic of the catalogue; exit 1 on conflicts."""
    from tierflow.topics.admin import Action, create_catalogue

    changes = create_catalogue(Contract.of(settings))
    table = Table("topic", "action", "detail", title=f"topics at {settings.bootstrap}")
    for change in changes:
        table.add_row(change.name, change.action.value, change.detail)
    stdout().print(table)
    return 1 if any(c.action is Action.CONFLICT for c in changes) else 0


def cmd_topics_describe(args: argparse.Namespace, settings: Settings) -> int:
    """Show each catalogue topic as the cluster has it; exit 1 when any differs."""
    from tierflow.topics.admin import describe_topics, wait_for_cluster

    contract = Contract.of(settings)
    admin = wait_for_cluster(contract, timeout_s=30.0)
    states = describe_topics(admin, contract.catalogue)
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
        stdout().print(table)
    return 0 if all(not s.differences for s in states) else 1


def cmd_topics_acls(args: argparse.Namespace, settings: Settings) -> int:
    """Print the ACLs of a role for a principal; with ``--apply``, create them."""
    from tierflow.topics.acls import grant, role_acls, row

    contract = Contract.of(settings)
    try:
        bindings = role_acls(contract.names, args.role, args.principal)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    table = Table("permission", "operation", "resource", "pattern", "name", title=args.role)
    for binding in bindings:
        table.add_row(*row(binding))
    stdout().print(table)
    if args.apply:
        ensure_cluster(settings)
        count = grant(contract, args.role, args.principal)
        console.print(f"{count} ACLs in force for {args.principal} at {contract.bootstrap}")
    return 0


def register(sub: Subparsers) -> None:
    """Add the ``kafka`` and ``topics`` commands."""
    kafka = add(sub, "kafka", "Manage the local Apache Kafka broker (KRaft, no Docker).")
    actions = kafka.add_subparsers(dest="action", required=True, metavar="ACTION")
    add(actions, "install", "Resolve the broker's jars from Maven Central.", cmd_kafka_install)
    for name, help_, handler in (
        ("up", "Start the local broker(s); wait until they answer.", cmd_kafka_up),
        ("down", "Stop the local broker(s) (SIGTERM, then SIGKILL).", cmd_kafka_down),
        ("status", "Print the state as JSON; exit 1 unless it answers.", cmd_kafka_status),
    ):
        action = add(actions, name, help_, handler)
        action.add_argument(
            "--brokers",
            type=int,
            help="nodes of the local KRaft cluster (default broker.brokers, 1)",
        )

    topics = add(sub, "topics", "Create and inspect the topic catalogue.")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    add(
        actions,
        "create",
        "Create missing topics, add partitions and set configs (idempotent); exit 1 on conflicts.",
        cmd_topics_create,
    )
    describe = add(
        actions,
        "describe",
        "Show every catalogue topic as the cluster has it; exit 1 when one differs.",
        cmd_topics_describe,
    )
    describe.add_argument("--json", action="store_true", help="machine-readable output")
    acls = add(
        actions,
        "acls",
        "Print (or --apply) the ACLs of a role on a cluster with an authorizer: a camera "
        "writes only its frames, only the controller writes assignments and placement.",
        cmd_topics_acls,
    )
    acls.add_argument("role", choices=ROLES, help="camera, controller or worker")
    acls.add_argument("principal", help="the principal, e.g. User:cam1 (its SASL user name)")
    acls.add_argument(
        "--apply",
        action="store_true",
        help="create them (needs a super user's credentials in the [kafka] settings)",
    )
