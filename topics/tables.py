"""The newest record per key of a compacted control topic: what a follower keeps.

``control.assignments`` (newest epoch wins), ``control.registry`` and ``control.nodes``
(newest heartbeat wins) are all tables of the same kind; a tombstone (null value) forgets
its key. A table may bound its versions (``ceiling``): a record beyond the bound, such as
an assignment epoch far ahead of the reader's clock, is refused on arrival, so it can never
shadow the real records that follow it. A :class:`LatestTable`'s
:meth:`~LatestTable.handle` is the record handler a :class:`~tierflow.topics.follow.Follower`
or :class:`~tierflow.topics.follow_thread.ThreadFollower` feeds. Thread-safe: camera threads
read what the follower's thread writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from tierflow.topics.records import Record, RecordError, parse_record

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Record)

RecordHandler = Callable[[bytes | None, bytes | None], None]
"""What a follower calls with each record's key and value (None for a tombstone)."""


class LatestTable(Generic[R]):
    """The newest ``kind`` record per key, by ``version`` (a later equal version replaces).

    Args:
        kind: the record type the values parse as.
        version: orders two records of one key (an epoch, a heartbeat time).
        ceiling: the highest version accepted, asked on each record's arrival (None: no
            bound). A record above it is ignored, with one warning per key.
    """

    def __init__(
        self,
        kind: type[R],
        version: Callable[[R], int],
        ceiling: Callable[[], int] | None = None,
    ) -> None:
        self.kind = kind
        self.version = version
        self.ceiling = ceiling
        self.refused = 0
        """Records ignored for a version above ``ceiling``."""
        self._records: dict[str, R] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def apply(self, key: str, record: R | None) -> None:
        """Keep ``record`` unless a newer one is known; forget ``key`` on a tombstone (None)."""
        with self._lock:
            if record is None:
                self._records.pop(key, None)
                return
            if self.ceiling is not None and self.version(record) > (bound := self.ceiling()):
                self._refuse(key, record, bound)
                return
            known = self._records.get(key)
            if known is None or self.version(record) >= self.version(known):
                self._records[key] = record

    def _refuse(self, key: str, record: R, bound: int) -> None:
        self.refused += 1
        if key in self._warned:
            log.debug(
                "ignoring %s for %s: version %d", self.kind.__name__, key, self.version(record)
            )
            return
        self._warned.add(key)
        log.warning(
            "ignoring a %s for %s: version %d is %d ahead of the highest accepted, %d "
            "(forged, or a clock far ahead); later ones are ignored silently",
            self.kind.__name__,
            key,
            self.version(record),
            self.version(record) - bound,
            bound,
        )

    def handle(self, key: bytes | None, value: bytes | None) -> None:
        """The follower's handler: parse ``value`` and apply it; malformed records are logged."""
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:
            self.apply(name, None)
            return
        try:
            self.apply(name, parse_record(self.kind, value))
        except RecordError as exc:
            log.warning("ignoring a malformed %s for %s: %s", self.kind.__name__, name, exc)

    def get(self, key: str) -> R | None:
        """The newest record of ``key``, if any."""
        with self._lock:
            return self._records.get(key)

    def values(self) -> list[R]:
        """Every key's newest record."""
        with self._lock:
            return list(self._records.values())
