"""Run the ``tierflow`` command as a user would: a separate process."""

from __future__ import annotations

import os
import subprocess
import sys


def tierflow(
    *args: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    timeout_s: float = 180.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``tierflow ARGS`` with ``env`` added to, and ``unset`` removed from, this environment."""
    full_env = {k: v for k, v in os.environ.items() if k not in unset}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tierflow.streams.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout_s,
        check=False,
    )
