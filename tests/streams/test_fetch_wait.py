"""The workers' consumers wait at most ``workers.fetch_max_wait_s`` per fetch, not 1.5 s."""

from __future__ import annotations

from pathlib import Path

from tierflow.settings import load_settings
from tierflow.streams.app import make_app
from tierflow.topics.contract import Contract


async def _consumer_wait_ms(tmp_path: Path, **workers: object) -> int:
    settings = load_settings(workers={"data_dir": tmp_path / "workers", **workers})
    app = make_app(settings, Contract.of(settings), "fetch-wait")
    thread = app.consumer._thread  # type: ignore[attr-defined]
    # building the aiokafka consumer (in a loop) does not connect; start() reads the wait
    consumer = thread._create_worker_consumer(app.transport)
    try:
        return int(consumer._fetch_max_wait_ms)
    finally:
        await consumer.stop()
        thread.thread_loop.close()  # the loop the consumer thread would have run


async def test_the_default_fetch_wait_is_50_ms(tmp_path: Path) -> None:
    assert await _consumer_wait_ms(tmp_path) == 50


async def test_the_fetch_wait_follows_the_setting(tmp_path: Path) -> None:
    assert await _consumer_wait_ms(tmp_path, fetch_max_wait_s=0.2) == 200
