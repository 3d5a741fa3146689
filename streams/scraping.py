"""A real Prometheus scraping every process that ``control.registry`` announces.

``tierflow up --prometheus`` starts Debian's Prometheus (:mod:`tierflow.infra.prometheus`)
and keeps its file-based discovery targets equal to the live services of the registry,
plus the camera host itself.
"""

from __future__ import annotations

import asyncio
import time

from tierflow.infra.prometheus import LocalPrometheus, Target, targets_from_registry, write_targets
from tierflow.settings import Settings
from tierflow.streams import metrics
from tierflow.streams.app import cancel
from tierflow.streams.discovery import registry_reader
from tierflow.topics.contract import Contract
from tierflow.topics.stages import StageName


class Scraping:
    """A real Prometheus scraping every process the registry announces, and this one.

    The target list follows ``control.registry``: a worker started elsewhere later is
    scraped as soon as it announces itself.
    """

    def __init__(self, settings: Settings, contract: Contract) -> None:
        self.settings = settings
        self.prometheus = LocalPrometheus(settings.prometheus)
        self.reader = registry_reader(contract)
        self.own = Target(
            metrics.serve_announced(settings.dataplane).address,
            {
                "service": "cameras",
                "stage": StageName.CAMERA,
                "node": settings.dataplane.node,
                "tier": settings.dataplane.tier,
                "prefix": settings.topics.prefix,
            },
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Start Prometheus and the target writer; returns Prometheus's URL."""
        await self.reader.start()
        await self.reader.caught_up()
        self._write()
        url = await asyncio.to_thread(self.prometheus.start, True)
        self._task = asyncio.create_task(self._follow(), name="prometheus-targets")
        return url

    def _write(self) -> None:
        live = self.reader.view.live(time.time_ns())
        write_targets(
            self.prometheus.targets_file,
            [self.own, *targets_from_registry(live, self.settings.topics.prefix)],
        )

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._write()

    async def stop(self) -> None:
        """Stop following and stop Prometheus (its samples stay on disk)."""
        await cancel(self._task)
        await self.reader.stop()
        await asyncio.to_thread(self.prometheus.stop)
