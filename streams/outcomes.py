"""Where every frame's journey ends: outcome records, deadletters, and acks after delivery.

Each frame gets a record on ``metrics.frames``; bad input also gets a copy on
``deadletter``; the input offset is acknowledged only once those writes are delivered.

Stages never ack an event themselves: they hand it here with its outputs, so "offsets are
committed only after the output is produced" holds in one place.

Delivery is at least once: a frame whose outputs were written but whose offset was not yet
committed when a worker upstream crashed, or a rebalance moved its partition, comes again.
Each stage process remembers the frames it wrote an outcome for (the last
``OUTCOME_MEMORY`` per source) and writes no second one: the redelivered frame is acked
and counted in ``tierflow_repeat_outcomes_total``. A process that starts (a restart after
kill -9 included) first reads the last ``OUTCOME_MEMORY`` records of each ``metrics.frames``
partition (:meth:`Outcomes.seed`): a frame its previous incarnation gave an outcome, then
died before committing, is a repeat too. What remains is an outcome in flight at the crash
(sent, not yet in the log): that one the redelivery writes, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Mapping

import faust
from confluent_kafka import KafkaException, Message

from tierflow.errors import TierflowError
from tierflow.streams.accounting import RecentSet
from tierflow.streams.app import Event, faust_topic
from tierflow.streams.metrics import METRICS, observe_outcome
from tierflow.topics.contract import Contract
from tierflow.topics.envelope import FrameMeta, Headers, HeadersIn
from tierflow.topics.headers import (
    H_DL_ERROR,
    H_DL_OFFSET,
    H_DL_OMITTED,
    H_DL_PARTITION,
    H_DL_PREFIX,
    H_DL_REASON,
    H_DL_STAGE,
    H_DL_TOPIC,
)
from tierflow.topics.records import (
    DropPolicy,
    FrameRecord,
    Outcome,
    RecordError,
    parse_frame_records,
)
from tierflow.topics.snapshot import read_to_end

log = logging.getLogger(__name__)

OUTCOME_MEMORY = 10_000
"""Sequence numbers per source a stage remembers having written an outcome for: a
redelivery arrives within a commit interval or a session timeout, far fewer frames."""
SEED_TIMEOUT_S = 20.0
"""Seconds a starting stage spends reading the outcomes already written."""


def raw_header_bytes(headers: HeadersIn) -> int:
    """Bytes of header names and values as they are, repeats and all (never raises)."""
    if headers is None:
        return 0
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    total = 0
    for pair in pairs:
        key, value = pair
        total += len(str(key).encode()) + (
            len(value) if isinstance(value, bytes | bytearray) else 0
        )
    return total


def latency_s(meta: FrameMeta, now_ns: int | None = None) -> float:
    """Seconds from capture to ``now_ns`` (default: now)."""
    return ((now_ns or time.time_ns()) - meta.capture_ns) / 1e9


def ledger(record: FrameRecord) -> str:
    """Whose outcomes ``record`` is among: its source, or its source's reference copies.

    A reference copy (golden truth) shares its frame's sequence and capture time: in the
    source's own ledger it would pass for a repeat of the frame's outcome, or the frame's
    for a repeat of it.
    """
    return f"{record.source}#reference" if record.reference else record.source


class Outcomes:
    """Writes outcome records and deadletters for one stage, and acks inputs after delivery."""

    def __init__(self, app: faust.App, contract: Contract, stage: str) -> None:
        names, catalogue = contract.names, contract.catalogue
        self.stage = stage
        self.metrics_topic = faust_topic(app, catalogue[names.metrics_frames])
        self.deadletter_topic = faust_topic(app, catalogue[names.deadletter])
        self.limits = contract.limits
        self._acks: set[asyncio.Task[None]] = set()
        # A frame is its (sequence, capture_ns): a camera restarted under the same id counts
        # from 0 again, and its new frame 0 must not pass for a repeat of the old one.
        self._written: dict[str, RecentSet[tuple[int, int]]] = defaultdict(
            lambda: RecentSet(OUTCOME_MEMORY)
        )
        self._pending: dict[tuple[str, int, int], asyncio.Future[object]] = {}
        self.repeats = 0
        """Outcomes not written because this process had delivered one for the frame."""
        self._contract = contract
        self._seeding: asyncio.Task[list[tuple[str, int, int]]] | None = None
        self._seeded = False

    async def seed(self) -> int:
        """Learn the frames ``metrics.frames`` already holds an outcome for (once per process).

        Reads the last ``OUTCOME_MEMORY`` records of each partition in a thread (the event
        loop stays free); agents await it before their first record. A read that fails is
        logged and leaves delivery at least once, as without it.

        Returns:
            Frames learnt.
        """
        if self._seeding is None:
            self._seeding = asyncio.create_task(asyncio.to_thread(self._read_outcomes))
        # Shielded: one agent cancelled while it waits must not cancel the others' seeding.
        seen = await asyncio.shield(self._seeding)
        if not self._seeded:  # merged here, on the loop, once
            self._seeded = True
            for source, sequence, capture_ns in seen:
                self._written[source].add((sequence, capture_ns))
        return len(seen)

    def _read_outcomes(self) -> list[tuple[str, int, int]]:
        seen: list[tuple[str, int, int]] = []

        def keep(message: Message) -> None:
            value = message.value()
            # An array is a camera's batch of sampled-out frames, which no stage ever sees:
            # skipped unparsed (they are most of the topic under overload).
            if not value or value.lstrip()[:1] == b"[":
                return
            try:
                records = parse_frame_records(value)
            except RecordError:
                return
            seen.extend((ledger(r), r.sequence, r.capture_ns) for r in records if r.sequence >= 0)

        topic = self._contract.names.metrics_frames
        try:
            read_to_end(
                self._contract, [topic], keep, timeout_s=SEED_TIMEOUT_S,
                client_id=f"tierflow-{self.stage}-seed", last=OUTCOME_MEMORY,
            )  # fmt: skip
        except (TierflowError, KafkaException) as exc:
            log.warning(
                "%s: outcomes already written not read (%s); at least once", self.stage, exc
            )
        return seen

    def ack_after(self, events: Iterable[Event], deliveries: Iterable[Awaitable[object]]) -> None:
        """Acknowledge ``events`` once every delivery has completed; never blocks the caller.

        A failed delivery leaves the events unacknowledged: their offsets are not committed,
        so a restarted worker processes them again (at least once).
        """
        task = asyncio.create_task(self._ack_when_done(list(events), list(deliveries)))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _ack_when_done(
        self, events: list[Event], deliveries: list[Awaitable[object]]
    ) -> None:
        try:
            await asyncio.gather(*deliveries)
        except Exception:
            log.exception(
                "%s: delivery failed; %d input offsets stay uncommitted", self.stage, len(events)
            )
            return
        for event in events:
            event.ack()

    async def drain(self) -> None:
        """Wait until every pending acknowledgement is done (on shutdown)."""
        if self._acks:
            await asyncio.gather(*self._acks, return_exceptions=True)

    def fits(self, key: bytes | None, value: bytes | bytearray, headers: HeadersIn) -> bool:
        """Whether a message of ``key``, ``value`` and ``headers`` fits a producer request.

        The broker's limit is ``limits.batch_bytes``; 1 KiB is left for the record batch's
        own framing. A stage checks before it sends: a send over the limit raises in the
        producer, where it would lose the frame's outcome.
        """
        size = len(key or b"") + len(value) + raw_header_bytes(headers) + 1024
        return size <= self.limits.batch_bytes

    def _fitted(
        self, value: bytes | None, original: Headers, letter: Headers
    ) -> tuple[bytes | None, Headers]:
        """The deadletter's value and headers, within the frame limit whatever came in.

        A letter always fits (a frame near the limit plus the ``tf-dl-*`` headers would
        not, and a send that fails would leave the frame without an outcome): the value is
        left out first, then the original headers, each noted in ``tf-dl-omitted``. The
        original stays on its topic at the letter's offset for the topic's retention.
        """
        limit = self.limits.frame_bytes
        omitted: list[str] = []
        if value is not None and len(value) + raw_header_bytes([*original, *letter]) > limit:
            omitted.append(f"value:{len(value)}")
            value = None
        if raw_header_bytes([*original, *letter]) + 64 > limit:
            omitted.append(f"headers:{raw_header_bytes(original)}")
            original = []
        if omitted:
            letter = [*letter, (H_DL_OMITTED, ",".join(omitted).encode())]
        return value, [*original, *letter]

    async def record(self, record: FrameRecord) -> Awaitable[object]:
        """Send ``record`` to ``metrics.frames`` (and count it); returns its delivery future.

        A frame this process already delivered an outcome for (a redelivery: same source,
        sequence and capture time) gets none: the returned future is done at once, so the
        input is acked. Sequence -1 (headers unreadable) is never taken for a repeat.
        """
        written = self._written[ledger(record)]
        frame = (record.sequence, record.capture_ns)
        if record.sequence >= 0 and frame in written:
            self.repeats += 1
            METRICS.repeat_outcomes.labels(self.stage).inc()
            log.info("%s: %s#%d came again; its outcome stands", self.stage, record.source,
                     record.sequence)  # fmt: skip
            # Acked with the first outcome's delivery: if that fails, neither offset is committed.
            pending = self._pending.get((ledger(record), *frame))
            if pending is not None:
                return pending
            done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        observe_outcome(record)
        if record.sequence >= 0:
            # Taken before the send (a repeat in the same batch must see it), given back if
            # the send fails, so the redelivery of an undelivered outcome is written.
            written.add(frame)
        try:
            fut: Awaitable[object] = await self.metrics_topic.send(
                key=record.source.encode(), value=record.to_bytes()
            )
        except BaseException:
            written.discard(frame)
            raise
        if record.sequence >= 0 and isinstance(fut, asyncio.Future):  # faust's FutureMessage
            key = (ledger(record), *frame)
            self._pending[key] = fut

            def delivered(f: asyncio.Future[object]) -> None:
                self._pending.pop(key, None)
                if f.cancelled() or f.exception() is not None:
                    written.discard(frame)

            fut.add_done_callback(delivered)
        return fut

    async def dropped(self, event: Event, meta: FrameMeta, policy: DropPolicy) -> None:
        """The frame is dropped on purpose by ``policy``: record it, then ack."""
        record = FrameRecord.of(meta, Outcome.DROPPED, self.stage, policy=policy)
        self.ack_after([event], [await self.record(record)])

    async def deadletter(
        self,
        event: Event,
        reason: str,
        detail: str,
        meta: FrameMeta | None = None,
    ) -> None:
        """Copy the original record to ``deadletter`` with why, record the outcome, then ack.

        Args:
            event: the input that cannot be processed.
            reason: a stable category (a ``FrameProblem`` value, ``no-consumer``...).
            detail: a sentence for humans.
            meta: the frame's metadata when its headers could be read.
        """
        message = event.message
        raw_headers = message.headers or []
        pairs = raw_headers.items() if isinstance(raw_headers, Mapping) else raw_headers
        original: Headers = [
            (str(k), v if isinstance(v, bytes) else b"")
            for k, v in pairs
            if not str(k).startswith(H_DL_PREFIX)
        ]
        letter: Headers = [
            (H_DL_TOPIC, message.topic.encode()),
            (H_DL_PARTITION, str(message.partition).encode()),
            (H_DL_OFFSET, str(message.offset).encode()),
            (H_DL_STAGE, self.stage.encode()),
            (H_DL_REASON, reason.encode()),
            (H_DL_ERROR, detail.encode(errors="replace")[:2048]),
        ]
        value, headers = self._fitted(message.value, original, letter)
        log.warning(
            "%s: %s[%d]@%d to deadletter: %s: %s",
            self.stage,
            message.topic,
            message.partition,
            message.offset,
            reason,
            detail,
        )
        deliveries: list[Awaitable[object]] = [
            await self.deadletter_topic.send(key=message.key, value=value, headers=headers)
        ]
        key = (message.key or b"?").decode(errors="replace")
        record = FrameRecord.of(meta, Outcome.DEADLETTER, self.stage, source=key, reason=reason)
        deliveries.append(await self.record(record))
        self.ack_after([event], deliveries)
