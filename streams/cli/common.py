"""Pieces every ``tierflow`` subcommand module shares: consoles, help, global options, add.

Help is rendered by rich-argparse (:class:`HelpFormatter`). It was picked over a plain
``argparse.HelpFormatter`` subclass because ``rich`` is already a dependency (the tables
and live views), it is a thin formatter subclass rather than a CLI framework (the
parsers stay plain argparse: ``add``, ``set_defaults(handler=...)`` and every test that
parses arguments are unchanged), and it gives coloured, aligned help in a terminal while
printing plain text to a pipe. Click or Typer would have meant rewriting every command.
Rich markup is off so help texts may say ``[kafka]`` or ``[[sources]]`` literally.

Every option that maps to a setting says so in its help with :func:`env_help`: the
setting's default and the ``TIERFLOW_*`` variable that changes it, read from the settings
model itself so the help cannot drift from it.
"""

from __future__ import annotations

import argparse
import enum
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich_argparse import RawDescriptionRichHelpFormatter

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


VERBOSE_KEY = "verbose@"
"""Namespace attributes ``verbose@<prog>`` hold the ``-v`` count given at one parser level."""


class HelpFormatter(RawDescriptionRichHelpFormatter):
    """Help of every tierflow command: descriptions as written, defaults shown.

    Like ``argparse.ArgumentDefaultsHelpFormatter`` but without its noise: no default is
    added for flags, for None, empty or suppressed defaults, nor to a help text that
    already names its default (those of :func:`env_help` do).
    """

    # "usage:" and "options:" as argparse writes them; rich-argparse would title-case them.
    group_name_formatter = str.lower
    help_markup = False
    text_markup = False

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        default = action.default
        if (
            not text
            or "default" in text
            or action.nargs == 0  # flags: store_true, count, help, version
            or default is None
            or default is argparse.SUPPRESS
            or (isinstance(default, list | tuple | set | dict) and not default)
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, "*"))
        ):
            return text
        return f"{text} (default {_escape(show_value(default))})"


def _escape(text: str) -> str:
    """``text`` safe inside an argparse help string (which is %-formatted)."""
    return text.replace("%", "%%")


def show_value(value: object) -> str:
    """A default as a user would type it: ``25`` not ``25.0``, ``true``, ``320 416 512``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(show_value(v) for v in value)
    if value == "":
        return '""'
    return str(value)


def setting_field(setting: str) -> tuple[FieldInfo, str]:
    """The field of :class:`Settings` at the dotted path ``setting`` and its variable.

    Args:
        setting: ``section.field`` (``camera.fps``) or a top-level field name.

    Returns:
        The pydantic field and the environment variable that sets it
        (``TIERFLOW_CAMERA__FPS``; a top-level field's alias such as
        ``KAFKA_BOOTSTRAP_SERVERS`` where it has one).

    Raises:
        ValueError: no such setting (a renamed field fails when the parser is built).
    """
    model: type[BaseModel] = Settings
    parts = setting.split(".")
    for depth, part in enumerate(parts[:-1]):
        section = model.model_fields.get(part)
        annotation = None if section is None else section.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            msg = f"no setting {setting!r}: {'.'.join(parts[: depth + 1])} is not a section"
            raise ValueError(msg)
        model = annotation
    field = model.model_fields.get(parts[-1])
    if field is None:
        msg = f"no setting {setting!r}: {model.__name__} has no field {parts[-1]!r}"
        raise ValueError(msg)
    alias = field.validation_alias
    if len(parts) == 1 and isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str) and c != parts[0]]
        if names:
            return field, names[0].upper()
    prefix = Settings.model_config.get("env_prefix", "")
    delimiter = Settings.model_config.get("env_nested_delimiter") or "__"
    return field, prefix + delimiter.join(p.upper() for p in parts)


def env_help(setting: str) -> str:
    """``(default 25; env TIERFLOW_CAMERA__FPS)``: the setting's default and its variable.

    The default is the settings model's (a factory's is computed, e.g. the host name);
    a setting whose default is None shows only its variable.

    Raises:
        ValueError: no such setting.
    """
    field, variable = setting_field(setting)
    default: Any = field.get_default(call_default_factory=True, validated_data={})
    if default is None or default is PydanticUndefined:
        return f"(env {variable})"
    return f"(default {_escape(show_value(default))}; env {variable})"


class Verbosity(argparse.Action):
    """``-v``, counted per parser level so that counts before and after a command add up.

    argparse parses a subcommand's options into a fresh namespace and copies it over its
    parent's: a plain ``count`` after the subcommand would restart at 0 and overwrite the
    count given before it. Each level counts under its own key instead
    (``verbose@tierflow topics``) and :func:`resolve_globals` adds them.
    """

    def __init__(
        self,
        option_strings: list[str],
        dest: str,
        default: object = argparse.SUPPRESS,
        help: str | None = None,
    ) -> None:
        # The default is always suppressed: resolve_globals() supplies the 0.
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        """Count one more ``-v`` at the level of ``parser``."""
        key = VERBOSE_KEY + parser.prog
        setattr(namespace, key, getattr(namespace, key, 0) + 1)


def _global_options() -> argparse.ArgumentParser:
    """The parent parser of every command: options accepted before and after its name.

    Their defaults are suppressed: a subcommand's namespace is copied over the top level's,
    and a default there would overwrite a value given before the subcommand.
    """
    parent = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = parent.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML settings file (beats TIERFLOW_CONFIG)"
    )
    group.add_argument(
        "-v", "--verbose", action=Verbosity, help="-v info, -vv debug (counts add up)"
    )
    return parent


GLOBAL_OPTIONS = _global_options()


def resolve_globals(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with ``config`` (None when not given) and ``verbose`` (total ``-v`` count).

    ``--config`` given more than once: the last one (the deepest level) wins.
    """
    levels = [key for key in vars(args) if key.startswith(VERBOSE_KEY)]
    args.verbose = sum(getattr(args, key) for key in levels)
    for key in levels:
        delattr(args, key)
    if not hasattr(args, "config"):
        args.config = None
    return args


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
        formatter_class=HelpFormatter,
        parents=[GLOBAL_OPTIONS],
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
        named = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        msg = (
            f"{named} {'does' if len(missing) == 1 else 'do'} not exist on "
            f"{contract.bootstrap}; run 'tierflow topics create'"
        )
        raise TopicAdminError(msg)


def positive(**values: float | None) -> None:
    """Refuse a given option that is not a finite number above zero (None: not given).

    Raises:
        ConfigError: naming the first such option and its value.
    """
    for name, value in values.items():
        if value is not None and not 0 < value < math.inf:
            msg = f"--{name.replace('_', '-')} must be a finite number above 0, got {value:g}"
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
