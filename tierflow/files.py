"""Reading the TOML files users write (scenarios, experiments, sources) with one message."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tierflow.errors import TierflowError


def read_toml(path: Path, what: str, error: type[TierflowError]) -> dict[str, Any]:
    """The TOML document at ``path``, a ``what`` file (``scenario``, ``sources file``...).

    Raises:
        error: ``no <what> <path>``, ``cannot read <what> <path>: <why>`` or
            ``<path> is not TOML: <where>``.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"no {what} {path}"
        raise error(msg) from None
    except OSError as exc:
        msg = f"cannot read {what} {path}: {exc.strerror or exc}"
        raise error(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path} is not TOML: {exc}"
        raise error(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"{path} is not UTF-8 text: {exc}"
        raise error(msg) from None
