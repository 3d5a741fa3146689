"""Where tierflow keeps files outside the repository (XDG base directories).

Read only by the defaults of settings sections (:mod:`tierflow.settings`, the tiers
section), which is where the environment reaches tierflow.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/tierflow`` (``~/.cache/tierflow``): jars, built tools."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tierflow"


def state_home() -> Path:
    """``$XDG_STATE_HOME/tierflow`` (``~/.local/state/tierflow``): logs, pids, data."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "tierflow"
