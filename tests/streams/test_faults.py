"""Faults an adversarial producer found (issue 11, 1-3, 5, 6), each reproduced on a real broker.

An independent client writes what no tierflow camera would: frames over the frame limit,
a null value, a tf-quality that contradicts its topic, a header given twice, a source id
that names a folder above the output. Every such record gets exactly one outcome (a
deadletter with the reason), the services stay alive, and good frames after them pass.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from tierflow.operators.vision.detections import Detections
from tierflow.settings import Settings
from tierflow.streams.accounting import MetricsCollector
from tierflow.streams.capture import SceneSource
from tierflow.streams.stages import build_stage
from tierflow.topics.admin import create_catalogue
from tierflow.topics.clients import producer_config
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, encode_headers, header_map, producer_headers
from tierflow.topics.snapshot import read_to_end
from tierflow.topics.stages import StageName

pytestmark = pytest.mark.kafka
LIMIT = 256 * 1024


def _settings(base: Settings, tmp_path: Path) -> Settings:
    return base.model_copy(
        update={
            "frames": base.frames.model_copy(update={"max_message_bytes": LIMIT}),
            "detector": base.detector.model_copy(update={"backend": "null", "threads": 1}),
            "dataplane": base.dataplane.model_copy(
                update={"output_dir": tmp_path / "out" / "annotated", "deadline_s": 60.0}
            ),
        }
    )


def _good(contract: Contract, source: str, seq: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    image, _ = SceneSource(seq, 512).scene.render_at(0.0, 512)
    meta = FrameMeta(source, seq, time.time_ns(), 512)
    return contract.codec.encode(image, meta)


def _letters(contract: Contract) -> list[Message]:
    letters: list[Message] = []
    read_to_end(contract, [contract.names.deadletter], letters.append)
    return letters


async def test_hostile_records_get_one_outcome_each_and_stop_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(kafka_settings, tmp_path)
    contract = Contract.of(settings)
    create_catalogue(contract)
    names = contract.names
    # Over the frame limit and so close to the broker's that a deadletter carrying it with
    # the tf-dl-* headers would not fit (it killed detect's tasks).
    room = contract.limits.batch_bytes - 300 - 200  # 200: its own headers, at most
    big = b"\xff\xd8" + bytes(room - 2)
    producer = Producer(producer_config(contract, "test-hostile"))

    def send(topic: str, key: str, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        producer.produce(topic, key=key.encode(), value=value, headers=producer_headers(headers))

    stamp = time.time_ns()
    # 1: two near-limit frames straight into the detector's input (they killed its tasks)
    for seq in range(2):
        send(
            names.ready(512),
            "big-ready",
            big,
            encode_headers(FrameMeta("big-ready", seq, stamp, 512)),
        )
    # 2: the same size at resize (its forward went over the broker's limit)
    send(names.raw(512), "big-raw", big, encode_headers(FrameMeta("big-raw", 0, stamp, 512)))
    # 3: a null value (two outcomes: resize stage-error and detect wrong-type)
    send(names.raw(512), "null", None, encode_headers(FrameMeta("null", 0, stamp, 512)))
    # 6: tf-quality contradicting the topic; tf-source given twice
    send(
        names.raw(512),
        "liar",
        _good(contract, "liar", 0)[0],
        encode_headers(FrameMeta("liar", 0, stamp, 320)),
    )
    twice = [*encode_headers(FrameMeta("twice", 0, stamp, 512)), ("tf-source", b"other")]
    send(names.raw(512), "twice", _good(contract, "twice", 0)[0], twice)
    # 5: source ids that name the output's parent and the output itself, with detections
    for source in ("..", "."):
        meta = FrameMeta(source, 0, stamp, 512).detected(Detections.empty((512, 512)), "null", ())
        send(names.detections(512), source, _good(contract, source, 0)[0], encode_headers(meta))
    # and good frames after all of them: the services must still be there
    for seq in range(3):
        value, headers = _good(contract, "good", seq)
        send(names.raw(512), "good", value, headers)
    assert producer.flush(30) == 0
    sources = {"big-ready", "big-raw", "null", "liar", "twice", "..", ".", "good"}
    collector = MetricsCollector(contract, sources)  # nothing processed the records yet
    await collector.start()
    services = [build_stage(settings, s, q) for s, q in (
        (StageName.DETECT, 512), (StageName.DRAW, None), (StageName.RESIZE, None),
    )]  # fmt: skip
    expected = {"big-ready": 2, "big-raw": 1, "null": 1, "liar": 1, "twice": 1, "..": 1, ".": 1}
    async with contextlib.AsyncExitStack() as stack:
        for service in services:
            await stack.enter_async_context(service.run())
        done = await collector.wait_for({**expected, "good": 3}, 90)
        assert done, str(
            {
                k: (t.processed, dict(t.deadlettered), dict(t.dropped), t.duplicates)
                for k, t in collector.tallies.items()
            }
        )
        assert all(s.failure is None for s in services), [s.failure for s in services]
    await collector.stop()
    tallies = collector.tallies
    assert tallies["big-ready"].deadlettered == {"too-large": 2}
    assert tallies["big-raw"].deadlettered == {"too-large": 1}
    assert tallies["null"].deadlettered == {"wrong-type": 1}
    assert tallies["liar"].deadlettered == {"bad-header": 1}
    assert tallies["twice"].deadlettered == {"bad-header": 1}
    assert tallies["good"].processed == 3
    assert all(t.duplicates == 0 for t in tallies.values())
    out = settings.dataplane.output_dir
    for source in ("..", "."):  # processed, and stored inside the output folder
        assert tallies[source].processed == 1, source
    stored = sorted(p.relative_to(out).parts[0] for p in out.rglob("*.jpg"))
    assert stored.count("__") == 1 and stored.count("_") == 1, stored
    assert not list(out.parent.glob("*.jpg")) and not list(out.glob("*.jpg"))

    letters = _letters(contract)
    assert len(letters) == 6  # one per hostile record that is not a frame here
    by_source: dict[str, list[Message]] = {}
    for letter in letters:
        by_source.setdefault((letter.key() or b"").decode(), []).append(letter)
    for letter in by_source["big-ready"] + by_source["big-raw"]:
        got = header_map(letter.headers())
        assert letter.value() is None  # left out, so that the letter fits
        assert got["tf-dl-omitted"] == f"value:{len(big)}".encode()
        assert got["tf-dl-offset"]  # where the original still is
    assert header_map(by_source["big-ready"][0].headers())["tf-dl-stage"] == b"detect"
    assert header_map(by_source["big-raw"][0].headers())["tf-dl-stage"] == b"resize"
