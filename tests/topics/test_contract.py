"""The topic contract is built in one place and handed down."""

from __future__ import annotations

import ast
from pathlib import Path

from tierflow.settings import Settings, load_settings
from tierflow.topics.contract import Contract

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("operators", "streams", "topics", "infra", "grafana", "tierflow", "bench")
BUILDERS = {"TopicNames", "Catalogue.build", "FrameCodec.of", "MessageLimits.for_frames"}


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def test_only_the_contract_builds_names_catalogue_limits_and_codec() -> None:
    found = []
    for folder in PRODUCTION:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "topics" / "contract.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and _called(node) in BUILDERS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {_called(node)}")
    assert not found, "built outside tierflow.topics.contract:\n" + "\n".join(found)


def test_the_contract_follows_the_settings(settings: Settings) -> None:
    other = load_settings(topics={"prefix": "exp1", "qualities": [256, 512]})
    contract = Contract.of(other)
    assert contract.names.raw(256) == "exp1.frames.raw.256"
    assert contract.qualities == (256, 512)
    assert contract.catalogue[contract.names.raw(256)].config["max.message.bytes"] == str(
        contract.limits.batch_bytes
    )
    assert contract.codec.max_bytes == contract.limits.frame_bytes
    assert Contract.of(settings).bootstrap == settings.bootstrap
