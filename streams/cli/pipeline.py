"""``tierflow up``, ``worker``, ``camera`` and ``check``: running the data plane."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from tierflow.errors import ConfigError
from tierflow.settings import DetectorSettings, Settings
from tierflow.streams.cli.common import (
    Subparsers,
    add,
    console,
    create_topics,
    ensure_cluster,
    positive,
    reach_cluster,
    stdout,
    with_section,
)
from tierflow.topics.contract import Contract
from tierflow.topics.stages import StageName

if TYPE_CHECKING:  # cv2 is imported only by the commands that capture
    from tierflow.streams.sources import SourceSpec

log = logging.getLogger(__name__)
BACKENDS = list(get_args(DetectorSettings.model_fields["backend"].annotation))


def up_sources(args: argparse.Namespace, settings: Settings) -> tuple[SourceSpec, ...]:
    """The user's sources of ``--sources FILE`` and ``--source URI``, checked (empty: none).

    Raises:
        ConfigError: the file or a source is invalid, ids repeat, or ``--cameras`` was
            given too (generated cameras and the user's do not mix in one run).
    """
    from tierflow.streams.sources import check_sources, from_uris, load_sources, unique

    specs = [*(load_sources(args.sources) if args.sources else []), *from_uris(args.source)]
    if specs and args.cameras is not None:
        msg = "--cameras runs generated cameras; with --sources or --source, list scene:SEED"
        raise ConfigError(msg)
    specs = unique(specs, "--sources and --source")
    check_sources(specs, settings.topics.qualities, settings.camera.scene_size)
    return tuple(specs)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The main job: broker, topics, workers and cameras, watched or summarised."""
    from tierflow.streams.up import UpOptions, check_up, print_summary, run_up

    positive(cameras=args.cameras, fps=args.fps, quality=args.quality, duration=args.duration)
    settings = with_section(settings, "dataplane", output_dir=args.output_dir)
    settings = with_section(settings, "detector", backend=args.backend, onnx_model=args.model)
    settings = with_section(settings, "control", policy=args.policy)
    sources = up_sources(args, settings)
    options = UpOptions(
        sources=sources,
        cameras=3 if args.cameras is None else args.cameras,
        duration_s=args.duration,
        qualities=tuple(args.qualities) if args.qualities else None,
        fps=args.fps,
        quality=args.quality,
        seed=args.seed,
        live=not args.json,
        control=not args.no_control,
        prometheus=args.prometheus,
    )
    check_up(settings, options)  # before the broker starts: a bad quality is one line
    ensure_cluster(settings)
    create_topics(settings)
    try:
        summary = asyncio.run(run_up(settings, options, console))
    except asyncio.CancelledError:
        console.print("interrupted during start-up; workers stopped")
        return 130
    if args.json:
        print_summary(summary)
    else:
        from tierflow.streams.live import summary_table

        stdout().print(summary_table(summary))
        console.print(f"annotated frames in {summary['output_dir']}")
    return 0 if summary["all_accounted"] else 1


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run one stage service until SIGINT/SIGTERM."""
    from tierflow.streams.service import serve_until_signalled
    from tierflow.streams.stages import build_stage

    settings = with_section(
        settings,
        "detector",
        backend=args.backend,
        onnx_model=args.model,
        input_size=args.input_size,
    )
    settings = with_section(settings, "workers", instance_id=args.instance_id)
    service = build_stage(settings, StageName(args.stage), args.quality)  # checks, no I/O
    # A worker on a prefix without topics would log missing-topic errors ten times a second
    # while its start-up waits for the registry (and never reach the signal handlers): the
    # cluster and every catalogue topic are checked before it starts, one line and exit 2.
    contract = Contract.of(settings)
    reach_cluster(contract, settings, *contract.catalogue.names)
    asyncio.run(serve_until_signalled(service))
    return 0


def cmd_node(args: argparse.Namespace, settings: Settings) -> int:
    """Run this machine's node agent until SIGINT/SIGTERM."""
    from tierflow.streams.node import serve_node

    settings = with_section(settings, "dataplane", node=args.node, tier=args.tier)
    log_dir = args.log_dir or settings.dataplane.output_dir.resolve().parent / "logs"
    asyncio.run(serve_node(settings, log_dir))
    return 0


def cmd_camera(args: argparse.Namespace, settings: Settings) -> int:
    """Run one camera until its input ends, --duration, --frames or Ctrl-C."""
    from tierflow.streams.assignments import AssignmentFollower
    from tierflow.streams.camera import Camera, camera_producer
    from tierflow.streams.capture import Reconnecting, is_live, open_source

    # Every option is checked before the broker is dialled or the source opened.
    positive(frames=args.frames, duration=args.duration)
    cam = with_section(settings, "camera", fps=args.fps, quality=args.quality).camera
    contract = Contract.of(settings)
    if cam.quality not in contract.qualities:
        qualities = ", ".join(str(q) for q in contract.qualities)
        msg = f"camera quality {cam.quality} has no frame topic; topics.qualities: {qualities}"
        raise ConfigError(msg)
    names = contract.names
    needed = [*(names.raw(q) for q in contract.qualities), names.metrics_frames]
    reach_cluster(contract, settings, *needed, *([] if args.no_follow else [names.assignments]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    source = Reconnecting(
        lambda: open_source(args.source, loop=args.loop, scene_size=cam.scene_size),
        stop,
        cam.reconnect_max_s,
        live=is_live(args.source),
    )
    source_id = args.id or f"cam-{uuid.uuid4().hex[:6]}"
    producer = camera_producer(contract, source_id, cam.queue_kbytes)
    follower = None if args.no_follow else AssignmentFollower(contract, cam.epoch_skew_s).start()
    camera = Camera(
        contract,
        source_id,
        source,
        producer,
        follower,
        cam.fps,
        cam.quality,
        max_frames=args.frames,
        initial_fps=None if args.no_follow else cam.initial_fps,
    )
    console.print(f"{source_id}: {source.description} -> quality {camera.stats.quality}")
    try:
        stats = camera.run(stop, args.duration)
    except KeyboardInterrupt:
        stats = camera.stats
    finally:
        queued = producer.flush(30)
        if follower is not None:
            follower.stop()
        source.close()
    print(
        json.dumps(
            {
                "source": source_id,
                "captured": stats.captured,
                "sent": stats.sent,
                "produced": stats.produced,
                "queued": queued,
                "dropped": dict(stats.dropped),
                "skipped_ticks": stats.skipped_ticks,
                "quality": stats.quality,
                "epoch": stats.epoch,
                "switches": stats.switches,
                "reconnects": source.reconnects,
            }
        )
    )
    if stats.produced < stats.sent:
        # Frames handed to the producer the broker never took: a loss, never a success.
        console.print(
            f"{source_id}: {stats.sent - stats.produced} of {stats.sent} frames sent were not "
            f"acknowledged by {contract.bootstrap} ({queued} still queued at exit)"
        )
        return 1
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """The live view; with --json one snapshot after --duration seconds."""
    from tierflow.streams.status import run_status

    if args.json and args.duration is None:
        msg = "status --json needs --duration (how long to collect before the snapshot)"
        raise ConfigError(msg)
    positive(window=args.window, duration=args.duration)
    contract = Contract.of(settings)
    names = contract.names
    reach_cluster(contract, settings, names.metrics_frames, names.registry, names.assignments)
    try:
        snapshot = asyncio.run(run_status(settings, args.window, args.duration, not args.json))
    except KeyboardInterrupt:
        return 0
    if args.json:
        print(json.dumps(snapshot, indent=2))
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """One frame camera -> faust agent -> consumer through the broker, as a health check."""
    from tierflow.streams.smoke import round_trip

    positive(timeout=args.timeout)
    ensure_cluster(settings)
    create_topics(settings)
    with console.status("round-tripping a sample frame through a faust agent"):
        report = asyncio.run(round_trip(settings, quality=args.quality, timeout_s=args.timeout))
    summary = {
        "bootstrap": settings.bootstrap,
        "round_trip": {
            "source": report.source,
            "from": report.topic_in,
            "to": report.topic_out,
            "frame_bytes": report.frame_bytes,
            "latency_s": round(report.latency_s, 4),
            "agent_s": round(report.agent_s, 4),
        },
    }
    print(json.dumps(summary, indent=2))
    return 0


def register(sub: Subparsers) -> None:
    """Add ``up``, ``worker``, ``camera`` and ``check``."""
    from tierflow.streams.cli.common import env_help

    up = add(
        sub,
        "up",
        "Run the pipeline on this machine: start the local broker unless KAFKA_BOOTSTRAP_SERVERS "
        "is set, create the topics, start resize, a detector per quality and draw, run "
        "generated-scene cameras and show a live table per source (quality, fps in/out, "
        "p50/p99 latency, F1). With --duration it stops by itself; --json prints one summary.",
        cmd_up,
    )
    up.add_argument(
        "--sources",
        type=Path,
        metavar="FILE",
        help="TOML file of your cameras ([[sources]] id, uri, fps, qualities, truth, loop; "
        "see docs/sources.md)",
    )
    up.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="URI",
        help="one more camera: a video file, an image folder, rtsp://..., /dev/videoN or "
        "scene:SEED (repeatable)",
    )
    up.add_argument(
        "--cameras", type=int, help="generated cameras, when no source is given (default 3)"
    )
    up.add_argument(
        "--duration", type=float, help="seconds to run the cameras (default: until Ctrl-C)"
    )
    up.add_argument(
        "--fps", type=float, help=f"frames per second per camera {env_help('camera.fps')}"
    )
    up.add_argument(
        "--quality",
        type=int,
        help=f"starting quality of the cameras {env_help('camera.quality')}",
    )
    up.add_argument(
        "--qualities", type=int, nargs="+", help="qualities that get a detector (default all)"
    )
    up.add_argument(
        "--backend",
        choices=BACKENDS,
        help="detector backend; null finds nothing, to measure the data plane "
        + env_help("detector.backend"),
    )
    up.add_argument(
        "--model",
        type=Path,
        help=f"ONNX model file (with --backend onnx) {env_help('detector.onnx_model')}",
    )
    up.add_argument(
        "--policy",
        help="quality policy of the control agent: milp, exact, all-max "
        + env_help("control.policy"),
    )
    up.add_argument("--seed", type=int, default=0, help="scene seed of the first camera")
    up.add_argument(
        "--output-dir",
        type=Path,
        help=f"where annotated frames go {env_help('dataplane.output_dir')}",
    )
    up.add_argument("--json", action="store_true", help="no live table; print one JSON summary")
    up.add_argument(
        "--prometheus",
        action="store_true",
        help="also start Prometheus (Debian's package) scraping every process; prints its URL",
    )
    up.add_argument(
        "--no-control",
        action="store_true",
        help="no control agent: cameras keep their quality (the paper's no-adaptation run)",
    )

    from tierflow.streams.stages import STAGES

    services = "; ".join(f"{spec.name}: {spec.summary}" for spec in STAGES.values())
    worker = add(
        sub,
        "worker",
        f"Run one service (a faust app) until SIGINT/SIGTERM. {services}.",
        cmd_worker,
    )
    worker.add_argument("stage", choices=[str(name) for name in STAGES])
    worker.add_argument("--quality", type=int, help="detect: the quality this detector serves")
    worker.add_argument(
        "--input-size",
        type=int,
        help="detect: model input side in pixels, by default the quality "
        + env_help("detector.input_size"),
    )
    worker.add_argument(
        "--backend", choices=BACKENDS, help=f"detect: backend {env_help('detector.backend')}"
    )
    worker.add_argument(
        "--model",
        type=Path,
        help=f"detect: ONNX model file (backend onnx) {env_help('detector.onnx_model')}",
    )
    worker.add_argument(
        "--instance-id",
        help="static consumer-group member id: a restarted worker with the same id gets its "
        "partitions back at once, not after the session timeout (tierflow up sets it) "
        + env_help("workers.instance_id"),
    )

    node = add(
        sub,
        "node",
        "Run this machine's node agent: announce it on control.nodes (cores, memory, "
        "accelerator, disk) and run, supervised, the workers control.placement puts on it; "
        "services placed elsewhere are stopped once they are live there. Stops its workers "
        "on SIGINT/SIGTERM.",
        cmd_node,
    )
    node.add_argument("--node", help=f"node id {env_help('dataplane.node')}")
    node.add_argument(
        "--tier",
        choices=["edge", "fog", "cloud"],
        help=f"tier announced {env_help('dataplane.tier')}",
    )
    node.add_argument("--log-dir", type=Path, help="workers' logs (default: next to out/)")

    camera = add(
        sub,
        "camera",
        "Publish frames from a source to frames.raw.<quality>, following control.assignments. "
        "SOURCE is scene:SEED (generated, with ground truth), a video file, a folder of images, "
        "an rtsp:// or http:// URL, or a V4L2 device (/dev/videoN or device:N).",
        cmd_camera,
    )
    camera.add_argument("--source", default="scene:0", help="what to capture (default scene:0)")
    camera.add_argument("--id", help="source id, the Kafka key (default: cam-<random>)")
    camera.add_argument(
        "--fps", type=float, help=f"target frames per second {env_help('camera.fps')}"
    )
    camera.add_argument(
        "--quality", type=int, help=f"starting quality in pixels {env_help('camera.quality')}"
    )
    camera.add_argument("--duration", type=float, help="seconds to run")
    camera.add_argument("--frames", type=int, help="frames to capture")
    camera.add_argument("--loop", action="store_true", help="restart files and folders at the end")
    camera.add_argument("--no-follow", action="store_true", help="ignore control.assignments")

    status = add(
        sub,
        "status",
        "Show the running pipeline in the terminal: per source quality, fps, p50/p99 latency, "
        "F1 and outcomes over a sliding window, and the live services, read from the "
        "metrics and control topics (no Grafana needed). Ctrl-C quits.",
        cmd_status,
    )
    status.add_argument("--window", type=float, default=10.0, help="seconds of records shown")
    status.add_argument("--duration", type=float, help="stop after this many seconds")
    status.add_argument("--json", action="store_true", help="one JSON snapshot at the end")

    check = add(
        sub,
        "check",
        "Health check: send one generated frame camera -> faust agent -> consumer through the "
        "broker and print the round trip as JSON.",
        cmd_check,
    )
    check.add_argument(
        "--quality", type=int, default=512, help="quality topic to use (default 512)"
    )
    check.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the frame")
