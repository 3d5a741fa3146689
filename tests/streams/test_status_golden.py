"""tierflow status scores golden sources against their reference copies."""

from __future__ import annotations

from tests.streams.test_golden import BOX, record
from tierflow.streams.status import Window, summarise


def test_a_golden_source_shows_f1_from_its_reference_copies() -> None:
    window = Window(60.0)
    scale = 320 / 512
    window.add(record(320, [[v * scale for v in BOX], [200, 200, 230, 230]], sequence=1))
    window.add(record(512, [BOX], reference=True, sequence=1))
    window.add(record(320, [[v * scale for v in BOX]], sequence=2))  # no copy: unscored
    records = window.current()
    assert [r.sequence for r in records] == [1, 2]  # the copy is no frame
    (entry,) = summarise(records, 60.0, window.current_scored()).values()
    assert entry["f1"] == round(2 * 1 / (2 * 1 + 1 + 0), 4)  # one found right, one wrong
    assert summarise(records, 60.0)["cam"]["f1"] is None  # without the scores: unknown
