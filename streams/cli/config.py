"""``tierflow config show``: the effective settings, as TOML (or JSON), secrets masked.

Effective means after every source of :func:`tierflow.settings.load_settings`: keyword
defaults, the ``--config`` (or ``TIERFLOW_CONFIG``) file and ``TIERFLOW_*`` variables,
with computed defaults (the host name, the core count, the state directories) filled in.
The TOML output is a valid ``--config`` file: reading it back gives the same settings,
except for masked secrets and settings that are unset (None), which TOML cannot write and
which appear as comments.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from tierflow.settings import Settings
from tierflow.streams.cli.common import Subparsers, add

MASK = "**********"
"""What a secret is shown as (pydantic's own rendering of a SecretStr)."""
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def masked(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON-compatible data with every ``SecretStr``/``SecretBytes`` masked.

    Masked by walking the model's values, not by trusting serialisers: a secret field
    whose serialiser reveals it (for a child's environment) is still masked here.
    """
    data: dict[str, Any] = model.model_dump(mode="json")
    for name in type(model).model_fields:
        data[name] = _mask(getattr(model, name), data[name])
    return data


def _mask(value: object, dumped: Any) -> Any:
    """``dumped`` (the JSON form of ``value``) with the secrets inside ``value`` masked."""
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(value, BaseModel):
        return masked(value)
    if isinstance(value, list | tuple) and isinstance(dumped, list):
        return [_mask(v, d) for v, d in zip(value, dumped, strict=True)]
    if isinstance(value, Mapping) and isinstance(dumped, dict):
        return {k: _mask(value[k], dumped[k]) for k in dumped if k in value}
    return dumped


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    """One TOML value (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + ", ".join(items) + " }"
    msg = f"no TOML form for {value!r}"
    raise TypeError(msg)


def to_toml(data: Mapping[str, Any], table: str = "") -> str:
    """``data`` as a TOML document; None values (TOML has no null) become comments.

    Keys of scalars and arrays come first, then one ``[table]`` per nested mapping, as
    TOML requires.
    """
    lines: list[str] = []
    nested = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    for key, value in data.items():
        if key in nested:
            continue
        if value is None:
            lines.append(f"# {_key(key)} is unset")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = "\n".join(lines)
    for key, value in nested.items():
        name = f"{table}.{_key(key)}" if table else _key(key)
        section = f"[{name}]\n{to_toml(value, name)}".rstrip("\n")
        out = f"{out}\n\n{section}" if out else section
    return out + "\n"


def cmd_config_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective settings; secrets (SecretStr fields) as ``**********``."""
    data = masked(settings)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(to_toml(data), end="")
    return 0


def register(sub: Subparsers) -> None:
    """Add ``config show``."""
    config = add(sub, "config", "Inspect the settings tierflow runs with.")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = add(
        actions,
        "show",
        "Print the effective settings (defaults, then the --config or TIERFLOW_CONFIG file, "
        "then TIERFLOW_* variables) as TOML usable as a --config file; secrets are masked "
        "and unset settings are comments.",
        cmd_config_show,
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML")
