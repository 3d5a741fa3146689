"""What every simulation writes: ``report.md``, ``results.json`` and the plots' paths."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Progress = Callable[[str, float], None]
"""progress(label, fraction done in 0..1)."""


def command(name: str, out: Path) -> str:
    """The command that makes this report (experiment files live in ``docs/experiments``)."""
    return f"tierflow experiment docs/experiments/{name}.toml --out {out}"


def ratio(ours: float | None, seed: float | None) -> float | None:
    """``ours / seed``, None when either is missing or the seed's is 0."""
    if ours is None or seed is None or seed == 0 or not math.isfinite(ours):
        return None
    return ours / seed


def write(out: Path, results: Mapping[str, Any], body: str) -> None:
    """Write ``out/report.md`` (the command first, then ``body``) and ``out/results.json``."""
    out.mkdir(parents=True, exist_ok=True)
    head = f"`{results['command']}`\n\n# {results['name']}\n\n{results['description']}\n\n"
    (out / "report.md").write_text(head + body)
    text = json.dumps(results, indent=2, sort_keys=True, allow_nan=False)
    (out / "results.json").write_text(text + "\n")
