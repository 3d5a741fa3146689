"""``tierflow record``, ``replay`` and ``experiment``: the researcher's path."""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
from pathlib import Path

from tierflow.errors import ConfigError
from tierflow.settings import Settings
from tierflow.streams.cli.common import (
    Subparsers,
    add,
    console,
    create_topics,
    ensure_cluster,
    with_section,
)


def _speed(text: str) -> float | None:
    """``--speed``: a positive factor, or ``max`` (None: no waiting)."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:
        msg = f"speed must be a positive number or 'max', not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_record(args: argparse.Namespace, settings: Settings) -> int:
    """Record generated or given cameras to disk, or a running prefix's frame topics."""
    from tierflow.streams.capture import open_source
    from tierflow.streams.recording import record_cameras
    from tierflow.topics.contract import Contract

    settings = with_section(settings, "topics", prefix=args.prefix)
    contract = Contract.of(settings)
    if args.topics:
        from tierflow.streams.replay import record_topics

        if args.duration is None and args.frames is None and not args.from_beginning:
            msg = "record --topics needs --duration, --frames or --from-beginning (when to stop)"
            raise ConfigError(msg)
        ensure_cluster(settings)
        stop = _stop_on_signals()
        sources = frozenset(args.source) if args.source else None
        with console.status(f"recording frames of prefix {args.prefix or '(none)'!r}"):
            manifest = record_topics(
                contract,
                args.out,
                duration_s=args.duration,
                max_frames=args.frames,
                sources=sources,
                from_beginning=args.from_beginning,
                stop=stop,
            )
    else:
        quality = settings.camera.quality if args.quality is None else args.quality
        fps = settings.camera.fps if args.fps is None else args.fps
        for flag, number in (("--fps", fps), ("--quality", quality), ("--cameras", args.cameras)):
            if not 0 < number < math.inf:
                msg = f"record {flag} must be positive, got {number}"
                raise ConfigError(msg)
        if (args.frames is not None and args.frames <= 0) or not (
            args.duration is None or 0 < args.duration < math.inf
        ):
            msg = "record --frames and --duration must be positive"
            raise ConfigError(msg)
        frames = args.frames or round((args.duration or 10.0) * fps)
        specs = args.camera or [f"scene:{args.seed + i}" for i in range(args.cameras)]
        size = settings.camera.scene_size
        opened = {f"cam-{i}": open_source(spec, scene_size=size) for i, spec in enumerate(specs)}
        with console.status(f"recording {len(opened)} cameras x {frames} frames at {quality} px"):
            manifest = record_cameras(args.out, contract, opened, frames, fps, quality)
        for source in opened.values():
            source.close()
    print(json.dumps(manifest, indent=2))
    return 0 if manifest["frames"] else 1


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Replay a recording into a prefix, following assignments like cameras."""
    from tierflow.streams.assignments import AssignmentFollower
    from tierflow.streams.recording import Recording
    from tierflow.streams.replay import replay
    from tierflow.topics.contract import Contract

    settings = with_section(settings, "topics", prefix=args.prefix)
    recording = Recording(args.recording)
    ensure_cluster(settings)
    create_topics(settings)
    contract = Contract.of(settings)
    skew_s = settings.camera.epoch_skew_s
    follower = None if args.no_follow else AssignmentFollower(contract, skew_s).start()
    stop = _stop_on_signals()
    try:
        speed = "max" if args.speed is None else f"{args.speed:g}x"
        frames = recording.manifest["frames"]
        with console.status(f"replaying {frames} frames at {speed} into {args.prefix!r}"):
            summary = replay(
                contract,
                recording,
                speed=args.speed,
                loop=args.loop,
                follower=follower,
                queue_kbytes=settings.camera.queue_kbytes,
                stop=stop,
                sources=args.source,
            )
    finally:
        if follower is not None:
            follower.stop()
        recording.close()
    print(json.dumps(summary, indent=2))
    return 0 if not summary["undelivered"] else 1


def cmd_experiment(args: argparse.Namespace, settings: Settings) -> int:
    """Run an experiment file's configurations and write its report."""
    from tierflow.streams.experiment import run_experiment_file

    report = run_experiment_file(args.experiment, args.out, settings, keep_topics=args.keep_topics)
    console.print(f"report: {report}")
    results = report.parent / "results.json"
    failed = json.loads(results.read_text()).get("failed", {}) if results.exists() else {}
    for name, why in failed.items():
        console.print(f"configuration {name} did not finish: {why}")
    return 1 if failed else 0


def register(sub: Subparsers) -> None:
    """Add ``record``, ``replay`` and ``experiment``."""
    record = add(
        sub,
        "record",
        "Record frames into a portable folder (manifest.json, index.jsonl, frames.bin; see "
        "docs/recording.md): by default generated cameras (or --camera sources) are recorded "
        "straight to disk, deterministically by seed; with --topics, what a running prefix's "
        "cameras publish on frames.raw.<quality>, headers and truth included.",
        cmd_record,
    )
    record.add_argument("out", type=Path, help="new folder for the recording")
    record.add_argument("--cameras", type=int, default=2, help="generated cameras (default 2)")
    record.add_argument("--seed", type=int, default=0, help="scene seed of the first camera")
    record.add_argument(
        "--camera",
        action="append",
        metavar="SOURCE",
        help="record this source instead (scene:SEED, a video file, a folder; repeatable)",
    )
    record.add_argument("--fps", type=float, help="frame clock of cameras (default 25)")
    record.add_argument("--quality", type=int, help="side recorded, pixels (default 512)")
    record.add_argument("--duration", type=float, help="seconds to record (cameras: 10)")
    record.add_argument("--frames", type=int, help="frames per camera (--topics: in all)")
    record.add_argument("--topics", action="store_true", help="record the prefix's frame topics")
    record.add_argument("--prefix", help="topic prefix to record (--topics; default settings)")
    record.add_argument(
        "--from-beginning",
        action="store_true",
        help="--topics: record what the topics retain now instead of what arrives",
    )
    record.add_argument(
        "--source", action="append", metavar="ID", help="--topics: only this camera id"
    )

    rep = add(
        sub,
        "replay",
        "Republish a recording into a prefix: per-source order and recorded timing (scaled by "
        "--speed), truth kept; replayed cameras follow control.assignments (quality and frame "
        "rate) like live ones. Two replays of one recording send the same frames.",
        cmd_replay,
    )
    rep.add_argument("recording", type=Path, help="a folder written by tierflow record")
    rep.add_argument("--prefix", required=True, help="topic prefix to publish into")
    rep.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="timing factor: 1 recorded (default), 2 twice as fast, max no waiting",
    )
    rep.add_argument("--loop", action="store_true", help="start again at the end (until Ctrl-C)")
    rep.add_argument("--no-follow", action="store_true", help="ignore control.assignments")
    rep.add_argument(
        "--source",
        action="append",
        metavar="ID",
        help="replay only this recorded source (repeat for more; default every one)",
    )

    exp = add(
        sub,
        "experiment",
        "Run one recording (or generated cameras with a fixed seed) through several "
        "configurations, each under its own topic prefix, and write DIR/report.md, "
        "DIR/results.json and PNG plots. EXP.toml is described in docs/experiments/README.md; "
        "docs/experiments/smoke.toml is a 2-minute example.",
        cmd_experiment,
    )
    exp.add_argument("experiment", type=Path, help="experiment file (TOML)")
    exp.add_argument("--out", type=Path, required=True, help="folder for the report")
    exp.add_argument(
        "--keep-topics", action="store_true", help="keep each configuration's topics afterwards"
    )
