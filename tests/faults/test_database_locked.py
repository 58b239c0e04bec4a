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
from typing import Any

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


async def test_a_lock_held_past_the_wait_is_said_clearly_and_loses_nothing(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's "database is locked" (a write lock held past the bot's wait): a request
    meanwhile is answered at once and clearly, charging nothing; running jobs wait the
    lock out and finish."""
    if backend != "sqlite":
        pytest.skip("SQLite's own write lock")
    monkeypatch.setattr("bot.store.sqlite.BUSY_TIMEOUT_MS", 300)
    async with fault_world(tmp_path) as (w, fake):
        fake.task_s = 1.0
        await videos(w, ["fox"])
        await fake.wait_until(lambda: fake.submits_accepted == 1)
        async with writes_locked(w):
            refused = await w.command("video", {"prompt": "lynx", "duration": 4})
            assert await w.acked(refused) < 3
            said = await w.wait_reply(refused, "unavailable for a moment", within=10)
            assert "nothing was charged" in said
            await asyncio.sleep(2.0)
        jobs = await settle(w, 1, within=30)
        assert_clean(await books(w, jobs), delivered=1)


async def test_a_full_disk_is_said_clearly_and_loses_nothing(
    tmp_path: Path, backend: str
) -> None:
    """The disk holding the SQLite file is full (here: the file may not grow): a request is
    refused with a clear message naming it, charging nothing; the running job finishes
    once there is room again."""
    if backend != "sqlite":
        pytest.skip("SQLite's own disk-full error")
    async with fault_world(tmp_path) as (w, fake):
        fake.task_s = 1.5
        await videos(w, ["fox"])
        await fake.wait_until(lambda: fake.submits_accepted == 1)
        await cap_file(w, grow=False)
        refused = await w.command("video", {"prompt": "lynx " * 1000, "duration": 4})
        said = await w.wait_reply(refused, "out of disk space", within=15)
        assert "nothing was charged" in said and "admin" in said
        await asyncio.sleep(1.0)
        await cap_file(w, grow=True)
        jobs = await settle(w, 1, within=30)
        assert_clean(await books(w, jobs), delivered=1)


async def cap_file(w: World, *, grow: bool) -> None:
    """Let the bot's SQLite file grow, or not (``max_page_count``), on both its
    connections (the one for reservations lives in a worker thread)."""
    store = w.bot.store
    backend: Any = store.backend
    limit = 2_147_483_646
    if not grow:
        async with backend.db.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        limit = int(row[0])
    await backend.db.execute(f"PRAGMA max_page_count = {limit}")
    runner: Any = store._sqlite_runner
    await asyncio.get_running_loop().run_in_executor(
        runner._executor, lambda: runner._connection().execute(
            f"PRAGMA max_page_count = {limit}"))
