"""``python -m tierflow.grafana [--out DIR] [--check]``: regenerate the Grafana files.

Writes ``dashboards/*.json`` (provisioned), ``import/*.json`` (for Grafana's import page)
and ``provisioning/*/tierflow.yaml`` (at the settings' defaults) under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tierflow.grafana.dashboards import GRAFANA_DIR, generated_files, write_dashboards


def _stale(root: Path) -> list[str]:
    """Paths under ``root`` whose files differ from freshly generated ones."""
    return [
        name
        for name, text in generated_files().items()
        if not (root / name).is_file() or (root / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Write the files (or, with ``--check``, compare them); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tierflow.grafana",
        description="Generate tierflow's Grafana dashboards and provisioning files.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=GRAFANA_DIR,
        help=f"root of dashboards/, import/ and provisioning/ (default: {GRAFANA_DIR})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files under --out differ from the code",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = _stale(args.out)
        for name in stale:
            print(f"{args.out / name} differs from the code; run python -m tierflow.grafana")
        return 1 if stale else 0
    for path in write_dashboards(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
