"""Provisioning by demand (``control.provision = "demand"``): the placer as the thesis's back end.

The placer reads demand from arriving frames and real use from the registry; these tests
drive it with records as the control agent would and read what it publishes.
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from tierflow.settings import Settings
from tierflow.streams.placing import Demand, Placer
from tierflow.topics.records import NodeAnnouncement, ServiceAnnouncement
from tierflow.topics.stages import StageName

# resize and draw take 256 MB each, a detector 1024 MB: room for two detectors.
TWO_DETECTORS_MB = 2 * 256 + 2 * 1024 + 100


def _node(memory_mb: float = TWO_DETECTORS_MB) -> NodeAnnouncement:
    return NodeAnnouncement(
        node="edge",
        tier="edge",
        cores=2.0,
        memory_mb=memory_mb,
        storage_mb=50_000,
        heartbeat_ns=time.time_ns(),
        ttl_s=4.0,
    )


def _service(
    stage: StageName, quality: int | None = None, **use: int | None
) -> ServiceAnnouncement:
    return ServiceAnnouncement(
        service_id=f"{stage}-{quality}",
        stage=stage,
        quality=quality,
        topic="t",
        node="edge",
        heartbeat_ns=time.time_ns(),
        ttl_s=4.0,
        **use,
    )


class Published:
    """What a placer sent on ``control.placement``: live instance -> node."""

    def __init__(self) -> None:
        self.now: dict[str, bytes] = {}

    async def send(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.now.pop(key.decode(), None)
        else:
            self.now[key.decode()] = value

    @property
    def tasks(self) -> set[str]:
        return {instance.split("#")[0] for instance in self.now}


def _placer(settings: Settings, mode: int = 1, **control: object) -> tuple[Placer, Published]:
    update = {"provision": "demand", "placement_mode": mode, "detect_qualities": (320, 416, 512)}
    c = settings.control.model_copy(update={**update, **control})
    published = Published()
    return Placer(settings.model_copy(update={"control": c}), published.send), published


def _running(placer: Placer, use: dict[int, tuple[int, int]]) -> list[ServiceAnnouncement]:
    """The registry as the placed services would fill it; ``use``: quality -> (served, ago s)."""
    assert placer.last is not None
    now = time.time_ns()
    out = []
    for p in placer.last.placements.values():
        if p.task.startswith("detect-"):
            q = int(p.task.split("-")[1])
            served, ago_s = use.get(q, (0, 0))
            out.append(
                _service(
                    StageName.DETECT,
                    q,
                    frames_served=served,
                    last_frame_ns=now - ago_s * 10**9 if served else None,
                )
            )
        else:
            out.append(_service(StageName(p.task), frames_served=1000))
    return out


def test_demand_is_the_qualities_seen_within_the_window() -> None:
    demand = Demand(window_s=10.0)
    demand.observe(416, 100.0)
    demand.observe(512, 95.0)
    assert demand.qualities(104.0) == {416, 512}
    assert demand.qualities(106.0) == {416}


async def test_nothing_is_demanded_at_first_and_a_frame_provisions_its_detector(
    settings: Settings,
) -> None:
    placer, published = _placer(settings)
    assert await placer.place([_node()]) is not None
    assert published.tasks == {"resize", "draw"}
    assert await placer.place([_node()]) is None  # nothing changed: nothing published
    placer.demand.observe(416, time.time())
    assert await placer.place([_node()], _running(placer, {})) is not None
    assert published.tasks == {"resize", "detect-416", "draw"}


async def test_mode_1_evicts_the_detector_whose_last_frame_is_oldest(settings: Settings) -> None:
    placer, published = _placer(settings, mode=1, demand_s=5.0)
    now = time.time()
    for q in (320, 416):
        placer.demand.observe(q, now)
    await placer.place([_node()])
    assert published.tasks == {"resize", "detect-320", "detect-416", "draw"}
    # Both cameras went quiet; 416 served its last frame 60 s ago, 320 only 20 s ago.
    registry = _running(placer, {320: (100, 20), 416: (5000, 60)})
    placer.demand = Demand(5.0)
    placer.demand.observe(512, time.time())
    result = await placer.place([_node()], registry)
    assert result is not None
    assert published.tasks == {"resize", "detect-320", "detect-512", "draw"}
    assert "evicted detect-416" in result.message


async def test_mode_1_keeps_idle_detectors_while_memory_lasts(settings: Settings) -> None:
    placer, published = _placer(settings, mode=1)
    placer.demand.observe(320, time.time())
    await placer.place([_node(memory_mb=24_000)])
    registry = _running(placer, {320: (100, 30)})
    placer.demand = Demand(20.0)
    placer.demand.observe(512, time.time())
    await placer.place([_node(memory_mb=24_000)], registry)
    assert published.tasks == {"resize", "detect-320", "detect-512", "draw"}


async def test_mode_2_unloads_every_detector_no_frame_asks_for(settings: Settings) -> None:
    placer, published = _placer(settings, mode=2)
    placer.demand.observe(320, time.time())
    await placer.place([_node(memory_mb=24_000)])
    registry = _running(placer, {320: (100, 30)})
    placer.demand = Demand(20.0)
    placer.demand.observe(512, time.time())
    await placer.place([_node(memory_mb=24_000)], registry)
    assert published.tasks == {"resize", "detect-512", "draw"}


async def test_a_detector_idle_past_the_threshold_is_unloaded(settings: Settings) -> None:
    placer, published = _placer(settings, mode=1, evict_idle_s=30.0)
    placer.demand.observe(320, time.time() - 100)  # long out of the demand window
    placer.demand.observe(416, time.time())
    await placer.place([_node(memory_mb=24_000)])
    assert published.tasks == {"resize", "detect-416", "draw"}
    placer.demand.observe(320, time.time())
    await placer.place([_node(memory_mb=24_000)], _running(placer, {}))
    assert "detect-320" in published.tasks
    placer.demand = Demand(20.0)
    placer.demand.observe(416, time.time())
    registry = _running(placer, {320: (40, 31), 416: (40, 0)})
    assert await placer.place([_node(memory_mb=24_000)], registry) is not None
    assert published.tasks == {"resize", "detect-416", "draw"}


def test_demand_provisioning_refuses_a_policy_other_than_the_request_program() -> None:
    with pytest.raises(ValidationError, match="placement_policy must be auto or requests"):
        Settings(control={"provision": "demand", "placement_policy": "fifo"})
