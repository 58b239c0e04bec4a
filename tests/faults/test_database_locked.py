"""Another process holds the database's write lock for a while (longer than SQLite's
common 5 s wait) while jobs run and members keep asking: acknowledgements stay fast,
then everything completes. On PostgreSQL the other process locks the job and ledger
tables against writes (reads go on, as with SQLite's write lock)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.bot.support import World
from tests.faults.support import (
    assert_clean,
    books,
    fault_world,
    settle,
    take_write_lock,
    videos,
)

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def writes_locked(w: World) -> AsyncIterator[None]:
    url = w.bot.settings.database_url
    if url is not None:
        conn = await asyncpg.connect(url.get_secret_value())
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("LOCK TABLE jobs, ledger IN EXCLUSIVE MODE")
            yield
        finally:
            await tx.rollback()
            await conn.close()
        return
    other = sqlite3.connect(w.bot.settings.database_path, timeout=0, isolation_level=None)
    try:
        await take_write_lock(other)
        yield
    finally:
        other.rollback()
        other.close()


async def test_database_locked_for_eight_seconds(tmp_path: Path) -> None:
    async with fault_world(tmp_path) as (w, fake):
        fake.task_s = 1.0
        await videos(w, ["fox", "owl", "hare"])
        await fake.wait_until(lambda: fake.submits_accepted == 3)
        async with writes_locked(w):
            more = [await w.command("video", {"prompt": p, "duration": 4})
                    for p in ("lynx", "crow")]
            for interaction in more:
                assert await w.acked(interaction) < 3  # acks never wait for the database
            await asyncio.sleep(8.0)
            assert w.videos() == []  # nothing could be recorded, so nothing was posted
        jobs = await settle(w, 5, within=30)
        assert_clean(await books(w, jobs), delivered=5)
        assert fake.submits_accepted == 5
