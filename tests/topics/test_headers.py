"""Header names are defined once: in tierflow.topics.headers, and spelled nowhere else."""

from __future__ import annotations

import ast
from pathlib import Path

from tierflow.topics import headers

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("operators", "streams", "topics", "infra", "grafana", "tierflow", "bench")
NAMES = {value for key, value in vars(headers).items() if key.startswith("H_")}


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_module_but_headers_spells_a_header_name() -> None:
    found = []
    for folder in PRODUCTION:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "topics" / "headers.py":
                continue
            for line, text in _literals(path):
                if text in NAMES or text.startswith("tf-"):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "header names outside tierflow.topics.headers:\n" + "\n".join(found)


def test_every_header_name_is_distinct() -> None:
    values = [value for key, value in vars(headers).items() if key.startswith("H_")]
    assert len(values) == len(set(values))
