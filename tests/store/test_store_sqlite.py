"""The SQLite backend: the file, its pragmas, numbered migrations and user_version, and a
cancelled caller on the shared connection."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bot.store.migrate as migrate_module
from bot.quota import QuotaSettings
from bot.store import Store, migrations, split_sql
from bot.store.sqlite import BUSY_TIMEOUT_MS, SQLiteBackend
from tests.store import test_store as store_tests
from tests.store.test_store import GUILD, NOW, new_job


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "data" / "bot.sqlite3")
    yield opened
    await opened.close()


def connection(store: Store) -> Any:
    assert isinstance(store.backend, SQLiteBackend)
    return store.backend.db


async def pragma(store: Store, name: str) -> Any:
    async with connection(store).execute(f"PRAGMA {name}") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row[0]


def test_migrations_are_found_as_package_data_with_the_same_numbers_on_both() -> None:
    found = migrations("sqlite")
    assert found[0][:2] == (1, "0001_initial.sql")
    assert [n for n, _, _ in found] == sorted(n for n, _, _ in found)
    assert [m[:2] for m in migrations("postgres")] == [m[:2] for m in found]


async def test_open_creates_dir_and_sets_pragmas(tmp_path: Path, store: Store) -> None:
    assert (tmp_path / "data" / "bot.sqlite3").exists()
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "foreign_keys") == 1
    assert await pragma(store, "busy_timeout") == BUSY_TIMEOUT_MS == 30_000
    assert await pragma(store, "user_version") == migrations()[-1][0]
    assert await store.ping()


async def test_migrations_apply_once_and_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    first = await Store.open(path)
    job, _ = await first.reserve(new_job(), QuotaSettings(seconds=100), now=NOW)
    await first.set_meta("k", "v")
    await first.close()
    for _ in range(2):  # CREATE TABLE would fail if a migration ran again
        again = await Store.open(path)
        assert await pragma(again, "user_version") == migrations()[-1][0]
        assert await again.get_meta("k") == "v"
        assert (await again.job(job.id)) is not None
        await again.close()
    with sqlite3.connect(path) as plain:  # WAL is a property of the file
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_later_migrations_run_in_order_each_in_its_own_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bot.sqlite3"
    await (await Store.open(path)).close()
    base = migrations()
    n = base[-1][0] + 1
    extra = [
        (n, f"{n:04d}_notes.sql", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n"
         "INSERT INTO notes (body) VALUES ('semi;colon');"),
        (n + 1, f"{n + 1:04d}_broken.sql",
         "CREATE TABLE broken (id INTEGER);\nINSERT INTO nowhere VALUES (1);"),
    ]
    monkeypatch.setattr(migrate_module, "migrations", lambda _dialect: [*base, *extra])
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        await Store.open(path)
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA user_version").fetchone()[0] == n
        assert plain.execute("SELECT body FROM notes").fetchall() == [("semi;colon",)]
        tables = {r[0] for r in plain.execute("SELECT name FROM sqlite_master")}
        assert "broken" not in tables  # 0003 rolled back as a whole
    monkeypatch.setattr(migrate_module, "migrations", lambda _dialect: [*base, extra[0]])
    reopened = await Store.open(path)  # the notes migration is not applied twice
    assert await pragma(reopened, "user_version") == n
    await reopened.close()


def test_split_sql_keeps_strings_comments_and_triggers_whole() -> None:
    script = textwrap.dedent("""
        -- a comment; with a semicolon
        CREATE TABLE a (x TEXT DEFAULT 'x;y');
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            UPDATE a SET x = 'z;' WHERE rowid = new.rowid;
        END;
        -- trailing comment
    """)
    statements = split_sql(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_sql("CREATE TABLE b (x INTEGER)")


async def test_cancelled_callers_leave_the_connection_out_of_a_transaction(
    store: Store
) -> None:
    """The backend-neutral test, then SQLite's own view: no transaction left open."""
    await store_tests.test_cancelled_callers_leave_no_open_transaction(store)
    assert not connection(store).in_transaction


async def test_callers_cancelled_while_their_batch_runs_leave_nothing(store: Store,
                                                                      tmp_path: Path) -> None:
    """The batch waits for another process's write lock; its callers give up; when the
    lock goes, the batch commits and their reservations are withdrawn again."""
    batch = store._batch
    assert batch is not None
    other = sqlite3.connect(tmp_path / "data" / "bot.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        tasks = [asyncio.create_task(store.reserve(new_job(), QuotaSettings(seconds=100)))
                 for _ in range(5)]
        for _ in range(200):  # the drainer has taken them all into the blocked batch
            await asyncio.sleep(0.01)
            if not batch._queue:
                break
        assert not batch._queue
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        other.rollback()
        other.close()
    job, _ = await store.reserve(new_job(), QuotaSettings(seconds=100))  # after the batch
    assert [j.id for j in await store.jobs_for(GUILD, None)] == [job.id]
    assert [(r.job_id, r.seconds) for r in await store.ledger_rows()] == [(job.id, 4)]
