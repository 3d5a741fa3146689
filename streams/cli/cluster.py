"""``tierflow kafka``, ``topics`` and ``lag``: the broker (or cluster), the catalogue, lag.

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
    env_help,
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
    admin = wait_for_cluster(contract, timeout_s=settings.connect_timeout_s)
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


def _confirm(question: str) -> bool:
    """Ask ``question`` on the terminal; anything but y or yes, end of input too, is no."""
    console.print(f"{question} [y/N] ", end="", markup=False)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_topics_delete(args: argparse.Namespace, settings: Settings) -> int:
    """List the topics under ``--prefix``, confirm, delete them; exit 1 when declined."""
    from tierflow.topics.admin import delete_prefixed, prefixed_topics

    contract = Contract.of(settings)
    names = prefixed_topics(contract, args.prefix, settings.connect_timeout_s)
    head = args.prefix.rstrip(".") + "."
    if not names:
        console.print(f"no topic at {contract.bootstrap} starts with {head}", markup=False)
        return 0
    for name in names:  # stdout, one per line: what a script would pipe on
        print(name)
    question = f"delete these {len(names)} topics from {contract.bootstrap}?"
    if not args.yes and not _confirm(question):
        console.print("nothing deleted")
        return 1
    deleted = delete_prefixed(contract, args.prefix, only=names, timeout_s=args.timeout)
    console.print(f"{len(deleted)} topics deleted ({head}*)", markup=False)
    return 0


def cmd_lag(args: argparse.Namespace, settings: Settings) -> int:
    """Consumer-group lag of the deployment's stages, per partition, as a table or JSON."""
    from confluent_kafka import KafkaException

    from tierflow.topics.admin import wait_for_cluster
    from tierflow.topics.errors import TopicAdminError
    from tierflow.topics.group_probe import consumed_topics
    from tierflow.topics.lag import GROUP_STEM, group_lag

    positive(timeout=args.timeout)
    contract = Contract.of(settings)
    admin = wait_for_cluster(contract, timeout_s=settings.connect_timeout_s)
    try:
        rows = group_lag(contract, timeout_s=args.timeout)
        # Whether a live member holds each topic: a lag nobody consumes only grows.
        live = consumed_topics(admin, {r.group for r in rows}, timeout_s=args.timeout)
    except KafkaException as exc:
        reason = exc.args[0] if exc.args else exc
        msg = f"reading consumer-group lag at {contract.bootstrap}: {reason}"
        raise TopicAdminError(msg) from exc
    stem = contract.names.group(GROUP_STEM)
    groups: dict[str, list[dict[str, object]]] = {}
    totals: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: (r.group, r.topic, r.partition)):
        assigned = live.get(r.group)
        groups.setdefault(r.group, []).append(
            {
                "topic": r.topic,
                "partition": r.partition,
                "committed": r.committed,
                "end": r.end,
                "lag": r.lag,
                "lag_s": None if r.lag_s is None else round(r.lag_s, 3),
                "consumed": None if assigned is None else r.topic in assigned,
            }
        )
        totals[r.group] = totals.get(r.group, 0) + r.lag
    if args.json:
        listed = [
            {"group": g, "stage": g.removeprefix(stem), "lag": totals[g], "partitions": parts}
            for g, parts in groups.items()
        ]
        doc = {"bootstrap": contract.bootstrap, "prefix": contract.names.prefix, "groups": listed}
        print(json.dumps(doc, indent=2))
        return 0
    if not groups:
        console.print(f"no consumer group {stem}* has committed offsets at {contract.bootstrap}")
        return 0
    table = Table(
        "stage",
        "topic",
        "partition",
        "committed",
        "end",
        "lag",
        "lag s",
        "consumer",
        title=f"consumer-group lag at {contract.bootstrap}",
    )
    for group, parts in groups.items():
        for part in parts:
            consumed, age = part["consumed"], part["lag_s"]
            table.add_row(
                group.removeprefix(stem),
                *(str(part[k]) for k in ("topic", "partition", "committed", "end", "lag")),
                "" if age is None else f"{age:.1f}",
                "?" if consumed is None else "live" if consumed else "none",
            )
    stdout().print(table)
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
            help=f"nodes of the local KRaft cluster {env_help('broker.brokers')}",
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
    delete = add(
        actions,
        "delete",
        "Delete every topic whose name starts with PREFIX. (the catalogue's, faust's "
        "changelogs, anything): lists them, asks, deletes and waits until they are gone. "
        "Exit 1 when the answer is no.",
        cmd_topics_delete,
    )
    delete.add_argument(
        "--prefix",
        required=True,
        help="the deployment's topic prefix (topics.prefix), without the dot; never empty",
    )
    delete.add_argument("--yes", action="store_true", help="delete without asking")
    delete.add_argument(
        "--timeout", type=float, default=30.0, help="seconds for the deletions to complete"
    )
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

    lag = add(
        sub,
        "lag",
        "Show the consumer-group lag of each stage, like kafka-consumer-groups --describe: "
        "for every group of this deployment's prefix and partition it committed on, the "
        "committed offset, the log end offset, the lag in messages and in seconds (the age "
        "of the oldest unconsumed message), and whether a live member consumes the topic.",
        cmd_lag,
    )
    lag.add_argument("--json", action="store_true", help="print one JSON document")
    lag.add_argument(
        "--timeout", type=float, default=10.0, help="seconds for each request to the cluster"
    )
