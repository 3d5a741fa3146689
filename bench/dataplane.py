"""Where a frame's time goes: cameras -> resize -> detect -> draw on the real broker.

Runs the stage services in-process with N generated cameras for a while and prints, per
quality, frames processed per second, end-to-end latency percentiles and the median of
every stage and transfer time taken from the per-frame records (metrics.frames).

    .venv/bin/python bench/dataplane.py --cameras 3 --fps 5 --quality 512 --seconds 20

Needs a broker: KAFKA_BOOTSTRAP_SERVERS, or the local one (`tierflow kafka up`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
import uuid
from collections import defaultdict

import numpy as np

from tierflow.settings import load_settings
from tierflow.streams.accounting import MetricsCollector
from tierflow.streams.camera import Camera, camera_producer
from tierflow.streams.capture import SceneSource
from tierflow.streams.stages import build_stage
from tierflow.topics.admin import create_catalogue
from tierflow.topics.contract import Contract
from tierflow.topics.records import FrameRecord, Outcome
from tierflow.topics.stages import StageName


async def run(cameras: int, fps: float, quality: int, seconds: float, store: bool) -> None:
    settings = load_settings(
        topics={"prefix": f"bench-{uuid.uuid4().hex[:6]}"},
        dataplane={"store_frames": store, "output_dir": "/tmp/tierflow-bench"},
    )
    contract = Contract.of(settings)
    create_catalogue(contract)
    ids = [f"cam-{i}" for i in range(cameras)]
    records: list[FrameRecord] = []
    collector = MetricsCollector(contract, set(ids), on_record=records.append)
    await collector.start()
    producer = camera_producer(contract, "bench", settings.camera.queue_kbytes)
    cams = [
        Camera(
            contract, cid, SceneSource(i, settings.camera.scene_size), producer, None, fps, quality
        )
        for i, cid in enumerate(ids)
    ]
    stop = threading.Event()
    async with contextlib.AsyncExitStack() as stack:
        for service in (
            build_stage(settings, StageName.DETECT, quality),
            build_stage(settings, StageName.DRAW),
            build_stage(settings, StageName.RESIZE),
        ):
            await stack.enter_async_context(service.run())
        threads = [threading.Thread(target=c.run, args=(stop, seconds)) for c in cams]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            await asyncio.to_thread(t.join)
        producer.flush(30)
        elapsed = time.monotonic() - started
        await collector.wait_for({c.source_id: c.stats.produced for c in cams}, 60)
    await collector.stop()

    processed = [r for r in records if r.outcome is Outcome.PROCESSED]
    outcomes: dict[str, int] = defaultdict(int)
    for r in records:
        outcomes[r.policy.value if r.policy else r.reason or r.outcome.value] += 1
    produced = sum(c.stats.produced for c in cams)
    print(f"{cameras} cameras x {fps} fps at {quality} px for {elapsed:.1f} s: produced {produced}")
    print(f"outcomes: {dict(outcomes)}")
    if not processed:
        return
    latency = np.array([r.latency_s for r in processed])
    print(
        f"processed {len(processed) / elapsed:.1f} frames/s; latency p50 {np.median(latency):.3f} s"
        f", p90 {np.percentile(latency, 90):.3f} s, p99 {np.percentile(latency, 99):.3f} s"
    )
    for field in ("stage_s", "busy_s", "transfer_s"):
        values: dict[str, list[float]] = defaultdict(list)
        for r in processed:
            for k, v in getattr(r, field).items():
                values[k].append(v)
        cells = ", ".join(f"{k} {np.median(v) * 1000:.1f} ms" for k, v in values.items())
        print(f"median {field.removesuffix('_s')}: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--quality", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--store", action="store_true", help="also write annotated files")
    args = parser.parse_args()
    asyncio.run(run(args.cameras, args.fps, args.quality, args.seconds, args.store))


if __name__ == "__main__":
    main()
