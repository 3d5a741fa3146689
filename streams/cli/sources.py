"""``tierflow sources check|sample``: a user's cameras, checked before a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from tierflow.settings import Settings
from tierflow.streams.cli.common import Subparsers, add, console, positive, stdout


def cmd_sources_check(args: argparse.Namespace, settings: Settings) -> int:
    """Open every source of a sources file, read its truth, and list them."""
    from rich.table import Table

    from tierflow.streams.sources import check_sources, load_sources

    specs = load_sources(args.file)
    check_sources(specs, settings.topics.qualities, settings.camera.scene_size)
    table = Table(title=f"{args.file}: {len(specs)} sources, all open")
    for column in ("id", "source", "fps", "qualities", "truth"):
        table.add_column(column)
    for spec in specs:
        source = spec.open(settings.camera.scene_size)
        try:
            table.add_row(
                spec.id,
                source.description,
                f"{spec.fps or settings.camera.fps:g}",
                ", ".join(str(q) for q in spec.qualities or settings.topics.qualities),
                "generated" if spec.uri.startswith("scene:") else str(spec.truth or "none"),
            )
        finally:
            source.close()
    stdout().print(table)
    return 0


def cmd_sources_sample(args: argparse.Namespace, settings: Settings) -> int:
    """Write a sample video with MOT truth and images with COCO truth, and a sources file."""
    from tierflow.streams.samples import write_sample

    positive(frames=args.frames, fps=args.fps)
    sample = write_sample(args.dir, frames=args.frames, fps=args.fps)
    console.print(
        f"wrote {sample.video.name} + {sample.mot.name} (MOT), {sample.images.name}/ + "
        f"{sample.coco.name} (COCO) in {sample.folder}; run:\n"
        f"  tierflow up --sources {sample.sources_file}"
    )
    return 0


def register(sub: Subparsers) -> None:
    """Add ``sources check`` and ``sources sample``."""
    sources = add(
        sub,
        "sources",
        "Your cameras for 'tierflow up --sources FILE': check a sources file, or write a "
        "sample to try the path (docs/sources.md).",
    )
    actions = sources.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = add(
        actions,
        "check",
        "Open every source of FILE, read its truth file, and list them; exit 2 naming the "
        "first problem.",
        cmd_sources_check,
    )
    check.add_argument("file", type=Path, metavar="FILE")
    sample = add(
        actions,
        "sample",
        "Write into DIR a 768x512 video with its MOT gt.txt, a folder of images with a "
        "COCO instances file, and sources.toml naming both (made from generated scenes).",
        cmd_sources_sample,
    )
    sample.add_argument("dir", type=Path, metavar="DIR")
    sample.add_argument("--frames", type=int, default=50, help="frames to write (default 50)")
    sample.add_argument("--fps", type=float, default=5.0, help="frame rate (default 5)")
