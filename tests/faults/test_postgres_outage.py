"""PostgreSQL goes away (stopped in immediate mode, as a crash or a failover does) while
one job waits at the provider and another is being delivered, and callbacks fail; a
member asks for a video meanwhile. Started again on the same data, the bot carries on:
each job is posted once, the ledger balances, no task died with an error, the member was
told clearly that nothing was charged, and wake-ups (LISTEN) work again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.store import Store
from tests import pgserver
from tests.faults.support import assert_clean, books, fault_world, settle, videos

pytestmark = pytest.mark.timeout(120)
OUTAGE_S = 8.0


async def test_postgres_stops_and_starts_again(
    tmp_path: Path, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    if backend != "postgres":
        pytest.skip("stops the PostgreSQL server")
    caplog.set_level(logging.WARNING)
    server = pgserver.server()
    async with fault_world(tmp_path, callbacks=True, poll_first_s=2.0,
                           poll_interval_s=2.0) as (w, fake):
        fake.task_s = 4.0  # the first job is still rendering when the database goes
        await videos(w, ["a fox waiting at the provider"])
        await fake.wait_until(lambda: fake.submits_accepted == 1)

        paused, resumed = asyncio.Event(), asyncio.Event()
        outage: list[asyncio.Task[None]] = []

        async def stop_for_a_while() -> None:
            await asyncio.to_thread(server.pause)
            paused.set()
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(server.resume)
            resumed.set()

        real_deliver = w.bot.jobs._deliver

        async def deliver_then_outage(job: Any, video: Any, info: Any) -> int:
            message = await real_deliver(job, video, info)  # the video is in the channel
            if not outage:  # ... and the database goes before the post is recorded
                outage.append(asyncio.create_task(stop_for_a_while()))
                await paused.wait()
            return message

        w.bot.jobs._deliver = deliver_then_outage
        fake.task_s = 0.3
        await videos(w, ["an owl being delivered"])
        await asyncio.wait_for(paused.wait(), 30)

        during = await w.command("video", {"prompt": "a lynx asked during the outage",
                                           "duration": 4})
        assert await w.acked(during) < 3
        said = await w.wait_reply(during, "unavailable for a moment", within=15)
        assert "nothing was charged" in said
        await fake.wait_until(lambda: any(c.status not in (None, 200)
                                          for c in fake.callbacks_sent), within=15)
        await outage[0]

        jobs = await settle(w, 2, within=60)
        assert len(jobs) == 2, "the request made during the outage charged nothing"
        assert_clean(await books(w, jobs), delivered=2)
        assert fake.submits_accepted == 2
        assert w.bot.jobs._tasks == {}
        keeper = w.bot.jobs._keeper
        assert keeper is not None and keeper._task is not None and not keeper._task.done()

        # Wake-ups come back: a notification from another process reaches the bot.
        heard = asyncio.Event()
        await w.bot.store.listen("outage_test", lambda _payload: heard.set())
        other = await Store.open(w.bot.settings.database_url.get_secret_value())  # type: ignore[union-attr]
        try:
            await other.notify("outage_test", "hello")
            await asyncio.wait_for(heard.wait(), 10)
        finally:
            await other.close()
    died = [r for r in caplog.records if "never retrieved" in r.getMessage()
            or "failed unexpectedly" in r.getMessage()]
    assert not died, [r.getMessage() for r in died]
