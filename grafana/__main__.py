"""``python -m tierflow.grafana [--out DIR] [--check]``: regenerate the dashboard JSON files."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tierflow.grafana.dashboards import DASHBOARDS_DIR, write_dashboards


def _stale(out_dir: Path) -> list[str]:
    """Names of the files in ``out_dir`` that differ from freshly generated ones."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = write_dashboards(Path(scratch))
        return [
            path.name
            for path in fresh
            if not (out_dir / path.name).is_file()
            or (out_dir / path.name).read_bytes() != path.read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards (or, with ``--check``, compare them); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tierflow.grafana", description="Generate tierflow's Grafana dashboards."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DASHBOARDS_DIR,
        help=f"directory for the JSON files (default: {DASHBOARDS_DIR})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in --out differ from the code",
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
