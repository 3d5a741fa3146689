"""Pieces every ``tierflow`` subcommand module shares: consoles, the help epilog, _add."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console

from tierflow.errors import ConfigError
from tierflow.settings import Settings
from tierflow.topics.contract import Contract

console = Console(stderr=True, soft_wrap=True)
Handler = Callable[[argparse.Namespace, Settings], int]
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time before Python 3.12
    Subparsers = argparse._SubParsersAction

EPILOG = """\
Settings come from TIERFLOW_* environment variables (TIERFLOW_TOPICS__PREFIX=exp1), a TOML
file (--config or TIERFLOW_CONFIG) and defaults; KAFKA_BOOTSTRAP_SERVERS points every
command at an existing cluster, in which case no local broker is started.
"""


def stdout() -> Console:
    """Tables go to stdout; piped output gets a width that does not truncate topic names."""
    return Console(width=None if sys.stdout.isatty() else 160)


def add(
    parent: Subparsers,
    name: str,
    help_: str,
    handler: Handler | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name``: ``help_`` is its description, its first clause the summary."""
    parser: argparse.ArgumentParser = parent.add_parser(
        name,
        help=help_.split(". ")[0].split(": ")[0].rstrip("."),
        description=help_,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def ensure_cluster(settings: Settings) -> None:
    """Start the local broker unless an external cluster is configured; wait for it."""
    from tierflow.topics.admin import wait_for_cluster

    if settings.uses_local_broker:
        from tierflow.infra.kafka import LocalBroker

        broker = LocalBroker(settings)
        with console.status(f"starting the local Kafka broker on {broker.bootstrap}"):
            pid = broker.start()
        console.print(f"Kafka {broker.install.version} broker (pid {pid}) at {broker.bootstrap}")
    else:
        wait_for_cluster(Contract.of(settings), timeout_s=settings.connect_timeout_s)
        console.print(f"using the Kafka cluster at {settings.bootstrap}")


def reach_cluster(contract: Contract, settings: Settings, *topics: str) -> None:
    """Wait for the cluster (``connect_timeout_s``) and check that ``topics`` exist on it.

    A client's first contact: without it librdkafka logs every refused connection and the
    command fails with a traceback, or a producer queues frames for a topic that is not
    there until they time out.

    Raises:
        BrokerUnreachableError: no broker answered in time.
        TopicAdminError: a topic is missing.
    """
    from tierflow.topics.admin import known_partitions, wait_for_cluster
    from tierflow.topics.errors import TopicAdminError

    admin = wait_for_cluster(contract, timeout_s=settings.connect_timeout_s)
    if not topics:
        return
    present = admin.list_topics(timeout=settings.connect_timeout_s).topics
    # A topic just created may not be listed by every broker yet: ask again before refusing.
    missing = [t for t in topics if t not in present and known_partitions(admin, t) is None]
    if missing:
        msg = (
            f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist on "
            f"{contract.bootstrap}; run 'tierflow topics create'"
        )
        raise TopicAdminError(msg)


def positive(**values: float | None) -> None:
    """Refuse a given option that is not above zero (None: not given).

    Raises:
        ConfigError: naming the first such option and its value.
    """
    for name, value in values.items():
        if value is not None and not value > 0:
            msg = f"--{name.replace('_', '-')} must be above 0, got {value:g}"
            raise ConfigError(msg)


def with_section(settings: Settings, section: str, **values: object) -> Settings:
    """``settings`` with some fields of one section replaced (flags beat the environment)."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return settings
    current = getattr(settings, section)
    try:
        updated = current.model_validate({**current.model_dump(), **given})
    except ValidationError as exc:
        problems = "; ".join(
            f"{section}.{'.'.join(str(p) for p in err['loc'])}={err['input']!r}: {err['msg']}"
            for err in exc.errors()
        )
        msg = f"invalid {section} option: {problems}"
        raise ConfigError(msg) from exc
    return settings.model_copy(update={section: updated})


def create_topics(settings: Settings) -> None:
    """Create (or check) the catalogue's topics of the settings' prefix."""
    from tierflow.topics.admin import create_catalogue

    with console.status("creating topics"):
        changes = create_catalogue(Contract.of(settings))
    created = sum(c.action.value == "created" for c in changes)
    console.print(f"{len(changes)} topics in the catalogue ({created} created)")
