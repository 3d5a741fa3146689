"""Measure an emulated continuum: a frame's transfer between two hosts, a host's CPU.

``python -m tierflow.infra.tiers.probe send|receive|burn`` are the programs that run *on*
hosts (through :meth:`.continuum.Continuum.command`); :func:`transfer` and
:func:`throughput` start them and compare with the model:

- transfer of a frame of ``S`` bytes from host A to host B through the broker: each host's
  link costs its route's one-way delay plus ``S/w`` (eq. 2), so
  ``T = d_A + 8 S / w_A + d_B + 8 S / w_B`` (inf bandwidth: no term);
- throughput: Haar detections per second on one host, which its CPU quota bounds.

Frames are 512 px generated scenes, JPEG as a camera sends them; sizes count value and
headers (TCP/IP and Kafka framing add a few per cent the model leaves out).
"""

from __future__ import annotations

import argparse
import json
import math
import select
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message

from tierflow.infra.errors import InfraError
from tierflow.infra.tiers.continuum import Continuum
from tierflow.infra.tiers.plan import ContinuumPlan

PROBE = [sys.executable, "-m", "tierflow.infra.tiers.probe"]
READY = "ready"
READY_TIMEOUT_S = 30.0
"""Seconds a probe program may wait for the broker or a frame before it gives up."""
PROBE_TOPIC = "tiers.probe"


@dataclass(frozen=True)
class Transfer:
    """Measured and modelled transfer between two hosts.

    Attributes:
        src, dst: the hosts.
        frame_bytes: value plus header bytes of each frame.
        measured_s: median of send-to-receive times (the first frame, which opens
            connections, left out), seconds.
        expected_s: ``d_src + 8S/w_src + d_dst + 8S/w_dst``, seconds.
        samples_s: every frame's time after the first, seconds.
    """

    src: str
    dst: str
    frame_bytes: int
    measured_s: float
    expected_s: float
    samples_s: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """measured / expected."""
        return self.measured_s / self.expected_s


def link_seconds(delay_s: float, mbps: float, size_bytes: int) -> float:
    """One host's link: its delay plus ``8 S / w`` (nothing for an unshaped link), seconds."""
    return delay_s + (0.0 if math.isinf(mbps) else 8 * size_bytes / (mbps * 1e6))


def _frame() -> bytes:
    from tierflow.operators.vision.codec import ContentType, encode_image
    from tierflow.operators.vision.scene import Scene, SceneConfig

    image, _ = Scene(SceneConfig(seed=7)).render_at(0.0, 512)
    return encode_image(image, ContentType.JPEG)


def _send(topic: str, count: int) -> None:
    from confluent_kafka import Producer

    from tierflow.settings import load_settings
    from tierflow.topics.clients import producer_config
    from tierflow.topics.contract import Contract

    contract = Contract.of(load_settings())
    producer = Producer(producer_config(contract, "tier-probe", **{"linger.ms": 0}))
    value = _frame()
    for i in range(count):
        outcome: list[KafkaError | None] = []
        headers: list[tuple[str, str | bytes | None]] = [
            ("probe-sent-ns", str(time.time_ns()).encode()),
            ("probe-seq", str(i).encode()),
        ]
        producer.produce(
            topic, value, partition=0, headers=headers, on_delivery=_keep_into(outcome)
        )
        # One frame at a time: each crosses an idle link, as the model assumes.
        while not outcome:
            producer.poll(0.1)
        if outcome[0] is not None:
            msg = f"frame {i} not delivered: {outcome[0]}"
            raise SystemExit(msg)


def _keep_into(outcome: list[KafkaError | None]) -> Callable[[KafkaError | None, Message], None]:
    def keep(error: KafkaError | None, _message: Message) -> None:
        outcome.append(error)

    return keep


def _receive(topic: str, count: int) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from tierflow.settings import load_settings
    from tierflow.topics.clients import consumer_config
    from tierflow.topics.contract import Contract
    from tierflow.topics.snapshot import watermarks

    contract = Contract.of(load_settings())
    group = f"tier-probe-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        consumer_config(contract, group, "tier-probe", **{"fetch.wait.max.ms": 100})
    )
    partition = TopicPartition(topic, 0)
    try:
        _, high = watermarks(consumer, partition, READY_TIMEOUT_S)
    except KafkaException as exc:
        msg = f"cannot read the end of {topic}[0]: {exc}"
        raise SystemExit(msg) from exc
    consumer.assign([TopicPartition(topic, 0, high)])
    consumer.poll(0.2)  # the fetch session opens; the first frame is left out anyway
    print(READY, flush=True)
    got = 0
    deadline = time.monotonic() + READY_TIMEOUT_S
    while got < count:
        if time.monotonic() > deadline:
            msg = f"{got} of {count} frames within {READY_TIMEOUT_S:g} s of the last"
            raise SystemExit(msg)
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            continue
        deadline = time.monotonic() + READY_TIMEOUT_S
        now = time.time_ns()
        raw = message.headers() or []
        pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
        headers = {k: v if isinstance(v, bytes) else str(v or "").encode() for k, v in pairs}
        size = len(message.value() or b"") + sum(len(k) + len(v) for k, v in headers.items())
        sent = int(headers["probe-sent-ns"])
        seq = int(headers["probe-seq"])
        print(json.dumps({"seq": seq, "s": (now - sent) / 1e9, "bytes": size}))
        sys.stdout.flush()
        got += 1
    consumer.close()


def _burn(seconds: float) -> None:
    from tierflow.operators.vision.detectors.haar import HaarDetector
    from tierflow.operators.vision.scene import Scene, SceneConfig

    image, _ = Scene(SceneConfig(seed=7)).render_at(0.0, 320)
    detector = HaarDetector(input_size=320)
    frames = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        detector.detect([image])
        frames += 1
    print(json.dumps({"frames": frames, "seconds": time.monotonic() - start}))


def transfer(
    continuum: Continuum, src: str, dst: str, frames: int = 6, topic: str = ""
) -> Transfer:
    """Send ``frames`` frames from host ``src`` to a reader on host ``dst``; time each.

    Raises:
        InfraError: no continuum is up, a host is unknown, or a probe failed.
    """
    plan = continuum.plan()
    if plan is None:
        msg = "no continuum is up; run 'tierflow tiers up SCENARIO' first"
        raise InfraError(msg)
    a, b = plan.host(src), plan.host(dst)
    topic = topic or probe_topic(continuum, plan)
    cmd, env = continuum.command(dst, [*PROBE, "receive", topic, str(frames)])
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as reader:
        try:
            if _first_line(reader, READY_TIMEOUT_S) != READY:
                _, error = reader.communicate(timeout=READY_TIMEOUT_S)
                msg = (
                    f"the reader on {dst} did not start (exit {reader.returncode}): {error[-1000:]}"
                )
                raise InfraError(msg)
            cmd, env = continuum.command(src, [*PROBE, "send", topic, str(frames)])
            sent = subprocess.run(
                cmd,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=READY_TIMEOUT_S * 4,
            )
            if sent.returncode != 0:
                msg = f"the sender on {src} failed: {sent.stderr[-1000:]}"
                raise InfraError(msg)
            out, error = reader.communicate(timeout=READY_TIMEOUT_S * 2)
        except subprocess.TimeoutExpired as exc:
            msg = f"a probe between {src} and {dst} took over {exc.timeout:g} s"
            raise InfraError(msg) from exc
        finally:
            if reader.poll() is None:
                reader.kill()
        if reader.returncode != 0:
            msg = f"the reader on {dst} failed: {error[-1000:]}"
            raise InfraError(msg)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    times = [r["s"] for r in sorted(rows, key=lambda r: r["seq"])][1:]
    if not times:
        msg = f"the reader on {dst} got {len(rows)} of {frames} frames"
        raise InfraError(msg)
    size = int(rows[0]["bytes"])
    expected = link_seconds(a.delay_s, a.mbps, size) + link_seconds(b.delay_s, b.mbps, size)
    return Transfer(src, dst, size, statistics.median(times), expected, tuple(times))


def _first_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The first line ``proc`` prints within ``timeout_s`` ("" when none came)."""
    assert proc.stdout is not None  # noqa: S101 - Popen(stdout=PIPE) above
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline().strip() if ready else ""


def probe_topic(continuum: Continuum, plan: ContinuumPlan) -> str:
    """The probe's own topic on the continuum's broker (made when missing).

    Not a pipeline topic: a stage running on the continuum must not see probe frames.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    from tierflow.topics.admin import wait_for_leaders

    cluster = continuum.cluster(plan)
    name = cluster.contract.names.group(PROBE_TOPIC)  # under the prefix, as groups are
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    if name not in admin.list_topics(timeout=READY_TIMEOUT_S).topics:
        future = admin.create_topics([NewTopic(name, 1, 1)])[name]
        try:
            future.result(timeout=READY_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    wait_for_leaders(admin, [name], READY_TIMEOUT_S)
    return name


def throughput(continuum: Continuum, node: str, seconds: float = 4.0) -> float:
    """Haar detections per second on host ``node`` (its CPU quota bounds them)."""
    cmd, env = continuum.command(node, [*PROBE, "burn", str(seconds)])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"the detector on {node} failed: {done.stderr[-1000:]}"
        raise InfraError(msg)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return float(row["frames"]) / float(row["seconds"])


def main(argv: Sequence[str] | None = None) -> None:
    """The programs a probe runs on a host."""
    parser = argparse.ArgumentParser(prog="python -m tierflow.infra.tiers.probe")
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("send", "receive"):
        p = sub.add_parser(name)
        p.add_argument("topic")
        p.add_argument("count", type=int)
    sub.add_parser("burn").add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    if args.what == "send":
        _send(args.topic, args.count)
    elif args.what == "receive":
        _receive(args.topic, args.count)
    else:
        _burn(args.seconds)


if __name__ == "__main__":
    main()
